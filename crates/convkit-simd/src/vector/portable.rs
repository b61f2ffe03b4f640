//! The portable path: `wide::f32x8`, compiled for the build's baseline target.

use super::Simd;
use half::{bf16, f16};

/// The portable path: `wide::f32x8`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Portable;

// SAFETY: `wide` compiles for the build's baseline target, which every CPU running the binary
// has; pointer accesses stay within the lanes the callers vouch for.
unsafe impl Simd for Portable {
    type F32 = wide::f32x8;

    #[inline(always)]
    unsafe fn zero() -> wide::f32x8 {
        wide::f32x8::ZERO
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> wide::f32x8 {
        wide::f32x8::splat(value)
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> wide::f32x8 {
        // SAFETY: the caller guarantees 8 readable f32 at `ptr`.
        wide::f32x8::from(unsafe { ptr.cast::<[f32; 8]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_partial(ptr: *const f32, len: usize) -> wide::f32x8 {
        let mut lanes = [0.0f32; 8];
        // SAFETY: the caller guarantees `len` (< 8) readable f32 at `ptr`.
        unsafe { std::ptr::copy_nonoverlapping(ptr, lanes.as_mut_ptr(), len) };
        wide::f32x8::from(lanes)
    }
    #[inline(always)]
    unsafe fn load_even(ptr: *const f32) -> wide::f32x8 {
        // SAFETY: the caller guarantees 16 readable f32 at `ptr`.
        let pairs = unsafe { ptr.cast::<[[f32; 2]; 8]>().read_unaligned() };
        wide::f32x8::from(pairs.map(|[even, _]| even))
    }
    #[inline(always)]
    unsafe fn store(ptr: *mut f32, value: wide::f32x8) {
        // SAFETY: the caller guarantees 8 writable f32 at `ptr`.
        unsafe { ptr.cast::<[f32; 8]>().write_unaligned(value.to_array()) }
    }
    #[inline(always)]
    unsafe fn store_partial(ptr: *mut f32, value: wide::f32x8, len: usize) {
        let lanes = value.to_array();
        // SAFETY: the caller guarantees `len` (< 8) writable f32 at `ptr`.
        unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), ptr, len) };
    }
    #[inline(always)]
    unsafe fn load_f16(ptr: *const f16) -> wide::f32x8 {
        // SAFETY: the caller guarantees 8 readable f16 at `ptr`.
        let halves = unsafe { ptr.cast::<[f16; 8]>().read_unaligned() };
        wide::f32x8::from(halves.map(f16::to_f32))
    }
    #[inline(always)]
    unsafe fn store_f16(ptr: *mut f16, value: wide::f32x8) {
        let halves = value.to_array().map(f16::from_f32);
        // SAFETY: the caller guarantees 8 writable f16 at `ptr`.
        unsafe { ptr.cast::<[f16; 8]>().write_unaligned(halves) }
    }
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const bf16) -> wide::f32x8 {
        // SAFETY: the caller guarantees 8 readable bf16 at `ptr`.
        let halves = unsafe { ptr.cast::<[bf16; 8]>().read_unaligned() };
        wide::f32x8::from(halves.map(bf16::to_f32))
    }
    #[inline(always)]
    unsafe fn store_bf16(ptr: *mut bf16, value: wide::f32x8) {
        let halves = value.to_array().map(bf16::from_f32);
        // SAFETY: the caller guarantees 8 writable bf16 at `ptr`.
        unsafe { ptr.cast::<[bf16; 8]>().write_unaligned(halves) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: wide::f32x8, b: wide::f32x8, c: wide::f32x8) -> wide::f32x8 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn add(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: wide::f32x8, b: wide::f32x8) -> wide::f32x8 {
        a * b
    }
    #[inline(always)]
    unsafe fn clamp(x: wide::f32x8, lo: wide::f32x8, hi: wide::f32x8) -> wide::f32x8 {
        let raised = x.simd_lt(lo).select(lo, x);
        raised.simd_gt(hi).select(hi, raised)
    }
    #[inline(always)]
    unsafe fn leaky(x: wide::f32x8, slope: wide::f32x8) -> wide::f32x8 {
        x.simd_lt(wide::f32x8::ZERO).select(x * slope, x)
    }
}
