//! Tidy tests that read the code itself, line by line: threshold logic lives in promlearn-detect,
//! duration parsing in promlearn-duration, secret files are read by the loader's one rule and the
//! text format written by its one writer; the model does no I/O besides save/load, the testbed
//! installs nothing, and library errors are `#[non_exhaustive]` thiserror enums.

use std::fs;

use super::{all_rust_files, crate_dirs, is_program, rust_files, shown};
use crate::repository_root;

/// Lines of library and program sources (tests, examples and benches too) outside `crates/`'s
/// `owner`, with what each names.
fn lines_outside(owner: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for file in all_rust_files() {
        let path = shown(&file);
        // This file names the patterns it looks for.
        if path.starts_with(&format!("crates/{owner}/")) || path.starts_with("xtask/src/tidy") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("a readable source file");
        for (i, line) in text.lines().enumerate() {
            out.push((path.clone(), i + 1, line.to_owned()));
        }
    }
    out
}

/// Threshold-like items allowed outside crates/detect (a path prefix and an item; an empty item
/// allows the whole path), each with its reason.
const THRESHOLD_EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "crates/model/src/model/",
        "SavedThreshold",
        "the plain value an older `promlearn train` saved in model.json, read back so that \
         detect still loads such models; it computes nothing",
    ),
    (
        "crates/nab/",
        "",
        "NAB's scorer sweeps the threshold over a detector's scores to score it, as NAB does: \
         scoring, not detection",
    ),
];

