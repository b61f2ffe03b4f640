//! Instruction-set paths: detection once per process, forcing by option or `CONVKIT_ISA`, and
//! the FMA throughput probe that defines "% of peak" in the bench.
//!
//! Kernels are compiled for several paths in one binary (no `-C target-cpu=native`): the
//! portable path on `wide`, and AVX2+FMA / AVX-512 through `std::arch` inside
//! `#[target_feature]` functions that the planner picks once with [`select`].

mod cache;
mod detect;
pub mod peak;
mod prefetch;
mod shared;
mod storage;
mod tasks;
pub mod transpose;
mod vector;

pub use cache::CacheSizes;
pub use detect::{ISA_ENV_VAR, available, available_isas, best, forced_by_env, resolve, select};
pub use prefetch::prefetch_l1;
pub use shared::SharedOutput;
pub use storage::F32Storage;
pub use tasks::{WorkerRanges, WorkerTasks};
#[cfg(target_arch = "x86_64")]
pub use vector::{Avx2, Avx512};
pub use vector::{Portable, Simd, VectorActivation};
