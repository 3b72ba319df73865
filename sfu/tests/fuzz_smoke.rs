//! Every fuzz target (`sfu/fuzz`, fuzzed for real by `ops/fuzz.sh`) run
//! over its seeds and over inputs mutated from them with a fixed seed, in
//! every `cargo test`: the targets stay buildable, and what the fuzzer
//! once found (kept among the seeds) stays fixed.

#[path = "../fuzz/fuzz_targets/bodies.rs"]
mod bodies;

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs per target.
const MUTANTS: usize = 200;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// A few random edits, as a fuzzer's first mutations would make.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..4) {
            0 if at < data.len() => data[at] = rng.random(),
            1 => data.insert(at, rng.random()),
            2 if at < data.len() => {
                data.remove(at);
            }
            _ => {
                let end = (at + rng.random_range(0..64)).min(data.len());
                let piece = data[at..end].to_vec();
                data.splice(at..at, piece);
            }
        }
    }
    data
}

fn run(target: &str, body: fn(&[u8])) {
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "no seeds for {target}");
    let mut rng = StdRng::seed_from_u64(1);
    for s in &seeds {
        body(s);
    }
    for i in 0..MUTANTS {
        body(&mutate(&mut rng, &seeds[i % seeds.len()]));
    }
}

#[test]
fn signalling_messages_from_a_participant() {
    run("signalling", bodies::signalling);
}

#[test]
fn datagrams_from_the_network() {
    run("datagrams", bodies::datagrams);
}

#[test]
fn rtp_payloads_on_the_forwarding_path() {
    run("payloads", bodies::payloads);
}
