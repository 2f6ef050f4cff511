//! The watch configuration file (TOML): what to query, how often, and with which detector.
//!
//! Every error names the file, the line and the field, e.g.
//! `watch.toml:12: query `dns_rate`: fit_window (30s = 30 points) is shorter than the detector's
//! min_history (60 points)`.

use std::{
    fmt,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use promlearn_detect::{DetectorSpec, Direction, DomainKnowledge, MinDeviation};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::{
    Error, Result,
    promql::{self, QueryLanguage},
    shard::{RawShard, Shard},
};

// The preset files built in, which `preset = "NAME"` reads (`preset.rs` offers them to users).
pub(crate) mod builtin;

/// The address `/metrics` is served on when the file names none.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Prometheus's default scrape interval, the default query `step`.
pub const DEFAULT_STEP: Duration = Duration::from_secs(15);
/// How long a series may be absent before its model and exported series are dropped.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(300);
/// The default bound on series, over all queries.
pub const DEFAULT_MAX_SERIES: usize = 10_000;
/// The default refit interval.
pub const DEFAULT_FIT_EVERY: Duration = Duration::from_secs(3600);
/// The default history a fit sees.
pub const DEFAULT_FIT_WINDOW: Duration = Duration::from_secs(6 * 3600);
/// The most points one fit may read per series (memory bound: 8 bytes each, twice).
pub const MAX_FIT_POINTS: usize = 100_000;
/// Points read on top of the detector's context at each inference, so that a late scrape or a
/// missing point does not leave the newest instant unjudged.
pub const INFER_EXTRA_POINTS: usize = 5;

/// A parsed, checked watch configuration.
///
/// ```
/// use std::time::Duration;
/// use promlearn_watch::Config;
///
/// let config = Config::from_toml(r#"
/// endpoint = "http://localhost:9090"
///
/// [[query]]
/// name = "dns_rate"
/// expr = "sum by (type) (rate(coredns_dns_requests_total[5s]))"
/// step = "1s"
/// detector = { kind = "zscore", window = 30, threshold = 4 }
/// fit_every = "1m"
/// fit_window = "5m"
/// "#, "watch.toml")?;
/// assert_eq!(config.queries[0].infer_every, Duration::from_secs(1)); // defaults to the step
/// assert_eq!(config.listen.to_string(), "127.0.0.1:9464");
///
/// // Mistakes name the file, the line and the field.
/// let err = Config::from_toml("endpoint = \"http://localhost:9090\"\nlisten = 9464\n", "watch.toml").unwrap_err();
/// assert!(err.to_string().starts_with("watch.toml:2"), "{err}");
/// assert!(err.to_string().contains("listen"), "{err}");
/// # Ok::<(), promlearn_watch::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from (a path or a name), as used in messages.
    pub origin: String,
    /// The Prometheus-API base URL (Prometheus, Thanos, Mimir with its prefix, VictoriaMetrics).
    pub endpoint: String,
    /// Credentials and TLS for the endpoint.
    pub auth: Auth,
    /// Where `/metrics` and `/healthz` are served.
    pub listen: SocketAddr,
    /// A series absent from its query's answers for this long is dropped (model and exported series).
    pub stale_after: Duration,
    /// The most series kept over all queries; further series are refused (`errors_total{kind="series_limit"}`).
    pub max_series: usize,
    /// The queries watched, in file order.
    pub queries: Vec<QueryConfig>,
    /// The share of the series this watch owns (`shard = { index, total }`; all by default).
    pub shard: Shard,
    /// What the endpoint speaks: with MetricsQL an `expr` the PromQL parser refuses is only a
    /// warning of [`Config::check_queries`].
    pub query_language: QueryLanguage,
    /// TLS and basic auth for `/metrics`: a web config file in exporter-toolkit's format
    /// ([`WebConfig`](crate::WebConfig); `--web.config.file` overrides it).
    pub web_config_file: Option<PathBuf>,
    /// Where fitted models are saved after each fit, and each series' stream and alerting
    /// state after each inference, to be read back at start: a restarted watch scores at once
    /// and judges no point twice (`store.rs`); none by default. A relative path is taken relative to the file's directory.
    pub state_dir: Option<PathBuf>,
}

