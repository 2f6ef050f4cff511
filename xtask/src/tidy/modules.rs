//! The modules inside each library crate run one way, bottom up, as `the_layers_run_one_way`
//! keeps the crates: [`MODULE_LAYERS`] lists each crate's modules in layers from the bottom, and
//! a module may import only the modules of the layers below its own. A module is a file under `src/` with everything
//! below it (`source.rs` or `source/` and its files); `lib` is the crate root. What counts as
//! an import is every `crate::…` and `super::…` path of the code, in `use` lines and inline;
//! a name the root re-exports (`crate::Config`) counts as an import of the module it comes
//! from. Test code may import anything: `#[cfg(test)]` items, `tests.rs` files and `tests/`
//! directories.

use std::{collections::HashMap, fs, path::Path};

use super::{rust_files, shown};
use crate::repository_root;

/// Each checked crate's modules in layers, bottom up: a module may import only the modules of
/// the layers below its own, never one of its own layer or above (ARCHITECTURE.md says what each
/// is for; the crate root, `lib`, is the top).
const MODULE_LAYERS: &[(&str, &[&[&str]])] = &[
    (
        "watch",
        &[
            &["error"],
            &["clock", "histogram", "labels", "promql", "shard", "web"],
            &["config"],
            &["preset", "recent"],
            &["series"],
            &["source"],
            &["export", "judge", "stopped", "store"],
            &["engine"],
            &["schedule"],
            &["backtest", "loops"],
            &["reload", "ui"],
            &["lib"],
        ],
    ),
    (
        "detect",
        &[
            &["error"],
            &["analysis", "grid"],
            &["flat", "knowledge", "plot"],
            &["stream"],
            &["detectors"],
            &["lib"],
        ],
    ),
];

#[test]
fn the_modules_inside_each_crate_run_one_way() {
    let mut broken = Vec::new();
    for (crate_dir, layers) in MODULE_LAYERS {
        let src = repository_root().join("crates").join(crate_dir).join("src");
        broken.extend(check_crate(&src, layers));
    }
    assert!(
        broken.is_empty(),
        "imports against the modules' layers (MODULE_LAYERS in xtask/src/tidy/modules.rs: a \
         module may import only the modules of the layers below its own; move what both need \
         down, or pass it in):\n  {}",
        broken.join("\n  ")
    );
}

/// What breaks the layers in the crate whose sources are `src`.
fn check_crate(src: &Path, layers: &[&[&str]]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut present: Vec<String> = Vec::new();
    for file in &files {
        let module = module_path(src, file);
        if !is_test_file(&module) && !present.contains(&module[0]) {
            present.push(module[0].clone());
        }
    }
    for module in &present {
        if !layers.iter().any(|layer| layer.contains(&module.as_str())) {
            broken.push(format!(
                "{}: the module `{module}` is in no layer of MODULE_LAYERS; say where it sits",
                shown(src)
            ));
        }
    }
    for module in layers.iter().flat_map(|layer| layer.iter()) {
        if !present.iter().any(|m| m == module) {
            broken.push(format!(
                "{}: MODULE_LAYERS names `{module}`, which is no module of the crate",
                shown(src)
            ));
        }
    }
    let root_text = fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let root_names = root_names(&code(&root_text), &present);
    let rank = |m: &str| layers.iter().position(|layer| layer.contains(&m));
    for file in &files {
        let module = module_path(src, file);
        let is_test = is_test_file(&module);
        if is_test {
            continue;
        }
        let Some(own) = rank(&module[0]) else {
            continue;
        };
        let text = fs::read_to_string(file).expect("a readable source file");
        for path in crate_paths(&code(&text)) {
            let Some(target) = resolve(&path, &module, &present, &root_names) else {
                continue;
            };
            if target == module[0] {
                continue;
            }
            if rank(&target).is_none_or(|t| t >= own) {
                broken.push(format!(
                    "{}: `{}` imports `{target}`, which is not in a layer below `{}`'s",
                    shown(file),
                    path.join("::"),
                    module[0]
                ));
            }
        }
    }
    broken.dedup();
    broken
}

/// Whether the file of module path `module` is test code: a `tests.rs` or under `tests/`.
fn is_test_file(module: &[String]) -> bool {
    module.iter().any(|m| m == "tests")
}

/// The module path of `file` under `src`: `ui/explore.rs` is `[ui, explore]`, `ui/mod.rs`
/// `[ui]`, `lib.rs` `[lib]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The module an import `path` (starting `crate` or `super`) made in module `from` reaches,
/// `None` when it stays inside `from`'s own module.
fn resolve(
    path: &[String],
    from: &[String],
    modules: &[String],
    root_names: &HashMap<String, String>,
) -> Option<String> {
    let mut rest = path;
    let mut at: Vec<String> = from.to_vec();
    if rest.first().is_some_and(|s| s == "crate") {
        at.clear();
        rest = &rest[1..];
    } else {
        while rest.first().is_some_and(|s| s == "super") {
            at.pop();
            rest = &rest[1..];
        }
    }
    if let Some(first) = at.first() {
        return Some(first.clone());
    }
    let name = rest.first()?;
    if modules.contains(name) && name != "lib" {
        return Some(name.clone());
    }
    Some(
        root_names
            .get(name)
            .cloned()
            .unwrap_or_else(|| "lib".into()),
    )
}

