//! The tutorial's steps: two DNS queries, the dataset as `from_prometheus` reads it, the
//! CoreDNS/Prometheus comparison, and the LSTM fit on `go_memstats_sys_bytes`.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use promlearn_dns::Query;
use promlearn_loader::tutorial::{Dataset as MetricsDataset, Nested, PyFloat, format_time};
use promlearn_model::{
    Dataset, FitOptions, Forecaster, ModelConfig, ScaleKind, Scaler, TargetMode,
};

use crate::{Outcome, ReadBack, keras::KerasProgress, ui::Status};

pub async fn run(
    endpoint: &str,
    dns_server: SocketAddr,
    verbose: bool,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    // The tutorial's two `dig @127.0.0.1 -p 9053 demoN.example.org`.
    for name in ["demo1.example.org", "demo2.example.org"] {
        let answer = Query::new(dns_server, name)?
            .send()
            .await
            .with_context(|| format!("querying {name} at {dns_server}"))?;
        if verbose {
            println!(
                "$ dig @{} -p {} {name}\n{answer}",
                dns_server.ip(),
                dns_server.port()
            );
        }
        outcome.dns_rcodes.push(answer.rcode().to_string());
    }

    let status = Status::new("prometheus", !verbose);
    status.message(
        "waiting until Prometheus holds 5 s of the request count at 2.0 and 12 s of memory stats",
    );
    let client = promlearn_loader::Client::new(endpoint)?;
    let load = |query: &'static str, length: u64| {
        MetricsDataset::builder(query, length)
            .client(client.clone())
            .load()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (n_samples, n_steps) = (10, 2);
    let training_length = n_samples + n_steps - 1 + 1;
    let (count, gc, memory) = loop {
        let count = load("coredns_dns_request_count_total", 5).await?;
        let gc = load("go_memstats_gc_sys_bytes", 5).await?;
        let memory = load("go_memstats_sys_bytes", training_length as u64).await?;
        let ready = complete(&count, "coredns", "coredns_dns_request_count_total")
            .is_some_and(|c| c.iter().all(|v| *v == 2.0))
            && complete(&gc, "coredns", "go_memstats_gc_sys_bytes").is_some()
            && complete(&gc, "prometheus", "go_memstats_gc_sys_bytes").is_some()
            && complete(&memory, "coredns", "go_memstats_sys_bytes").is_some();
        if ready {
            break (count, gc, memory);
        }
        if Instant::now() > deadline {
            bail!(
                "within 60 s, Prometheus did not hold 5 s of coredns_dns_request_count_total at 2.0 \
                 and {training_length} s of go_memstats_sys_bytes from CoreDNS"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    status.finish("data is in");
    outcome.read_back = read_back(&client, &count).await?;

    // The tutorial's prints, element by element: `value['coredns']['localhost:9153'][metric]`.
    if verbose {
        println!("Dataset Spec:\n{}\n", count.element_spec());
        println!("CoreDNS Time Series:");
    }
    for (time_ms, element) in &count {
        let value = element_value(&element, "coredns", "coredns_dns_request_count_total");
        if verbose {
            println!("{}: {}", format_time(time_ms), PyFloat(value));
        }
        outcome.request_count.push((time_ms, value));
    }
    if verbose {
        println!("\nTime Series CoreDNS/Prometheus Comparision:");
    }
    for (time_ms, element) in &gc {
        let coredns = element_value(&element, "coredns", "go_memstats_gc_sys_bytes");
        let prometheus = element_value(&element, "prometheus", "go_memstats_gc_sys_bytes");
        if verbose {
            println!(
                "{}: {}/{}",
                format_time(time_ms),
                PyFloat(coredns),
                PyFloat(prometheus)
            );
        }
        outcome.gc_sys_bytes.push((time_ms, coredns, prometheus));
    }

    // Training, as the tutorial does it: 10 samples + 2 steps of go_memstats_sys_bytes from the
    // coredns job, scaled by its maximum, 2-step windows with shift 1, the next window as target.
    let series = complete(&memory, "coredns", "go_memstats_sys_bytes").expect("checked above");
    let scaler = Scaler::fit(&series, ScaleKind::Max)?;
    let dataset = Dataset::from_series(
        &scaler.transform(&series)?,
        n_steps,
        TargetMode::TutorialNextWindow,
    )?;
    let batches = dataset.repeat(10).batch(1)?;
    let mut model = Forecaster::new(ModelConfig::tutorial())?;
    if verbose {
        println!(
            "\nTrain for 10 steps (LSTM(8) + Dense(1), Adam, MAE; the tutorial's next-window target)"
        );
    }
    let mut keras = KerasProgress::default();
    let history = model.fit_with_progress(
        &batches,
        &FitOptions {
            epochs: 5,
            steps_per_epoch: Some(10),
        },
        &mut |event| {
            if verbose {
                keras.on_event(event)
            }
        },
    )?;
    outcome.epoch_losses = history.epoch_losses;
    Ok(())
}

/// A job's series of `metric` (its one instance), when it has a value at every second.
fn complete(dataset: &MetricsDataset, job: &str, metric: &str) -> Option<Vec<f64>> {
    let column = dataset.get_in_job(job, metric)?;
    (!dataset.is_empty() && column.iter().all(|v| v.is_finite())).then(|| column.to_vec())
}

/// `element[job][<its instance>][metric]`, NaN where the element has no such value.
fn element_value(element: &Nested, job: &str, metric: &str) -> f64 {
    element
        .get(job)
        .and_then(|instances| instances.values().next())
        .and_then(|metrics| metrics.get(metric))
        .copied()
        .unwrap_or(f64::NAN)
}

/// The facts the checks judge, read back from Prometheus with instant queries that share nothing
/// with the range queries and the readiness loop above: the counter's value at the dataset's last
/// timestamp, and the jobs that report `go_memstats_gc_sys_bytes` there.
async fn read_back(
    client: &promlearn_loader::Client,
    count: &MetricsDataset,
) -> anyhow::Result<ReadBack> {
    let last_ms = count
        .iter()
        .map(|(time_ms, _)| time_ms)
        .last()
        .context("the request count dataset is empty")?;
    let counter = client
        .query("sum(coredns_dns_request_count_total)", Some(last_ms))
        .await
        .context("reading the request counter back")?;
    let jobs = client
        .query("count by (job) (go_memstats_gc_sys_bytes)", Some(last_ms))
        .await
        .context("reading back which jobs report go_memstats_gc_sys_bytes")?;
    let mut job_names: Vec<String> = jobs
        .series
        .iter()
        .filter_map(|s| s.labels.get("job").map(str::to_owned))
        .collect();
    job_names.sort();
    Ok(ReadBack {
        at_ms: last_ms,
        request_count: counter
            .series
            .first()
            .and_then(|s| s.values.first().copied()),
        jobs_with_gc_sys_bytes: job_names,
    })
}
