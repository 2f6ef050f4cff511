//! What must hold for any body handed to the decoder, well-formed or not:
//!
//! 1. it never panics;
//! 2. the network's cut does not matter: fed in pieces, it gives what it gives fed whole;
//! 3. whatever it accepts as JSON it reads as serde_json does: the same series, labels,
//!    timestamps (to the millisecond) and values (to the bit), so no sample is ever lost, added
//!    or altered;
//! 4. whatever serde_json reads as a well-formed success answer, it accepts: without this, a
//!    decoder that rejected every body would satisfy 2 and 3.

use promlearn_loader::decode::{Collect, Decoder, decode};
use serde_json::Value;

/// Checks every property on `data`; its first byte chooses where the pieces are cut.
pub fn body(data: &[u8]) {
    let cut = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    body_cut_at(data, cut);
}

/// Checks every property on `data`, fed in pieces cut at `cut` (a one-byte piece there, then
/// the rest in two halves).
pub fn body_cut_at(data: &[u8], cut: usize) {
    let whole = decode(data);
    let pieces = decode_in_pieces(data, &[cut, cut + 1, cut + 1 + (data.len() - cut) / 2]);
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert!(
            comparable(&a.series) == *b,
            "fed in pieces at {cut}, the series differ"
        ),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("fed whole: {a:?}; fed in pieces at {cut}: {b:?}"),
    }
    // serde_json keeps the last of repeated keys: such documents are ambiguous, not compared.
    let Ok(json) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if has_duplicate_keys(data) {
        return;
    }
    match whole {
        Ok(answer) => agrees_with_serde_json(&answer, &json),
        Err(e) => assert!(
            !is_well_formed(&json),
            "a well-formed answer was refused: {e}"
        ),
    }
}

