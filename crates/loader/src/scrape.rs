//! Scraping a metrics page (`/metrics`, `/federate?match[]=...`) with the same credentials, TLS
//! rule, time-outs and error kinds as every API call, so that a program needs one client for
//! both.

use reqwest::header::ACCEPT;

use crate::{
    Client,
    error::{Error, Result},
    exposition::{self, Sample},
};

/// One scrape: every sample of the page, and when the page arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// When the answer was complete, in milliseconds since the Unix epoch: the time Prometheus
    /// would give samples that carry no timestamp of their own.
    pub at_ms: i64,
    /// The samples, in the page's order.
    pub samples: Vec<Sample>,
}

/// What a scrape asks for: the text format, which every exporter serves (Prometheus 3 asks the
/// same way and falls back to it).
const ACCEPT_TEXT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

impl Client {
    /// Reads the metrics page at `path`, resolved against the endpoint as a URL reference
    /// (`metrics` keeps the endpoint's path prefix, `/metrics` replaces it; a query string such
    /// as `federate?match[]=up` is kept). One attempt, no retries: a scraper's next tick is its
    /// retry. A page on another host is refused, so that the client's credentials never leave
    /// the endpoint they were given for.
    ///
    /// ```no_run
    /// # async fn demo() -> promlearn_loader::Result<()> {
    /// let coredns = promlearn_loader::Client::new("http://localhost:9153")?;
    /// let scrape = coredns.scrape("/metrics").await?;
    /// for sample in &scrape.samples {
    ///     println!("{} {:?} {}", sample.name, sample.labels, sample.value);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn scrape(&self, path: &str) -> Result<Scrape> {
        let url = self.inner.base.join(path).map_err(|e| {
            Error::InvalidArgument(format!("the scrape path `{path}` is not a URL path: {e}"))
        })?;
        if url.origin() != self.inner.base.origin() {
            return Err(Error::InvalidArgument(format!(
                "the scrape path `{path}` leads to another server than {}: give a path on it, \
                 or a client for the other server",
                self.inner.shown
            )));
        }
        let mut shown = url.clone();
        shown.set_query(None);
        let shown = shown.to_string();
        let request = self.authorize(self.inner.http.get(url).header(ACCEPT, ACCEPT_TEXT));
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let content_type = crate::request::content_type(&response);
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        let at_ms = chrono::Utc::now().timestamp_millis();
        if !(200..300).contains(&status) {
            return Err(Error::ScrapeRefused {
                url: shown,
                status,
                snippet: crate::decode::snippet(&body),
            });
        }
        let exposition_error = |source| Error::Exposition {
            url: shown.clone(),
            content_type: content_type.clone(),
            source,
        };
        let text = std::str::from_utf8(&body).map_err(|e| {
            let line = 1 + body[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            exposition_error(exposition::ParseError {
                line,
                reason: "the page is not UTF-8 text".into(),
            })
        })?;
        let samples = exposition::parse(text).map_err(exposition_error)?;
        Ok(Scrape { at_ms, samples })
    }
}
