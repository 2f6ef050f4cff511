//! Connection flags shared by the sub-commands that speak HTTP. The client they configure is the
//! loader's (`promapi::client_for`), for every command: one set of rules for auth, TLS, time-outs
//! and errors.
//!
//! Secrets (passwords, tokens, header values) are kept in [`Secret`], whose `Debug` and
//! `Display` print `***`, and no error message built here quotes them.

use std::{fmt, path::PathBuf, time::Duration};

use anyhow::{Result, anyhow, bail};
use clap::Args;

use crate::timeutil::parse_duration;

/// The environment variable read for `USER:PASSWORD` when no auth flag is given.
pub const BASIC_AUTH_ENV: &str = "PROMLEARN_BASIC_AUTH";

/// Where Prometheus (or anything speaking its HTTP API) is, and how to talk to it.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Base URL of the Prometheus HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics, ...).
    #[arg(long, value_name = "URL", default_value = "http://localhost:9090")]
    pub endpoint: String,

    #[command(flatten)]
    pub http: HttpArgs,
}

/// Authentication, TLS and time-out flags.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection")]
pub struct HttpArgs {
    /// HTTP basic auth as USER:PASSWORD [default: $PROMLEARN_BASIC_AUTH].
    #[arg(long, value_name = "USER:PASS")]
    pub basic_auth: Option<Secret>,

    /// Read USER:PASSWORD for basic auth from a file (first line).
    #[arg(long, value_name = "FILE", conflicts_with = "basic_auth")]
    pub basic_auth_file: Option<PathBuf>,

    /// Send `Authorization: Bearer <token>` with the token read from a file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["basic_auth", "basic_auth_file"])]
    pub bearer_token_file: Option<PathBuf>,

    /// An extra request header, e.g. 'X-Scope-OrgID: tenant1' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    pub headers: Vec<Secret>,

    /// Trust only the CA certificate(s) in this PEM file, instead of the system's (for a private
    /// CA or a self-signed server); the same rule for every command.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,

    /// Do not verify the server's TLS certificate (testing only).
    #[arg(long)]
    pub insecure: bool,

    /// Give up on a request after this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// A string that never prints.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How requests authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

impl HttpArgs {
    /// The `--header` flags as (name, value) pairs.
    pub fn header_pairs(&self) -> Result<Vec<(String, Secret)>> {
        self.headers
            .iter()
            .enumerate()
            .map(|(i, header)| {
                let (name, value) = header.expose().split_once(':').ok_or_else(|| {
                    anyhow!("--header number {} needs the form 'Name: value'", i + 1)
                })?;
                Ok((name.trim().to_owned(), Secret(value.trim().to_owned())))
            })
            .collect()
    }

    /// The credentials from the flags, the file or the environment (in that order).
    pub fn auth(&self) -> Result<Option<Auth>> {
        if let Some(path) = &self.bearer_token_file {
            let token = read_secret_file(path, "--bearer-token-file")?;
            return Ok(Some(Auth::Bearer(Secret(token))));
        }
        let (text, source) = if let Some(s) = &self.basic_auth {
            (s.expose().to_owned(), "--basic-auth")
        } else if let Some(path) = &self.basic_auth_file {
            (
                read_secret_file(path, "--basic-auth-file")?,
                "--basic-auth-file",
            )
        } else if let Ok(s) = std::env::var(BASIC_AUTH_ENV) {
            if s.is_empty() {
                return Ok(None);
            }
            (s, BASIC_AUTH_ENV)
        } else {
            return Ok(None);
        };
        let Some((user, password)) = text.split_once(':') else {
            bail!("{source} needs USER:PASSWORD (no `:` found)");
        };
        if user.is_empty() {
            bail!("{source} needs USER:PASSWORD (the user is empty)");
        }
        Ok(Some(Auth::Basic {
            user: user.to_owned(),
            password: Secret(password.to_owned()),
        }))
    }
}

/// The secret in the file a flag names, by the loader's one rule for secret files.
fn read_secret_file(path: &std::path::Path, flag: &str) -> Result<String> {
    promlearn_loader::read_secret_file(path).map_err(|e| anyhow!("{flag}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let args = HttpArgs {
            basic_auth: Some(Secret("u:hunter2".into())),
            ..HttpArgs::default()
        };
        assert!(!format!("{args:?}").contains("hunter2"));
        let args = HttpArgs {
            basic_auth: Some(Secret("hunter2".into())),
            ..HttpArgs::default()
        };
        let err = args.auth().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let args = HttpArgs {
            headers: vec![Secret("tokenwithoutcolon".into())],
            ..HttpArgs::default()
        };
        let err = args.header_pairs().unwrap_err().to_string();
        assert!(!err.contains("tokenwithoutcolon"), "{err}");
    }
}
