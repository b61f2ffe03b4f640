//! Arbitrary specs and buffer lengths through the public API: never a panic, errors leave the
//! output untouched, successful runs match the reference.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convkit_fuzz::api_robustness(data));
