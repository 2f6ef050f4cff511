//! The profile's rates, integrals and both written forms.

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[test]
fn constant_rate_and_integral() {
    let p = Profile::constant(200.0);
    assert_eq!(p.rate_at(secs(0.0)), 200.0);
    assert_eq!(p.rate_at(secs(1e6)), 200.0);
    assert!(close(p.expected_queries(secs(2.5)), 500.0));
}

#[test]
fn ramp_climbs_then_holds() {
    let p = Profile::ramp(10.0, 110.0, secs(10.0));
    assert_eq!(p.rate_at(secs(0.0)), 10.0);
    assert!(close(p.rate_at(secs(5.0)), 60.0));
    assert_eq!(p.rate_at(secs(10.0)), 110.0);
    assert_eq!(p.rate_at(secs(99.0)), 110.0);
    // Trapezoid over the ramp, then a rectangle.
    assert!(close(p.expected_queries(secs(10.0)), 600.0));
    assert!(close(p.expected_queries(secs(12.0)), 820.0));
    let down = Profile::ramp(100.0, 0.0, secs(4.0));
    assert!(close(down.expected_queries(secs(8.0)), 200.0));
}

#[test]
fn sine_oscillates_around_base() {
    let p = Profile::sine(100.0, 80.0, secs(60.0));
    assert!(close(p.rate_at(secs(0.0)), 100.0));
    assert!(close(p.rate_at(secs(15.0)), 180.0));
    assert!(close(p.rate_at(secs(45.0)), 20.0));
    // Whole periods average to the base.
    assert!(close(p.expected_queries(secs(120.0)), 12_000.0));
    // First quarter: 100*15 + 80*60/(2π).
    assert!(close(
        p.expected_queries(secs(15.0)),
        1500.0 + 80.0 * 60.0 / TAU
    ));
}

#[test]
fn compressed_day_is_quiet_at_midnight_and_busy_at_noon() {
    let day = Profile::compressed_day(100.0, 90.0, secs(24.0));
    assert!(close(day.rate_at(secs(0.0)), 10.0));
    assert!(close(day.rate_at(secs(12.0)), 190.0));
    assert!(close(day.rate_at(secs(24.0)), 10.0));
    assert!(close(day.expected_queries(secs(24.0)), 2400.0));
    assert_eq!(day.to_string(), "day:base=100,amp=90,period=24s");
}

#[test]
fn spikes_multiply_and_bursts_add_inside_their_window_only() {
    let p = Profile::constant(100.0)
        .with_spike(secs(10.0), secs(5.0), 5.0)
        .with_burst(secs(12.0), secs(10.0), 50.0);
    assert_eq!(p.rate_at(secs(9.999)), 100.0);
    assert_eq!(p.rate_at(secs(10.0)), 500.0);
    assert_eq!(p.rate_at(secs(12.0)), 750.0);
    assert_eq!(p.rate_at(secs(15.0)), 150.0);
    assert_eq!(p.rate_at(secs(22.0)), 100.0);
    // 100*30 + 400*5 (spike) + 50*10 (burst) + 50*4*3 (spike) ... computed piecewise:
    // [0,10) 1000, [10,12) 1000, [12,15) 2250, [15,22) 1050, [22,30) 800.
    assert!(close(p.expected_queries(secs(30.0)), 6100.0));
}

#[test]
fn an_outage_spike_silences_even_an_unlimited_shape() {
    let p = Profile::unlimited().with_spike(secs(1.0), secs(1.0), 0.0);
    assert_eq!(p.rate_at(secs(0.5)), f64::INFINITY);
    assert_eq!(p.rate_at(secs(1.5)), 0.0);
    assert_eq!(p.expected_queries(Duration::ZERO), 0.0);
    assert_eq!(p.expected_queries(secs(0.5)), f64::INFINITY);
}

#[test]
fn integral_matches_numeric_sampling() {
    let p: Profile = "sine:base=300,amp=250,period=7s,phase=0.1+spike:at=2s,len=1.5s,x=3\
                      +burst:at=3s,len=2s,qps=90+spike:at=3.2s,len=0.1s,x=0"
        .parse()
        .unwrap();
    let step = 1e-4;
    let mut sampled = 0.0;
    let mut t = step / 2.0;
    while t < 10.0 {
        sampled += p.rate_at(secs(t)) * step;
        t += step;
    }
    let exact = p.expected_queries(secs(10.0));
    assert!((sampled - exact).abs() < 1.0, "{sampled} vs {exact}");
}

