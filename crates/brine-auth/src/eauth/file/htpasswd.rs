//! The hashes an htpasswd file may hold, as passlib's `htpasswd_context`
//! (what Salt's `file` backend checks passwords with) reads them.
//!
//! passlib tries the schemes in a fixed order and takes the first that
//! claims the stored string: bcrypt (`$2$`, `$2a$`, `$2x$`, `$2y$`,
//! `$2b$`), SHA-256-crypt (`$5$`), SHA-512-crypt (`$6$`), Apache's MD5
//! (`$apr1$`, what `htpasswd` writes by default), traditional DES crypt
//! (2 or 13 characters of `./0-9A-Za-z`), `{SHA}` (base64 SHA-1), and
//! plaintext, which claims everything else. So an MD5-crypt `$1$` hash,
//! which passlib would only reach after plaintext, is compared as
//! plaintext and never matches a real password: Salt refuses it, and so
//! does Brine.
//!
//! A stored string that a scheme claims but cannot parse (a bad salt, a
//! cost out of range, no checksum) makes passlib raise: the password is
//! refused. So is a password with a NUL byte for any crypt scheme, and
//! any password longer than 4096 bytes.

use std::ffi::{c_char, CString};

use openssl::hash::{hash, Hasher, MessageDigest};

/// passlib's `MAX_PASSWORD_SIZE`.
pub(super) const MAX_PASSWORD_SIZE: usize = 4096;

/// crypt(3)'s base-64 alphabet (passlib's `HASH64_CHARS`).
const HASH64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// bcrypt's base-64 alphabet.
const BCRYPT64: &[u8; 64] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Why passlib would raise rather than answer.
pub(super) type Refusal = &'static str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bcrypt,
    Sha256Crypt,
    Sha512Crypt,
    AprMd5Crypt,
    DesCrypt,
    LdapSha1,
    Plaintext,
}

/// `htpasswd_context.identify(stored)`.
fn identify(stored: &[u8]) -> Scheme {
    const BCRYPT_IDENTS: [&[u8]; 5] = [b"$2$", b"$2a$", b"$2x$", b"$2y$", b"$2b$"];
    if BCRYPT_IDENTS.iter().any(|i| stored.starts_with(i)) {
        Scheme::Bcrypt
    } else if stored.starts_with(b"$5$") {
        Scheme::Sha256Crypt
    } else if stored.starts_with(b"$6$") {
        Scheme::Sha512Crypt
    } else if stored.starts_with(b"$apr1$") {
        Scheme::AprMd5Crypt
    } else if looks_like_des(stored) {
        Scheme::DesCrypt
    } else if stored.starts_with(b"{SHA}") {
        Scheme::LdapSha1
    } else {
        Scheme::Plaintext
    }
}

/// des_crypt's `^[./a-z0-9]{2}([./a-z0-9]{11})?$` with `re.I`, on the
/// string decoded as UTF-8 (Latin-1 if that fails). Python's
/// case-insensitive `[a-z]` also matches four non-ASCII letters; such a
/// string is claimed by des_crypt and then refused as not ASCII.
fn looks_like_des(stored: &[u8]) -> bool {
    let chars: Vec<char> = match std::str::from_utf8(stored) {
        Ok(s) => s.chars().collect(),
        Err(_) => stored.iter().map(|&b| char::from(b)).collect(),
    };
    let ok =
        |c: &char| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '\u{130}' | '\u{131}' | '\u{17f}' | '\u{212a}');
    matches!(chars.len(), 2 | 13) && chars.iter().all(ok)
}

/// `htpasswd_context.verify(password, stored)`: `Ok(matches)`, or why
/// passlib would raise.
pub(super) fn verify(password: &[u8], stored: &[u8]) -> Result<bool, Refusal> {
    if password.len() > MAX_PASSWORD_SIZE {
        return Err("password exceeds passlib's 4096 bytes");
    }
    let scheme = identify(stored);
    if scheme == Scheme::Plaintext {
        // plaintext decodes the stored string as UTF-8; a password (valid
        // UTF-8) can only equal a valid string, so bytes compare the same.
        if std::str::from_utf8(stored).is_err() {
            return Err("plaintext entry is not UTF-8");
        }
        return Ok(super::ct_eq(password, stored));
    }
    let stored = std::str::from_utf8(stored)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or("hash is not ASCII")?;
    if scheme == Scheme::LdapSha1 {
        let digest = openssl::base64::encode_block(&hash(MessageDigest::sha1(), password).expect("sha1"));
        return Ok(super::ct_eq(&stored.as_bytes()["{SHA}".len()..], digest.as_bytes()));
    }
    // Every crypt scheme refuses a NUL, as crypt(3) cannot take one.
    if password.contains(&0) {
        return Err("password contains a NUL byte");
    }
    match scheme {
        Scheme::Bcrypt => bcrypt(password, stored),
        Scheme::Sha256Crypt => sha_crypt(password, stored, false),
        Scheme::Sha512Crypt => sha_crypt(password, stored, true),
        Scheme::AprMd5Crypt => apr_md5_crypt(password, stored),
        Scheme::DesCrypt => des_crypt(password, stored),
        Scheme::LdapSha1 | Scheme::Plaintext => unreachable!("handled above"),
    }
}

