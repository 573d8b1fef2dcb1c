//! Salt's `file` eauth backend (`salt/auth/file.py`): users and
//! passwords from a local file, a text file (plaintext or hex digests),
//! an Apache htpasswd file or an htdigest file.
//!
//! The options are the `external_auth: file:` keys that start with `^`
//! (`^filename`, `^filetype`, `^hashtype`, `^field_separator`,
//! `^username_field`, `^password_field`, `^realm`), read at every call
//! as Salt does, so an edited file or config takes effect at once.
//!
//! Salt answers `False` both when the credentials are wrong and when
//! the module raises (LoadAuth catches every exception and logs it at
//! debug level); here a raised exception is a [`Raised`] that ends as a
//! refusal with the same debug line. Which inputs make Salt raise is
//! kept exactly, because it decides the answer: one malformed line of
//! an htpasswd file refuses every user in it, a blank line before the
//! user's line in a text file refuses that user.
//!
//! The htpasswd and htdigest filetypes follow passlib's `HtpasswdFile`
//! and `HtdigestFile` (Salt needs passlib for them); which hash formats
//! an htpasswd file may hold and how each is checked is in [`htpasswd`].

mod htpasswd;

use std::collections::HashMap;
use std::path::Path;

use brine_config::MasterConfig;
use log::{debug, error};
use openssl::hash::{hash, MessageDigest};
use serde_json::Value as Json;

use super::Backend;

/// Salt's `file` backend. It has no `groups` (Salt's module defines
/// none), so `group%` entries never match its users.
pub struct File;

impl Backend for File {
    fn auth(&self, cfg: &MasterConfig, username: &str, password: &str) -> bool {
        let section = cfg.get("external_auth").and_then(|e| e.get("file"));
        match auth(section, username, password) {
            Ok(ok) => ok,
            Err(e) => {
                // LoadAuth's line for an exception out of an eauth module.
                debug!("Authentication module threw {e}");
                false
            }
        }
    }
}

