//! What every request to the server carries: its credentials and the configured headers.

use reqwest::RequestBuilder;

use crate::{Client, client::Auth};

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
