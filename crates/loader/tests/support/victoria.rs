//! A real VictoriaMetrics, started by the testbed, holding known series.

use super::*;

/// A real VictoriaMetrics (started by the testbed) holding known series, imported as Prometheus
/// text.
pub struct Victoria {
    pub url: String,
    server: VictoriaMetrics,
}

impl Victoria {
    pub async fn start(series: &[SeriesData]) -> Victoria {
        let server = VictoriaMetrics::start(VictoriaConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let url = server.url();
        promlearn_loader::install_crypto_provider();
        let http = reqwest::Client::new();
        let text = prometheus_text(series);
        let r = http
            .post(format!("{url}/api/v1/import/prometheus"))
            .body(text)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "import: {}", r.status());
        let last = series
            .iter()
            .filter_map(|s| s.samples.last().map(|(t, _)| *t))
            .max()
            .unwrap_or(0);
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        let selector = format!("{{__name__=~\"{}\"}}", names.join("|"));
        let expected = series.len();
        wait_for_series(
            "VictoriaMetrics' import",
            &url,
            &selector,
            last,
            expected,
            Some("internal/force_flush"),
        )
        .await;
        Victoria { url, server }
    }

    pub fn log(&self) -> String {
        self.server.logs(20)
    }
}
