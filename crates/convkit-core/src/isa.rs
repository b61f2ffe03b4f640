//! Names of the instruction-set paths. Detection lives in `convkit-simd`.

use crate::ConvError;
use std::fmt;

/// An instruction-set path a kernel can be compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable code (the `wide` crate's lanes or plain scalar loops); runs everywhere.
    Scalar,
    /// x86-64 AVX2 with FMA (256-bit vectors, 16 registers).
    Avx2,
    /// x86-64 AVX-512 F+BW+VL+DQ (512-bit vectors, 32 registers, masked tails).
    Avx512,
    /// AArch64 NEON.
    Neon,
}

impl Isa {
    /// Every path, portable first.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The name used by `CONVKIT_ISA` and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a name as accepted by `CONVKIT_ISA` (case-insensitive; `portable` means scalar).
    pub fn from_name(name: &str) -> Result<Isa, ConvError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" | "portable" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            _ => Err(ConvError::UnknownIsa {
                name: name.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Ok(isa));
        }
        assert_eq!(Isa::from_name(" AVX2 "), Ok(Isa::Avx2));
        assert!(matches!(
            Isa::from_name("sse9"),
            Err(ConvError::UnknownIsa { .. })
        ));
    }
}