/// How to authenticate to the endpoint. Secrets live in files, never in the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Auth {
    /// HTTP basic authentication: the user and the file holding the password.
    pub basic_auth: Option<BasicAuth>,
    /// A file holding a bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_cert: Option<PathBuf>,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicAuth {
    /// The user name.
    pub user: String,
    /// The file holding the password (trailing newlines are ignored).
    pub password_file: PathBuf,
}

/// One `[[query]]`: a PromQL expression, each of whose series gets its own model.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// The query's name, the `query` label of everything exported for it.
    pub name: String,
    /// The PromQL expression; it may return many series.
    pub expr: String,
    /// The resolution of the series the detector sees.
    pub step: Duration,
    /// The detector fitted per series.
    pub detector: DetectorSpec,
    /// How often each series' model is refitted.
    pub fit_every: Duration,
    /// How much history each fit reads.
    pub fit_window: Duration,
    /// How often the newest points are scored (also the bound on each inference query's time).
    pub infer_every: Duration,
    /// What the team knows about the query's series (`direction`, `min_deviation`,
    /// `data_range`), applied in the alerting stage; unset by default.
    pub knowledge: DomainKnowledge,
    /// The severity and summary of the alert rule `--print-rules` writes for the query.
    pub alert: AlertText,
    /// The line of the `[[query]]` table in the file, for messages.
    pub line: usize,
    /// The line of its `expr`, for messages about the expression.
    pub expr_line: usize,
}

impl QueryConfig {
    /// The step in milliseconds.
    pub fn step_ms(&self) -> i64 {
        self.step.as_millis() as i64
    }

    /// Points in the fit window at this step.
    pub fn fit_points(&self) -> usize {
        (self.fit_window.as_millis() / self.step.as_millis().max(1)) as usize
    }

    /// How long a fit window's read may take: `fit_every`, but at least `infer_every` and at
    /// most 2 minutes unless `infer_every` is longer.
    pub fn fit_deadline(&self) -> Duration {
        self.fit_every
            .min(Duration::from_secs(120))
            .max(self.infer_every)
    }

    /// Points each inference reads: the detector's context and a few more.
    pub fn infer_points(&self) -> usize {
        self.detector.context() + 1 + INFER_EXTRA_POINTS
    }
}

/// What the alert rule of a query says (`alert = { severity = "...", summary = "..." }`), for
/// the rules [`alert_rules`](crate::preset::alert_rules) prints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertText {
    /// The rule's `severity` label (default `warning`).
    pub severity: String,
    /// The rule's `summary` annotation, a Prometheus template (default: the query's name and
    /// the detector).
    pub summary: Option<String>,
}

impl Default for AlertText {
    fn default() -> Self {
        Self {
            severity: "warning".into(),
            summary: None,
        }
    }
}

// ---- the file as written -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    endpoint: Spanned<String>,
    #[serde(default)]
    basic_auth: Option<Spanned<RawBasicAuth>>,
    #[serde(default)]
    bearer_token_file: Option<Spanned<String>>,
    #[serde(default)]
    ca_cert: Option<String>,
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    stale_after: Option<Spanned<Dur>>,
    #[serde(default)]
    max_series: Option<Spanned<usize>>,
    #[serde(default)]
    shard: Option<Spanned<RawShard>>,
    #[serde(default)]
    query_language: QueryLanguage,
    #[serde(default)]
    web_config_file: Option<String>,
    #[serde(default)]
    state_dir: Option<String>,
    #[serde(default)]
    preset: Option<Spanned<String>>,
    #[serde(default)]
    query: Vec<Spanned<RawQuery>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    user: String,
    password_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    name: Spanned<String>,
    expr: Spanned<String>,
    #[serde(default)]
    step: Option<Spanned<Dur>>,
    detector: Spanned<DetectorSpec>,
    #[serde(default)]
    fit_every: Option<Spanned<Dur>>,
    #[serde(default)]
    fit_window: Option<Spanned<Dur>>,
    #[serde(default)]
    infer_every: Option<Spanned<Dur>>,
    #[serde(default)]
    direction: Option<Spanned<Direction>>,
    #[serde(default)]
    min_deviation: Option<Spanned<MinDeviation>>,
    #[serde(default)]
    data_range: Option<Spanned<[f64; 2]>>,
    #[serde(default)]
    alert: Option<Spanned<AlertText>>,
}