/// What Salt's module would raise: the call is refused.
#[derive(Debug, thiserror::Error)]
enum Raised {
    #[error("^{0} has an unusable value {1}")]
    Option(&'static str, String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} is not valid UTF-8")]
    Decode(String),
    #[error("empty separator")]
    EmptySeparator,
    #[error("Hash func {0} is not supported.")]
    Hashtype(String),
    #[error("malformed {0} file (error reading line {1})")]
    Malformed(&'static str, usize),
    #[error("{0} must be at most 255 bytes and contain none of ':', CR, LF, TAB, NUL")]
    Field(&'static str),
    #[error("password is longer than passlib's 4096 characters")]
    PasswordSize,
    #[error("the htdigest hash is not 32 lowercase hex digits")]
    DigestHash,
}

/// Salt's `file.auth(username, password)` over the `external_auth: file:`
/// section.
fn auth(section: Option<&Json>, username: &str, password: &str) -> Result<bool, Raised> {
    // _get_file_auth_config: the defaults, then every `^key` without its caret.
    let mut config: HashMap<&str, &Json> = HashMap::new();
    let text = Json::String("text".into());
    let plaintext = Json::String("plaintext".into());
    let colon = Json::String(":".into());
    let one = Json::from(1);
    let two = Json::from(2);
    config.insert("filetype", &text);
    config.insert("hashtype", &plaintext);
    config.insert("field_separator", &colon);
    config.insert("username_field", &one);
    config.insert("password_field", &two);
    if let Some(Json::Object(section)) = section {
        for (key, value) in section {
            if let Some(opt) = key.strip_prefix('^') {
                config.insert(opt, value);
            }
        }
    }
    let Some(filename) = config.get("filename") else {
        error!("salt.auth.file: An authentication file must be specified via external_auth:file:^filename");
        return Ok(false);
    };
    let Json::String(filename) = filename else {
        return Err(Raised::Option("filename", brine_py::repr(*filename)));
    };
    if !Path::new(filename).exists() {
        // Salt's message, the missing space included.
        error!(
            "salt.auth.file: The configured external_auth:file:^filename ({filename})does not exist on the filesystem"
        );
        return Ok(false);
    }
    let field = |name: &'static str| {
        brine_py::int(config[name]).ok_or_else(|| Raised::Option(name, brine_py::repr(config[name])))
    };
    let username_field = field("username_field")?;
    let password_field = field("password_field")?;

    // FILETYPE_FUNCTION_MAP: any other value is looked up as the string
    // "text" and called, which raises.
    match config["filetype"].as_str() {
        Some("text") => text_file(&config, filename, username_field, password_field, username, password),
        Some("htpasswd") => htpasswd_file(filename, username, password),
        Some("htdigest") => htdigest_file(config.get("realm").copied(), filename, username, password),
        _ => Err(Raised::Option("filetype", brine_py::repr(config["filetype"]))),
    }
}

/// Salt's `_text`: the first line whose username field is the user
/// decides; a line too short for either field refuses everyone.
fn text_file(
    config: &HashMap<&str, &Json>,
    filename: &str,
    username_field: i128,
    password_field: i128,
    username: &str,
    password: &str,
) -> Result<bool, Raised> {
    let username_index = username_field - 1;
    let password_index = password_field - 1;
    let bytes = std::fs::read(filename).map_err(|e| Raised::Io(filename.to_string(), e))?;
    // Salt opens the file as text in the system encoding (UTF-8): one
    // undecodable byte anywhere fails the whole read.
    let contents = std::str::from_utf8(&bytes).map_err(|_| Raised::Decode(filename.to_string()))?;
    for line in py_lines(contents) {
        let line = line.trim_matches(py_isspace);
        let fields: Vec<&str> = match config["field_separator"] {
            Json::String(sep) if sep.is_empty() => return Err(Raised::EmptySeparator),
            Json::String(sep) => line.split(sep.as_str()).collect(),
            // split(None): runs of whitespace.
            Json::Null => line.split(py_isspace).filter(|f| !f.is_empty()).collect(),
            other => return Err(Raised::Option("field_separator", brine_py::repr(other))),
        };
        let Some(this_username) = py_index(&fields, username_index) else {
            error!("salt.auth.file: username field ({username_index}) does not exist in file {filename}");
            return Ok(false);
        };
        let Some(this_password) = py_index(&fields, password_index) else {
            error!("salt.auth.file: password field ({password_index}) does not exist in file {filename}");
            return Ok(false);
        };
        if this_username != username {
            continue;
        }
        let hashtype = config["hashtype"];
        if hashtype.as_str() == Some("plaintext") {
            return Ok(ct_eq(this_password.as_bytes(), password.as_bytes()));
        }
        // hashutil.digest: md5, sha256 and sha512 only, lowercase hex.
        let md = match hashtype.as_str() {
            Some("md5") => MessageDigest::md5(),
            Some("sha256") => MessageDigest::sha256(),
            Some("sha512") => MessageDigest::sha512(),
            _ => return Err(Raised::Hashtype(brine_py::repr(hashtype))),
        };
        let digest = hex::encode(hash(md, password.as_bytes()).expect("digest"));
        return Ok(ct_eq(this_password.as_bytes(), digest.as_bytes()));
    }
    Ok(false)
}

/// passlib's `HtpasswdFile(filename).check_password(username, password)`.
fn htpasswd_file(filename: &str, username: &str, password: &str) -> Result<bool, Raised> {
    let bytes = std::fs::read(filename).map_err(|e| Raised::Io(filename.to_string(), e))?;
    let records = records(&bytes, 2, "htpasswd")?;
    let user = field(username, "user")?;
    let Some(stored) = records.get(&[user][..]) else {
        return Ok(false);
    };
    match htpasswd::verify(password.as_bytes(), stored) {
        Ok(ok) => Ok(ok),
        Err(why) => {
            debug!("Authentication module threw {why}");
            Ok(false)
        }
    }
}

/// Salt's `_htdigest`: passlib's `HtdigestFile(filename)
/// .check_password(username, realm, password)`, an MD5 of
/// `user:realm:password` in lowercase hex.
fn htdigest_file(realm: Option<&Json>, filename: &str, username: &str, password: &str) -> Result<bool, Raised> {
    let Some(realm) = realm.filter(|r| brine_py::truthy(*r)) else {
        error!("salt.auth.file: A ^realm must be defined in external_auth:file for htdigest filetype");
        return Ok(false);
    };
    let bytes = std::fs::read(filename).map_err(|e| Raised::Io(filename.to_string(), e))?;
    let records = records(&bytes, 3, "htdigest")?;
    let user = field(username, "user")?;
    let Json::String(realm) = realm else {
        return Err(Raised::Option("realm", brine_py::repr(realm)));
    };
    let realm = field(realm, "realm")?;
    let Some(stored) = records.get(&[user, realm][..]) else {
        return Ok(false);
    };
    // passlib counts the password's characters here, not its bytes.
    if password.chars().count() > htpasswd::MAX_PASSWORD_SIZE {
        return Err(Raised::PasswordSize);
    }
    if stored.len() != 32 || !stored.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Raised::DigestHash);
    }
    let data = [user, b":", realm, b":", password.as_bytes()].concat();
    let digest = hex::encode(hash(MessageDigest::md5(), &data).expect("md5"));
    Ok(ct_eq(stored, digest.as_bytes()))
}

