//! Basic auth (`basic_auth_users`) and the configured response headers, in
//! front of every route of the main listener.
//!
//! bcrypt is deliberately slow, so successful verifications are cached and
//! only one verification runs at a time: a flood of bad passwords costs one
//! core, not all of them. An unknown user is checked against a dummy hash
//! of the same cost, so timing does not reveal which users exist.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::headers;
use super::web_config::{WebConfig, WebConfigError};

/// Successful basic-auth verifications remembered (then the cache restarts).
const AUTH_CACHE_SIZE: usize = 1024;
/// The challenge of a 401.
const WWW_AUTHENTICATE: &str = r#"Basic realm="certinel""#;

/// `basic_auth_users`, checked.
pub(super) struct Credentials {
    /// User → bcrypt hash. Empty: no basic auth.
    users: BTreeMap<String, String>,
    /// Verified against for unknown users, so that they take as long to
    /// refuse as known users with a wrong password.
    dummy_hash: Option<String>,
}

impl Credentials {
    /// Checks every user name and hash (the hashes stay out of the error
    /// messages: they are secrets).
    pub(super) fn check(users: BTreeMap<String, String>) -> Result<Credentials, WebConfigError> {
        let mut max_cost = None;
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(WebConfigError::invalid(
                    key,
                    "a user name cannot contain ':' (basic auth splits on it)",
                ));
            }
            let parts = bcrypt::HashParts::from_str(hash)
                .map_err(|e| WebConfigError::invalid(&key, format!("not a bcrypt hash: {e}")))?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(WebConfigError::invalid(
                    key,
                    format!("bcrypt cost {cost} is outside 4..=31"),
                ));
            }
            max_cost = max_cost.max(Some(cost));
        }
        let dummy_hash = match max_cost {
            Some(cost) => Some(
                bcrypt::hash(fastrand::u64(..).to_string(), cost)
                    .map_err(|e| WebConfigError::invalid("basic_auth_users", e.to_string()))?,
            ),
            None => None,
        };
        Ok(Credentials { users, dummy_hash })
    }

    /// Whether basic auth is off.
    pub(super) fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Verifies credentials against [`Credentials`], remembering successes.
#[derive(Default)]
pub(super) struct Verifier {
    /// SHA-256 of (user, hash, password) of verified credentials.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt verification at a time.
    bcrypt_turn: tokio::sync::Mutex<()>,
}

impl Verifier {
    /// Whether `headers` carry credentials of a configured user.
    async fn authorized(&self, credentials: &Credentials, headers: &HeaderMap) -> bool {
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let (hash, known) = match (credentials.users.get(&user), &credentials.dummy_hash) {
            (Some(hash), _) => (hash.clone(), true),
            (None, Some(dummy)) => (dummy.clone(), false),
            (None, None) => return false,
        };
        let key = cache_key(&user, &hash, &password);
        if known && self.is_verified(&key) {
            return true;
        }
        let _turn = self.bcrypt_turn.lock().await;
        // The same credentials may have been verified while this one waited.
        if known && self.is_verified(&key) {
            return true;
        }
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        let ok = matched && known;
        if ok {
            let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= AUTH_CACHE_SIZE {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
    }

    fn is_verified(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Keyed by the stored hash too, so a changed password invalidates it.
fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Basic auth and configured headers, in front of every route.
pub(super) async fn guard(
    State(web): State<Arc<WebConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let settings = web.current().await;
    let mut response = if settings.users.is_empty()
        || web
            .verifier
            .authorized(&settings.users, request.headers())
            .await
    {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            )],
            "Unauthorized\n",
        )
            .into_response()
    };
    headers::apply(&mut response, &settings.headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_checked_against_a_dummy_hash() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let users = [("alice".to_owned(), hash)].into_iter().collect();
        let credentials = Credentials::check(users).unwrap();
        assert!(!credentials.is_empty());
        assert!(credentials.dummy_hash.as_deref().unwrap().starts_with("$2"));
        let none = Credentials::check(BTreeMap::new()).unwrap();
        assert!(none.is_empty() && none.dummy_hash.is_none());
    }

    #[test]
    fn basic_credentials_are_parsed() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_credentials(&headers), None);
        // "alice:pa:ss" — the password may contain colons.
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cGE6c3M="),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".to_owned(), b"pa:ss".to_vec()))
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer YWxpY2U6cGE6c3M="),
        );
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn cache_keys_separate_their_parts() {
        assert_ne!(cache_key("ab", "h", b"c"), cache_key("a", "h", b"bc"));
        assert_eq!(cache_key("a", "h", b"bc"), cache_key("a", "h", b"bc"));
        assert_ne!(cache_key("a", "h1", b"p"), cache_key("a", "h2", b"p"));
    }
}
