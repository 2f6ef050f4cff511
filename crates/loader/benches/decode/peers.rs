//! The peers' decoders: one typed serde target shared by serde_json, simd-json and sonic-rs (it
//! streams each series' points straight into its two columns, strings borrowed from the body),
//! and simd-json's borrowed DOM walked into the same series.

use std::{borrow::Cow, fmt};

use promlearn_loader::{Labels, decode::Series};
use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, SeqAccess, Visitor},
};
use simd_json::prelude::*;

/// A sample value as Prometheus writes it: `str::parse` takes `NaN`, `+Inf` and `-Inf` too.
fn value(text: &str) -> Result<f64, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
}

/// Seconds (as the parser's f64) to milliseconds.
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<JsonSeries>,
}

#[derive(Deserialize)]
struct JsonSeries {
    metric: Metric,
    values: Points,
}

/// A label set read as a map of strings (unescaped where needed).
struct Metric(Labels);

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metric;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a label set")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metric, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                    pairs.push((k.into_owned(), v.into_owned()));
                }
                Ok(Metric(Labels::from_pairs(pairs)))
            }
        }
        d.deserialize_map(V)
    }
}

/// A series' points, streamed into two columns as they are read.
#[derive(Default)]
struct Points {
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

/// `[<seconds>, "<value>"]`.
struct Point(i64, f64);

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (t, v): (f64, Cow<'de, str>) = Deserialize::deserialize(d)?;
        Ok(Point(
            millis(t),
            value(&v).map_err(serde::de::Error::custom)?,
        ))
    }
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Points;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of points")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Points, A::Error> {
                let mut p = Points::default();
                while let Some(Point(t, v)) = seq.next_element()? {
                    p.timestamps.push(t);
                    p.values.push(v);
                }
                Ok(p)
            }
        }
        d.deserialize_seq(V)
    }
}

fn series_of(body: Body) -> Result<Vec<Series>, String> {
    if body.status != "success" {
        return Err(format!("status {}", body.status));
    }
    Ok(body
        .data
        .result
        .into_iter()
        .map(|s| Series {
            labels: s.metric.0,
            timestamps: s.values.timestamps,
            values: s.values.values,
        })
        .collect())
}

/// serde_json into the typed target.
pub fn serde_json_typed(body: &[u8]) -> Result<Vec<Series>, String> {
    series_of(serde_json::from_slice(body).map_err(|e| e.to_string())?)
}

/// sonic-rs into the typed target.
pub fn sonic_rs_typed(body: &[u8]) -> Result<Vec<Series>, String> {
    series_of(sonic_rs::from_slice(body).map_err(|e| e.to_string())?)
}

/// simd-json into the typed target. It parses in place, so it works on a copy of the body (the
/// copy is part of its cost: a network buffer is not ours to overwrite either).
pub fn simd_json_typed(body: &[u8]) -> Result<Vec<Series>, String> {
    let mut copy = body.to_vec();
    series_of(simd_json::serde::from_slice(&mut copy).map_err(|e| e.to_string())?)
}

/// simd-json's borrowed DOM, walked into series.
pub fn simd_json_dom(body: &[u8]) -> Result<Vec<Series>, String> {
    let mut copy = body.to_vec();
    let doc = simd_json::to_borrowed_value(&mut copy).map_err(|e| e.to_string())?;
    if doc.get_str("status") != Some("success") {
        return Err("status is not success".into());
    }
    let result = doc
        .get("data")
        .and_then(|d| d.get_array("result"))
        .ok_or("no data.result")?;
    let mut out = Vec::with_capacity(result.len());
    for s in result {
        let metric = s.get_object("metric").ok_or("no metric")?;
        let labels = Labels::from_pairs(
            metric
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_str().unwrap_or_default().to_owned())),
        );
        let points = s.get_array("values").ok_or("no values")?;
        let mut timestamps = Vec::with_capacity(points.len());
        let mut values = Vec::with_capacity(points.len());
        for p in points {
            let p = p.as_array().ok_or("a point is not an array")?;
            let t = p.first().and_then(|t| t.cast_f64()).ok_or("no time")?;
            let v = p.get(1).and_then(|v| v.as_str()).ok_or("no value")?;
            timestamps.push(millis(t));
            values.push(value(v)?);
        }
        out.push(Series {
            labels,
            timestamps,
            values,
        });
    }
    Ok(out)
}
