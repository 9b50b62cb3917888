#![no_main]

// Each binary uses one of the shared targets.
#[allow(dead_code)]
#[path = "../../tests/fuzz/targets.rs"]
mod targets;
#[path = "../../tests/fuzz/valid.rs"]
mod valid;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::train_state(data));