/// A duration in promlearn's grammar: a string (`"15s"`, `"1h30m"`) or a number of seconds.
#[derive(Debug, Clone, Copy)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Dur, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"15s\", \"5m\" or \"1h30m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Dur, E> {
                promlearn_duration::parse(v).map(Dur).map_err(E::custom)
            }
            // A number is seconds: its decimal text read by the same grammar as a string, so
            // that one rule (promlearn-duration's) refuses what it refuses everywhere.
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Dur, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

// ---- loading -------------------------------------------------------------------------------

impl Config {
    /// Reads and checks the file at `path`. Relative paths in it (password and token files, the
    /// CA certificate) are taken relative to the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_toml(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.auth.resolve_relative_to(base);
        config.web_config_file = config.web_config_file.map(|f| base.join(f));
        config.state_dir = config.state_dir.map(|d| base.join(d));
        Ok(config)
    }

    /// Parses and checks a configuration; `origin` names it in messages (a file name, usually).
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let at = |span: Range<usize>, message: String| Error::Config {
            origin: origin.to_owned(),
            line: line_of(text, span.start),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let line = line_of(text, span.start);
            let field = field_at(text, span.clone());
            let message = e.message().trim().to_owned();
            let message = match field {
                Some(field) if !message.contains(&format!("`{field}`")) => {
                    format!("`{field}`: {message}")
                }
                _ => message,
            };
            Error::Config {
                origin: origin.to_owned(),
                line,
                message,
            }
        })?;

        let endpoint = raw.endpoint.get_ref().trim().to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(at(
                raw.endpoint.span(),
                format!(
                    "endpoint `{endpoint}` is not an http:// or https:// URL (write the Prometheus base URL, e.g. http://localhost:9090)"
                ),
            ));
        }
        let listen = match &raw.listen {
            None => DEFAULT_LISTEN.parse().expect("the default address parses"),
            Some(listen) => listen.get_ref().trim().parse().map_err(|_| {
                at(
                    listen.span(),
                    format!(
                        "listen `{}` is not an address with a port (write e.g. 127.0.0.1:9464 or 0.0.0.0:9464)",
                        listen.get_ref()
                    ),
                )
            })?,
        };
        let stale_after = raw
            .stale_after
            .as_ref()
            .map_or(DEFAULT_STALE_AFTER, |d| d.get_ref().0);
        if let Some(d) = &raw.stale_after
            && d.get_ref().0 < Duration::from_secs(1)
        {
            return Err(at(d.span(), "stale_after must be at least 1s".into()));
        }
        let max_series = match &raw.max_series {
            None => DEFAULT_MAX_SERIES,
            Some(m) if *m.get_ref() == 0 => {
                return Err(at(m.span(), "max_series must be at least 1".into()));
            }
            Some(m) => *m.get_ref(),
        };
        let shard = match &raw.shard {
            None => Shard::ALL,
            Some(s) => Shard::new(s.get_ref().index, s.get_ref().total)
                .map_err(|e| at(s.span(), format!("shard: {e}")))?,
        };
        let mut auth = Auth {
            ca_cert: raw.ca_cert.map(PathBuf::from),
            bearer_token_file: raw
                .bearer_token_file
                .as_ref()
                .map(|t| PathBuf::from(t.get_ref())),
            basic_auth: raw.basic_auth.as_ref().map(|b| BasicAuth {
                user: b.get_ref().user.clone(),
                password_file: PathBuf::from(&b.get_ref().password_file),
            }),
        };
        if let (Some(_), Some(token)) = (&raw.basic_auth, &raw.bearer_token_file) {
            return Err(at(
                token.span(),
                "bearer_token_file and basic_auth exclude each other; keep one".into(),
            ));
        }
        if auth
            .ca_cert
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            auth.ca_cert = None;
        }

        let preset = match &raw.preset {
            None => None,
            Some(name) => Some(builtin::text(name.get_ref()).ok_or_else(|| {
                at(
                    name.span(),
                    format!(
                        "preset `{}` is not known; the presets are: {}",
                        name.get_ref(),
                        builtin::NAMES.join(", ")
                    ),
                )
            })?),
        };
        if raw.query.is_empty() && preset.is_none() {
            return Err(Error::Config {
                origin: origin.to_owned(),
                line: line_of(text, text.len()),
                message: "no [[query]] table: add at least one query to watch (or a preset, e.g. preset = \"node\")".into(),
            });
        }
        let mut queries: Vec<QueryConfig> = Vec::with_capacity(raw.query.len());
        if let (Some(name), Some(preset_text)) = (&raw.preset, preset) {
            let preset_origin = format!("preset {}", name.get_ref());
            let preset_raw: RawConfig = toml::from_str(preset_text)
                .map_err(|e| at(name.span(), format!("{preset_origin} does not parse: {e}")))?;
            for q in &preset_raw.query {
                let query = check_query(q, preset_text, &preset_origin, &queries)?;
                queries.push(query);
            }
        }
        for q in &raw.query {
            let query = check_query(q, text, origin, &queries)?;
            queries.push(query);
        }
        Ok(Config {
            origin: origin.to_owned(),
            endpoint,
            auth,
            listen,
            stale_after,
            max_series,
            queries,
            shard,
            query_language: raw.query_language,
            web_config_file: raw
                .web_config_file
                .filter(|f| !f.trim().is_empty())
                .map(PathBuf::from),
            state_dir: raw
                .state_dir
                .filter(|d| !d.trim().is_empty())
                .map(PathBuf::from),
        })
    }

    /// One line per query, for `--check` and start-up logs.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: endpoint {}, {} quer{}, /metrics on {}",
            self.origin,
            self.endpoint,
            self.queries.len(),
            if self.queries.len() == 1 { "y" } else { "ies" },
            self.listen
        );
        if self.shard != Shard::ALL {
            out.push_str(&format!(", shard {}", self.shard));
        }
        for q in &self.queries {
            out.push_str(&format!(
                "\n  {} ({}): {} at step {}, infer every {}, fit every {} on {}",
                q.name,
                q.detector.name(),
                q.expr,
                promlearn_duration::format(q.step),
                promlearn_duration::format(q.infer_every),
                promlearn_duration::format(q.fit_every),
                promlearn_duration::format(q.fit_window),
            ));
        }
        out
    }
}

