//! The tutorial's queries on the live testbed: real CoreDNS scraped every second by a real
//! Prometheus, 2.42 and 3.

use std::time::{Duration, Instant};

use promlearn_loader::{
    Error,
    tutorial::{Dataset, KeyMode, PyFloat, format_time},
};
use promlearn_testbed::{PrometheusRelease, Testbed, TestbedConfig};

fn dig(testbed: &Testbed, extra: &[&str]) {
    let out = std::process::Command::new("dig")
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(testbed.dns_addr().port().to_string())
        .arg("demo1.example.org")
        .arg("+short")
        .args(extra)
        .output()
        .expect("dig runs");
    assert!(
        out.status.success(),
        "dig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loads the dataset until `accept` likes it (the window must first fill with scrapes).
async fn poll_dataset(
    query: &str,
    length: u64,
    url: &str,
    accept: impl Fn(&Dataset) -> bool,
) -> Dataset {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ds = Dataset::from_prometheus(query, length, None, Some(url)).await;
        match ds {
            Ok(ds) if accept(&ds) => return ds,
            Ok(_) | Err(Error::KeyCollision { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            other => panic!("`{query}` never gave the expected dataset: {other:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_tutorial_queries_on_the_live_testbed() {
    tutorial_queries(PrometheusRelease::V2).await
}

#[tokio::test]
#[ignore = "needs real servers: run cargo xtask e2e"]
async fn the_tutorial_queries_on_a_live_prometheus_3() {
    tutorial_queries(PrometheusRelease::V3).await
}

/// The tutorial's queries on a testbed running `release`; prints the tutorial's lines as it
/// checks them (a test's output, shown when it fails).
#[allow(clippy::print_stdout)]
async fn tutorial_queries(release: PrometheusRelease) {
    let config = TestbedConfig::for_tests()
        .unwrap()
        .with_prometheus_release(release);
    let testbed = Testbed::start(config).await.unwrap();
    let url = testbed.prometheus_url();
    let instance = testbed.coredns_instance();

    dig(&testbed, &[]);
    dig(&testbed, &[]);
    let ds = poll_dataset("coredns_dns_request_count_total", 5, &url, |ds| {
        ds.get("coredns", &instance, "coredns_dns_request_count_total")
            .is_some_and(|v| v.iter().all(|x| *x == 2.0))
    })
    .await;
    assert_eq!(
        ds.element_spec().to_string(),
        format!(
            "(TensorSpec(shape=(), dtype=tf.int64, name=None), {{'coredns': {{'{instance}': \
             {{'coredns_dns_request_count_total': TensorSpec(shape=(), dtype=tf.float64, name=None)}}}}}})"
        )
    );
    assert_eq!(ds.len(), 5);
    let mut previous = None;
    for (time, value) in &ds {
        let v = value["coredns"][instance.as_str()]["coredns_dns_request_count_total"];
        let line = format!("{}: {}", format_time(time), PyFloat(v));
        println!("{line}");
        assert!(line.ends_with(": 2.0"), "{line}");
        if let Some(p) = previous {
            assert_eq!(time - p, 1000);
        }
        previous = Some(time);
    }

    // Both jobs expose Go's memory statistics.
    let ds = poll_dataset("go_memstats_gc_sys_bytes", 5, &url, |ds| {
        ds.keys().len() == 2 && ds.matrix().sample_count() == 10
    })
    .await;
    let spec = ds.element_spec().to_string();
    assert!(
        spec.starts_with("(TensorSpec(shape=(), dtype=tf.int64, name=None), {'coredns': {"),
        "{spec}"
    );
    assert!(spec.contains("'prometheus': {"), "{spec}");
    for (_, value) in &ds {
        let coredns = value["coredns"][instance.as_str()]["go_memstats_gc_sys_bytes"];
        let prometheus = value["prometheus"].values().next().unwrap()["go_memstats_gc_sys_bytes"];
        println!("{}/{}", PyFloat(coredns), PyFloat(prometheus));
        assert!(coredns > 0.0 && prometheus > 0.0);
    }

    // The training series: 12 s of go_memstats_sys_bytes of job coredns (once the testbed has
    // run that long; before, those seconds are honestly missing).
    let ds = poll_dataset("go_memstats_sys_bytes", 12, &url, |ds| {
        ds.get_in_job("coredns", "go_memstats_sys_bytes")
            .is_some_and(|v| v.iter().all(|x| x.is_finite()))
    })
    .await;
    let train = ds.get_in_job("coredns", "go_memstats_sys_bytes").unwrap();
    assert_eq!(train.len(), 12);
    assert!(train.iter().all(|v| *v > 0.0), "{train:?}");

    // A TCP query makes a second series under the tutorial's key: refused, naming both.
    dig(&testbed, &["+tcp"]);
    // Series are discovered over the whole window: the new one shows as soon as it has a sample
    // in the window.
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        match Dataset::from_prometheus("coredns_dns_request_count_total", 5, None, Some(&url)).await
        {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Ok(ds) => panic!("no collision reported: {:?}", ds.matrix().series()),
        }
    };
    assert!(matches!(err, Error::KeyCollision { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(r#"proto="tcp""#) && text.contains(r#"proto="udp""#),
        "{text}"
    );
    let all = Dataset::builder("coredns_dns_request_count_total", 5)
        .endpoint(&url)
        .key_mode(KeyMode::AllLabels)
        .load()
        .await
        .unwrap();
    assert_eq!(all.keys().len(), 2);
}