/// The names the crate root imports or re-exports (`pub use config::Config`, `use
/// schedule::Engine`), each with the module it comes from.
fn root_names(root: &str, modules: &[String]) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for (path, alias) in use_paths(root) {
        let path: Vec<&String> = path.iter().filter(|s| *s != "crate").collect();
        let (Some(first), Some(last)) = (path.first(), path.last()) else {
            continue;
        };
        if modules.contains(first) {
            names.insert(alias.unwrap_or_else(|| (*last).clone()), (*first).clone());
        }
    }
    names
}

/// The source without comments, the contents of string and character literals, and
/// `#[cfg(test)]` items.
fn code(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && (i == 0
                || !ident(chars[i - 1])
                || (chars[i - 1] == 'b' && (i < 2 || !ident(chars[i - 2]))))
            && matches!(next, Some('"' | '#'))
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    without_test_items(&out)
}

/// `code` without the items marked `#[cfg(test)]` (a `mod tests;` line, or an item with its
/// braces).
fn without_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let mut depth = 0;
        let mut end = item.len();
        for (i, c) in item.char_indices().skip("#[cfg(test)]".len()) {
            match c {
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Other(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Other(c));
            }
            i += 1;
        }
    }
    out
}

/// Every path of a `use` item in `code`, with its alias (`as name`) if it has one.
fn use_paths(code: &str) -> Vec<(Vec<String>, Option<String>)> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Ident("use".into()) {
            i = use_tree(&tokens, i + 1, Vec::new(), &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// Reads one use tree from `tokens[i..]` under `prefix` into `out`; returns where it ends.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    loop {
        match tokens.get(i) {
            Some(Token::Ident(name)) => {
                path.push(name.clone());
                i += 1;
            }
            Some(Token::Other('{')) => {
                i += 1;
                while i < tokens.len() && tokens[i] != Token::Other('}') {
                    i = use_tree(tokens, i, path.clone(), out);
                    if tokens.get(i) == Some(&Token::Other(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Token::Other('*')) => {
                out.push((path, None));
                return i + 1;
            }
            _ => break,
        }
        if tokens.get(i) == Some(&Token::PathSep) {
            i += 1;
            continue;
        }
        if tokens.get(i) == Some(&Token::Ident("as".into()))
            && let Some(Token::Ident(alias)) = tokens.get(i + 1)
        {
            out.push((path, Some(alias.clone())));
            return i + 2;
        }
        break;
    }
    out.push((path, None));
    i
}

/// Every path starting `crate::` or `super::` in `code`, in `use` items and inline.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let tokens = tokens(code);
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == Token::Ident("use".into()) {
            let mut tree = Vec::new();
            i = use_tree(&tokens, i + 1, Vec::new(), &mut tree);
            paths.extend(tree.into_iter().map(|(path, _)| path));
            continue;
        }
        let starts = matches!(&tokens[i], Token::Ident(s) if s == "crate" || s == "super")
            && tokens.get(i + 1) == Some(&Token::PathSep)
            && (i == 0 || tokens[i - 1] != Token::PathSep);
        if !starts {
            i += 1;
            continue;
        }
        let mut path = Vec::new();
        while let Some(Token::Ident(name)) = tokens.get(i) {
            path.push(name.clone());
            i += 1;
            if tokens.get(i) != Some(&Token::PathSep) {
                break;
            }
            i += 1;
        }
        paths.push(path);
    }
    paths.retain(|p| p.first().is_some_and(|s| s == "crate" || s == "super"));
    paths
}

#[test]
fn the_import_reader_sees_use_trees_inline_paths_and_skips_tests() {
    let text = r#"
        //! `use crate::ignored;`
        use crate::{a::{self, B}, c::D as E};
        pub(crate) use super::f;
        fn g() { let s = "crate::in_a_string"; crate::h::i(); let c = '{'; }
        #[cfg(test)]
        mod tests { use crate::t; fn x() { crate::u(); } }
        #[cfg(test)]
        mod more;
        fn after() { crate::v::w(); }
    "#;
    let paths: Vec<String> = crate_paths(&code(text))
        .iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "crate::a::self",
            "crate::a::B",
            "crate::c::D",
            "super::f",
            "crate::h::i",
            "crate::v::w"
        ]
    );
    let modules = ["a".to_owned(), "b".to_owned()];
    let names = HashMap::from([("Config".to_owned(), "a".to_owned())]);
    let from = |m: &[&str]| m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let path = |p: &str| p.split("::").map(str::to_owned).collect::<Vec<_>>();
    let at = |p: &str, f: &[&str]| resolve(&path(p), &from(f), &modules, &names);
    assert_eq!(at("crate::b::x", &["a"]).as_deref(), Some("b"));
    assert_eq!(at("crate::Config", &["b"]).as_deref(), Some("a"));
    assert_eq!(at("crate::Watch", &["b"]).as_deref(), Some("lib"));
    assert_eq!(at("super::x", &["b", "c"]).as_deref(), Some("b"));
    assert_eq!(at("super::a::x", &["b"]).as_deref(), Some("a"));
}