/// Checks one `[[query]]` of `text` (named `origin` in messages) against the queries before it.
fn check_query(
    q: &Spanned<RawQuery>,
    text: &str,
    origin: &str,
    queries: &[QueryConfig],
) -> Result<QueryConfig> {
    let at = |span: Range<usize>, message: String| Error::Config {
        origin: origin.to_owned(),
        line: line_of(text, span.start),
        message,
    };
    let line = line_of(text, q.span().start);
    let q = q.get_ref();
    let name = q.name.get_ref().trim().to_owned();
    if name.is_empty() {
        return Err(at(q.name.span(), "query name must not be empty".into()));
    }
    if let Some(other) = queries.iter().find(|o| o.name == name) {
        return Err(at(
            q.name.span(),
            format!(
                "query name `{name}` is already used by the query at line {}; names must be unique",
                other.line
            ),
        ));
    }
    let in_query =
        |span: Range<usize>, message: String| at(span, format!("query `{name}`: {message}"));
    if q.expr.get_ref().trim().is_empty() {
        return Err(in_query(q.expr.span(), "expr must not be empty".into()));
    }
    let step = q.step.as_ref().map_or(DEFAULT_STEP, |s| s.get_ref().0);
    let step_span = q.step.as_ref().map_or(q.name.span(), Spanned::span);
    if step < Duration::from_millis(1) || !step.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(in_query(
            step_span,
            format!(
                "step ({}) must be a whole number of milliseconds, at least 1ms",
                promlearn_duration::format(step)
            ),
        ));
    }
    let detector = q.detector.get_ref().clone();
    detector
        .validate()
        .map_err(|e| in_query(q.detector.span(), format!("detector: {e}")))?;
    let infer_every = q.infer_every.as_ref().map_or(step, |d| d.get_ref().0);
    if let Some(d) = &q.infer_every
        && d.get_ref().0 < Duration::from_millis(100)
    {
        return Err(in_query(
            d.span(),
            "infer_every must be at least 100ms".into(),
        ));
    }
    let fit_every = q
        .fit_every
        .as_ref()
        .map_or(DEFAULT_FIT_EVERY, |d| d.get_ref().0);
    if let Some(d) = &q.fit_every
        && d.get_ref().0 < infer_every
    {
        return Err(in_query(
            d.span(),
            format!(
                "fit_every ({}) is shorter than infer_every ({}); fit at most once per inference",
                promlearn_duration::format(d.get_ref().0),
                promlearn_duration::format(infer_every)
            ),
        ));
    }
    let fit_window = q
        .fit_window
        .as_ref()
        .map_or(DEFAULT_FIT_WINDOW, |d| d.get_ref().0);
    let window_span = q
        .fit_window
        .as_ref()
        .map_or(q.detector.span(), Spanned::span);
    let knowledge = DomainKnowledge {
        direction: q
            .direction
            .as_ref()
            .map_or_else(Direction::default, |d| *d.get_ref()),
        min_deviation: q
            .min_deviation
            .as_ref()
            .map_or_else(MinDeviation::default, |m| *m.get_ref()),
        data_range: q.data_range.as_ref().map(|r| *r.get_ref()),
    };
    knowledge.validate().map_err(|e| {
        let span = match &e {
            promlearn_detect::Error::InvalidKnowledge {
                field: "data_range",
                ..
            } => q.data_range.as_ref().map(Spanned::span),
            _ => q.min_deviation.as_ref().map(Spanned::span),
        };
        in_query(span.unwrap_or(q.name.span()), e.to_string())
    })?;
    let query = QueryConfig {
        name: name.clone(),
        expr: q.expr.get_ref().trim().to_owned(),
        step,
        detector,
        fit_every,
        fit_window,
        infer_every,
        knowledge,
        alert: q
            .alert
            .as_ref()
            .map(|a| a.get_ref().clone())
            .unwrap_or_default(),
        line,
        expr_line: line_of(text, q.expr.span().start),
    };
    let points = query.fit_points();
    let min_history = query.detector.min_history();
    let window_text = promlearn_duration::format(fit_window);
    if points < min_history {
        return Err(in_query(
            window_span,
            format!(
                "fit_window ({window_text} = {points} points at step {}) is shorter than the detector's min_history ({min_history} points)",
                promlearn_duration::format(step)
            ),
        ));
    }
    if points > MAX_FIT_POINTS {
        return Err(in_query(
            window_span,
            format!(
                "fit_window ({window_text} = {points} points at step {}) is longer than {MAX_FIT_POINTS} points; use a coarser step or a shorter window",
                promlearn_duration::format(step)
            ),
        ));
    }
    Ok(query)
}

