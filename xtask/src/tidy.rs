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
//! - library source files stay short enough to read (about 700 lines), and no Rust file at all,
//!   tests included, grows past 800;
//! - the CoreDNS release that xtask builds is the one the testbed's upstream image names;
//! - the layers run one way: each library depends only on the workspace crates below it;
//! - only the loader speaks HTTP to Prometheus (the one library with an HTTP client; the watch
//!   service is the one HTTP server), only the model depends on candle;
//! - threshold logic lives in promlearn-detect, duration parsing in promlearn-duration, and a
//!   secret file is read by the loader's one rule, the text format by the loader's one writer;
//! - the testbed installs nothing (provisioning is xtask's);
//! - libraries return their own error types (no anyhow): `#[non_exhaustive]` thiserror enums; and
//!   the model does no I/O besides save/load.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::repository_root;

// The rules read from the code itself (where thresholds, durations, secrets and the text format
// live; what the model and the testbed never do; how errors are declared).
mod code;
// The modules inside each library crate, run one way.
mod modules;

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

/// Every Rust file under `crates/` and `xtask/` (sources, tests, benches, examples), build
/// output left out.
fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        for sub in ["src", "tests", "benches", "examples"] {
            rust_files(&dir.join(sub), &mut files);
        }
    }
    for sub in ["src", "tests"] {
        rust_files(&repository_root().join("xtask").join(sub), &mut files);
    }
    files
}

