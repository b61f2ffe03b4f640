//! Software prefetch: ask for a line before it is read. A hint reads nothing
//! architecturally and never faults, whatever the address, so it is safe to call with any
//! pointer (past an operand's end included); on targets without the instruction it does
//! nothing.

/// Asks for the line holding `ptr` in L1 (`prefetcht0`).
#[inline(always)]
pub fn prefetch_l1(ptr: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it neither reads nor faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