fn is_hash64(s: &str) -> bool {
    s.bytes().all(|b| HASH64.contains(&b))
}

/// `{prefix}{salt}${checksum}` (passlib's `parse_mc2`), both present.
fn mc2<'a>(stored: &'a str, prefix: &str) -> Result<(&'a str, &'a str), Refusal> {
    let rest = &stored[prefix.len()..];
    let mut parts = rest.split('$');
    let (salt, checksum) = (parts.next().unwrap_or(""), parts.next());
    if parts.next().is_some() {
        return Err("malformed hash");
    }
    match checksum {
        Some(c) if !c.is_empty() => Ok((salt, c)),
        _ => Err("hash has no checksum"),
    }
}

/// Apache's `$apr1$`: MD5-crypt with its own magic; a salt of at most
/// 8 characters.
fn apr_md5_crypt(password: &[u8], stored: &str) -> Result<bool, Refusal> {
    let (salt, checksum) = mc2(stored, "$apr1$")?;
    if salt.len() > 8 || !is_hash64(salt) {
        return Err("bad apr1 salt");
    }
    let computed = md5_crypt(password, salt.as_bytes(), b"$apr1$");
    Ok(super::ct_eq(checksum.as_bytes(), computed.as_bytes()))
}

/// Poul-Henning Kamp's MD5-crypt, the 22-character checksum.
fn md5_crypt(pw: &[u8], salt: &[u8], magic: &[u8]) -> String {
    let md5 = |parts: &[&[u8]]| -> [u8; 16] {
        let mut h = Hasher::new(MessageDigest::md5()).expect("md5");
        for p in parts {
            h.update(p).expect("md5");
        }
        h.finish().expect("md5").as_ref().try_into().expect("16 bytes")
    };
    let alternate = md5(&[pw, salt, pw]);
    let mut h = Hasher::new(MessageDigest::md5()).expect("md5");
    for p in [pw, magic, salt] {
        h.update(p).expect("md5");
    }
    for chunk in pw.chunks(16) {
        h.update(&alternate[..chunk.len()]).expect("md5");
    }
    let mut i = pw.len();
    while i > 0 {
        h.update(if i & 1 == 1 { &[0u8][..] } else { &pw[..1] }).expect("md5");
        i >>= 1;
    }
    let mut digest: [u8; 16] = h.finish().expect("md5").as_ref().try_into().expect("16 bytes");
    for round in 0..1000 {
        let odd = round % 2 == 1;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(4);
        parts.push(if odd { pw } else { &digest });
        if round % 3 != 0 {
            parts.push(salt);
        }
        if round % 7 != 0 {
            parts.push(pw);
        }
        parts.push(if odd { &digest } else { pw });
        digest = md5(&parts);
    }
    let d = &digest;
    let mut out = String::with_capacity(22);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        encode24(&mut out, d[a], d[b], d[c], 4);
    }
    encode24(&mut out, 0, 0, d[11], 2);
    out
}

/// crypt(3)'s little-endian base-64 of three bytes (`b2` most
/// significant), `n` characters.
fn encode24(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(char::from(HASH64[(w & 0x3f) as usize]));
        w >>= 6;
    }
}

/// Ulrich Drepper's SHA-crypt (`$5$`, `$6$`): an optional
/// `rounds=N$` (1000..=999999999, no leading zero, Python's `int()`),
/// a salt of at most 16 characters, the checksum.
fn sha_crypt(password: &[u8], stored: &str, is512: bool) -> Result<bool, Refusal> {
    let mut parts: Vec<&str> = stored[3..].split('$').collect();
    let rounds = match parts[0].strip_prefix("rounds=") {
        Some(r) => {
            if r.starts_with('0') && r != "0" {
                return Err("zero-padded rounds");
            }
            parts.remove(0);
            brine_py::int_str(r).ok_or("rounds is not a number")?
        }
        None => 5000,
    };
    let (salt, checksum) = match parts[..] {
        [salt, checksum] if !checksum.is_empty() => (salt, checksum),
        [_, _] | [_] => return Err("hash has no checksum"),
        _ => return Err("malformed hash"),
    };
    if !(1000..=999_999_999).contains(&rounds) {
        return Err("rounds out of range");
    }
    if salt.len() > 16 || !is_hash64(salt) {
        return Err("bad salt");
    }
    let rounds = u32::try_from(rounds).expect("in range");
    let computed = sha_crypt_checksum(password, salt.as_bytes(), rounds, is512);
    Ok(super::ct_eq(checksum.as_bytes(), computed.as_bytes()))
}