/// Whether `json` is a success answer as the API documents it: `status: "success"`, a `data`
/// object whose `result` has the shape its `resultType` names (series of `metric` labels with
/// `values` or `value` points, or one scalar point), timestamps within the millisecond range
/// and values as Prometheus formats them. Unknown keys outside the series are allowed (servers
/// add `stats`, `isPartial`, ...); `warnings` and `infos`, when present, are lists of strings.
pub fn is_well_formed(json: &Value) -> bool {
    let strings = |v: Option<&Value>| {
        v.is_none_or(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    };
    let point = |p: &Value| {
        p.as_array().is_some_and(|p| {
            p.len() == 2
                && p[0].is_number()
                && millis(&p[0]).is_some()
                && p[1].as_str().is_some_and(is_prometheus_float)
        })
    };
    let series = |s: &Value, key: &str| {
        s.as_object().is_some_and(|s| {
            // Prometheus 3's native histogram samples may sit beside or instead of the floats.
            s.keys()
                .all(|k| k == "metric" || k == key || k == "histogram" || k == "histograms")
                && s.get("metric").is_some_and(|m| {
                    m.as_object()
                        .is_some_and(|m| m.values().all(Value::is_string))
                })
                && match (key, s.get(key)) {
                    ("values", Some(Value::Array(points))) => points.iter().all(point),
                    ("value", Some(p)) => point(p),
                    (_, None) => s.contains_key("histogram") || s.contains_key("histograms"),
                    _ => false,
                }
        })
    };
    let data = &json["data"];
    json.is_object()
        && json["status"] == "success"
        && strings(json.get("warnings"))
        && strings(json.get("infos"))
        && match (data["resultType"].as_str(), data["result"].as_array()) {
            (Some("matrix"), Some(result)) => result.iter().all(|s| series(s, "values")),
            (Some("vector"), Some(result)) => result.iter().all(|s| series(s, "value")),
            (Some("scalar"), Some(_)) => point(&data["result"]),
            _ => false,
        }
}

/// `NaN`, `+Inf`, `-Inf`, or a decimal number (`1`, `-0.5`, `1e-07`), as Prometheus writes values.
fn is_prometheus_float(text: &str) -> bool {
    if matches!(text, "NaN" | "+Inf" | "-Inf") {
        return true;
    }
    let b = text.as_bytes();
    let mut p = usize::from(b.first() == Some(&b'-'));
    let digits = |p: &mut usize| {
        let from = *p;
        while b.get(*p).is_some_and(u8::is_ascii_digit) {
            *p += 1;
        }
        *p - from
    };
    let mut mantissa = digits(&mut p);
    if b.get(p) == Some(&b'.') {
        p += 1;
        mantissa += digits(&mut p);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(p), Some(b'e' | b'E')) {
        p += 1;
        if matches!(b.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        if digits(&mut p) == 0 {
            return false;
        }
    }
    p == b.len()
}

fn decode_in_pieces(data: &[u8], cuts: &[usize]) -> Result<Comparable, ()> {
    let mut decoder = Decoder::new(Collect::default());
    let mut from = 0;
    for &cut in cuts {
        let cut = cut.clamp(from, data.len());
        decoder.feed(&data[from..cut]).map_err(drop)?;
        from = cut;
    }
    decoder.feed(&data[from..]).map_err(drop)?;
    let (envelope, collect) = decoder.finish().map_err(drop)?;
    if envelope.status.as_deref() != Some("success") {
        return Err(());
    }
    Ok(comparable(&collect.series))
}

type Comparable = Vec<(Vec<(String, String)>, Vec<i64>, Vec<u64>)>;

fn comparable(series: &[promlearn_loader::Series]) -> Comparable {
    series
        .iter()
        .map(|s| {
            (
                s.labels
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                s.timestamps.clone(),
                s.values.iter().map(|v| canonical_bits(*v)).collect(),
            )
        })
        .collect()
}

/// NaNs compare equal whatever their payload.
fn canonical_bits(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

fn agrees_with_serde_json(answer: &promlearn_loader::decode::Answer, json: &Value) {
    // The decoder streams, and keys may come in any order, so it reads `result` by its shape
    // (the client then checks `resultType` against what the request expects).
    let result = match json["data"]["result"].as_array() {
        Some(result) if result.iter().all(Value::is_object) => result,
        Some(point) if point.len() == 2 && point[0].is_number() && point[1].is_string() => {
            assert!(answer.series.is_empty(), "series in a scalar answer");
            if let Some((t, v)) = answer.scalar {
                if let Some(want) = millis(&point[0]) {
                    assert_eq!(t, want, "the scalar's timestamp");
                }
                assert_eq!(
                    canonical_bits(v),
                    canonical_bits(value(&point[1])),
                    "the scalar"
                );
            }
            return;
        }
        _ => {
            assert!(
                answer.series.is_empty(),
                "series where serde_json sees no series in `result`"
            );
            return;
        }
    };
    // A series of native histograms alone is left out (with a warning); one with floats too keeps
    // its floats.
    let has_floats = |s: &&Value| {
        s.get("values")
            .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()))
            || s.get("value").is_some()
    };
    let histograms = |s: &&Value| s.get("histogram").is_some() || s.get("histograms").is_some();
    let result: Vec<&Value> = result
        .iter()
        .filter(|s| has_floats(s) || !histograms(s))
        .collect();
    assert_eq!(answer.series.len(), result.len(), "series count");
    for (got, want) in answer.series.iter().zip(result) {
        let mut labels: Vec<(String, String)> = want["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let mut got_labels: Vec<(String, String)> = got
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        got_labels.sort();
        assert_eq!(got_labels, labels, "labels");
        let points: Vec<&Value> = match (want.get("values"), want.get("value")) {
            (Some(Value::Array(values)), _) => values.iter().collect(),
            (_, Some(value)) => vec![value],
            _ => vec![],
        };
        assert_eq!(
            got.timestamps.len(),
            points.len(),
            "sample count of {labels:?}"
        );
        for (i, point) in points.iter().enumerate() {
            if let Some(want) = millis(&point[0]) {
                assert_eq!(got.timestamps[i], want, "timestamp {i}");
            }
            assert_eq!(
                canonical_bits(got.values[i]),
                canonical_bits(value(&point[1])),
                "value {i} `{}`",
                point[1]
            );
        }
    }
}

/// Integer seconds exactly; fractional ones through f64, which is exact to the millisecond only
/// within about ±9e12 s (the year 287,000): beyond that, `None` (not compared).
fn millis(time: &Value) -> Option<i64> {
    if let Some(seconds) = time.as_i64() {
        return seconds.checked_mul(1000);
    }
    let seconds = time.as_f64().expect("a numeric timestamp");
    (seconds.abs() < 9.0e12).then(|| (seconds * 1000.0).round() as i64)
}

fn value(text: &Value) -> f64 {
    match text.as_str().expect("a string value") {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text.parse::<f64>().expect("a number"),
    }
}

/// Whether any object in `data` repeats a key (serde_json's map keeps only the last).
fn has_duplicate_keys(data: &[u8]) -> bool {
    serde_json::from_slice::<UniqueKeys>(data).is_err()
}

/// Deserialises any JSON, failing on an object that repeats a key.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("a repeated key"));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}
