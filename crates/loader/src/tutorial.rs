//! The tutorial's dataset: `tfio.experimental.IODataset.from_prometheus(query, length, offset,
//! endpoint)`, with the same arguments, the same nested elements and the same printed element
//! spec, minus its defects.
//!
//! - Series are those of a range query over the whole window, not only of its first instant.
//! - A missing sample follows a [`MissingPolicy`] (NaN by default), never uninitialised memory.
//! - Two series that the key `(job, instance, __name__)` cannot tell apart are an
//!   [`Error::KeyCollision`] naming both, instead of one silently replacing the other;
//!   [`KeyMode::AllLabels`] keeps every label in the key.
//! - A result without `__name__` (an aggregation such as `sum(rate(x[1m]))`) is keyed by the
//!   query's text; a missing `job` or `instance` is the empty string.
//! - Errors are typed and carry the server's own message; one range request (or a few, for long
//!   windows) replaces tensorflow-io's one request per second per series.
//!
//! ```
//! use promlearn_loader::tutorial::{Dataset, KeyMode};
//! use promlearn_loader::{Labels, Matrix, MissingPolicy};
//!
//! // What the loader builds from a range-query answer (a server is needed for `from_prometheus`):
//! let matrix = Matrix::from_columns(
//!     vec![1_583_276_117_000, 1_583_276_118_000],
//!     vec![Labels::from_pairs([
//!         ("__name__", "coredns_dns_request_count_total"),
//!         ("instance", "localhost:9153"),
//!         ("job", "coredns"),
//!     ])],
//!     vec![vec![Some(2.0), Some(2.0)]],
//! );
//! let dataset = Dataset::from_matrix("coredns_dns_request_count_total", matrix, KeyMode::Tutorial, MissingPolicy::Nan)?;
//! assert_eq!(
//!     dataset.element_spec().to_string(),
//!     "(TensorSpec(shape=(), dtype=tf.int64, name=None), {'coredns': {'localhost:9153': \
//!      {'coredns_dns_request_count_total': TensorSpec(shape=(), dtype=tf.float64, name=None)}}})"
//! );
//! for (time_ms, value) in &dataset {
//!     let v = value["coredns"]["localhost:9153"]["coredns_dns_request_count_total"];
//!     println!("{}: {}", promlearn_loader::tutorial::format_time(time_ms), promlearn_loader::tutorial::PyFloat(v));
//! }
//! # Ok::<(), promlearn_loader::Error>(())
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    time::Duration,
};

use crate::{Client, Error, Labels, Matrix, MissingPolicy, RangeQuery, Result};

/// tensorflow-io's default endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:9090";

/// One element's values: `{job: {instance: {name: value}}}`.
pub type Nested = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

/// How a series becomes a `(job, instance, name)` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyMode {
    /// tensorflow-io's key: `job`, `instance`, `__name__` (or the query text when there is no
    /// `__name__`). Series that differ only in other labels are a [`Error::KeyCollision`].
    #[default]
    Tutorial,
    /// The name part also carries every other label in PromQL form:
    /// `coredns_dns_request_count_total{proto="udp", server="dns://:9053"}`.
    AllLabels,
}

/// A series' place in the nested structure.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The series' `job` label; empty when it has none.
    pub job: String,
    /// The series' `instance` label; empty when it has none.
    pub instance: String,
    /// The metric name (or the query text without one); in [`KeyMode::AllLabels`], followed by
    /// the other labels in PromQL form.
    pub name: String,
}

impl Key {
    fn of(labels: &Labels, query: &str, mode: KeyMode) -> Key {
        let base = labels.metric_name().unwrap_or(query).to_owned();
        let name = match mode {
            KeyMode::Tutorial => base,
            KeyMode::AllLabels => {
                let rest = Labels::from_pairs(
                    labels
                        .iter()
                        .filter(|(n, _)| !matches!(*n, "__name__" | "job" | "instance")),
                );
                if rest.is_empty() {
                    base
                } else {
                    format!("{base}{}", rest.selector_without_name())
                }
            }
        };
        Key {
            job: labels.get("job").unwrap_or_default().to_owned(),
            instance: labels.get("instance").unwrap_or_default().to_owned(),
            name,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(job {:?}, instance {:?}, name {:?})",
            self.job, self.instance, self.name
        )
    }
}