fn sha_crypt_checksum(pw: &[u8], salt: &[u8], rounds: u32, is512: bool) -> String {
    let md = if is512 {
        MessageDigest::sha512()
    } else {
        MessageDigest::sha256()
    };
    let digest = |parts: &[&[u8]]| -> Vec<u8> {
        let mut h = Hasher::new(md).expect("sha");
        for p in parts {
            h.update(p).expect("sha");
        }
        h.finish().expect("sha").to_vec()
    };
    // `source` repeated to `len` bytes.
    let repeat = |source: &[u8], len: usize| -> Vec<u8> { source.iter().copied().cycle().take(len).collect() };

    let alternate = digest(&[pw, salt, pw]);
    let mut h = Hasher::new(md).expect("sha");
    for p in [pw, salt, &repeat(&alternate, pw.len())[..]] {
        h.update(p).expect("sha");
    }
    let mut n = pw.len();
    while n > 0 {
        h.update(if n & 1 == 1 { &alternate } else { pw }).expect("sha");
        n >>= 1;
    }
    let a = h.finish().expect("sha").to_vec();
    let p = repeat(&digest(&vec![pw; pw.len()]), pw.len());
    let s = repeat(&digest(&vec![salt; 16 + usize::from(a[0])]), salt.len());
    let mut c = a;
    for round in 0..rounds {
        let odd = round % 2 == 1;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(4);
        parts.push(if odd { &p } else { &c });
        if round % 3 != 0 {
            parts.push(&s);
        }
        if round % 7 != 0 {
            parts.push(&p);
        }
        parts.push(if odd { &c } else { &p });
        c = digest(&parts);
    }
    let mut out = String::new();
    if is512 {
        // Triples (i, i+21, i+42), rotated one place further each time.
        for i in 0..21 {
            let (x, y, z) = (i, i + 21, i + 42);
            let (x, y, z) = match i % 3 {
                0 => (x, y, z),
                1 => (y, z, x),
                _ => (z, x, y),
            };
            encode24(&mut out, c[x], c[y], c[z], 4);
        }
        encode24(&mut out, 0, 0, c[63], 2);
    } else {
        // Triples (i, i+10, i+20), rotated one place back each time.
        for i in 0..10 {
            let (x, y, z) = (i, i + 10, i + 20);
            let (x, y, z) = match i % 3 {
                0 => (x, y, z),
                1 => (z, x, y),
                _ => (y, z, x),
            };
            encode24(&mut out, c[x], c[y], c[z], 4);
        }
        encode24(&mut out, 0, c[31], c[30], 3);
    }
    out
}

extern "C" {
    /// libcrypto's traditional crypt(3) DES, reentrant (the caller's
    /// 14-byte buffer). Deprecated by OpenSSL 3 but still exported; the
    /// openssl crate already links libcrypto.
    fn DES_fcrypt(buf: *const c_char, salt: *const c_char, ret: *mut c_char) -> *mut c_char;
}

/// Traditional DES crypt: a 2-character salt, 11 characters of
/// checksum; only the first 8 bytes of the password count.
fn des_crypt(password: &[u8], stored: &str) -> Result<bool, Refusal> {
    let (salt, checksum) = stored.split_at(2);
    if checksum.is_empty() {
        return Err("hash has no checksum");
    }
    if !is_hash64(salt) {
        return Err("bad salt");
    }
    let key = CString::new(&password[..password.len().min(8)]).map_err(|_| "password contains a NUL byte")?;
    let salt = CString::new(salt).expect("hash64 has no NUL");
    let mut out = [0 as c_char; 14];
    // SAFETY: both inputs are NUL-terminated; DES_fcrypt writes 13
    // characters and a NUL into the 14-byte buffer.
    let ret = unsafe { DES_fcrypt(key.as_ptr(), salt.as_ptr(), out.as_mut_ptr()) };
    if ret.is_null() {
        return Err("DES crypt failed");
    }
    let out: Vec<u8> = out[2..13].iter().map(|&c| c as u8).collect();
    Ok(super::ct_eq(checksum.as_bytes(), &out))
}

/// Decodes bcrypt's base 64 (the standard bit order, its own
/// alphabet), dropping the unused low bits of the last character as
/// passlib does when it "repairs" them.
fn bcrypt64_decode(s: &str, len: usize) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(len);
    for b in s.bytes() {
        let v = BCRYPT64.iter().position(|&c| c == b)?;
        bits = (bits << 6) | v as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out.truncate(len);
    (out.len() == len).then_some(out)
}

