//! The preset files built into the binary (`crates/watch/presets/`), by name: what
//! `preset = "NAME"` in a configuration reads, and what `preset.rs` offers to load and print.

/// The presets there are, by name.
pub const NAMES: &[&str] = &["node"];

const NODE: &str = include_str!("../../presets/node.toml");

/// The preset file named `name`, as built in; `None` for a name not in [`NAMES`].
pub fn text(name: &str) -> Option<&'static str> {
    match name.trim() {
        "node" => Some(NODE),
        _ => None,
    }
}