/// The element spec, printed as tensorflow-io prints `dataset.element_spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElementSpec {
    keys: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl ElementSpec {
    fn new<'a>(keys: impl IntoIterator<Item = &'a Key>) -> ElementSpec {
        let mut spec = ElementSpec::default();
        for k in keys {
            spec.keys
                .entry(k.job.clone())
                .or_default()
                .entry(k.instance.clone())
                .or_default()
                .push(k.name.clone());
        }
        for instances in spec.keys.values_mut() {
            for names in instances.values_mut() {
                names.sort();
            }
        }
        spec
    }
}

const FLOAT_SPEC: &str = "TensorSpec(shape=(), dtype=tf.float64, name=None)";

impl fmt::Display for ElementSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(TensorSpec(shape=(), dtype=tf.int64, name=None), {")?;
        for (j, (job, instances)) in self.keys.iter().enumerate() {
            if j > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {{", PyStr(job))?;
            for (i, (instance, names)) in instances.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}: {{", PyStr(instance))?;
                for (n, name) in names.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {FLOAT_SPEC}", PyStr(name))?;
                }
                f.write_str("}")?;
            }
            f.write_str("}")?;
        }
        f.write_str("})")
    }
}

/// A string as Python's `repr` prints it.
struct PyStr<'a>(&'a str);

impl fmt::Display for PyStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = if self.0.contains('\'') && !self.0.contains('"') {
            '"'
        } else {
            '\''
        };
        fmt::Write::write_char(f, quote)?;
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c == quote => write!(f, "\\{c}")?,
                c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        fmt::Write::write_char(f, quote)
    }
}

/// A float as Python prints it: `2.0`, `1e-05`, `1e+16`, `nan`, `inf`.
///
/// ```
/// use promlearn_loader::tutorial::PyFloat;
/// assert_eq!(PyFloat(2.0).to_string(), "2.0");
/// assert_eq!(PyFloat(2381824.0).to_string(), "2381824.0");
/// assert_eq!(PyFloat(0.1).to_string(), "0.1");
/// assert_eq!(PyFloat(1e-5).to_string(), "1e-05");
/// assert_eq!(PyFloat(1.5e16).to_string(), "1.5e+16");
/// assert_eq!(PyFloat(f64::NAN).to_string(), "nan");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PyFloat(pub f64);

impl fmt::Display for PyFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("nan");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "inf" } else { "-inf" });
        }
        let abs = v.abs();
        if abs == 0.0 || (1e-4..1e16).contains(&abs) {
            let text = v.to_string();
            f.write_str(&text)?;
            if !text.contains('.') {
                f.write_str(".0")?;
            }
            return Ok(());
        }
        let text = format!("{v:e}");
        let (mantissa, exponent) = text.split_once('e').expect("`{:e}` has an exponent");
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        write!(f, "{mantissa}e{sign}{digits:0>2}")
    }
}

/// Milliseconds since the epoch as local `YYYY-MM-DD HH:MM:SS`, as the tutorial prints
/// `datetime.fromtimestamp(time // 1000)`.
pub fn format_time(time_ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(time_ms.div_euclid(1000) * 1000) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        }
        chrono::LocalResult::None => time_ms.to_string(),
    }
}

/// The dataset: one element per second over the `length` seconds that end at `offset`.
#[derive(Debug, Clone)]
pub struct Dataset {
    matrix: Matrix,
    keys: Vec<Key>,
    spec: ElementSpec,
}

/// Options beyond tensorflow-io's four arguments.
#[derive(Debug, Clone)]
pub struct DatasetBuilder {
    query: String,
    length: u64,
    offset: Option<i64>,
    endpoint: Option<String>,
    client: Option<Client>,
    missing: MissingPolicy,
    key_mode: KeyMode,
}

impl DatasetBuilder {
    /// The end of the window, ms since the epoch (default: now). Elements are at
    /// `offset - length s`, ..., `offset - 1 s`, as tensorflow-io's.
    pub fn offset(mut self, offset_ms: i64) -> Self {
        self.offset = Some(offset_ms);
        self
    }

    /// The server (default `http://localhost:9090`). Ignored when a client is given.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// A configured client (authentication, TLS, time-outs, ...).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// What a missing sample becomes (default NaN).
    pub fn missing(mut self, policy: MissingPolicy) -> Self {
        self.missing = policy;
        self
    }

    /// How series are keyed (default the tutorial's key).
    pub fn key_mode(mut self, mode: KeyMode) -> Self {
        self.key_mode = mode;
        self
    }