#[test]
fn short_forms_parse() {
    assert_eq!("constant:200".parse(), Ok(Profile::constant(200.0)));
    assert_eq!(" Constant : qps = 2.5 ".parse(), Ok(Profile::constant(2.5)));
    assert_eq!(
        "ramp:from=10,to=200,over=1m".parse(),
        Ok(Profile::ramp(10.0, 200.0, secs(60.0)))
    );
    assert_eq!("max".parse(), Ok(Profile::unlimited()));
    assert_eq!(
        "day:base=100,amp=80,period=2h".parse(),
        Ok(Profile::compressed_day(100.0, 80.0, secs(7200.0)))
    );
    assert_eq!(
        "constant:100+spike:at=30s,len=500ms,x=5+burst:at=1m,len=2s,qps=300".parse(),
        Ok(Profile::constant(100.0)
            .with_spike(secs(30.0), secs(0.5), 5.0)
            .with_burst(secs(60.0), secs(2.0), 300.0))
    );
}

#[test]
fn display_round_trips() {
    for text in [
        "constant:200",
        "ramp:from=10,to=200,over=1m",
        "sine:base=100,amp=80,period=1m30s",
        "sine:base=100,amp=80,period=1s500ms,phase=0.25",
        "day:base=50,amp=50,period=1d",
        "max+spike:at=1s,len=1s,x=0",
        "constant:0.5+burst:at=250ms,len=3s,qps=1000+spike:at=5s,len=1s,x=2.5",
    ] {
        let profile: Profile = text.parse().unwrap();
        assert_eq!(profile.to_string(), text);
        assert_eq!(profile.to_string().parse(), Ok(profile));
    }
}

#[test]
fn json_form_parses() {
    let from_json = Profile::from_json(
        r#"{"shape":"ramp","from":1,"to":"9","over":30,
            "events":[{"event":"burst","at":"5s","len":"1s","qps":7}]}"#,
    );
    assert_eq!(
        from_json,
        Ok(Profile::ramp(1.0, 9.0, secs(30.0)).with_burst(secs(5.0), secs(1.0), 7.0))
    );
    assert_eq!(
        Profile::parse(r#"{"shape": "constant", "qps": 5}"#),
        Ok(Profile::constant(5.0))
    );
    assert_eq!(
        Profile::from_json(r#""constant:5""#),
        Ok(Profile::constant(5.0))
    );
}

#[test]
fn bad_profiles_say_what_is_wrong() {
    let err = |text: &str| text.parse::<Profile>().unwrap_err().to_string();
    assert!(err("").starts_with("empty profile: use constant:200"));
    assert!(err("square:100").starts_with("unknown shape `square`"));
    assert_eq!(
        err("spike:at=30s,len=5s,x=5"),
        "`spike` changes a base rate, so it cannot come first: start with a shape, e.g. constant:100+spike:..."
    );
    assert_eq!(
        err("constant:1+constant:2"),
        "`constant` is a shape; after `+` come only events (spike, burst)"
    );
    assert!(err("constant:1+dip:at=1s").starts_with("unknown event `dip`"));
    assert_eq!(
        err("sine:base=100,amp=80"),
        "`sine` needs `period` (e.g. sine:base=100,amp=80,period=60s)"
    );
    assert_eq!(
        err("constant:200,burst=3"),
        "`constant` takes no `burst` (e.g. constant:200)"
    );
    assert_eq!(err("constant:fast"), "`=fast` is not a number");
    assert_eq!(err("constant:qps=fast"), "`qps=fast` is not a number");
    assert_eq!(err("constant:qps=NaN"), "`qps=NaN` is not a number");
    assert_eq!(
        err("ramp:from=1,to=2,over=soon"),
        "`over=soon` is not a duration (e.g. 30s, 500ms, 2m, 1h)"
    );
    assert_eq!(err("ramp:from=1,from=2"), "`ramp` has `from` twice");
    assert_eq!(
        err("constant:-5"),
        "constant rate -5 must be a finite number >= 0"
    );
    assert_eq!(
        err("sine:base=10,amp=20,period=1s"),
        "sine amp 20 exceeds base 10: the rate would go below zero"
    );
    assert_eq!(
        err("sine:base=10,amp=2,period=0s"),
        "sine period must be longer than 0s"
    );
    assert_eq!(
        err("constant:1+spike:at=1s,len=0s,x=2"),
        "spike x=2 must be a finite number >= 0 and its len > 0s"
    );
    assert!(err("{\"shape\": 3}").starts_with("profile JSON: missing \"shape\""));
    assert!(err("{nope").starts_with("profile JSON: "));
    assert!(
        err(r#"{"shape":"constant","qps":[1]}"#)
            .starts_with("profile JSON: `qps` must be a number or a string")
    );
}
