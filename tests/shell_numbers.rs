//! The shells (`src/web/`, `src/cli/`) hold no training or sampling numbers of their own:
//! defaults live in the core's run spec (`spec::RunSpec`), limits in the core. This lists every
//! numeric literal in the shells' code (comments, strings and test modules left out) and
//! compares it with a small allow-list: counts, unit conversions and layout. A new number in a
//! shell fails here: move it to the core, or add it below with the reason.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

/// Numbers any shell file may hold: indices, halves, unit conversions.
const ANYWHERE: &[&str] = &["0", "1", "2", "3", "4", "0.0", "1.0", "100.0", "1000.0", "1e6"];

/// Numbers one file may hold, and why.
const PER_FILE: &[(&str, &[&str], &str)] = &[
    ("web/kernels.rs", &["180", "10"], "the tuned build's first-step limit (s) and its first steps, in which a crash is its kernels'"),
    ("web/page/charts.rs", &["300", "300.0", "95.0", "90.0", "1e-6", "1e-3", "6.0", "4.0", "10.0"], "the charts' 300×100 box and log scales"),
    ("web/page/panels.rs", &["250", "300.0", "10"], "the forward slider's first t, the chart box, the loss mean of the last 10"),
    ("web/page/sampling_form.rs", &["1000"], "the steps input's range"),
    ("web/page/view.rs", &["1000"], "T before the dataset says"),
    ("web/page/plane.rs", &["320", "1e-9", "2.0", "0.9", "0.5", "4.0"], "the canvases' side (px), a guard against dividing by zero, the arrows' shape (px)"),
    ("web/page/playground_logic.rs", &["10.0", "400.0", "1e-3"], "the 10 ms slices and the views' refresh (ms), a guard against dividing by zero"),
    ("web/page/playground_canvas.rs", &["2.0", "1.5", "2.5"], "dot radii (px)"),
    ("web/worker/session/mod.rs", &["20", "50", "250"], "waits (ms) between tries and idle polls"),
    ("web/worker/session/training.rs", &["500", "1e-9"], "the wait (ms) for a lost GPU's report, a guard against dividing by zero"),
    ("web/worker/session/sampling.rs", &["10", "8"], "the strip's columns, the comparison's images"),
    ("web/worker/session/files.rs", &["100", "20"], "a download's progress in percent, or in MiB (2^20 bytes) where its size is unknown"),
    ("cli/data.rs", &["32", "5", "9", "10", "0x1f", "0x8b"], "the folder command's image size, CIFAR-10's 5 batch files, digit names, gzip's magic bytes"),
    ("cli/eval.rs", &["1000", "50"], "eval's image count, Inception's feature batches"),
    ("cli/classifier.rs", &["2000", "128", "1e-3", "100", "500"], "train-classifier's own recipe and report cadence"),
    ("cli/pth.rs", &["8"], "bytes of a float64"),
    ("cli/bench.rs", &["256"], "pixel values of the synthetic images"),
];

/// The code of a Rust file without comments, string and char literals, and test modules.
fn code(src: &str) -> String {
    let src = &src[..src.find("#[cfg(test)]").unwrap_or(src.len())];
    let b = src.as_bytes();
    let (mut out, mut i) = (String::new(), 0);
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |j| j + 2);
        } else if (rest.starts_with("r\"") || rest.starts_with("r#")) && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            let end = format!("\"{}", "#".repeat(hashes));
            let start = 2 + hashes;
            i += start + rest[start..].find(&end).map_or(rest.len() - start, |j| j + end.len());
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && rest.len() > 2 && (rest.as_bytes()[2] == b'\'' || rest.as_bytes()[1] == b'\\') {
            i += 1 + rest[1..].find('\'').map_or(0, |j| j + 1) + usize::from(rest.as_bytes()[1] == b'\\' && rest.as_bytes()[2] == b'\'');
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The numeric literals of `code`, without type suffixes and `_` separators.
fn numbers(code: &str) -> BTreeSet<String> {
    let b = code.as_bytes();
    let mut found = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || (b[j] == b'.' && j + 1 < b.len() && b[j + 1].is_ascii_digit()) || (b[j] == b'-' && b[j - 1] == b'e')) {
            j += 1;
        }
        let literal = &code[i..j];
        let literal = ["usize", "u8", "u16", "u32", "u64", "i32", "i64", "f32", "f64"].iter().fold(literal, |l, s| l.strip_suffix(s).unwrap_or(l));
        found.insert(literal.replace('_', ""));
        i = j;
    }
    found
}

#[test]
fn the_shells_hold_no_numbers_of_their_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = common::rust_files(&src.join("web"));
    paths.extend(common::rust_files(&src.join("cli")));
    let mut unexpected = Vec::new();
    for path in paths {
        let name = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let allowed: Vec<&str> = PER_FILE.iter().filter(|(f, ..)| *f == name).flat_map(|(_, n, _)| n.iter().copied()).collect();
        for number in numbers(&code(&std::fs::read_to_string(&path).unwrap())) {
            if !ANYWHERE.contains(&number.as_str()) && !allowed.contains(&number.as_str()) {
                unexpected.push(format!("{name}: {number}"));
            }
        }
    }
    assert!(unexpected.is_empty(), "numbers in the shells that belong in the core (spec::RunSpec), or in this test's allow-list with a reason:\n{}", unexpected.join("\n"));
}

#[test]
fn the_literal_finder_sees_numbers_and_skips_comments_and_strings() {
    let found = numbers(&code("let a = 32; // 64\nlet b = \"128\"; let c = 1e-3f64 + 1_000usize as f64 + x2 + v.0;\n#[cfg(test)]\nmod t { 7 }"));
    assert_eq!(found, ["1000", "1e-3", "32"].iter().map(|s| s.to_string()).collect());
}

/// The default a help text writes down, if any: a digit in the clause after "default"
/// ("(default 0.1, Ho & Salimans 2022)" is one; "(default: all)" is not).
fn written_default(help: &str) -> Option<&str> {
    let lower = help.to_lowercase();
    let at = lower.find("default")?;
    let clause = help[at..].split([')', ';']).next().unwrap_or_default();
    clause.chars().any(|c| c.is_ascii_digit()).then_some(clause)
}

/// A flag's help that writes its default down goes stale when the recipe changes (`--lr`'s
/// said "default 1e-3" while the recipe trained at 2e-3): help texts print the value from its
/// one home (`train`'s `recipe_default`, clap's `default_value_t = RunSpec::…`).
#[test]
fn no_help_text_writes_a_default_of_its_own() {
    assert_eq!(written_default("/// Adam learning rate (default 1e-3)."), Some("default 1e-3"));
    assert_eq!(written_default("/// Use only the first N training images (default: all)."), None);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut helps = 0;
    let mut written = Vec::new();
    for path in common::rust_files(&src.join("cli")) {
        for (i, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
            let Some(help) = line.trim().strip_prefix("///") else { continue };
            helps += 1;
            if let Some(clause) = written_default(help) {
                written.push(format!("{}:{}: {clause}", path.strip_prefix(&src).unwrap().display(), i + 1));
            }
        }
    }
    assert!(helps > 100, "found only {helps} help lines");
    assert!(written.is_empty(), "help texts that write a default down:\n{}", written.join("\n"));
}