    /// Runs the range query (step 1 s) and builds the dataset.
    pub async fn load(self) -> Result<Dataset> {
        let client = match self.client {
            Some(client) => client,
            None => Client::new(self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT))?,
        };
        let end = self
            .offset
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let length = i64::try_from(self.length)
            .ok()
            .and_then(|l| l.checked_mul(1000))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("length {} s is too long", self.length))
            })?;
        let matrix = if length == 0 {
            Matrix::default()
        } else {
            let query = RangeQuery::new(
                self.query.clone(),
                end - length,
                end - 1000,
                Duration::from_secs(1),
            )?;
            client.query_range(&query).await?
        };
        Dataset::from_matrix(&self.query, matrix, self.key_mode, self.missing)
    }
}

impl Dataset {
    /// tensorflow-io's call: `length` seconds ending at `offset` ms (default now), from
    /// `endpoint` (default `http://localhost:9090`).
    ///
    /// ```no_run
    /// # async fn demo() -> promlearn_loader::Result<()> {
    /// use promlearn_loader::tutorial::{Dataset, PyFloat, format_time};
    /// let dataset = Dataset::from_prometheus("coredns_dns_request_count_total", 5, None, None).await?;
    /// println!("{}", dataset.element_spec());
    /// for (time, value) in &dataset {
    ///     let v = value["coredns"]["localhost:9153"]["coredns_dns_request_count_total"];
    ///     println!("{}: {}", format_time(time), PyFloat(v));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn from_prometheus(
        query: &str,
        length: u64,
        offset: Option<i64>,
        endpoint: Option<&str>,
    ) -> Result<Dataset> {
        let mut builder = Dataset::builder(query, length);
        builder.offset = offset;
        builder.endpoint = endpoint.map(str::to_owned);
        builder.load().await
    }

    /// The same, with more options.
    pub fn builder(query: impl Into<String>, length: u64) -> DatasetBuilder {
        DatasetBuilder {
            query: query.into(),
            length,
            offset: None,
            endpoint: None,
            client: None,
            missing: MissingPolicy::Nan,
            key_mode: KeyMode::Tutorial,
        }
    }

    /// Builds the dataset from a loaded matrix: applies `missing`, keys the series, and refuses
    /// key collisions.
    pub fn from_matrix(
        query: &str,
        mut matrix: Matrix,
        key_mode: KeyMode,
        missing: MissingPolicy,
    ) -> Result<Dataset> {
        matrix.apply(missing);
        let keys: Vec<Key> = matrix
            .series()
            .iter()
            .map(|labels| Key::of(labels, query, key_mode))
            .collect();
        let mut seen: HashMap<&Key, usize> = HashMap::new();
        for (s, key) in keys.iter().enumerate() {
            if let Some(&first) = seen.get(key) {
                return Err(Error::KeyCollision {
                    key: key.to_string(),
                    first: matrix.series()[first].clone(),
                    second: matrix.series()[s].clone(),
                });
            }
            seen.insert(key, s);
        }
        let spec = ElementSpec::new(&keys);
        Ok(Dataset { matrix, keys, spec })
    }

    /// Prints like tensorflow-io's `dataset.element_spec`.
    pub fn element_spec(&self) -> &ElementSpec {
        &self.spec
    }

    /// Elements (seconds in the window).
    pub fn len(&self) -> usize {
        self.matrix.n_rows()
    }

    /// The window has no timestamps, so iterating yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element timestamps, ms.
    pub fn timestamps(&self) -> &[i64] {
        self.matrix.timestamps()
    }

    /// The key of each matrix column.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The columnar data underneath.
    pub fn matrix(&self) -> &Matrix {
        &self.matrix
    }

    /// The columnar data underneath, taken without copying.
    pub fn into_matrix(self) -> Matrix {
        self.matrix
    }

    /// The values of one series over the window, e.g. for training.
    pub fn get(&self, job: &str, instance: &str, name: &str) -> Option<&[f64]> {
        self.keys
            .iter()
            .position(|k| k.job == job && k.instance == instance && k.name == name)
            .map(|s| self.matrix.column(s))
    }

    /// The values of the series named `name` in job `job`, when exactly one instance has it.
    pub fn get_in_job(&self, job: &str, name: &str) -> Option<&[f64]> {
        let mut found = self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.job == job && k.name == name);
        match (found.next(), found.next()) {
            (Some((s, _)), None) => Some(self.matrix.column(s)),
            _ => None,
        }
    }

    /// The element at `row`: `(time_ms, {job: {instance: {name: value}}})`.
    pub fn element(&self, row: usize) -> (i64, Nested) {
        let mut nested = Nested::new();
        for (s, key) in self.keys.iter().enumerate() {
            nested
                .entry(key.job.clone())
                .or_default()
                .entry(key.instance.clone())
                .or_default()
                .insert(key.name.clone(), self.matrix.column(s)[row]);
        }
        (self.matrix.timestamps()[row], nested)
    }

    /// The elements in time order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (i64, Nested)> + '_ {
        (0..self.len()).map(|row| self.element(row))
    }
}

