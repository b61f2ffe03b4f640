//! Instruction-set paths: detection once per process, forcing by option or `CONVKIT_ISA`, and
//! the FMA throughput probe that defines "% of peak" in the bench.
//!
//! Kernels are compiled for several paths in one binary (no `-C target-cpu=native`): the
//! portable path on `wide`, and AVX2+FMA / AVX-512 through `std::arch` inside
//! `#[target_feature]` functions that the planner picks once with [`select`]. The paths are
//! the rows of one table ([`paths`]), and every kernel crate reaches them through its one
//! dispatch ([`dispatch`], [`entry`], [`IsaPath`]).
//!
//! Scheduling helpers, apart from SIMD, live in [`schedule`] (re-exported here).

mod cache;
mod detect;
pub mod paths;
pub mod peak;
mod prefetch;
pub mod schedule;
mod storage;
pub mod transpose;
mod vector;

pub use cache::CacheSizes;
pub use detect::{
    ISA_ENV_VAR, REQUIRE_ENV_VAR, available, available_isas, best, forced_by_env, resolve, select,
    testable_isas,
};
pub use paths::{
    Entry, IsaPath, PATHS, PathInfo, SimdKernel, SimdOp, call, dispatch, entry, lanes, path_info,
    registers,
};
pub use prefetch::prefetch_l1;
pub use schedule::{SharedOutput, WorkerRanges, WorkerTasks};
pub use storage::F32Storage;
#[cfg(target_arch = "x86_64")]
pub use vector::{Avx2, Avx512};
pub use vector::{Portable, Simd, VectorActivation};
