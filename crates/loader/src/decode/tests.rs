//! The decoder's unit tests on hand-written and recorded answers.

use super::lex::{fast_point, parse_point, parse_time, parse_value, scan_str};
use super::*;

const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"localhost:9090","job":"prometheus"},"values":[[1435781430.781,"1"],[1435781445.781,"NaN"],[1435781460.781,"+Inf"],[1435781475,"-Inf"],[1435781476.05,"1e-07"]]},{"metric":{"job":"x\"y\\z\u00e9"},"values":[]}]},"warnings":["w1","w\n2"],"infos":["i"]}"#;

/// Series equality that treats NaN as equal to itself (by bit pattern).
fn same(a: &[Series], b: &[Series]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.labels == y.labels
                && x.timestamps == y.timestamps
                && x.values.len() == y.values.len()
                && x.values
                    .iter()
                    .zip(&y.values)
                    .all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

fn feed_in_pieces(body: &[u8], piece: usize) -> Result<(Envelope, Collect)> {
    let mut d = Decoder::new(Collect::default());
    for part in body.chunks(piece.max(1)) {
        d.feed(part)?;
    }
    d.finish()
}

#[test]
fn a_matrix_decodes_exactly() {
    let a = decode(MATRIX.as_bytes()).unwrap();
    assert_eq!(a.result_type, "matrix");
    assert_eq!(a.series.len(), 2);
    let s = &a.series[0];
    assert_eq!(s.labels.get("instance"), Some("localhost:9090"));
    assert_eq!(
        s.timestamps,
        [
            1435781430781,
            1435781445781,
            1435781460781,
            1435781475000,
            1435781476050
        ]
    );
    assert_eq!(s.values[0], 1.0);
    assert!(s.values[1].is_nan());
    assert_eq!(s.values[2], f64::INFINITY);
    assert_eq!(s.values[3], f64::NEG_INFINITY);
    assert_eq!(s.values[4], 1e-7);
    assert_eq!(a.series[1].labels.get("job"), Some("x\"y\\z\u{e9}"));
    assert!(a.series[1].timestamps.is_empty());
    assert_eq!(a.warnings, ["w1", "w\n2"]);
    assert_eq!(a.infos, ["i"]);
}

#[test]
fn any_split_of_the_body_decodes_the_same() {
    let bodies = [
        MATRIX,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.5,"42"]}]}}"#,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"-3.5"]}}"#,
        r#"{"status":"success","data":{"resultType":"string","result":[1700000000,"hello"]}}"#,
        r#"{"status":"error","errorType":"bad_data","error":"parse error: unexpected \"}\""}"#,
        // VictoriaMetrics' extra keys, values before metric, odd whitespace.
        " { \"status\" : \"success\" , \"isPartial\" : false , \"data\" : { \"result\" : [ { \"values\" : [ [ 1 , \"2\" ] , [ 2.5 , \"3\" ] ] , \"metric\" : { \"a\" : \"b\" } } ] , \"resultType\" : \"matrix\" } , \"stats\" : { \"seriesFetched\" : \"1\" , \"x\" : [ 1 , { \"y\" : \"]}\\\"\" } ] } } \n",
    ];
    for body in bodies {
        let whole = feed_in_pieces(body.as_bytes(), body.len()).unwrap();
        for piece in 1..=7 {
            let split = feed_in_pieces(body.as_bytes(), piece).unwrap();
            assert_eq!(split.0, whole.0, "piece {piece} of {body}");
            assert!(
                same(&split.1.series, &whole.1.series),
                "piece {piece} of {body}"
            );
        }
    }
}

