//! The crate's shape: files of a few hundred lines, so that each does one job a reader can hold
//! in mind; no two files that take items from each other (a circle makes neither readable, nor
//! movable, alone); and layers, so that the core never reaches up into a shell.

mod common;

use std::path::Path;

const MAX_LINES: usize = 500;

#[test]
fn no_source_file_is_over_500_lines() {
    let files = common::rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(files.len() > 50, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

/// The files a source file takes items from (`use crate::…` and `use super::…`; a module's
/// `pub use` re-exports are its facade, not a use, and are left out).
fn imports(src_dir: &Path, file: &Path) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = &text[..text.find("#[cfg(test)]").unwrap_or(text.len())];
    // The module path of this file, and of its parent module (what `super` names).
    let relative = file.strip_prefix(src_dir).unwrap().with_extension("");
    let mut module: Vec<String> = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if module.last().is_some_and(|m| m == "mod" || m == "lib") {
        module.pop();
    }
    let mut found = Vec::new();
    let mut statement = String::new();
    for line in code.lines().map(str::trim) {
        if statement.is_empty() && !line.starts_with("use ") {
            continue;
        }
        statement.push_str(line);
        if !line.ends_with(';') {
            continue;
        }
        let path = statement.trim_start_matches("use ").trim_end_matches(';').to_string();
        statement.clear();
        let mut segments: Vec<String> = path.split("::").map(|s| s.trim().to_string()).collect();
        let mut base = match segments.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") => module[..module.len().saturating_sub(1)].to_vec(),
            _ => continue,
        };
        segments.remove(0);
        while segments.first().is_some_and(|s| s == "super") {
            base.pop();
            segments.remove(0);
        }
        // The deepest module file the path names: `a::b::Item` is a/b.rs, a/b/mod.rs, or a's.
        for segment in segments.iter().take_while(|s| !s.starts_with('{') && !s.starts_with('*')) {
            let mut deeper = base.clone();
            deeper.push(segment.clone());
            let as_file = src_dir.join(deeper.join("/")).with_extension("rs");
            let as_dir = src_dir.join(deeper.join("/")).join("mod.rs");
            if as_file.exists() || as_dir.exists() {
                base = deeper;
            } else {
                break;
            }
        }
        let target = if base.is_empty() {
            src_dir.join("lib.rs")
        } else if src_dir.join(base.join("/")).with_extension("rs").exists() {
            src_dir.join(base.join("/")).with_extension("rs")
        } else {
            src_dir.join(base.join("/")).join("mod.rs")
        };
        if target != file {
            found.push(target);
        }
    }
    found
}

#[test]
fn no_source_file_imports_a_file_that_imports_it_back() {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = common::rust_files(&src_dir);
    let graph: Vec<(std::path::PathBuf, Vec<std::path::PathBuf>)> = files.iter().map(|f| (f.clone(), imports(&src_dir, f))).collect();
    // The test sees real imports: the tab's page takes its panels, and the panels the core.
    let page = graph.iter().find(|(f, _)| f.ends_with("web/page/app.rs")).unwrap();
    assert!(page.1.iter().any(|t| t.ends_with("web/page/panels.rs")), "{:?}", page.1);
    let mut circles = Vec::new();
    for (file, targets) in &graph {
        for target in targets {
            let back = graph.iter().find(|(f, _)| f == target).is_some_and(|(_, t)| t.contains(file));
            if back && file < target {
                circles.push(format!("{} <-> {}", file.strip_prefix(&src_dir).unwrap().display(), target.strip_prefix(&src_dir).unwrap().display()));
            }
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:?}");
}

/// The layers, bottom first: a module names only modules of layers below its own (the core's
/// math and formats know nothing of training; the steppers drive training, not the other way;
/// nothing in the core knows the tab or the CLI). Every module of `src/` is in one layer.
const LAYERS: [&[&str]; 9] = [
    &["names", "fields", "limits"],
    &["data", "ops"],
    &["diffusion", "model", "eval"],
    &["features", "spec"],
    &["checkpoint"],
    &["train"],
    &["pipeline"],
    &["playground"],
    &["web", "cli"],
];

#[test]
fn every_module_is_in_a_layer() {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src_dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().trim_end_matches(".rs").to_string();
        if !["lib", "main"].contains(&name.as_str()) && !LAYERS.iter().any(|layer| layer.contains(&name.as_str())) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "modules in no layer of LAYERS: {missing:?}");
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer_of = |module: &str| LAYERS.iter().position(|layer| layer.contains(&module));
    let mut upward = Vec::new();
    for file in common::rust_files(&src_dir) {
        let relative = file.strip_prefix(&src_dir).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        let Some(own) = layer_of(&top) else { continue }; // lib.rs, main.rs
        let text = std::fs::read_to_string(&file).unwrap();
        let code = &text[..text.find("#[cfg(test)]").unwrap_or(text.len())];
        for used in code.split("crate::").skip(1) {
            let module: String = used.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if layer_of(&module).is_some_and(|layer| layer >= own) && module != top {
                upward.push(format!("{} uses crate::{module}", relative.display()));
            }
        }
    }
    assert!(upward.is_empty(), "a module uses its own layer or one above it: {upward:?}");
}

/// The thread boundary is a folder boundary: what runs on the page (`web/page/`) and what runs
/// in the worker (`web/worker/`) talk only through messages (`web/protocol.rs`), so neither
/// names the other.
#[test]
fn the_page_and_the_worker_do_not_use_each_other() {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut crossings = Vec::new();
    for (side, other) in [("page", "worker"), ("worker", "page")] {
        for file in common::rust_files(&src_dir.join("web").join(side)) {
            let text = std::fs::read_to_string(&file).unwrap();
            if text.contains(&format!("web::{other}")) {
                crossings.push(file.strip_prefix(&src_dir).unwrap().display().to_string());
            }
        }
    }
    assert!(common::rust_files(&src_dir.join("web").join("worker")).len() > 5, "the worker's files are where this test looks");
    assert!(crossings.is_empty(), "these cross the page/worker boundary: {crossings:?}");
}
