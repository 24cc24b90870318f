//! Examiner keys: one ed25519 key pair per examiner, generated on first use and kept in the user's config
//! directory (`$NBTRAIL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/nbtrail`, else `~/.config/nbtrail`), the private
//! key readable by its owner only. Only the public key ever goes into a bundle.

use crate::{EvidenceError, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// File name of the private key (hex of the 32-byte seed).
pub const PRIVATE_KEY_FILE: &str = "examiner-ed25519.key";
/// File name of the public key (hex).
pub const PUBLIC_KEY_FILE: &str = "examiner-ed25519.pub";

/// The config directory nbtrail keeps keys in.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NBTRAIL_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(d).join("nbtrail");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".config").join("nbtrail")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads the examiner's key from `dir`, creating it on first use.
pub fn load_or_create(dir: &Path) -> Result<SigningKey> {
    let path = dir.join(PRIVATE_KEY_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                EvidenceError::Key(format!("{}: not a hex ed25519 seed", path.display()))
            })?;
        return Ok(SigningKey::from_bytes(&bytes));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    let key = SigningKey::from_bytes(&seed);
    write_private(&path, &hex::encode(seed))?;
    let pub_path = dir.join(PUBLIC_KEY_FILE);
    std::fs::write(
        &pub_path,
        format!("{}\n", hex::encode(key.verifying_key().to_bytes())),
    )
    .map_err(io(&pub_path))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    writeln!(f, "{text}").map_err(io(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, format!("{text}\n")).map_err(io(path))
}

/// A key's fingerprint: `SHA256:` and the hex SHA-256 of the 32 public-key bytes.
pub fn fingerprint(key: &VerifyingKey) -> String {
    format!("SHA256:{}", hex::encode(Sha256::digest(key.to_bytes())))
}

/// Whether `expected` (a fingerprint, with or without `SHA256:`, at least 16 hex digits of it, or the public
/// key in hex) designates `key`.
pub fn matches(key: &VerifyingKey, expected: &str) -> bool {
    let e = expected.trim().to_ascii_lowercase();
    let e = e.strip_prefix("sha256:").unwrap_or(&e);
    if e == hex::encode(key.to_bytes()) {
        return true;
    }
    let fp = fingerprint(key).to_ascii_lowercase();
    let fp = fp.strip_prefix("sha256:").unwrap_or(&fp);
    e.len() >= 16 && e.chars().all(|c| c.is_ascii_hexdigit()) && fp.starts_with(e)
}

/// File (in [`config_dir`]) listing the examiners whose bundles this examiner trusts: one per line,
/// `<public key hex | SHA256:fingerprint> <name>`; `#` starts a comment. Only full keys or full
/// fingerprints count (no prefixes).
pub const TRUSTED_FILE: &str = "trusted-examiners.txt";

/// A pinned examiner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// Who it is (free text from the trusted file).
    pub name: String,
    /// Lower-case hex: the 32-byte public key or the 32-byte fingerprint.
    hex: String,
}

impl Pinned {
    /// Whether this pin designates `key`.
    pub fn matches(&self, key: &VerifyingKey) -> bool {
        let fp = fingerprint(key).to_ascii_lowercase();
        self.hex == hex::encode(key.to_bytes())
            || Some(self.hex.as_str()) == fp.strip_prefix("sha256:")
    }
}

/// Reads a trusted-examiners file; errors name the file and line.
pub fn load_trusted(path: &Path) -> Result<Vec<Pinned>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (key, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let lower = key.to_ascii_lowercase();
        let Some(k) = full_hex(lower.strip_prefix("sha256:").unwrap_or(&lower)) else {
            return Err(EvidenceError::Key(format!(
                "{}:{}: expected `<public key hex or SHA256:fingerprint> <name>` (64 hex digits)",
                path.display(),
                i + 1
            )));
        };
        out.push(Pinned {
            name: if name.trim().is_empty() {
                format!("{}…", &k[..16])
            } else {
                name.trim().to_string()
            },
            hex: k,
        });
    }
    Ok(out)
}

/// The keys trusted by default: the trusted-examiners file in `dir` (when present) and the examiner's own
/// public key there (bundles this examiner signed).
pub fn default_trusted(dir: &Path) -> Result<Vec<Pinned>> {
    let mut out = Vec::new();
    let file = dir.join(TRUSTED_FILE);
    if file.exists() {
        out = load_trusted(&file)?;
    }
    let own = dir.join(PUBLIC_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&own)
        && let Some(hex) = full_hex(&text.trim().to_ascii_lowercase())
    {
        out.push(Pinned {
            name: "this examiner's own key".into(),
            hex,
        });
    }
    Ok(out)
}

/// `s` when it is exactly 64 hex digits (a whole key or fingerprint, never a prefix).
fn full_hex(s: &str) -> Option<String> {
    (s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())).then(|| s.to_string())
}