#[test]
fn scalar_string_and_error_answers() {
    let scalar = decode(
        br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"-3.5"]}}"#,
    )
    .unwrap();
    assert_eq!(scalar.scalar, Some((1_700_000_000_123, -3.5)));
    let string =
        decode(br#"{"status":"success","data":{"resultType":"string","result":[1,"hello"]}}"#)
            .unwrap();
    assert_eq!(string.string, Some((1000, "hello".into())));
    let err = decode_http(
        400,
        br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#,
    )
    .unwrap_err();
    match &err {
        Error::Api {
            status,
            error_type,
            message,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(error_type, "bad_data");
            assert_eq!(message, "1:5: parse error: unclosed left parenthesis");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("unclosed left parenthesis"),
        "{err}"
    );
}

#[test]
fn vm_partial_answers_are_flagged() {
    let a = decode(
        br#"{"status":"success","isPartial":true,"data":{"resultType":"matrix","result":[]}}"#,
    )
    .unwrap();
    assert_eq!(a.warnings.len(), 1);
    assert!(a.warnings[0].contains("partial"));
}

#[test]
fn html_and_other_json_are_not_prometheus() {
    for (status, body) in [
        (
            200,
            &b"<!DOCTYPE html><html><body>Grafana</body></html>"[..],
        ),
        (404, b"404 page not found\n"),
        (200, br#"{"hello":"world"}"#),
        (200, b""),
    ] {
        let err = decode_http(status, body).unwrap_err();
        assert!(
            matches!(err, Error::NotPrometheus { .. }),
            "{status} {body:?}: {err:?}"
        );
    }
}

#[test]
fn truncation_is_an_error_never_a_shorter_answer() {
    let body = MATRIX.as_bytes();
    for cut in 1..body.len() {
        let err = decode(&body[..cut]).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { .. }),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn timestamps_are_exact_milliseconds() {
    let t = |s: &str| {
        parse_time(format!("{s},").as_bytes(), 0)
            .unwrap()
            .unwrap()
            .0
    };
    assert_eq!(t("1435781451.781"), 1_435_781_451_781);
    assert_eq!(t("1435781451"), 1_435_781_451_000);
    assert_eq!(t("1435781451.05"), 1_435_781_451_050);
    assert_eq!(t("1435781451.050"), 1_435_781_451_050);
    assert_eq!(t("-1.500"), -1500);
    assert_eq!(t("0.0005"), 1);
    assert_eq!(t("1e3"), 1_000_000);
    assert!(
        parse_time(b"1435781451", 0).unwrap().is_none(),
        "incomplete"
    );
    assert!(parse_time(b"99999999999999999999,", 0).is_err());
}

#[test]
fn values_as_prometheus_formats_them() {
    let v = |s: &str| parse_value(s.as_bytes());
    assert_eq!(v("1"), Some(1.0));
    assert_eq!(v("0.1"), Some(0.1));
    assert_eq!(v("1e-07"), Some(1e-7));
    assert_eq!(v("-2.5e+21"), Some(-2.5e21));
    assert_eq!(v("123456789012345"), Some(123456789012345.0));
    assert_eq!(v("12345678901234567890"), Some(12345678901234567890.0));
    assert_eq!(v("+Inf"), Some(f64::INFINITY));
    assert_eq!(v("-Inf"), Some(f64::NEG_INFINITY));
    assert!(v("NaN").unwrap().is_nan());
    assert_eq!(v(""), None);
    assert_eq!(v("abc"), None);
    assert_eq!(v("1.2.3"), None);
}

/// Value texts of every kind the property tests feed, plus the edges of the one-pass reader.
const VALUE_TEXTS: &[&str] = &[
    "0",
    "-0",
    "1",
    "0.1",
    "1e-07",
    "-2.5e+21",
    "NaN",
    "+Inf",
    "-Inf",
    "0.0001",
    "1e309",
    "0.000071414",
    "12345.678",
    "1.",
    ".5",
    "-.5",
    "-",
    ".",
    "",
    "+1",
    "00012",
    "1.2.3",
    "9007199254740992",
    "9007199254740993",
    "900719925474099.3",
    "1234567890123456789",
    "12345678901234567890",
    "0.1234567890123456789",
    "0.12345678901234567890",
    "0.0000000000000000000001",
    "0.00000000000000000000001",
    "1.7976931348623157e308",
    "179769313486231570000000000000000000000000000000000000000000000000000000000000000000",
    "5e-324",
    "abc",
    "1\\u0030",
];

/// The point `[t,"value"]` read by the one-pass reader, when it takes it, and by the general
/// one must be the same, and the general one's value is `str::parse::<f64>`'s, to the bit.
fn check_point(time: &str, value: &str) -> bool {
    let text = format!("[{time},\"{value}\"]");
    let b = text.as_bytes();
    let general = parse_point(b, 0);
    let fast = fast_point(b, 0);
    if let Some((t, v, next)) = fast {
        let Ok(Some((gt, gv, gnext))) = general else {
            panic!("{text}: the one-pass reader took what the general one refused");
        };
        assert_eq!((t, v.to_bits(), next), (gt, gv.to_bits(), gnext), "{text}");
    }
    if value.contains('\\') {
        // An escaped value: read once unescaped, checked by the decoder's other tests.
    } else if let Ok(Some((_, v, _))) = general {
        let want: f64 = value.parse().unwrap();
        assert_eq!(v.to_bits(), want.to_bits(), "{text}");
    } else {
        assert!(
            value.parse::<f64>().is_err()
                || !value
                    .starts_with(|c: char| c == '+' || c == '-' || c == '.' || c.is_ascii_digit()),
            "{text}: refused, yet str::parse reads it"
        );
    }
    // Every cut of the point waits for more bytes, or reads the same as the one-pass reader.
    for cut in 0..b.len() {
        assert_eq!(fast_point(&b[..cut], 0), None, "{text} cut at {cut}");
    }
    fast.is_some()
}

#[test]
fn the_one_pass_sample_reader_agrees_with_the_general_one_and_str_parse() {
    for value in VALUE_TEXTS {
        for time in [
            "1700000000",
            "1700000000.5",
            "1700000000.05",
            "1700000000.781",
            "0",
        ] {
            check_point(time, value);
        }
    }
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut taken = 0;
    let n = 200_000;
    for i in 0..n {
        let value = match i % 5 {
            // Any f64, as Rust and Go's 'f' format write it (shortest digits, no exponent).
            0 => format!("{}", f64::from_bits(rng.next())),
            // A gauge's few decimals, as the bench's and most real series hold.
            1 => format!(
                "{}",
                (rng.below(1 << 30) as f64) / [1.0, 8.0, 10.0, 1000.0][rng.below(4)]
            ),
            // Full precision, as rates and ratios come: 16 to 17 significant digits.
            4 => format!(
                "{}",
                (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * [1.0, 1e3, 1e-3][rng.below(3)]
            ),
            // Prometheus's `e` form below 1e-6 and from 1e21.
            2 => format!("{:e}", f64::from_bits(rng.next())),
            // Random digit strings: any length, point and sign.
            _ => {
                let len = 1 + rng.below(26);
                let mut s: String = (0..len)
                    .map(|_| char::from(b'0' + rng.below(10) as u8))
                    .collect();
                if rng.below(3) > 0 {
                    s.insert(rng.below(len + 1), '.');
                }
                if rng.below(2) == 0 {
                    s.insert(0, '-');
                }
                s
            }
        };
        let time = match rng.below(3) {
            0 => format!("{}", rng.below(1 << 34)),
            1 => format!("{}.{}", rng.below(1 << 34), rng.below(1000)),
            _ => format!("{}.{:03}", rng.below(1 << 34), rng.below(1000)),
        };
        taken += usize::from(check_point(&time, &value));
    }
    // The one-pass reader must be the path most samples take, or it is not what is tested.
    assert!(
        taken > n / 3,
        "the one-pass reader took only {taken} of {n}"
    );
}

/// The end of a string byte by byte, as the JSON grammar reads it: the reference for the
/// word-at-a-time scanner.
fn scan_str_bytewise(b: &[u8], q: usize) -> Option<Result<(usize, bool), usize>> {
    let mut p = q + 1;
    let mut escaped = false;
    while p < b.len() {
        match b[p] {
            b'"' => return Some(Ok((p, escaped))),
            b'\\' => {
                escaped = true;
                p += 2;
                continue;
            }
            c if c < 0x20 => return Some(Err(p)),
            _ => p += 1,
        }
    }
    None
}

#[test]
fn strings_end_where_the_bytewise_reading_ends_them() {
    // Every length up to three words, with each interesting byte at every position, and a
    // second one after it.
    let fillers: &[u8] = b"a0~\x7f\x80\xff";
    let special: &[u8] = b"\"\\\x00\x1f\x20\x21";
    for len in 0..26 {
        for &fill in fillers {
            for at in 0..=len {
                for &first in special {
                    for &second in special {
                        let mut b = vec![b'"'];
                        b.extend(std::iter::repeat_n(fill, len));
                        if at < len {
                            b[1 + at] = first;
                        }
                        b.push(second);
                        b.extend_from_slice(b"xyz");
                        for end in [b.len(), 1 + len] {
                            let b = &b[..end];
                            let want = scan_str_bytewise(b, 0);
                            let got = match scan_str(b, 0) {
                                Ok(Some(s)) => Some(Ok((s.end, s.escaped))),
                                Ok(None) => None,
                                Err((at, _)) => Some(Err(at)),
                            };
                            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(b));
                        }
                    }
                }
            }
        }
    }
}

/// A small deterministic generator, so the robustness test needs no extra crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mangled_answers_never_panic_and_decode_alike_in_any_pieces() {
    let base = MATRIX.as_bytes();
    let interesting = b"{}[]\",:0123456789.-eE+NnaIf \\u\x00\xff";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let mut body = base.to_vec();
        for _ in 0..1 + rng.below(4) {
            if body.is_empty() {
                break;
            }
            let at = rng.below(body.len());
            match rng.below(4) {
                0 => body[at] = interesting[rng.below(interesting.len())],
                1 => {
                    body.remove(at);
                }
                2 => body.insert(at, interesting[rng.below(interesting.len())]),
                _ => body.truncate(at.max(1)),
            }
        }
        let piece = 1 + rng.below(64);
        let outcome = feed_in_pieces(&body, piece);
        let whole = feed_in_pieces(&body, body.len());
        // Feeding in pieces never changes the verdict.
        assert_eq!(
            outcome.is_ok(),
            whole.is_ok(),
            "{}",
            String::from_utf8_lossy(&body)
        );
        let _ = decode(&body);
        if let (Ok((_, answer)), Ok((_, split))) = (whole, outcome) {
            assert!(same(&answer.series, &split.series));
            for s in &answer.series {
                assert_eq!(s.timestamps.len(), s.values.len());
            }
        }
    }
}

fn recorded(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/loader")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn native_histogram_series_are_refused_one_by_one_with_a_warning() {
    // Prometheus 3.5.3's answers: a native-histogram series beside float series.
    for (name, floats) in [
        ("range_native_histograms.200.json", 1),
        ("instant_native_histograms_infos.200.json", 2),
    ] {
        let body = recorded(name);
        let a = decode(&body).unwrap();
        assert_eq!(a.series.len(), floats, "{name}: the float series stay");
        assert!(
            a.series.iter().all(|s| s.labels.metric_name()
                != Some("prometheus_http_request_duration_seconds")
                && !s.values.is_empty()),
            "{name}: {:?}",
            a.series
        );
        assert_eq!(a.warnings.len(), 1, "{name}: {:?}", a.warnings);
        let w = &a.warnings[0];
        assert!(
            w.starts_with("series prometheus_http_request_duration_seconds{handler=\"/metrics\"")
                && w.contains("left out of the answer")
                && w.contains("histogram_quantile"),
            "{w}"
        );
        // The same, fed a byte at a time.
        let (envelope, collect) = feed_in_pieces(&body, 1).unwrap();
        assert!(same(&collect.series, &a.series), "{name}");
        assert_eq!(envelope.warnings, a.warnings);
    }
    let a = decode(&recorded("instant_native_histograms_infos.200.json")).unwrap();
    assert_eq!(a.infos.len(), 1);
    assert!(
        a.infos[0].contains("might not be a counter"),
        "{:?}",
        a.infos
    );
}

#[test]
fn a_series_with_floats_and_histograms_keeps_its_floats() {
    // Keys in any order: histograms before the labels, values after them.
    let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
        {"histograms":[[1,{"count":"1","sum":"1","buckets":[]}]],"metric":{"__name__":"h"},"values":[[2,"5"]]},
        {"metric":{"__name__":"only"},"histograms":[[1,{"count":"1","sum":"1"}]]},
        {"values":[[3,"7"]],"histograms":[[1,{}]],"metric":{"__name__":"late"}}]}}"#;
    let a = decode(body).unwrap();
    let names: Vec<_> = a
        .series
        .iter()
        .map(|s| s.labels.metric_name().unwrap())
        .collect();
    assert_eq!(names, ["h", "late"]);
    assert_eq!(
        (a.series[0].timestamps.clone(), a.series[0].values.clone()),
        (vec![2000], vec![5.0])
    );
    assert_eq!(a.series[1].values, [7.0]);
    assert_eq!(a.warnings.len(), 3, "{:?}", a.warnings);
    assert!(
        a.warnings[0].contains("float samples were kept"),
        "{:?}",
        a.warnings
    );
    assert!(
        a.warnings[1].starts_with("series only holds native histogram samples"),
        "{:?}",
        a.warnings
    );
    assert!(a.warnings[1].contains("left out of the answer"));
}