/// bcrypt: `$2?$NN$` (cost 04..31 written with two digits), 22
/// characters of salt, 31 of checksum. passlib refuses `$2x$`
/// (crypt_blowfish's buggy variant) and computes the old `$2$` by
/// repeating the password to 72 bytes.
fn bcrypt(password: &[u8], stored: &str) -> Result<bool, Refusal> {
    let (ident, rest) = stored[1..].split_once('$').ok_or("malformed hash")?;
    if ident == "2x" {
        return Err("crypt_blowfish's buggy '2x' hashes are not supported");
    }
    let (cost, data) = rest.split_once('$').ok_or("malformed hash")?;
    if data.contains('$') {
        return Err("malformed hash");
    }
    if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) {
        return Err("malformed cost field");
    }
    let cost: u32 = cost.parse().expect("two digits");
    if !(4..=31).contains(&cost) {
        return Err("cost out of range");
    }
    if data.len() < 22 {
        return Err("bad salt");
    }
    let (salt, checksum) = data.split_at(22);
    if checksum.is_empty() {
        return Err("hash has no checksum");
    }
    let salt: [u8; 16] = bcrypt64_decode(salt, 16)
        .ok_or("bad salt")?
        .try_into()
        .expect("16 bytes");
    if checksum.len() != 31 {
        return Err("bad checksum size");
    }
    let checksum = bcrypt64_decode(checksum, 23).ok_or("bad checksum")?;
    // The key is the password and its terminating NUL, at most 72 bytes.
    let mut key: Vec<u8> = if ident == "2" && !password.is_empty() {
        password.iter().copied().cycle().take(72).collect()
    } else {
        password.to_vec()
    };
    key.push(0);
    key.truncate(72);
    let raw = ::bcrypt::bcrypt(cost, salt, &key);
    Ok(super::ct_eq(&checksum, &raw[..23]))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hashes made by passlib 1.7.4 (the first two are the SHA-crypt
    // specification's own examples).
    #[test]
    fn known_hashes_verify() {
        let cases: &[(&str, &str)] = &[
            ("Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
            (
                "Hello world!",
                "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            ),
            (
                "",
                "$6$rounds=1000$toolongsaltstrin$5A1bua4U2S/eV.HRKBOwCl9FEutgR1DEff22GEPfJk.Ya9GoamQIaUdtF/JFPyYntglbV7YQcryoFD2f.DN.A0",
            ),
            ("s3cret", "$apr1$rOx5hqEA$XclxCvudHDQJWh8jsXyhs."),
            ("", "$apr1$$J/S5FGXXjRRxbhIznTb/E1"),
            ("password1234", "abJnggxhB/yWI"),
            ("password", "abJnggxhB/yWI"),
            ("s3cret", "$2y$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG"),
            ("s3cret", "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg="),
            ("$1$abc$xyz", "$1$abc$xyz"),
        ];
        for (pw, stored) in cases {
            assert_eq!(
                verify(pw.as_bytes(), stored.as_bytes()),
                Ok(true),
                "{pw:?} against {stored}"
            );
            assert_eq!(verify(b"wrong", stored.as_bytes()), Ok(false), "wrong against {stored}");
        }
    }

    #[test]
    fn claimed_but_malformed_hashes_refuse() {
        for stored in [
            "$5$rounds=500$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
            "$5$rounds=05000$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
            "$5$saltstring",
            "$apr1$rOx5hqEA",
            "$apr1$rOx5hqEAxx$XclxCvudHDQJWh8jsXyhs.",
            "$2x$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG",
            "$2y$4$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG",
            "ab",
        ] {
            assert!(verify(b"s3cret", stored.as_bytes()).is_err(), "{stored}");
        }
        assert!(verify(b"s3\0cret", b"$apr1$rOx5hqEA$XclxCvudHDQJWh8jsXyhs.").is_err());
        assert!(verify(&[b'a'; 4097], b"plain").is_err());
    }

    #[test]
    fn identification_follows_passlib_order() {
        assert_eq!(identify(b"$1$abc$xyz"), Scheme::Plaintext);
        assert_eq!(identify(b"abcdefghijklm"), Scheme::DesCrypt);
        assert_eq!(identify(b"abcdefghijkl"), Scheme::Plaintext);
        assert_eq!(identify("a\u{212a}".as_bytes()), Scheme::DesCrypt);
        assert_eq!(identify(b"{SHA}x"), Scheme::LdapSha1);
        assert_eq!(identify(b"$2$05$x"), Scheme::Bcrypt);
    }
}
