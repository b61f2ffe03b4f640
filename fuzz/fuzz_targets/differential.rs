//! An arbitrary `ConvProblem` through every registered algorithm, element type and ISA path,
//! against the reference.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convkit_fuzz::differential(data));
