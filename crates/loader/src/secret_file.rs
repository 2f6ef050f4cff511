//! The one rule for reading a credential from a file (a password, a bearer token), for every
//! program that takes one: the CLI's `--basic-auth-file` and `--bearer-token-file`, the watch
//! service's `password_file` and `bearer_token_file`.

use std::{io, path::Path};

/// Why a secret file gave no secret. Its message names the file, never its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {kind}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's error kind (its message may not name more).
        kind: io::ErrorKind,
    },
    /// The file holds nothing but whitespace.
    #[error("{path} is empty")]
    Empty {
        /// The file.
        path: String,
    },
    /// The file holds more than one line: a secret is one line.
    #[error("{path} holds more than one line; a secret file holds the secret alone")]
    SeveralLines {
        /// The file.
        path: String,
    },
}

/// Reads the secret in the file at `path`: its content with surrounding whitespace (a final
/// newline, `\r\n`) trimmed, as Prometheus reads its own `password_file` and
/// `bearer_token_file`. An empty file, or one of several lines, is refused.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("token");
/// std::fs::write(&path, "s3cret\n").unwrap();
/// assert_eq!(promlearn_loader::read_secret_file(&path).unwrap(), "s3cret");
/// ```
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SecretFileError::Read {
        path: shown.clone(),
        kind: e.kind(),
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SecretFileError::Empty { path: shown });
    }
    if secret.contains('\n') {
        return Err(SecretFileError::SeveralLines { path: shown });
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_trimmed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        for (content, expected) in [
            ("Zq7-secret", Ok("Zq7-secret")),
            ("Zq7-secret\n", Ok("Zq7-secret")),
            ("  Zq7-secret \r\n", Ok("Zq7-secret")),
            ("", Err("is empty")),
            (" \n\n", Err("is empty")),
            ("Zq7-secret\nmore\n", Err("more than one line")),
        ] {
            std::fs::write(&path, content).unwrap();
            match (read_secret_file(&path), expected) {
                (Ok(secret), Ok(want)) => assert_eq!(secret, want, "{content:?}"),
                (Err(e), Err(want)) => {
                    let message = e.to_string();
                    assert!(message.contains(want), "{content:?}: {message}");
                    assert!(
                        !message.contains("Zq7-secret"),
                        "the secret stays out: {message}"
                    );
                }
                (got, want) => panic!("{content:?}: {got:?}, expected {want:?}"),
            }
        }
        let missing = read_secret_file(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(
            missing,
            SecretFileError::Read {
                kind: io::ErrorKind::NotFound,
                ..
            }
        ));
    }
}
