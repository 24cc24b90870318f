//! Who is making a request — from the authenticated request, never from a message's `username`.
//!
//! Two sources, chosen at start-up:
//! * a **trusted header** set by the authenticating proxy in front of the gateway (for example
//!   `X-Forwarded-User` from oauth2-proxy); the deployment must make the gateway reachable only through
//!   that proxy, which must overwrite the header on every request;
//! * the gateway's own **token map** (`--users FILE`): lines `USER TOKEN` or `USER sha256:HEX`, `#`
//!   comments; the token comes from `Authorization: token …` / `Bearer …` or a `token=` query parameter
//!   (the forms Jupyter itself accepts) and is passed on unchanged.
//!
//! A request with no identity is refused with 401 (and logged).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// How identities are established.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A header set by the authenticating proxy.
    Header(hyper::header::HeaderName),
    /// Token → user, keyed by the token's SHA-256 (hex).
    Tokens(HashMap<String, String>),
    /// No identity (development only): records carry `user: null`.
    None,
}

impl Identity {
    /// Loads a `--users` file.
    pub fn load_tokens(path: &Path) -> anyhow::Result<Identity> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut map = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(user), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                anyhow::bail!(
                    "{}:{}: expected `USER TOKEN` or `USER sha256:HEX`",
                    path.display(),
                    i + 1
                );
            };
            let key = match token.strip_prefix("sha256:") {
                Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    h.to_ascii_lowercase()
                }
                Some(_) => anyhow::bail!("{}:{}: bad sha256 token hash", path.display(), i + 1),
                None => hex::encode(Sha256::digest(token.as_bytes())),
            };
            map.insert(key, user.to_string());
        }
        if map.is_empty() {
            anyhow::bail!("{}: no users", path.display());
        }
        Ok(Identity::Tokens(map))
    }

    /// The name recorded in `auth`.
    pub fn mode(&self) -> &'static str {
        match self {
            Identity::Header(_) => "header",
            Identity::Tokens(_) => "token",
            Identity::None => "none",
        }
    }

    /// The user of a request: `Ok(Some(user))`, `Ok(None)` in mode `None`, `Err(reason)` when the
    /// request has no acceptable identity.
    pub fn user(
        &self,
        headers: &hyper::HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<String>, String> {
        match self {
            Identity::None => Ok(None),
            Identity::Header(name) => match headers.get(name).and_then(|v| v.to_str().ok()) {
                Some(u) if !u.trim().is_empty() => Ok(Some(u.trim().to_string())),
                _ => Err(format!("no authenticated user: header {name} missing")),
            },
            Identity::Tokens(map) => {
                let token = request_token(headers, query).ok_or_else(|| {
                    "no token in Authorization header or token= parameter".to_string()
                })?;
                map.get(&hex::encode(Sha256::digest(token.as_bytes())))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| "unknown token".to_string())
            }
        }
    }
}

/// The token of a request, in the forms Jupyter accepts.
pub fn request_token(headers: &hyper::HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        for scheme in ["token ", "Token ", "Bearer ", "bearer "] {
            if let Some(t) = v.strip_prefix(scheme) {
                return Some(t.trim().to_string());
            }
        }
    }
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(percent_decode)
}

/// Decodes `%XX` escapes (tokens are URL-safe in practice; this only has to be exact for them).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("-"), 16)
        {
            out.push(x);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query string with every `token=` value replaced, for the log.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|kv| {
            if kv.starts_with("token=") {
                "token=[redacted]".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_header_or_query() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        let hashed = hex::encode(Sha256::digest(b"bobtoken"));
        std::fs::write(
            &p,
            format!("# users\nalice alicetoken\nbob sha256:{hashed}\n"),
        )
        .unwrap();
        let id = Identity::load_tokens(&p).unwrap();
        let mut h = hyper::HeaderMap::new();
        h.insert("authorization", "token alicetoken".parse().unwrap());
        assert_eq!(id.user(&h, None).unwrap().as_deref(), Some("alice"));
        let h = hyper::HeaderMap::new();
        assert_eq!(
            id.user(&h, Some("a=1&token=bobtoken")).unwrap().as_deref(),
            Some("bob")
        );
        assert!(id.user(&h, Some("token=nope")).is_err());
        assert!(id.user(&h, None).is_err());
        assert_eq!(redact_query("a=1&token=x"), "a=1&token=[redacted]");
        std::fs::write(&p, "alice\n").unwrap();
        assert!(
            Identity::load_tokens(&p)
                .unwrap_err()
                .to_string()
                .contains(":1:")
        );
    }

    #[test]
    fn header_identity() {
        let id = Identity::Header("x-forwarded-user".parse().unwrap());
        let mut h = hyper::HeaderMap::new();
        assert!(id.user(&h, None).is_err());
        h.insert("x-forwarded-user", "carol@example.com".parse().unwrap());
        assert_eq!(
            id.user(&h, None).unwrap().as_deref(),
            Some("carol@example.com")
        );
    }
}