fn shown(path: &Path) -> String {
    path.strip_prefix(repository_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn no_rust_file_grows_past_800_lines() {
    const LIMIT: usize = 800;
    let long: Vec<String> = all_rust_files()
        .into_iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(&file).ok()?.lines().count();
            (lines > LIMIT).then(|| format!("{}: {lines} lines", shown(&file)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "Rust files over {LIMIT} lines, tests included; cut them along their seams (a test file \
         by sub-command or concern, as crates/cli/tests/ is):\n  {}",
        long.join("\n  ")
    );
}

/// The workspace crates each library may depend on (`[dependencies]`): the layers of
/// ARCHITECTURE.md, run one way. The programs (cli, demo) may depend on any library.
const LAYERS: &[(&str, &[&str])] = &[
    ("duration", &[]),
    ("loader", &[]),
    ("model", &[]),
    ("nab", &[]),
    ("testbed", &["promlearn-loader"]),
    ("dns", &["promlearn-duration"]),
    ("detect", &["promlearn-model"]),
    (
        "watch",
        &["promlearn-loader", "promlearn-detect", "promlearn-duration"],
    ),
];

#[test]
fn the_layers_run_one_way() {
    for dir in crate_dirs().iter().filter(|d| !is_program(d)) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some((_, allowed)) = LAYERS.iter().find(|(crate_dir, _)| *crate_dir == name) else {
            panic!(
                "crates/{name} is a library missing from LAYERS in xtask/src/tidy.rs: say which \
                 workspace crates it may depend on (and put it on ARCHITECTURE.md's map)"
            );
        };
        let bad: Vec<String> = dependencies(&dir.join("Cargo.toml"))
            .into_iter()
            .filter(|d| d.starts_with("promlearn") && !allowed.contains(&d.as_str()))
            .collect();
        assert!(
            bad.is_empty(),
            "crates/{name} depends on {bad:?}, which its layer may not (allowed: {allowed:?}); \
             ARCHITECTURE.md's map says which way the layers run"
        );
    }
}

/// Which crates may depend on which heavy or boundary-setting dependencies (`[dependencies]`
/// of every crate, programs and xtask included).
const DEPENDENCY_OWNERS: &[(&str, &[&str], &str)] = &[
    (
        "reqwest",
        &["loader"],
        "the loader is the only code that speaks HTTP to a Prometheus API or a metrics page; \
         everything else goes through promlearn_loader::Client",
    ),
    (
        "ureq",
        &[],
        "the loader is the only code that speaks HTTP; use promlearn_loader::Client",
    ),
    (
        "isahc",
        &[],
        "the loader is the only code that speaks HTTP; use promlearn_loader::Client",
    ),
    (
        "curl",
        &[],
        "the loader is the only code that speaks HTTP; use promlearn_loader::Client",
    ),
    (
        "hyper",
        &["watch"],
        "hyper is the watch service's /metrics server (server features only); a client belongs \
         in the loader",
    ),
    (
        "hyper-util",
        &["watch"],
        "hyper is the watch service's /metrics server; a client belongs in the loader",
    ),
    (
        "candle-core",
        &["model"],
        "candle is the model's specification and tensor I/O; other crates call promlearn-model",
    ),
    (
        "candle-nn",
        &["model"],
        "candle is the model's specification; other crates call promlearn-model",
    ),
    (
        "anyhow",
        &["cli", "demo", "xtask"],
        "libraries return their own thiserror enums; only programs use anyhow",
    ),
];

#[test]
fn http_candle_and_anyhow_stay_where_the_map_puts_them() {
    let mut dirs = crate_dirs();
    dirs.push(repository_root().join("xtask"));
    let mut broken = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for dep in dependencies(&dir.join("Cargo.toml")) {
            if let Some((_, owners, why)) = DEPENDENCY_OWNERS.iter().find(|(d, ..)| *d == dep)
                && !owners.contains(&name)
            {
                broken.push(format!("{name} depends on {dep}: {why}"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

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
    let tool = repository_root()
        .join("xtask")
        .join("tools")
        .join("coredns");
    let go_mod = fs::read_to_string(tool.join("go.mod")).expect("the CoreDNS tool module");
    assert!(
        go_mod.contains(&format!("github.com/coredns/coredns v{version}\n")),
        "xtask/tools/coredns/go.mod pins another CoreDNS than COREDNS_VERSION v{version}"
    );
}

/// Repository paths (`crates/...`, `xtask/...`, `fixtures/...`, `examples/...`) named in `text`,
/// as written; names with a pattern in them (`{a,b}`, `*`, `<name>`) are left out.
fn named_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in ["crates/", "xtask/", "fixtures/", "examples/"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            // A path starts the name: not `foo/crates/...` or `self.crates/`.
            let before = text[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '/' | '_' | '.' | '-')) {
                continue;
            }
            let rest = &text[start..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || matches!(c, '/' | '_' | '.' | '-')))
                .unwrap_or(rest.len());
            if rest[end..].starts_with(['{', '*', '<']) {
                continue;
            }
            let path = rest[..end].trim_end_matches(['.', '-']);
            if path.len() > root.len() {
                found.push(path.to_owned());
            }
        }
    }
    found
}

#[test]
fn every_path_the_docs_and_comments_name_exists() {
    let root = repository_root();
    let mut files: Vec<PathBuf> = all_rust_files();
    for doc in ["ARCHITECTURE.md", "README.md", "xtask/tools/thanos/go.mod"] {
        files.push(root.join(doc));
    }
    for dir in crate_dirs() {
        files.push(dir.join("Cargo.toml"));
    }
    let mut stale = Vec::new();
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        if shown(&file).starts_with("xtask/src/tidy") {
            continue;
        }
        // A crate's own files may name paths from the crate's directory (`examples/x.rs`).
        let crate_dir = file
            .strip_prefix(root.join("crates"))
            .ok()
            .and_then(|p| p.components().next())
            .map(|c| root.join("crates").join(c));
        for path in named_paths(&text) {
            let exists = root.join(&path).exists()
                || crate_dir.as_ref().is_some_and(|d| d.join(&path).exists());
            if !exists {
                stale.push(format!("{} names {path}", shown(&file)));
            }
        }
    }
    stale.sort();
    stale.dedup();
    assert!(
        stale.is_empty(),
        "paths named in docs and comments that do not exist (moved or renamed: point at the new \
         place):\n  {}",
        stale.join("\n  ")
    );
}

/// Declared dependencies a library does not use yet, each with its reason.
const UNUSED_DEPENDENCIES: &[(&str, &str, &str)] = &[];

#[test]
fn every_library_uses_the_dependencies_it_declares() {
    let mut unused = Vec::new();
    for dir in crate_dirs().iter().filter(|d| !is_program(d)) {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        let source: String = files
            .iter()
            .map(|f| fs::read_to_string(f).expect("a readable source file"))
            .collect();
        for dep in dependencies(&dir.join("Cargo.toml")) {
            let path = dep.replace('-', "_");
            let used = source.contains(&format!("{path}::"))
                || source.contains(&format!("use {path}"))
                || source.contains(&format!("{path}!"))
                || source.contains(&format!("extern crate {path}"));
            if !used
                && !UNUSED_DEPENDENCIES
                    .iter()
                    .any(|(c, d, _)| *c == name && *d == dep)
            {
                unused.push(format!("crates/{name}: {dep}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "declared but unused [dependencies] (each costs every build; remove them, or move them to \
         [dev-dependencies]):\n  {}",
        unused.join("\n  ")
    );
}

#[test]
fn every_test_the_map_names_exists() {
    let map = fs::read_to_string(repository_root().join("ARCHITECTURE.md")).expect("the map");
    let mut files = vec![repository_root().join("xtask").join("src").join("tidy.rs")];
    rust_files(
        &repository_root().join("xtask").join("src").join("tidy"),
        &mut files,
    );
    let tidy: String = files
        .iter()
        .map(|f| fs::read_to_string(f).expect("a tidy file"))
        .collect();
    let mut missing = Vec::new();
    let mut rest = map.as_str();
    while let Some(at) = rest.find("[`") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find("`]") else { break };
        let name = &rest[..end];
        if name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            && !tidy.contains(&format!("fn {name}()"))
        {
            missing.push(name.to_owned());
        }
        rest = &rest[end..];
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names tidy tests that xtask/src/tidy.rs does not have: {missing:?}"
    );
}
