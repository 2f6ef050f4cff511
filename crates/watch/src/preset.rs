//! Ready sets of queries (presets) and the Prometheus alert rules a configuration needs.
//!
//! A preset is a watch configuration file built into the binary (`crates/watch/presets/`):
//! `node` watches a host through node_exporter's standard metrics, each query with its
//! detector and what is known about its metric. `preset = "node"` in a file adds its queries to
//! the file's; [`config`] makes a whole configuration of it for an endpoint, [`print_config`]
//! writes it out to edit. [`alert_rules`] writes one alert rule per query of any configuration,
//! in the one form the project alerts in (`examples/watch/alerts.yml`):
//! `increase(promlearn_anomalies_total{query="NAME"}[1m]) > 0`, with the query's severity and
//! summary, and the rule on the watch's own health.

pub use crate::config::builtin::{NAMES, text};
use crate::{Config, Result};

/// The endpoint line every preset file holds, replaced by [`config`] and [`print_config`].
const ENDPOINT_LINE: &str = "endpoint = \"http://localhost:9090\"";

/// The preset `name` as a configuration file with `endpoint` (or the preset's own,
/// `http://localhost:9090`): what `--print-config` writes, to edit and pass to `--config`.
pub fn print_config(name: &str, endpoint: Option<&str>) -> Option<String> {
    let text = text(name)?;
    Some(match endpoint {
        None => text.to_owned(),
        Some(url) => {
            let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
            text.replacen(ENDPOINT_LINE, &format!("endpoint = \"{quoted}\""), 1)
        }
    })
}

/// The preset `name` as a checked configuration against `endpoint` (its messages name the
/// origin `preset NAME` and lines of [`print_config`]'s file).
///
/// ```
/// let config = promlearn_watch::preset::config("node", Some("http://prometheus:9090"))?;
/// assert_eq!(config.endpoint, "http://prometheus:9090");
/// assert!(config.queries.iter().any(|q| q.name == "node_filesystem_free"));
/// # Ok::<(), promlearn_watch::Error>(())
/// ```
pub fn config(name: &str, endpoint: Option<&str>) -> Result<Config> {
    let text = print_config(name, endpoint).ok_or_else(|| crate::Error::Config {
        origin: "--preset".into(),
        line: 1,
        message: format!(
            "preset `{name}` is not known; the presets are: {}",
            NAMES.join(", ")
        ),
    })?;
    Config::from_toml(&text, &format!("preset {}", name.trim()))
}

/// The Prometheus rule file (YAML) that alerts on every query of `config`: per query
/// `increase(promlearn_anomalies_total{query="NAME"}[1m]) > 0` with its `alert` severity and
/// summary (and the `query` label, which tells the rules apart: the alerts carry it anyway), and `promlearn_watch_up == 0` for a query Prometheus stopped answering.
/// `promtool check rules` accepts it (tested end to end).
pub fn alert_rules(config: &Config) -> String {
    let mut out = format!(
        "# Alert rules for the queries of promlearn watch's {}.\n\
         # Load it with `rule_files: [FILE]` in prometheus.yml; check it with\n\
         # `promtool check rules FILE`. One incident of a series is one count of\n\
         # promlearn_anomalies_total, so the rules fire on its increase; the range is how long\n\
         # an alert stays firing after it: keep it at least two scrape intervals of the watch.\n\
         groups:\n  - name: promlearn-watch\n    rules:\n",
        config.origin
    );
    for q in &config.queries {
        let summary = q.alert.summary.clone().unwrap_or_else(|| {
            format!(
                "Anomaly in {} on {{{{ $labels.instance }}}} ({})",
                q.name,
                q.detector.name()
            )
        });
        out.push_str(&format!(
            "      - alert: PromlearnAnomaly\n\
             \x20       expr: {}\n\
             \x20       labels:\n\
             \x20         severity: {}\n\
             \x20         query: {}\n\
             \x20       annotations:\n\
             \x20         summary: {}\n\
             \x20         description: {}\n",
            yaml_string(&format!(
                "increase(promlearn_anomalies_total{{query={:?}}}[1m]) > 0",
                q.name
            )),
            yaml_string(&q.alert.severity),
            yaml_string(&q.name),
            yaml_string(&summary),
            yaml_string(&format!(
                "Series {{{{ $labels }}}} of query {} ({}): the {} detector flagged it in the \
                 last minute; promlearn_anomaly_score, promlearn_yhat and the band \
                 (promlearn_yhat_lower, promlearn_yhat_upper) say how far off it was.",
                q.name,
                q.expr,
                q.detector.name()
            )),
        ));
    }
    out.push_str(
        "      - alert: PromlearnWatchQueryDown\n\
         \x20       expr: promlearn_watch_up == 0\n\
         \x20       for: 1m\n\
         \x20       labels:\n\
         \x20         severity: warning\n\
         \x20       annotations:\n\
         \x20         summary: 'promlearn watch cannot run query {{ $labels.query }}'\n\
         \x20         description: 'promlearn_watch_up has been 0 for 1m; see promlearn_watch_errors_total by kind, and the service''s log.'\n",
    );
    out
}

/// `text` as a single-quoted YAML scalar (only `'` needs escaping, by doubling it).
fn yaml_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_loads_checks_and_names_its_knowledge() {
        for name in NAMES {
            let config = config(name, Some("http://127.0.0.1:1")).unwrap();
            assert_eq!(config.endpoint, "http://127.0.0.1:1");
            assert!(config.check_queries().unwrap().is_empty(), "{name}");
            assert!(
                config.queries.iter().all(|q| !q.knowledge.is_unset()),
                "{name}: every query says what is known"
            );
            let printed = print_config(name, Some("http://x:9090")).unwrap();
            assert_eq!(
                Config::from_toml(&printed, "node.toml")
                    .unwrap()
                    .queries
                    .len(),
                config.queries.len()
            );
        }
        let node = config("node", None).unwrap();
        let free = node
            .queries
            .iter()
            .find(|q| q.name == "node_filesystem_free")
            .unwrap();
        assert_eq!(free.knowledge.direction, promlearn_detect::Direction::Down);
        let e = config("nodes", None).unwrap_err().to_string();
        assert!(e.contains("nodes") && e.contains("node"), "{e}");
    }

    #[test]
    fn the_rules_alert_on_each_query_in_the_one_form() {
        let node = config("node", None).unwrap();
        let rules = alert_rules(&node);
        for q in &node.queries {
            let expr = format!(
                "expr: 'increase(promlearn_anomalies_total{{query=\"{}\"}}[1m]) > 0'",
                q.name
            );
            assert!(rules.contains(&expr), "{expr}\n{rules}");
        }
        assert!(rules.contains("severity: 'critical'"), "{rules}");
        assert!(rules.contains("service''s log"), "{rules}");
    }
}
