//! What every request to the server carries (its credentials and the configured headers), how
//! every request is retried, and how an answer is read when it is refused.

use std::{
    future::Future,
    sync::atomic::{AtomicU32, Ordering},
};

use backon::Retryable;
use reqwest::RequestBuilder;

use crate::{Client, Error, Result, client::Auth};

impl Client {
    /// `request` with the client's authentication and extra headers.
    pub(crate) fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        let mut request = match &self.inner.auth {
            Auth::None => request,
            Auth::Basic { user, password } => {
                request.basic_auth(user, password.as_ref().map(|p| &p.0))
            }
            Auth::Bearer(token) => request.bearer_auth(&token.0),
        };
        for (name, value) in &self.inner.headers {
            request = request.header(name, value);
        }
        request
    }

    /// Runs `attempt` until it succeeds, fails in a way a retry cannot help
    /// ([`Error::is_retryable`]), or the configured retries are spent. Each retry is logged at
    /// DEBUG: a failure is the caller's to report, and its error says how many attempts were
    /// made (a WARN per retry doubled every failed cycle of a service that asks every few
    /// seconds); a success after a failed attempt is one WARN, as nothing else would tell.
    pub(crate) async fn retried<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempts = AtomicU32::new(0);
        let last_failure = std::sync::Mutex::new(None::<String>);
        let outcome = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            attempt()
        })
        .retry(self.inner.backoff)
        .when(Error::is_retryable)
        .notify(|e, delay| {
            tracing::debug!(endpoint = %self.inner.shown, "retrying in {delay:?}: {e}");
            *last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        })
        .await;
        let attempts = attempts.load(Ordering::Relaxed);
        if outcome.is_ok()
            && let Some(failure) = last_failure.into_inner().unwrap_or_else(|e| e.into_inner())
        {
            tracing::warn!(endpoint = %self.inner.shown, "answered at attempt {attempts}; the attempt before failed: {failure}");
        }
        outcome.map_err(|e| e.with_attempts(attempts))
    }
}

/// The first 512 bytes of an answer that is not what was asked for (an error page, a refusal),
/// for the error message; the rest is not read.
pub(crate) async fn error_head(response: &mut reqwest::Response) -> Vec<u8> {
    let mut head = Vec::new();
    while head.len() < 512 {
        match response.chunk().await {
            Ok(Some(bytes)) => head.extend_from_slice(&bytes),
            _ => break,
        }
    }
    head.truncate(512);
    head
}

/// The answer's `Content-Type` as text for checks and messages (`no content type` without one).
pub(crate) fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no content type")
        .to_owned()
}
