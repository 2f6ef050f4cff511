//! The demo's view of the loader: the tutorial's `from_prometheus` elements, and plain ranges.
//! INTERIM: until the loader crate's client lands, this fetches query_range itself and decodes
//! with the loader's decoder.

use std::collections::BTreeMap;

use anyhow::Context;

/// `{job: {instance: {metric: value}}}`, as tensorflow-io's dataset element.
pub type Element = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

pub struct Loader {
    endpoint: String,
    http: reqwest::Client,
}

impl Loader {
    pub fn new(endpoint: &str) -> anyhow::Result<Loader> {
        Ok(Loader {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder().no_proxy().build()?,
        })
    }

    /// The tutorial's `from_prometheus(query, length)`: one element per second over the `length`
    /// seconds that end now.
    pub async fn from_prometheus(
        &self,
        query: &str,
        length: usize,
    ) -> anyhow::Result<Vec<(i64, Element)>> {
        let end_s = chrono::Utc::now().timestamp();
        let start_s = end_s - length as i64 + 1;
        let series = self.fetch(query, start_s * 1000, end_s * 1000, 1).await?;
        let mut by_time: BTreeMap<i64, Element> = (0..length as i64)
            .map(|i| ((start_s + i) * 1000, Element::new()))
            .collect();
        for s in series {
            let label = |name: &str| s.labels.get(name).unwrap_or("").to_owned();
            let metric = s
                .labels
                .metric_name()
                .map_or_else(|| query.to_owned(), str::to_owned);
            for (t, v) in s.timestamps.iter().zip(&s.values) {
                if let Some(element) = by_time.get_mut(t) {
                    element
                        .entry(label("job"))
                        .or_default()
                        .entry(label("instance"))
                        .or_default()
                        .insert(metric.clone(), *v);
                }
            }
        }
        Ok(by_time.into_iter().collect())
    }

    /// `(time_ms, value)` of a query that answers one series, at `step_s` resolution.
    pub async fn range(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_s: u32,
    ) -> anyhow::Result<Vec<(i64, f64)>> {
        let series = self.fetch(query, start_ms, end_ms, step_s).await?;
        let one = series
            .into_iter()
            .next()
            .with_context(|| format!("`{query}` answered no series"))?;
        Ok(one.timestamps.into_iter().zip(one.values).collect())
    }

    async fn fetch(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_s: u32,
    ) -> anyhow::Result<Vec<promlearn_loader::decode::Series>> {
        let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
        let response = self
            .http
            .get(format!("{}/api/v1/query_range", self.endpoint))
            .query(&[
                ("query", query.to_owned()),
                ("start", seconds(start_ms)),
                ("end", seconds(end_ms)),
                ("step", step_s.to_string()),
            ])
            .send()
            .await
            .with_context(|| format!("asking {} for `{query}`", self.endpoint))?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        Ok(promlearn_loader::decode::decode_http(status, &body)?.series)
    }
}

/// The tutorial's element spec: `(TensorSpec(...int64...), {'job': {'instance': {'metric': TensorSpec(...float64...)}}})`.
pub fn element_spec(elements: &[(i64, Element)]) -> String {
    let scalar = |dtype: &str| format!("TensorSpec(shape=(), dtype=tf.{dtype}, name=None)");
    let mut shape: Element = Element::new();
    for (_, element) in elements {
        for (job, instances) in element {
            for (instance, metrics) in instances {
                for metric in metrics.keys() {
                    shape
                        .entry(job.clone())
                        .or_default()
                        .entry(instance.clone())
                        .or_default()
                        .insert(metric.clone(), 0.0);
                }
            }
        }
    }
    let jobs: Vec<String> = shape
        .iter()
        .map(|(job, instances)| {
            let instances: Vec<String> = instances
                .iter()
                .map(|(instance, metrics)| {
                    let metrics: Vec<String> = metrics
                        .keys()
                        .map(|m| format!("'{m}': {}", scalar("float64")))
                        .collect();
                    format!("'{instance}': {{{}}}", metrics.join(", "))
                })
                .collect();
            format!("'{job}': {{{}}}", instances.join(", "))
        })
        .collect();
    format!("({}, {{{}}})", scalar("int64"), jobs.join(", "))
}
