//! Scheduling, apart from SIMD: how a run's work is split among the caller's rayon workers
//! ([`WorkerRanges`]) and how they share the output they write in disjoint parts
//! ([`SharedOutput`]).

mod shared;
mod tasks;

pub use shared::SharedOutput;
pub use tasks::{WorkerRanges, WorkerTasks};
