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
    /// ([`Error::is_retryable`]), or the configured retries are spent; each retry is logged, and
    /// the error returned says how many attempts were made.
    pub(crate) async fn retried<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempts = AtomicU32::new(0);
        let outcome = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            attempt()
        })
        .retry(self.inner.backoff)
        .when(Error::is_retryable)
        .notify(|e, delay| {
            tracing::warn!(endpoint = %self.inner.shown, "retrying in {delay:?}: {e}");
        })
        .await;
        outcome.map_err(|e| e.with_attempts(attempts.load(Ordering::Relaxed)))
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