/// passlib's `_CommonFile._load_lines`: a record per line (split at
/// LF only), keyed by all fields but the last; blank lines and lines
/// whose first non-blank byte is `#` are skipped; any other line that
/// does not have exactly `fields` colon-separated fields (trailing
/// whitespace removed) fails the whole file; the first of duplicate
/// keys wins.
fn records<'a>(bytes: &'a [u8], fields: usize, kind: &'static str) -> Result<HashMap<Vec<&'a [u8]>, &'a [u8]>, Raised> {
    let mut records = HashMap::new();
    for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let rest = trim_start_bytes(line);
        if rest.is_empty() || rest[0] == b'#' {
            continue;
        }
        let mut parts: Vec<&[u8]> = trim_end_bytes(line).split(|&b| b == b':').collect();
        if parts.len() != fields {
            return Err(Raised::Malformed(kind, n + 1));
        }
        let value = parts.pop().expect("fields > 0");
        records.entry(parts).or_insert(value);
    }
    Ok(records)
}

/// passlib's `_encode_field`: a user name or realm as UTF-8, at most
/// 255 bytes, without the bytes the file format cannot hold.
fn field<'a>(value: &'a str, what: &'static str) -> Result<&'a [u8], Raised> {
    let bytes = value.as_bytes();
    if bytes.len() > 255 || bytes.iter().any(|b| b":\n\r\t\0".contains(b)) {
        return Err(Raised::Field(what));
    }
    Ok(bytes)
}

/// Python's `bytes.isspace` set, which `bytes.strip` removes.
fn is_py_byte_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

fn trim_start_bytes(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !is_py_byte_space(c)).unwrap_or(b.len());
    &b[start..]
}

fn trim_end_bytes(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|c| !is_py_byte_space(c)).map_or(0, |i| i + 1);
    &b[..end]
}

/// Python's `str.isspace`: Unicode's White_Space plus the four
/// information separators U+001C..U+001F.
pub(super) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The lines `readlines()` gives for a file opened with `newline=""`
/// (as Salt's `fopen` does): each ends at LF, CR or CRLF, the ending
/// kept; no empty line after a final ending.
pub(super) fn py_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let bytes = rest.as_bytes();
        let end = match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') => i + 2,
            Some(i) => i + 1,
            None => bytes.len(),
        };
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// `fields[index]` with Python's negative indices.
fn py_index<'a>(fields: &[&'a str], index: i128) -> Option<&'a str> {
    let len = i128::try_from(fields.len()).ok()?;
    let i = if index < 0 { len + index } else { index };
    usize::try_from(i).ok().and_then(|i| fields.get(i)).copied()
}

/// Constant-time equality that, unlike `secret_eq`, holds for two empty
/// strings: Salt accepts an empty password against an empty field.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || brine_proto::crypto::secret_eq(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_as_python_reads_them() {
        let lines: Vec<&str> = py_lines("a\nb\r\nc\rd\n\ne").collect();
        assert_eq!(lines, ["a\n", "b\r\n", "c\r", "d\n", "\n", "e"]);
        assert_eq!(py_lines("a\n").count(), 1);
        assert_eq!(py_lines("").count(), 0);
    }

    #[test]
    fn negative_indices_count_from_the_end() {
        let f = ["a", "b", "c"];
        assert_eq!(py_index(&f, 0), Some("a"));
        assert_eq!(py_index(&f, -1), Some("c"));
        assert_eq!(py_index(&f, -3), Some("a"));
        assert_eq!(py_index(&f, -4), None);
        assert_eq!(py_index(&f, 3), None);
    }

    #[test]
    fn records_skip_comments_and_keep_the_first_duplicate() {
        let r = records(b"# c\n\n  \t\nalice:one\nalice:two\n bob:x \n", 2, "htpasswd").unwrap();
        assert_eq!(r.get(&[&b"alice"[..]][..]), Some(&&b"one"[..]));
        assert_eq!(r.get(&[&b" bob"[..]][..]), Some(&&b"x"[..]));
        assert!(matches!(
            records(b"alice:one\nbroken\n", 2, "htpasswd"),
            Err(Raised::Malformed("htpasswd", 2))
        ));
    }

    #[test]
    fn empty_passwords_compare_equal_only_to_empty() {
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
    }
}
