//! eauth tokens: what `mk_token` mints after a successful eauth and every
//! later request presents instead of credentials (salt-api sessions,
//! `salt -T`).
//!
//! [`TokenStore`] is the narrow interface a backend implements (Salt's
//! `eauth_tokens` modules: `mk_token`, `get_token`, `rm_token`,
//! `list_tokens`); [`LocalFs`] is Salt's `localfs`: one file per token
//! under `token_dir` (`cachedir/tokens`), named by the token, holding the
//! token data as msgpack, mode 0600, so Python's tools on the host read
//! Brine's tokens and the other way round.
//!
//! A token is the hex digest (`hash_type`) of 512 random bytes. Token
//! names from a request are checked to be plain hex before they reach
//! the filesystem: nothing else can name a token file, so a name can
//! never leave `token_dir`.

use std::path::{Path, PathBuf};

use brine_proto::Value;
use log::warn;

/// Why a token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The stored token is not token data: it can never authenticate
    /// (Salt removes it).
    #[error("token data cannot be read: {0}")]
    Corrupt(String),
    /// The store could not be read now (the token is kept).
    #[error("token store: {0}")]
    Io(#[from] std::io::Error),
}

/// Salt's `eauth_tokens` interface.
pub trait TokenStore: Send {
    /// Store `tdata` under a new token; the stored data (with `token`
    /// set) or `None` when it could not be stored.
    fn mk_token(&self, tdata: Value) -> Option<Value>;
    /// The data of `tok`; `Ok(None)` when there is no such token.
    fn get_token(&self, tok: &str) -> Result<Option<Value>, TokenError>;
    fn rm_token(&self, tok: &str);
    fn list_tokens(&self) -> Vec<String>;
}

/// The most a token file may hold: token data is a handful of fields and
/// an ACL.
const MAX_TOKEN_FILE: u64 = 1 << 20;

/// Whether `tok` can be a token name: hex digits only, as long as the
/// longest digest. Anything else is refused before the filesystem sees
/// it (`../x`, an absolute path, a NUL).
pub fn is_token_name(tok: &str) -> bool {
    !tok.is_empty() && tok.len() <= 128 && tok.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Salt's `localfs` token store.
pub struct LocalFs {
    dir: PathBuf,
    hash_type: String,
}

impl LocalFs {
    pub fn new(dir: &Path, hash_type: &str) -> LocalFs {
        LocalFs {
            dir: dir.to_path_buf(),
            hash_type: hash_type.to_string(),
        }
    }

    fn new_token(&self) -> String {
        let md =
            openssl::hash::MessageDigest::from_name(&self.hash_type).unwrap_or(openssl::hash::MessageDigest::sha256());
        let random = brine_proto::crypto::random_bytes(512);
        let digest = openssl::hash::hash(md, &random).expect("openssl digest");
        hex::encode(digest)
    }
}

impl TokenStore for LocalFs {
    fn mk_token(&self, mut tdata: Value) -> Option<Value> {
        let mut tok = self.new_token();
        while self.dir.join(&tok).exists() {
            tok = self.new_token();
        }
        tdata.set("token", Value::from(tok.as_str()));
        let path = self.dir.join(&tok);
        // Written aside and renamed, mode 0600 from the start (Salt's umask
        // 0o177): a reader never sees half a token.
        match brine_cache::fs::write_atomic(&path, &tdata.to_network(), 0o600) {
            Ok(()) => Some(tdata),
            Err(e) => {
                warn!(
                    "Authentication failure: can not write token file \"{}\": {e}",
                    path.display()
                );
                None
            }
        }
    }

    fn get_token(&self, tok: &str) -> Result<Option<Value>, TokenError> {
        if !is_token_name(tok) {
            return Ok(None);
        }
        let path = self.dir.join(tok);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > MAX_TOKEN_FILE {
            return Err(TokenError::Corrupt(format!("{} bytes", meta.len())));
        }
        let raw = std::fs::read(&path)?;
        match Value::decode(&raw) {
            Ok(v) if v.is_map() => Ok(Some(v)),
            Ok(_) => Err(TokenError::Corrupt("not a map".into())),
            Err(e) => Err(TokenError::Corrupt(e.to_string())),
        }
    }

    fn rm_token(&self, tok: &str) {
        if !is_token_name(tok) {
            return;
        }
        if let Err(e) = std::fs::remove_file(self.dir.join(tok)) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!("Could not remove token {}: {e}", short(tok));
            }
        }
    }

    fn list_tokens(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }
}

/// A token as it may appear in a log line: its first 8 characters, so
/// that an operator can tell tokens apart and a log reader cannot use one.
pub fn short(tok: &str) -> String {
    let head: String = tok.chars().take(8).filter(char::is_ascii_alphanumeric).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_files_named_by_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFs::new(&dir.path().join("tokens"), "sha256");
        let t = store
            .mk_token(Value::map([
                ("name", Value::from("fred")),
                ("eauth", Value::from("pam")),
            ]))
            .unwrap();
        let tok = t.get("token").and_then(Value::as_str).unwrap().to_string();
        assert_eq!(tok.len(), 64);
        let path = dir.path().join("tokens").join(&tok);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(store.get_token(&tok).unwrap(), Some(t));
        assert_eq!(store.list_tokens(), vec![tok.clone()]);
        store.rm_token(&tok);
        assert_eq!(store.get_token(&tok).unwrap(), None);
        let other = LocalFs::new(&dir.path().join("tokens"), "sha512");
        let t = other.mk_token(Value::Map(vec![])).unwrap();
        assert_eq!(t.get("token").and_then(Value::as_str).unwrap().len(), 128);
    }

    #[test]
    fn names_that_are_not_tokens_never_reach_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), Value::Map(vec![]).to_network()).unwrap();
        let store = LocalFs::new(&dir.path().join("tokens"), "sha256");
        for bad in ["../secret", "/etc/passwd", "", "ab\0cd", "..", "abc/def", "g00d"] {
            assert_eq!(store.get_token(bad).unwrap(), None, "{bad:?}");
        }
        std::fs::create_dir_all(dir.path().join("tokens")).unwrap();
        std::fs::write(dir.path().join("tokens").join("abcd"), b"\xc1garbage").unwrap();
        assert!(matches!(store.get_token("abcd"), Err(TokenError::Corrupt(_))));
    }
}