impl Auth {
    fn resolve_relative_to(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(b) = &mut self.basic_auth {
            resolve(&mut b.password_file);
        }
        if let Some(t) = &mut self.bearer_token_file {
            resolve(t);
        }
        if let Some(c) = &mut self.ca_cert {
            resolve(c);
        }
    }
}

/// The 1-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key of the `key = value` the span points into, if it points into one.
fn field_at(text: &str, span: Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let column = start - line_start;
    // The key is the last `name =` before the error's column (inline tables hold several).
    let before = &line[..column.min(line.len())];
    let eq = before.rfind('=')?;
    let key_part = before[..eq].trim_end();
    let key: String = key_part
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"'))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let key = key.trim_matches('"').to_owned();
    (!key.is_empty()).then_some(key)
}

impl Config {
    /// Parses every query's `expr` as PromQL (`promql.rs`). The first one the parser refuses is
    /// an error naming the file, the `expr` line and the parser's message; with `query_language
    /// = "metricsql"` each is instead returned as a warning (`file:line: message`).
    pub fn check_queries(&self) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        for query in &self.queries {
            let Some(problem) = promql::problem(&query.expr, self.query_language) else {
                continue;
            };
            let error = Error::Config {
                origin: self.origin.clone(),
                line: query.expr_line,
                message: format!("query `{}`: {problem}", query.name),
            };
            match self.query_language {
                QueryLanguage::PromQL => return Err(error),
                QueryLanguage::MetricsQL => warnings.push(error.to_string()),
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests;
