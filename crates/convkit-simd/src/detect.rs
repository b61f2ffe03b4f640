//! Which paths this CPU runs, and which one a plan uses.

use convkit_core::{ConvError, Isa};
use std::sync::OnceLock;

/// Environment variable that forces a path for tests and benches:
/// `CONVKIT_ISA=scalar|avx2|avx512|neon`.
pub const ISA_ENV_VAR: &str = "CONVKIT_ISA";

fn detected() -> &'static [Isa] {
    static DETECTED: OnceLock<Vec<Isa>> = OnceLock::new();
    DETECTED.get_or_init(|| Isa::ALL.into_iter().filter(|&isa| detect(isa)).collect())
}

/// Whether this CPU has `isa`: its row of the ISA table ([`crate::paths`]) lists the
/// features, detected once. NEON has no row (its kernels are the portable ones) but is named
/// where the CPU has it.
fn detect(isa: Isa) -> bool {
    match isa {
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
        _ => crate::paths::detect_row(isa),
    }
}

/// Whether this CPU runs `isa` (detected once per process).
pub fn available(isa: Isa) -> bool {
    detected().contains(&isa)
}

/// Every path this CPU runs, portable first, widest last.
pub fn available_isas() -> &'static [Isa] {
    detected()
}

/// The widest path this CPU runs.
pub fn best() -> Isa {
    *detected().last().unwrap_or(&Isa::Scalar)
}

/// The path named by `CONVKIT_ISA`, if set (an unknown name is an error).
pub fn forced_by_env() -> Result<Option<Isa>, ConvError> {
    match std::env::var(ISA_ENV_VAR) {
        Ok(name) if !name.trim().is_empty() => Isa::from_name(&name).map(Some),
        _ => Ok(None),
    }
}

/// Environment variable naming the paths that tests must run (`CONVKIT_REQUIRE_ISAS=avx2,avx512`,
/// set by CI to what its CPU has): a named path the CPU lacks fails [`testable_isas`] rather
/// than being skipped.
pub const REQUIRE_ENV_VAR: &str = "CONVKIT_REQUIRE_ISAS";

/// The paths a test runs its checks on: every path this CPU has. A path it lacks is reported
/// on stderr as skipped (once per process); one that `CONVKIT_REQUIRE_ISAS` names panics instead, so that a CI
/// run proves each required path ran. An unknown name there panics too.
pub fn testable_isas() -> &'static [Isa] {
    let required = std::env::var(REQUIRE_ENV_VAR).unwrap_or_default();
    for name in required.split(',').filter(|name| !name.trim().is_empty()) {
        let isa = Isa::from_name(name).unwrap_or_else(|error| panic!("{REQUIRE_ENV_VAR}: {error}"));
        assert!(
            available(isa),
            "{REQUIRE_ENV_VAR} requires the {isa} path, which this CPU lacks"
        );
    }
    static REPORTED: std::sync::Once = std::sync::Once::new();
    REPORTED.call_once(|| {
        for row in crate::PATHS.iter().filter(|row| !available(row.isa)) {
            eprintln!("path {} skipped: this CPU lacks it", row.isa);
        }
    });
    detected()
}

/// The path a plan uses: `requested` if given, else `CONVKIT_ISA` if set, else [`best`].
/// A forced path the CPU lacks is `ConvError::IsaUnavailable`.
pub fn select(requested: Option<Isa>) -> Result<Isa, ConvError> {
    let isa = match requested {
        Some(isa) => isa,
        None => forced_by_env()?.unwrap_or_else(best),
    };
    if available(isa) {
        Ok(isa)
    } else {
        Err(ConvError::IsaUnavailable { isa })
    }
}

/// The path an algorithm runs when `ceiling` is requested: the widest of `supported` that this
/// CPU runs and that is no wider than `ceiling` (the portable path when none is).
pub fn resolve(supported: &[Isa], ceiling: Isa) -> Isa {
    supported
        .iter()
        .copied()
        .filter(|&isa| isa <= ceiling && available(isa))
        .max()
        .unwrap_or(Isa::Scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_is_always_available_and_best_is_available() {
        assert!(available(Isa::Scalar));
        assert!(available(best()));
        assert_eq!(select(Some(Isa::Scalar)), Ok(Isa::Scalar));
    }

    #[test]
    fn resolve_picks_the_widest_supported_path_under_the_ceiling() {
        assert_eq!(resolve(&[Isa::Scalar], best()), Isa::Scalar);
        assert_eq!(resolve(&Isa::ALL, Isa::Scalar), Isa::Scalar);
        assert_eq!(resolve(&Isa::ALL, best()), best());
    }

    #[test]
    fn forcing_a_missing_path_is_an_error() {
        if let Some(&missing) = Isa::ALL.iter().find(|&&isa| !available(isa)) {
            assert_eq!(
                select(Some(missing)),
                Err(ConvError::IsaUnavailable { isa: missing })
            );
        }
    }
}
