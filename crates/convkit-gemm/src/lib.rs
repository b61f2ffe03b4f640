//! Packed single-precision GEMM, `C = A·B (+ bias, activation)`, as used by convkit's im2col
//! and Winograd algorithms, and usable on its own through [`Sgemm::gemm`].
//!
//! Both operands are *panel sources* ([`PanelSource`]): something that can write a block of
//! the operand in the microkernel's interleaved panel order. A plain strided matrix
//! ([`StridedMatrix`]) is one; weights packed once at plan time ([`PackedPanels`]) are another
//! and are handed out without copying; convkit-im2col's lowered input, packed straight from the
//! image, is a third. The driver ([`Sgemm`]) blocks the product for the caches, packs each
//! block once, runs the ISA's microkernel over register tiles, and applies the bias and
//! activation while the last depth block's tile is still in registers.

mod driver;
mod kernel;
mod panel;

pub use driver::{
    Blocking, Columns, Epilogue, GemmJob, GemmJobs, GemmOutput, OutputPtr, OutputTile, Packing,
    STAGED_C_BUDGET, Sgemm, threads_for,
};
pub use kernel::{KernelShape, MAX_STEPPED_A_ROWS};
pub use panel::{PackedPanels, PanelSource, SteppedRows, StridedMatrix, packed_len, panel_groups};
