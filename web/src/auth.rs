//! The bearer token. Compared in constant time (as SHA-256 digests, so neither the
//! contents nor the length leak through timing), and never printed by Debug.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// The API token as the server keeps it: its SHA-256, compared in constant time.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl Token {
    /// The token whose text is `secret`.
    pub fn new(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether a request presented this token.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&digest).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The login cookie's name; it holds the token.
pub const COOKIE: &str = "setlist_token";

/// Whether the request carries the login cookie with the right token.
pub fn cookie_matches(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE && state.config.token.matches(value))
}

/// Lets a request through when it carries the token (as a bearer token, or the
/// login cookie), or when it only reads and reads are public.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if reads && state.config.public_reads {
        return Ok(next.run(request).await);
    }
    if crate::auth::cookie_matches(&state, request.headers()) {
        return Ok(next.run(request).await);
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if state.config.token.matches(token) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::unauthorized("the bearer token is wrong")),
        None => Err(ApiError::unauthorized(
            "this needs an Authorization: Bearer <token> header",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself_and_never_prints() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "Token(..)");
    }
}
