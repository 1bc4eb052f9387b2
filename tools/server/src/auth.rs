//! Authentication by bearer token, as kube-apiserver's `--token-auth-file` does it: a CSV
//! file of `token,user,uid,"group1,group2"` lines (the groups optional). A request without
//! a known token is 401 `Unauthorized`; tokens are compared whole and never logged.

use crate::state::AppState;
use crate::status::ApiError;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Who a token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The user's UID.
    pub uid: String,
    /// The groups the user is in.
    pub groups: Vec<String>,
}

/// The tokens a server accepts.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens(HashMap<String, User>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens themselves are secrets: only how many.
        f.debug_struct("Tokens").field("count", &self.0.len()).finish()
    }
}

/// Why a token file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: csv::Error,
    },
    /// A line is not `token,user,uid[,groups]`.
    #[error("{path} line {line}: expected token,user,uid[,\"group1,group2\"]")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: u64,
    },
    /// The file names no token.
    #[error("{path} names no token")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Tokens {
    /// Reads kube-apiserver's token file format.
    ///
    /// # Errors
    /// The file cannot be read, a line is malformed, or there is no token.
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let read = |source| TokenFileError::Read { path: path.to_owned(), source };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(read)?;
        let mut tokens = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(read)?;
            let line = record.position().map_or(0, |position| position.line());
            let field = |index: usize| record.get(index).filter(|value| !value.is_empty());
            let (Some(token), Some(name), Some(uid)) = (field(0), field(1), field(2)) else {
                return Err(TokenFileError::Line { path: path.to_owned(), line });
            };
            let groups = field(3).map_or_else(Vec::new, |groups| {
                groups.split(',').map(|group| group.trim().to_owned()).collect()
            });
            tokens.insert(token.to_owned(), User { name: name.to_owned(), uid: uid.to_owned(), groups });
        }
        if tokens.is_empty() {
            return Err(TokenFileError::Empty { path: path.to_owned() });
        }
        Ok(Self(tokens))
    }

    /// The user `token` names.
    pub fn user(&self, token: &str) -> Option<&User> {
        self.0.get(token)
    }
}

/// Lets through only requests that carry a known bearer token (when the server has
/// tokens at all).
pub(crate) async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(tokens) = &state.tokens else { return next.run(request).await };
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match token.and_then(|token| tokens.user(token.trim())) {
        Some(_) => next.run(request).await,
        None => ApiError::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_read_as_kube_apiserver_reads_it() {
        let dir = std::env::temp_dir().join(format!("watchcache-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.csv");
        std::fs::write(&path, "s3cret,alice,u-1,\"system:masters,dev\"\nplain,bob,u-2\n").unwrap();
        let tokens = Tokens::from_file(&path).unwrap();
        let alice = tokens.user("s3cret").unwrap();
        assert_eq!(
            (alice.name.as_str(), alice.groups.as_slice()),
            ("alice", ["system:masters".to_string(), "dev".into()].as_slice())
        );
        assert!(tokens.user("plain").unwrap().groups.is_empty());
        assert_eq!(tokens.user("guess"), None);
        assert!(!format!("{tokens:?}").contains("s3cret"), "a token never reaches a log");
        std::fs::write(&path, "only-a-token\n").unwrap();
        assert!(matches!(Tokens::from_file(&path), Err(TokenFileError::Line { line: 1, .. })));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(Tokens::from_file(&path), Err(TokenFileError::Empty { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
