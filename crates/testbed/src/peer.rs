//! The benchmarks' peers: a Python program measured beside ours in the same run (Keras for the
//! model, prometheus-api-client and tensorflow-io for the loader), and the median their figures
//! are compared by. A peer that cannot run is an error that says how to get it: no stored figure
//! ever stands in for a measurement.

use std::{path::Path, process::Command};

/// The variable that names the Python with the peers installed (`cargo xtask bench` sets it to
/// the tool cache's); without it, `python3`.
pub const PEER_PYTHON_ENV: &str = "PROMLEARN_PEER_PYTHON";

/// Runs the Python `script` with `config` (JSON) as its one argument and returns the last JSON
/// object line it prints. `who` names the peer in errors ("Keras"), `install` says how to get
/// it; a failure quotes the last five lines the script wrote to stderr.
pub fn run_python_peer(
    script: &Path,
    config: &serde_json::Value,
    who: &str,
    install: &str,
) -> Result<serde_json::Value, String> {
    let python = std::env::var(PEER_PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(script)
        .arg(config.to_string())
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .map_err(|e| format!("{who} could not run ({python}: {e}); {install}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().rev().find(|l| l.starts_with('{')) {
        Some(line) if out.status.success() => serde_json::from_str(line).map_err(|e| e.to_string()),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mut last: Vec<&str> = stderr.lines().rev().take(5).collect();
            last.reverse();
            Err(format!(
                "{who} could not be measured with {python} ({}):\n{}\n{install}",
                out.status,
                last.join("\n")
            ))
        }
    }
}

/// The median of `values` (the upper one of an even count), NaN for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_one() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn a_peer_that_cannot_run_says_how_to_get_it() {
        let e = run_python_peer(
            Path::new("/nonexistent/peer.py"),
            &serde_json::json!({}),
            "The peer",
            "install it with X",
        )
        .unwrap_err();
        assert!(e.starts_with("The peer could not"), "{e}");
        assert!(e.contains("install it with X"), "{e}");
    }
}
