//! Who is making a request — from the authenticated request, never from a message's `username`.
//!
//! Three sources, chosen at start-up:
//! * a **fixed user** (`--user NAME`): the gateway serves one user's single-user server and every request
//!   is that user's. This is the JupyterHub integration: the Hub starts one gateway per user server and
//!   names the user on the command line; no header is believed, and the server behind checks the Hub's
//!   OAuth as usual (so a request without the user's Hub credentials is refused upstream — and still
//!   logged here);
//! * a **trusted header** set by the authenticating proxy in front of the gateway (for example
//!   `X-Forwarded-User` from oauth2-proxy). Believed only from a configured peer address
//!   (`--trusted-proxy IP|CIDR`) that also presents the shared secret (`--proxy-secret-file`, sent as
//!   `X-Nbtrail-Proxy-Secret`): a kernel on the same host can reach the gateway's port but knows neither.
//!   A request carrying the header twice (or a value with a comma, how proxies join duplicates) is
//!   refused: which copy is the proxy's cannot be told;
//! * the gateway's own **token map** (`--users FILE`): lines `USER TOKEN` or `USER sha256:HEX`, `#`
//!   comments; the token comes from `Authorization: token …` / `Bearer …` or a `token=` query parameter
//!   (the forms Jupyter itself accepts) and is passed on unchanged.
//!
//! A request with no acceptable identity is refused with 401 (and logged).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// The header in which the trusted proxy presents the shared secret (removed before forwarding).
pub const PROXY_SECRET_HEADER: &str = "x-nbtrail-proxy-secret";

/// A header identity and what makes it believable.
#[derive(Debug, Clone)]
pub struct HeaderIdentity {
    /// The header the proxy sets.
    pub name: hyper::header::HeaderName,
    /// Peers allowed to set it.
    pub trusted: Vec<ipnet::IpNet>,
    /// SHA-256 of the shared secret.
    pub secret_sha256: [u8; 32],
}

/// How identities are established.
#[derive(Debug, Clone)]
pub enum Identity {
    /// One user for everything this gateway serves (set by whoever started it: the Hub).
    Fixed(String),
    /// A header set by the authenticating proxy.
    Header(Box<HeaderIdentity>),
    /// Token → user, keyed by the token's SHA-256 (hex).
    Tokens(HashMap<String, String>),
    /// No identity (development only): records carry `user: null`.
    None,
}

impl Identity {
    /// A header identity: the header name, the trusted proxies (`IP` or `IP/PREFIX`), the secret file
    /// (its first line, at least 16 bytes).
    pub fn header(name: &str, trusted: &[String], secret_file: &Path) -> anyhow::Result<Identity> {
        let name: hyper::header::HeaderName = name
            .parse()
            .map_err(|_| anyhow::anyhow!("--user-header {name:?} is not a header name"))?;
        if trusted.is_empty() {
            anyhow::bail!(
                "--user-header needs --trusted-proxy IP[/PREFIX]: a header is believed only from the proxy \
                 that sets it (anyone else who can connect could write it)"
            );
        }
        let trusted = trusted
            .iter()
            .map(|t| {
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("--trusted-proxy {t:?} is not an IP address or CIDR")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let text = std::fs::read_to_string(secret_file)
            .map_err(|e| anyhow::anyhow!("--proxy-secret-file {}: {e}", secret_file.display()))?;
        let secret = text.lines().next().unwrap_or("").trim();
        if secret.len() < 16 {
            anyhow::bail!(
                "--proxy-secret-file {}: the secret must be at least 16 characters",
                secret_file.display()
            );
        }
        Ok(Identity::Header(Box::new(HeaderIdentity {
            name,
            trusted,
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
        })))
    }

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
            Identity::Fixed(_) => "fixed",
            Identity::Header(_) => "header",
            Identity::Tokens(_) => "token",
            Identity::None => "none",
        }
    }

