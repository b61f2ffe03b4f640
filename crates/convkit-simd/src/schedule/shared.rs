//! The output pointer of a run, shared by the workers that write its disjoint parts.

/// A run's output pointer, handed to every worker of the run. Sharing the pointer is all it
/// does: each write through it is an `unsafe` block of the kernel that owns the part it
/// writes (work items partition the output, and nothing reads it during the run).
#[derive(Debug)]
pub struct SharedOutput<T>(*mut T);

impl<T> SharedOutput<T> {
    /// Shares `ptr` with the run's workers.
    pub fn new(ptr: *mut T) -> SharedOutput<T> {
        SharedOutput(ptr)
    }

    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    pub fn get(self) -> *mut T {
        self.0
    }
}

impl<T> Clone for SharedOutput<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOutput<T> {}
// SAFETY: the pointer is only an address; writes through it are each kernel's own unsafe
// blocks, to the disjoint parts of the output that its work items own.
unsafe impl<T> Sync for SharedOutput<T> {}
// SAFETY: as above.
unsafe impl<T> Send for SharedOutput<T> {}
