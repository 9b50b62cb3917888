//! The fuzz targets of `tests/fuzz/targets.rs`, run on the stable toolchain: every input of
//! the seed corpus (`tests/fuzz/corpus/<target>/`) and of the regressions
//! (`tests/fuzz/regressions/<target>/`, one file per crash ever found), then random mutations
//! of them (bit flips, interesting bytes and integers, truncations, splices, numbers in text
//! replaced by huge ones) for a fixed time. A panic fails the test and saves the input; an
//! input that runs for more than a minute aborts the run and saves it too.
//!
//! `TABDIFFUSION_FUZZ_SECONDS` (default 120) is the budget of all targets together (split
//! evenly; on two cores the tests run two at a time); `TABDIFFUSION_FUZZ_SEED` replays a run.
//! The coverage-guided version of the same targets is `scripts/dev/fuzz` (cargo-fuzz, nightly).

#[path = "fuzz/seeds.rs"]
mod seeds;
#[path = "fuzz/targets.rs"]
mod targets;
#[path = "fuzz/valid.rs"]
mod valid;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

/// The files of `tests/fuzz/{kind}/{target}/`.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else { return Vec::new() };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Saves an input that broke `target` where a regression test can be made of it.
fn save(target: &str, input: &[u8]) -> PathBuf {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("crash-{hash:016x}"));
    std::fs::write(&path, input).unwrap();
    path
}

/// Runs `f` on `input`; on a panic, saves the input and fails with where it is.
fn check(target: &str, f: fn(&[u8]), input: &[u8], origin: &str) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let path = save(target, input);
        panic!(
            "fuzz target {target} panicked on {origin} ({} bytes), saved to {}: fix the loader, then copy the file into tests/fuzz/regressions/{target}/",
            input.len(),
            path.display()
        );
    }
}

const INTERESTING_8: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'9', b'-', b'"', b'{', b'['];
const INTERESTING_64: [u64; 10] =
    [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 32, 1 << 40, 1 << 62, i64::MAX as u64, u64::MAX];
const NUMBERS: [&str; 10] = ["0", "-1", "7", "65536", "4294967296", "18446744073709551616", "1e308", "-1e308", "1.5", "99999999999999999999999"];

/// A random offset, half the time among the first 256 bytes (where the headers are).
fn offset(rng: &mut ChaCha8Rng, len: usize) -> usize {
    if rng.random_bool(0.5) { rng.random_range(0..len.min(256)) } else { rng.random_range(0..len) }
}

/// One to four random edits of `input` (the other seeds give splices).
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if out.is_empty() {
            out.push(rng.random());
            continue;
        }
        let len = out.len();
        match rng.random_range(0..10) {
            0 => {
                let at = offset(rng, len);
                out[at] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let at = offset(rng, len);
                out[at] = INTERESTING_8[rng.random_range(0..INTERESTING_8.len())];
            }
            2 => {
                let value = INTERESTING_64[rng.random_range(0..INTERESTING_64.len())];
                let width = [2, 4, 8][rng.random_range(0..3)];
                let bytes = if rng.random_bool(0.5) { value.to_le_bytes() } else { (value << (64 - 8 * width)).to_be_bytes() };
                let at = offset(rng, len);
                let end = (at + width).min(len);
                let field = if rng.random_bool(0.5) { &bytes[..end - at] } else { &bytes[8 - (end - at)..] };
                out[at..end].copy_from_slice(field);
            }
            3 => out.truncate(rng.random_range(0..len)),
            4 => {
                let at = rng.random_range(0..len);
                let end = (at + rng.random_range(1..=64)).min(len);
                out.drain(at..end);
            }
            5 => {
                let at = rng.random_range(0..len);
                let end = (at + rng.random_range(1..=256)).min(len);
                let copy = out[at..end].to_vec();
                let to = rng.random_range(0..=len);
                out.splice(to..to, copy);
            }
            6 => {
                let to = rng.random_range(0..=len);
                let mut bytes = vec![0u8; rng.random_range(1..=16)];
                rng.fill_bytes(&mut bytes);
                out.splice(to..to, bytes);
            }
            7 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let (cut, from) = (rng.random_range(0..=len), rng.random_range(0..=other.len()));
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                // A number in text (JSON, an .npy header) replaced by another.
                let starts: Vec<usize> =
                    (0..len).filter(|&i| out[i].is_ascii_digit() && (i == 0 || !out[i - 1].is_ascii_digit())).collect();
                if let Some(&start) = starts.get(rng.random_range(0..starts.len().max(1))) {
                    let end = (start..len).find(|&i| !out[i].is_ascii_digit()).unwrap_or(len);
                    let number = NUMBERS[rng.random_range(0..NUMBERS.len())];
                    out.splice(start..end, number.bytes());
                }
            }
        }
    }
    out.truncate(1 << 20);
    out
}