/// The name of the item a line defines (`fn name`, `struct Name`, `enum Name`), if any.
fn defined_item(code: &str) -> Option<&str> {
    ["fn ", "struct ", "enum ", "trait "]
        .iter()
        .find_map(|keyword| {
            let at = code.find(keyword)?;
            let before = &code[..at];
            if !(before.is_empty() || before.ends_with(' ') || before.ends_with('(')) {
                return None;
            }
            let rest = &code[at + keyword.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            Some(&rest[..end])
        })
}

#[test]
fn threshold_logic_lives_in_detect() {
    let mut found = Vec::new();
    for (path, number, line) in lines_outside("detect") {
        let code = line.trim_start();
        if code.starts_with("//") || path.contains("/tests/") {
            continue;
        }
        let Some(item) = defined_item(code) else {
            continue;
        };
        let lower = item.to_ascii_lowercase();
        let is_threshold = lower.contains("threshold")
            || lower == "quantile"
            || lower == "percentile"
            || lower.ends_with("_quantile");
        if is_threshold
            && !THRESHOLD_EXCEPTIONS
                .iter()
                .any(|(p, allowed, _)| path.starts_with(p) && code.contains(allowed))
        {
            found.push(format!("{path}:{number}: {code}"));
        }
    }
    assert!(
        found.is_empty(),
        "threshold logic outside promlearn-detect, the one place with detection and threshold \
         logic (ARCHITECTURE.md); call detect, or list an exception with its reason in \
         THRESHOLD_EXCEPTIONS:\n  {}",
        found.join("\n  ")
    );
}

/// Files that turn plain numbers or text into durations themselves, each with its reason
/// (none: a watch TOML's plain numbers go through the grammar as their decimal text).
const DURATION_EXCEPTIONS: &[(&str, &str)] = &[];

/// The body of the function whose signature is on line `start` of `lines`: up to the first line
/// indented as the signature that closes it.
fn function_body<'a>(lines: &'a [&'a str], start: usize) -> &'a [&'a str] {
    let indent = lines[start].len() - lines[start].trim_start().len();
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.len() - l.trim_start().len() == indent && l.trim_start().starts_with('}'))
        .map_or(lines.len(), |i| start + 1 + i);
    &lines[start..end]
}

#[test]
fn durations_users_type_are_read_by_promlearn_duration() {
    let mut found = Vec::new();
    for (path, number, line) in lines_outside("duration") {
        let code = line.trim_start();
        if code.starts_with("//") || DURATION_EXCEPTIONS.iter().any(|(p, _)| *p == path) {
            continue;
        }
        // A duration parsed from text by hand: `Duration::from_secs_f64(text.parse()?)`, or a
        // unit suffix stripped.
        let hand_parsed = code
            .find("Duration::from_")
            .is_some_and(|at| code[at..].contains(".parse"));
        let suffix = [
            "\"ms\"", "\"s\"", "'s'", "\"m\"", "'m'", "\"h\"", "'h'", "\"d\"", "'d'",
        ]
        .iter()
        .any(|unit| {
            ["strip_suffix(", "trim_end_matches(", "ends_with("]
                .iter()
                .any(|call| code.contains(&format!("{call}{unit})")))
        });
        if hand_parsed || suffix {
            found.push(format!("{path}:{number}: {code}"));
        }
    }
    // A serde visitor that makes a Duration from a number (a config's `step = 15`) itself,
    // instead of handing the number to the grammar.
    for file in all_rust_files() {
        let path = shown(&file);
        if path.starts_with("crates/duration/")
            || path.starts_with("xtask/src/tidy")
            || DURATION_EXCEPTIONS.iter().any(|(p, _)| *p == path)
        {
            continue;
        }
        let text = fs::read_to_string(&file).expect("a readable source file");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let numeric_visitor = ["fn visit_i", "fn visit_u", "fn visit_f"]
                .iter()
                .any(|v| code.starts_with(v));
            if numeric_visitor
                && function_body(&lines, i)
                    .iter()
                    .any(|l| l.contains("Duration::from_"))
            {
                found.push(format!(
                    "{path}:{}: a serde visitor makes a duration from a number: {code}",
                    i + 1
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "durations read outside promlearn-duration, the one grammar for every duration a user \
         types (ARCHITECTURE.md); call promlearn_duration::parse, or list the file in \
         DURATION_EXCEPTIONS with its reason:\n  {}",
        found.join("\n  ")
    );
}

/// Settings that name a file holding a password or token.
const SECRET_FILE_SETTINGS: &[&str] = &["password_file", "token_file", "auth_file"];

#[test]
fn secret_files_are_read_by_one_rule() {
    let mut found = Vec::new();
    for file in all_rust_files() {
        let path = shown(&file);
        if path.starts_with("crates/loader/") || path.starts_with("xtask/src/tidy") {
            continue;
        }
        let text = fs::read_to_string(&file).expect("a readable source file");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let signature = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
            ]
            .iter()
            .any(|f| code.starts_with(f));
            if !signature {
                continue;
            }
            let body = function_body(&lines, i).join("\n");
            if body.contains("fs::read")
                && SECRET_FILE_SETTINGS.iter().any(|s| body.contains(s))
                && !body.contains("read_secret_file")
            {
                found.push(format!("{path}:{}: {code}", i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "functions that read a password or token file themselves; a secret in a file is read by \
         one rule, promlearn_loader::read_secret_file (ARCHITECTURE.md, Secrets):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_text_format_is_written_by_the_loaders_writer() {
    let mut found = Vec::new();
    for (path, number, line) in lines_outside("loader") {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        // A page's comment lines written by hand ...
        let writes = ["write!(", "writeln!(", "push_str(", "format!("]
            .iter()
            .any(|call| code.contains(call));
        let page_line = ["\"# TYPE ", "\"# HELP ", "\"# EOF"]
            .iter()
            .any(|start| code.contains(start));
        // ... or a float written by a rule of its own (`NaN`, `+Inf`, `-Inf` spelled out).
        let float_rule = ["\"+Inf\"", "\"-Inf\"", "\"NaN\""].iter().any(|text| {
            [".into()", ".to_owned()", ".to_string()", "String::from("]
                .iter()
                .any(|make| {
                    code.contains(&format!("{text}{make}"))
                        || code.contains(&format!("{make}{text}"))
                })
                || code.contains(&format!("=> {text}"))
                || code.contains(&format!("push_str({text})"))
        });
        if (writes && page_line) || float_rule {
            found.push(format!("{path}:{number}: {code}"));
        }
    }
    assert!(
        found.is_empty(),
        "the text format written outside promlearn_loader::exposition, whose Writer and \
         format_value are the one writer and the one float rule (ARCHITECTURE.md):\n  {}",
        found.join("\n  ")
    );
}

/// Programs that install software; the testbed runs none of them.
const INSTALLERS: &[&str] = &[
    "apt-get", "apt", "dpkg", "pip", "pip3", "go", "curl", "wget",
];

#[test]
fn the_testbed_installs_nothing() {
    let mut files = Vec::new();
    rust_files(
        &repository_root().join("crates").join("testbed").join("src"),
        &mut files,
    );
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("a readable source file");
        for (i, line) in text.lines().enumerate() {
            let runs_installer = INSTALLERS
                .iter()
                .any(|program| line.contains(&format!("Command::new(\"{program}\")")));
            let imports_image = line.contains("\"import\"") && text.contains("docker");
            if runs_installer || imports_image {
                found.push(format!("{}:{}: {}", shown(&file), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the testbed starts what it is given and installs nothing; provisioning is xtask's \
         (ARCHITECTURE.md):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn library_errors_are_non_exhaustive_thiserror_enums() {
    let mut found = Vec::new();
    for dir in crate_dirs().iter().filter(|d| !is_program(d)) {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).expect("a readable source file");
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line.trim_start().strip_prefix("pub enum ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.ends_with("Error") {
                    continue;
                }
                // Its attributes: the lines above it up to its doc comment.
                let attributes: Vec<&str> = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| !l.trim_start().starts_with("///") && !l.trim().is_empty())
                    .copied()
                    .collect();
                let derives_thiserror = attributes.iter().any(|a| a.contains("thiserror::Error"))
                    || (attributes
                        .iter()
                        .any(|a| a.contains("derive(") && a.contains("Error"))
                        && text.contains("use thiserror"));
                let non_exhaustive = attributes.iter().any(|a| a.contains("#[non_exhaustive]"));
                if !(derives_thiserror && non_exhaustive) {
                    found.push(format!("{}:{}: pub enum {name}", shown(&file), i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "library error enums derive thiserror::Error and are #[non_exhaustive], so that a new \
         variant is not a breaking change (ARCHITECTURE.md, Errors):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_model_does_no_io_besides_save_and_load() {
    let mut files = Vec::new();
    rust_files(
        &repository_root().join("crates").join("model").join("src"),
        &mut files,
    );
    let io: Vec<String> = files
        .iter()
        .map(|f| shown(f))
        .filter(|path| !path.ends_with("model/persist.rs"))
        .filter(|path| {
            let text = fs::read_to_string(repository_root().join(path)).expect("readable");
            ["std::fs", "File::", "std::net", "std::process", "std::env"]
                .iter()
                .any(|api| text.contains(api))
        })
        .collect();
    assert!(
        io.is_empty(),
        "the model takes plain &[f64] and does no I/O besides save/load (model/persist.rs): \
         {io:?}"
    );
}