    /// The user of a request from `peer`: `Ok(Some(user))`, `Ok(None)` in mode `None`, `Err(reason)`
    /// when the request has no acceptable identity.
    pub fn user(
        &self,
        headers: &hyper::HeaderMap,
        query: Option<&str>,
        peer: IpAddr,
    ) -> Result<Option<String>, String> {
        match self {
            Identity::None => Ok(None),
            Identity::Fixed(u) => Ok(Some(u.clone())),
            Identity::Header(h) => {
                let peer = canonical(peer);
                if !h.trusted.iter().any(|n| n.contains(&peer)) {
                    return Err(format!(
                        "identity header {} not accepted from {peer}: not a --trusted-proxy",
                        h.name
                    ));
                }
                let mut secrets = headers.get_all(PROXY_SECRET_HEADER).iter();
                let ok = match (secrets.next(), secrets.next()) {
                    (Some(v), None) => {
                        let got: [u8; 32] = Sha256::digest(v.as_bytes()).into();
                        // Digests of the secret are compared, so timing says nothing about it.
                        got == h.secret_sha256
                    }
                    _ => false,
                };
                if !ok {
                    return Err(format!(
                        "identity header {} refused: the proxy's shared secret is missing or wrong",
                        h.name
                    ));
                }
                let mut values = headers.get_all(&h.name).iter();
                match (values.next(), values.next()) {
                    (_, Some(_)) => Err(format!(
                        "identity header {} sent more than once: refused",
                        h.name
                    )),
                    (None, None) => {
                        Err(format!("no authenticated user: header {} missing", h.name))
                    }
                    (Some(v), None) => match v.to_str().map(str::trim) {
                        Ok(u) if u.contains(',') => Err(format!(
                            "identity header {} holds a list ({u:?}): refused",
                            h.name
                        )),
                        Ok(u) if !u.is_empty() => Ok(Some(u.to_string())),
                        _ => Err(format!("identity header {} empty or not text", h.name)),
                    },
                }
            }
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

/// An IPv4-mapped IPv6 address as the IPv4 address it is (a dual-stack listener reports those).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
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
        assert_eq!(id.user(&h, None, LOCAL).unwrap().as_deref(), Some("alice"));
        let h = hyper::HeaderMap::new();
        assert_eq!(
            id.user(&h, Some("a=1&token=bobtoken"), LOCAL)
                .unwrap()
                .as_deref(),
            Some("bob")
        );
        assert!(id.user(&h, Some("token=nope"), LOCAL).is_err());
        assert!(id.user(&h, None, LOCAL).is_err());
        assert_eq!(redact_query("a=1&token=x"), "a=1&token=[redacted]");
        std::fs::write(&p, "alice\n").unwrap();
        assert!(
            Identity::load_tokens(&p)
                .unwrap_err()
                .to_string()
                .contains(":1:")
        );
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn header_identity_only_from_a_trusted_peer_with_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef-proxy\n").unwrap();
        let id = Identity::header(
            "x-forwarded-user",
            &["10.0.0.0/8".into(), "127.0.0.1".into()],
            &secret,
        )
        .unwrap();
        let mut h = hyper::HeaderMap::new();
        h.insert("x-forwarded-user", "carol@example.com".parse().unwrap());
        // No secret: refused, from anywhere.
        assert!(id.user(&h, None, LOCAL).unwrap_err().contains("secret"));
        h.insert(
            PROXY_SECRET_HEADER,
            "0123456789abcdef-proxy".parse().unwrap(),
        );
        assert_eq!(
            id.user(&h, None, LOCAL).unwrap().as_deref(),
            Some("carol@example.com")
        );
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(id.user(&h, None, mapped).is_ok());
        // The right secret from an untrusted peer: refused.
        let kernel_host: IpAddr = "192.168.1.5".parse().unwrap();
        assert!(
            id.user(&h, None, kernel_host)
                .unwrap_err()
                .contains("trusted-proxy")
        );
        // Two identity headers, or a joined list: refused.
        let mut two = h.clone();
        two.append("x-forwarded-user", "mallory".parse().unwrap());
        assert!(
            id.user(&two, None, LOCAL)
                .unwrap_err()
                .contains("more than once")
        );
        let mut joined = h.clone();
        joined.insert("x-forwarded-user", "carol, mallory".parse().unwrap());
        assert!(id.user(&joined, None, LOCAL).unwrap_err().contains("list"));
        // A wrong or doubled secret: refused.
        let mut wrong = h.clone();
        wrong.insert(
            PROXY_SECRET_HEADER,
            "0123456789abcdef-proxx".parse().unwrap(),
        );
        assert!(id.user(&wrong, None, LOCAL).is_err());
        let mut doubled = h.clone();
        doubled.append(PROXY_SECRET_HEADER, "x".parse().unwrap());
        assert!(id.user(&doubled, None, LOCAL).is_err());
        h.remove("x-forwarded-user");
        assert!(id.user(&h, None, LOCAL).unwrap_err().contains("missing"));
        // Misconfigurations are start-up errors.
        assert!(Identity::header("x-forwarded-user", &[], &secret).is_err());
        std::fs::write(&secret, "short\n").unwrap();
        assert!(Identity::header("x-forwarded-user", &["127.0.0.1".into()], &secret).is_err());
    }

    #[test]
    fn fixed_identity_ignores_headers() {
        let id = Identity::Fixed("alice".into());
        let mut h = hyper::HeaderMap::new();
        h.insert("x-forwarded-user", "mallory".parse().unwrap());
        assert_eq!(id.user(&h, None, LOCAL).unwrap().as_deref(), Some("alice"));
    }
}
