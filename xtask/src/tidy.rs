//! Tidy tests, run by `cargo test`: the rules of ARCHITECTURE.md, checked on the code so that they
//! stay true (rust-analyzer keeps its own the same way).
//!
//! - every Rust module opens with a `//!` line saying what it is for;
//! - xtask depends on no crate of the workspace and on no async runtime: it holds no domain logic
//!   and compiles in seconds;
//! - no library crate depends on a program (the CLI, the demo, xtask);
//! - every library crate follows the workspace's lints: documented public items, and no printing
//!   (progress and results reach the caller through return values and callbacks, logs through
//!   `tracing`);
//! - library source files stay short enough to read (about 700 lines);
//! - the CoreDNS release that xtask builds is the one the testbed's upstream image names.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::repository_root;

/// The library crates (directory names under `crates/`): everything but the programs.
const PROGRAMS: &[&str] = &["cli", "demo"];

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(repository_root().join("crates"))
        .expect("crates/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn is_program(dir: &Path) -> bool {
    PROGRAMS.contains(&dir.file_name().and_then(|n| n.to_str()).unwrap_or(""))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `[dependencies]` (not dev-dependencies) package names of a manifest, as written.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = fs::read_to_string(manifest).expect("a readable Cargo.toml");
    let mut in_deps = false;
    let mut names = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps
            && let Some((name, _)) = line.split_once('=')
            && !line.starts_with('#')
        {
            names.push(name.trim().trim_end_matches(".workspace").to_owned());
        }
    }
    names
}

#[test]
fn every_module_says_what_it_is_for() {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        rust_files(&dir.join("src"), &mut files);
    }
    rust_files(&repository_root().join("xtask").join("src"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).expect("a readable source file");
            // A test module kept in its own file documents itself as a test file may: `//!` or `//`.
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these modules do not open with a `//!` line saying what they are for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn xtask_holds_no_domain_logic_and_builds_in_seconds() {
    let deps = dependencies(&repository_root().join("xtask").join("Cargo.toml"));
    let forbidden: Vec<&String> = deps
        .iter()
        .filter(|d| d.starts_with("promlearn") || *d == "tokio" || *d == "reqwest")
        .collect();
    assert!(
        forbidden.is_empty(),
        "xtask must not depend on {forbidden:?}: it provisions, builds and runs programs; domain \
         code belongs in a crate under crates/ (see ARCHITECTURE.md)"
    );
}

#[test]
fn no_library_depends_on_a_program() {
    let programs = ["promlearn", "promlearn-demo", "xtask"];
    for dir in crate_dirs().iter().filter(|d| !is_program(d)) {
        let deps = dependencies(&dir.join("Cargo.toml"));
        let bad: Vec<&String> = deps
            .iter()
            .filter(|d| programs.contains(&d.as_str()))
            .collect();
        assert!(
            bad.is_empty(),
            "{} depends on the program(s) {bad:?}; programs depend on libraries, never the reverse",
            dir.display()
        );
    }
}

/// The lint table in the root manifest, as `name = level` lines.
fn workspace_lints() -> String {
    let text = fs::read_to_string(repository_root().join("Cargo.toml")).expect("the root manifest");
    let mut table = String::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line.starts_with("[workspace.lints.");
            continue;
        }
        if inside && !line.starts_with('#') && !line.is_empty() {
            table.push_str(line);
            table.push('\n');
        }
    }
    table
}

#[test]
fn every_library_follows_the_workspace_lints() {
    let lints = workspace_lints();
    for rule in [
        "missing_docs = \"warn\"",
        "print_stdout = \"deny\"",
        "print_stderr = \"deny\"",
    ] {
        assert!(
            lints.contains(rule),
            "the root Cargo.toml's [workspace.lints] must keep `{rule}` (ARCHITECTURE.md)"
        );
    }
    for dir in crate_dirs().iter().filter(|d| !is_program(d)) {
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("a readable Cargo.toml");
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{} must opt into the workspace's lints (`[lints]` / `workspace = true`)",
            dir.display()
        );
    }
}

/// Files allowed over the limit, each with the reason the closing note gives.
const LONG_FILES: &[(&str, &str)] = &[];

#[test]
fn library_files_stay_short_enough_to_read() {
    const LIMIT: usize = 750;
    let mut long = Vec::new();
    for dir in crate_dirs().iter().filter(|d| !is_program(d)) {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let lines = fs::read_to_string(&file)
                .expect("a readable source file")
                .lines()
                .count();
            let shown = file
                .strip_prefix(repository_root())
                .unwrap_or(&file)
                .display()
                .to_string();
            if lines > LIMIT && !LONG_FILES.iter().any(|(path, _)| *path == shown) {
                long.push(format!("{shown}: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "library files over {LIMIT} lines; cut them along their seams (or list one in LONG_FILES \
         with the reason it must stay whole):\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_coredns_release_is_the_same_everywhere() {
    let image = fs::read_to_string(
        repository_root()
            .join("crates")
            .join("testbed")
            .join("src")
            .join("containers.rs"),
    )
    .expect("the testbed's containers module");
    let version = crate::provision::COREDNS_VERSION.trim_start_matches('v');
    assert!(
        image.contains(&format!("\"coredns/coredns:{version}\"")),
        "xtask builds CoreDNS {version}, but the testbed's upstream image names another release"
    );
    assert!(crate::provision::COREDNS_LOCAL_IMAGE.ends_with(version));
}