impl<'a> IntoIterator for &'a Dataset {
    type Item = (i64, Nested);
    type IntoIter = Box<dyn ExactSizeIterator<Item = (i64, Nested)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn the_spec_prints_as_tensorflow_io_does() {
        let m = Matrix::from_columns(
            vec![0],
            vec![
                labels(&[
                    ("__name__", "go_memstats_gc_sys_bytes"),
                    ("job", "prometheus"),
                    ("instance", "localhost:9090"),
                ]),
                labels(&[
                    ("__name__", "go_memstats_gc_sys_bytes"),
                    ("job", "coredns"),
                    ("instance", "localhost:9153"),
                ]),
            ],
            vec![vec![Some(1.0)], vec![Some(2.0)]],
        );
        let d = Dataset::from_matrix(
            "go_memstats_gc_sys_bytes",
            m,
            KeyMode::Tutorial,
            MissingPolicy::Nan,
        )
        .unwrap();
        assert_eq!(
            d.element_spec().to_string(),
            "(TensorSpec(shape=(), dtype=tf.int64, name=None), {'coredns': {'localhost:9153': \
             {'go_memstats_gc_sys_bytes': TensorSpec(shape=(), dtype=tf.float64, name=None)}}, \
             'prometheus': {'localhost:9090': {'go_memstats_gc_sys_bytes': TensorSpec(shape=(), \
             dtype=tf.float64, name=None)}}})"
        );
        let (t, v) = d.element(0);
        assert_eq!(t, 0);
        assert_eq!(
            v["coredns"]["localhost:9153"]["go_memstats_gc_sys_bytes"],
            2.0
        );
        assert_eq!(
            d.get_in_job("prometheus", "go_memstats_gc_sys_bytes"),
            Some(&[1.0][..])
        );
    }

    #[test]
    fn collisions_name_both_series_and_all_labels_resolves_them() {
        let series = vec![
            labels(&[
                ("__name__", "m"),
                ("job", "j"),
                ("instance", "i"),
                ("proto", "tcp"),
            ]),
            labels(&[
                ("__name__", "m"),
                ("job", "j"),
                ("instance", "i"),
                ("proto", "udp"),
            ]),
        ];
        let m = Matrix::from_columns(vec![0], series, vec![vec![Some(1.0)], vec![Some(2.0)]]);
        let err = Dataset::from_matrix("m", m.clone(), KeyMode::Tutorial, MissingPolicy::Nan)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(r#"proto="tcp""#) && text.contains(r#"proto="udp""#),
            "{text}"
        );
        assert!(text.contains("KeyMode::AllLabels"), "{text}");
        let d = Dataset::from_matrix("m", m, KeyMode::AllLabels, MissingPolicy::Nan).unwrap();
        assert_eq!(d.get("j", "i", r#"m{proto="udp"}"#), Some(&[2.0][..]));
    }

    #[test]
    fn aggregations_are_keyed_by_the_query() {
        let m = Matrix::from_columns(vec![0], vec![Labels::default()], vec![vec![Some(3.0)]]);
        let d = Dataset::from_matrix("sum(up)", m, KeyMode::Tutorial, MissingPolicy::Nan).unwrap();
        assert_eq!(d.get("", "", "sum(up)"), Some(&[3.0][..]));
        assert_eq!(
            d.element_spec().to_string(),
            "(TensorSpec(shape=(), dtype=tf.int64, name=None), {'': {'': {'sum(up)': \
             TensorSpec(shape=(), dtype=tf.float64, name=None)}}})"
        );
    }

    #[test]
    fn python_string_repr() {
        assert_eq!(PyStr("a'b").to_string(), "\"a'b\"");
        assert_eq!(PyStr("a'b\"").to_string(), "'a\\'b\"'");
        assert_eq!(PyStr("x\ny\\").to_string(), "'x\\ny\\\\'");
        assert_eq!(PyStr("é").to_string(), "'é'");
    }

    #[test]
    fn python_floats() {
        for (v, s) in [
            (2.0, "2.0"),
            (-0.5, "-0.5"),
            (0.0, "0.0"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (1e-4, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(PyFloat(v).to_string(), s);
        }
    }
}
