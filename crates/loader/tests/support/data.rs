//! The known data of the end-to-end tests and the text formats it is loaded in: OpenMetrics for
//! promtool's backfill, Prometheus text with millisecond timestamps for VictoriaMetrics' import.

use promlearn_loader::exposition::{Flavour, MetricType, Writer};

use super::*;

/// One series of known samples: `(timestamp ms, value)`, ascending.
#[derive(Debug, Clone)]
pub struct SeriesData {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

impl SeriesData {
    pub fn new(name: &str, labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> SeriesData {
        SeriesData {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            samples,
        }
    }

    /// The loader's label set for this series.
    pub fn label_set(&self) -> promlearn_loader::Labels {
        let mut pairs = self.labels.clone();
        pairs.push(("__name__".into(), self.name.clone()));
        promlearn_loader::Labels::from_pairs(pairs)
    }

    /// Its samples, with their timestamps.
    fn write(&self, page: &mut Writer) {
        let labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        for (t, v) in &self.samples {
            page.sample_at(&self.name, labels.iter().copied(), *v, *t);
        }
    }

    /// `name{a="1"}`, or `{"a.b","x.y"="1"}` where a name is not a legacy one.
    pub fn selector(&self) -> String {
        let legacy = |n: &str, colon: bool| {
            n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic()
                    || c == '_'
                    || (colon && c == ':')
                    || (i > 0 && c.is_ascii_digit())
            }) && !n.is_empty()
        };
        let quoted =
            !legacy(&self.name, true) || self.labels.iter().any(|(n, _)| !legacy(n, false));
        let mut out = if quoted {
            format!("{{{:?}", self.name)
        } else {
            format!("{}{{", self.name)
        };
        for (i, (n, v)) in self.labels.iter().enumerate() {
            if i > 0 || quoted {
                out.push(',');
            }
            let n = if quoted { format!("{n:?}") } else { n.clone() };
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            write!(out, "{n}=\"{v}\"").unwrap();
        }
        out.push('}');
        out
    }
}

/// `ms` as seconds with three decimals, as the query API takes a time.
pub fn seconds_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:03}",
        ms.unsigned_abs() / 1000,
        ms.unsigned_abs() % 1000
    )
}

/// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics` (by the loader's
/// writer, so that the values read back exactly): one TYPE line per name, its series after it.
pub fn openmetrics(series: &[SeriesData]) -> String {
    let mut page = Writer::with_flavour(Flavour::OpenMetrics);
    let mut done: Vec<&str> = Vec::new();
    for s in series {
        if done.contains(&s.name.as_str()) {
            continue;
        }
        done.push(&s.name);
        page.family(&s.name, MetricType::Gauge, "");
        for member in series.iter().filter(|m| m.name == s.name) {
            member.write(&mut page);
        }
    }
    page.finish()
}

/// Prometheus's text exposition with millisecond timestamps, for VictoriaMetrics' import.
pub fn prometheus_text(series: &[SeriesData]) -> String {
    let mut page = Writer::new();
    for s in series {
        s.write(&mut page);
    }
    page.finish()
}

/// A start time ten hours ago on a whole hour, so that backfilled blocks are recent.
pub fn recent_base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now / 3600 - 10) * 3600 * 1000
}

/// The known data set of the end-to-end tests.
pub struct Known {
    pub base: i64,
    /// `known_gauge{series="a"}`: 25,000 samples at 1 s, on the second; special values at 100..=107.
    pub a: SeriesData,
    /// `known_gauge{extra="x\"y", series="b"}`: 25,000 samples at 1 s, each 250 ms after the second.
    pub b: SeriesData,
    /// `known_gap{series="g"}`: samples at seconds 0..100 and 1300..1400 only.
    pub gap: SeriesData,
    /// `{"known.utf8", "ünit.x"="a.b"}`: 100 samples at 1 s, value = second; on engines with
    /// UTF-8 names only.
    pub utf8: SeriesData,
}

pub const KNOWN_POINTS: i64 = 25_000;

pub fn value_a(i: i64) -> f64 {
    match i {
        100 => f64::NAN,
        101 => f64::INFINITY,
        102 => f64::NEG_INFINITY,
        103 => 1e-7,
        104 => f64::MAX,
        105 => 5e-324,
        106 => -0.0,
        107 => 123_456_789_012_345_680.0,
        _ => i as f64 * 0.5 - 3000.0,
    }
}

pub fn value_b(i: i64) -> f64 {
    (i as f64) * 0.25 + 0.125
}

impl Known {
    pub fn new() -> Known {
        let base = recent_base_ms();
        Known {
            base,
            a: SeriesData::new(
                "known_gauge",
                &[("series", "a")],
                (0..KNOWN_POINTS)
                    .map(|i| (base + i * 1000, value_a(i)))
                    .collect(),
            ),
            b: SeriesData::new(
                "known_gauge",
                &[("extra", "x\"y"), ("series", "b")],
                (0..KNOWN_POINTS)
                    .map(|i| (base + i * 1000 + 250, value_b(i)))
                    .collect(),
            ),
            gap: SeriesData::new(
                "known_gap",
                &[("series", "g")],
                (0..100)
                    .chain(1300..1400)
                    .map(|i| (base + i * 1000, i as f64))
                    .collect(),
            ),
            utf8: SeriesData::new(
                "known.utf8",
                &[("ünit.x", "a.b")],
                (0..100).map(|i| (base + i * 1000, i as f64)).collect(),
            ),
        }
    }

    pub fn all(&self) -> Vec<SeriesData> {
        vec![self.a.clone(), self.b.clone(), self.gap.clone()]
    }

    /// [`Known::all`], plus the UTF-8-named series where the engine has UTF-8 names.
    pub fn for_engine(&self, engine: Engine) -> Vec<SeriesData> {
        let mut all = self.all();
        if engine.utf8_names() {
            all.push(self.utf8.clone());
        }
        all
    }
}
