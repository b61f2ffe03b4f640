//! Replays every input kept under `fuzz/regressions/<target>/` (minimized crashes and
//! hand-picked edge cases) through the fuzz target bodies.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("regressions folder exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        body(&std::fs::read(&path).expect("readable input"));
        replayed += 1;
    }
    println!(
        "{target}: replayed {replayed} inputs from {}",
        dir.display()
    );
}

#[test]
fn api_robustness_regressions() {
    replay("api_robustness", convkit_fuzz::api_robustness);
}

#[test]
fn differential_regressions() {
    replay("differential", convkit_fuzz::differential);
}

#[test]
fn bodies_accept_empty_and_short_inputs() {
    for data in [&[][..], &[0u8; 3], &[255u8; 64]] {
        convkit_fuzz::api_robustness(data);
        convkit_fuzz::differential(data);
    }
}