/// Aborts the run (saving the input) when one input runs for a minute: a hang. Stops
/// watching when dropped, also when a panic unwinds the test.
struct Watchdog {
    current: Arc<Mutex<(Instant, Vec<u8>, bool)>>,
}

impl Watchdog {
    fn start(target: &str) -> Self {
        let current = Arc::new(Mutex::new((Instant::now(), Vec::new(), false)));
        let watched = Arc::clone(&current);
        let target = target.to_string();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let guard = watched.lock().unwrap_or_else(|e| e.into_inner());
                let (started, input, done) = &*guard;
                if *done {
                    return;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    let path = save(&target, input);
                    eprintln!("fuzz target {target} ran a minute on one input, saved to {}", path.display());
                    std::process::abort();
                }
            }
        });
        Self { current }
    }

    fn watch(&self, input: &[u8]) {
        let mut guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 = Instant::now();
        guard.1.clear();
        guard.1.extend_from_slice(input);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).2 = true;
    }
}

fn budget() -> Duration {
    let total: f64 = std::env::var("TABDIFFUSION_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120.0);
    Duration::from_secs_f64(total / targets::TARGETS.len() as f64)
}

/// The corpus and regressions of `name`, then mutations of them until its share of the budget
/// is spent.
fn fuzz(name: &str) {
    let (_, f) = *targets::TARGETS.iter().find(|(n, _)| *n == name).expect("a target");
    let mut files = inputs("corpus", name);
    assert!(!files.is_empty(), "no seed corpus in tests/fuzz/corpus/{name}/ (cargo test --release --test fuzz -- --ignored writes it)");
    files.extend(inputs("regressions", name));
    for (path, bytes) in &files {
        check(name, f, bytes, &path.display().to_string());
    }
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
    let seed = std::env::var("TABDIFFUSION_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let watchdog = Watchdog::start(name);
    let deadline = Instant::now() + budget();
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let base = &seeds[rng.random_range(0..seeds.len())];
        let input = mutate(&mut rng, base, &seeds);
        watchdog.watch(&input);
        check(name, f, &input, &format!("a mutation (TABDIFFUSION_FUZZ_SEED={seed})"));
        runs += 1;
    }
    println!("fuzz target {name}: {runs} mutated inputs in {:?} (TABDIFFUSION_FUZZ_SEED={seed})", budget());
}

#[test]
fn fuzz_npy() {
    fuzz("npy");
}

#[test]
fn fuzz_idx() {
    fuzz("idx");
}

#[test]
fn fuzz_tile() {
    fuzz("tile");
}

#[test]
fn fuzz_image() {
    fuzz("image");
}

#[test]
fn fuzz_upload() {
    fuzz("upload");
}

#[test]
fn fuzz_stored_upload() {
    fuzz("stored_upload");
}

#[test]
fn fuzz_checkpoint() {
    fuzz("checkpoint");
}

#[test]
fn fuzz_train_state() {
    fuzz("train_state");
}

#[test]
fn fuzz_diffusers_config() {
    fuzz("diffusers_config");
}

#[test]
fn fuzz_manifest() {
    fuzz("manifest");
}

#[test]
fn every_target_has_a_test() {
    let source = include_str!("fuzz.rs");
    for (name, _) in targets::TARGETS {
        assert!(source.contains(&format!("fuzz(\"{name}\")")), "no test runs the target {name}");
    }
}

/// Rewrites the seed corpus from the crate's writers: `cargo test --release --test fuzz --
/// --ignored` (then commit tests/fuzz/corpus/).
#[test]
#[ignore = "rewrites the seed corpus from the crate's writers"]
fn write_the_seed_corpus() {
    for (target, file, bytes) in seeds::corpus() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}
