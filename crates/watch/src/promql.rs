//! Checking the queries' expressions offline, before anything is deployed:
//! [`Config::check_queries`](crate::Config::check_queries) refuses a configuration (file, line, the parser's message) whose
//! `expr` is not PromQL, so that `promlearn watch --check` catches `rate(up[5m]` in CI instead of
//! the service failing at its first query. The service runs the same check when it is built;
//! parsing a configuration does not (a backtest of series held in memory sends no query).
//!
//! The parser is the `promql-parser` crate (GreptimeDB's, Apache-2.0, pure Rust): a maintained
//! port of Prometheus's own grammar, with its function table, so that a type error such as
//! `rate(up)` (a vector where a range is needed) is caught too, not only unbalanced brackets.
//!
//! VictoriaMetrics speaks MetricsQL, a superset (`rate(x)` without a window, `WITH` templates,
//! `keep_metric_names`, more functions) that this parser refuses. A configuration for such an
//! endpoint says `query_language = "metricsql"`: a failed check is then a warning with the same
//! file, line and message (`--check` prints it, the service logs it at start), never an error,
//! and VictoriaMetrics has the last word when the service queries it.

use serde::Deserialize;

/// The language the endpoint speaks, which decides what a failed PromQL check means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryLanguage {
    /// Prometheus, Thanos, Mimir: an expression the PromQL parser refuses is a configuration
    /// error.
    #[default]
    PromQL,
    /// VictoriaMetrics: an expression the PromQL parser refuses may be valid MetricsQL, so it is
    /// only a warning.
    MetricsQL,
}

/// Parses `expr` as PromQL: `None` when it is, else the message for it (what the parser said
/// and, for `language`, what to do).
pub(crate) fn problem(expr: &str, language: QueryLanguage) -> Option<String> {
    let problem = promql_parser::parser::parse(expr).err()?;
    Some(message(&problem, language))
}

/// The message for an expression the parser refused: what it said and what to do.
fn message(problem: &str, language: QueryLanguage) -> String {
    match language {
        QueryLanguage::PromQL => format!(
            "expr is not valid PromQL: {problem} (if the endpoint is VictoriaMetrics and this is MetricsQL, set query_language = \"metricsql\")"
        ),
        QueryLanguage::MetricsQL => {
            format!(
                "expr is not PromQL ({problem}); sent as MetricsQL, which VictoriaMetrics checks"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn text(language: &str, expr: &str) -> String {
        format!(
            "endpoint = \"http://localhost:9090\"\n{language}\n[[query]]\nname = \"q\"\nexpr = '{expr}'\ndetector = {{ kind = \"zscore\" }}\n"
        )
    }

    fn check(language: &str, expr: &str) -> crate::Result<Vec<String>> {
        Config::from_toml(&text(language, expr), "watch.toml")?.check_queries()
    }

    #[test]
    fn bad_promql_is_refused_with_the_file_the_line_and_the_parsers_message() {
        for (expr, says) in [
            ("rate(up[5m]", "unclosed left parenthesis"),
            ("rate(up)", "expected type matrix"),
            ("sum(x) by (", ""),
            ("foo +", ""),
        ] {
            let e = check("", expr).unwrap_err().to_string();
            assert!(
                e.starts_with("watch.toml:5: query `q`: expr is not valid PromQL: "),
                "{expr}: {e}"
            );
            assert!(e.contains(says), "{expr}: {e}");
        }
        for expr in [
            "sum by (type) (rate(coredns_dns_requests_total[5s]))",
            r#"label_replace(up, "a", "b", "", "")"#,
            r#"{__name__=~"go_.*"}"#,
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
            "x[5m:1m] offset 1h",
        ] {
            assert_eq!(check("", expr).unwrap(), Vec::<String>::new(), "{expr}");
        }
    }

    #[test]
    fn metricsql_only_syntax_is_a_warning_when_the_endpoint_speaks_it() {
        // Parsing alone does not check (a backtest of series in memory sends no query).
        assert!(Config::from_toml(&text("", "rate(up[5m]"), "watch.toml").is_ok());
        let metricsql = "query_language = \"metricsql\"";
        for expr in [
            "rate(x)",
            "keep_metric_names(x)",
            "WITH (a = x) a",
            "x default 0",
        ] {
            // Refused as PromQL, with a hint ...
            let e = check("", expr).unwrap_err().to_string();
            assert!(e.contains("query_language = \"metricsql\""), "{expr}: {e}");
            // ... a warning as MetricsQL, naming the place all the same.
            let warnings = check(metricsql, expr).unwrap();
            assert_eq!(warnings.len(), 1, "{expr}");
            assert!(
                warnings[0].starts_with("watch.toml:5: query `q`: expr is not PromQL"),
                "{}",
                warnings[0]
            );
        }
        let e = check("query_language = \"sql\"", "up")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("watch.toml:2") && e.contains("query_language"),
            "{e}"
        );
    }
}
