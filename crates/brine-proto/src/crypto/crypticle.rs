use base64::Engine;
use std::sync::OnceLock;

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::sha::Sha256;

use super::{random_bytes, CryptoError};

const AES_KEY_LEN: usize = 24;
const MAC_LEN: usize = 32;
const BLOCK: usize = 16;
const PICKLE_PAD: &[u8] = b"pickle::";

/// Salt's symmetric scheme (`salt.crypt.Crypticle`, key_size 192):
/// `IV ‖ AES-192-CBC(PKCS7(p)) ‖ HMAC-SHA256(hmac_key, IV ‖ CT)` under a
/// base64 key string of 24 AES + 32 HMAC key bytes.
#[derive(Clone)]
pub struct Crypticle {
    key_string: String,
    aes: [u8; AES_KEY_LEN],
    mac: [u8; MAC_LEN],
}

impl std::fmt::Debug for Crypticle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypticle(..)")
    }
}

impl Crypticle {
    /// A fresh key string: base64 of 56 random bytes (76 characters, no
    /// newline), as `Crypticle.generate_key_string()`.
    pub fn generate_key_string() -> String {
        base64::engine::general_purpose::STANDARD.encode(random_bytes(AES_KEY_LEN + MAC_LEN))
    }

    /// The Crypticle of 56 raw key bytes (24 AES, 32 HMAC), with the key
    /// string `generate_key_string` would give for them.
    pub fn from_raw(raw: &[u8; AES_KEY_LEN + MAC_LEN]) -> Crypticle {
        Crypticle::from_key_string(&base64::engine::general_purpose::STANDARD.encode(raw))
            .expect("56 bytes in base64 are a valid key string")
    }

    /// A Crypticle under a fresh key.
    pub fn generate() -> Crypticle {
        Crypticle::from_key_string(&Crypticle::generate_key_string()).expect("a generated key string is valid")
    }

    /// `Crypticle(opts, key_string)`: the key string is kept verbatim (it is
    /// what gets OAEP-encrypted to minions and hashed for `_auth`'s `sig`)
    /// and decoded as Python's `base64.b64decode` does: characters outside
    /// the base64 alphabet (newlines, spaces) are skipped, decoding stops at
    /// complete padding, and the result must be 56 bytes. As for a Python
    /// `str`, non-ASCII characters are refused.
    pub fn from_key_string(s: &str) -> Result<Crypticle, CryptoError> {
        if !s.is_ascii() {
            return Err(CryptoError::KeyString("non-ASCII characters".into()));
        }
        Crypticle::from_parts(s.to_string(), s.as_bytes())
    }

    /// The `bytes` form (`Crypticle(opts, b"...")`, e.g. a key read from a
    /// file or an OAEP-decrypted key): like [`Crypticle::from_key_string`],
    /// but non-alphabet bytes, non-ASCII ones included, are skipped as
    /// Python does for `bytes`. Must be UTF-8 so [`Crypticle::key_string`]
    /// can return it.
    pub fn from_key_bytes(b: &[u8]) -> Result<Crypticle, CryptoError> {
        let s = std::str::from_utf8(b).map_err(|_| CryptoError::KeyString("not UTF-8".into()))?;
        Crypticle::from_parts(s.to_string(), b)
    }

    fn from_parts(key_string: String, encoded: &[u8]) -> Result<Crypticle, CryptoError> {
        let raw = python_b64decode(encoded)?;
        if raw.len() != AES_KEY_LEN + MAC_LEN {
            return Err(CryptoError::KeyString(format!("{} bytes, expected 56", raw.len())));
        }
        let mut aes = [0u8; AES_KEY_LEN];
        let mut mac = [0u8; MAC_LEN];
        aes.copy_from_slice(&raw[..AES_KEY_LEN]);
        mac.copy_from_slice(&raw[AES_KEY_LEN..]);
        Ok(Crypticle { key_string, aes, mac })
    }

    /// The key string as given.
    pub fn key_string(&self) -> &str {
        &self.key_string
    }

    /// HMAC-SHA256 (RFC 2104) on the low-level SHA-256: OpenSSL 3's EVP
    /// path looks the algorithm up in its provider store on every call,
    /// which cost more than the hashing itself for a small return.
    fn hmac(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut k = [0u8; 64];
        k[..MAC_LEN].copy_from_slice(&self.mac);
        let mut inner = Sha256::new();
        inner.update(&k.map(|b| b ^ 0x36));
        inner.update(data);
        let ih = inner.finish();
        let mut outer = Sha256::new();
        outer.update(&k.map(|b| b ^ 0x5c));
        outer.update(&ih);
        Ok(outer.finish().to_vec())
    }

    fn cipher() -> Result<&'static CipherRef, CryptoError> {
        // Fetched once per process (an implicit fetch per operation is
        // OpenSSL 3's slow path).
        static AES192CBC: OnceLock<Option<Cipher>> = OnceLock::new();
        AES192CBC
            .get_or_init(|| Cipher::fetch(None, "AES-192-CBC", None).ok())
            .as_deref()
            .map_or_else(|| Ok(Cipher::aes_192_cbc()), Ok)
    }

    /// `Crypticle.encrypt` with a random IV.
    pub fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut iv = [0u8; BLOCK];
        iv.copy_from_slice(&random_bytes(BLOCK));
        self.encrypt_with_iv(plain, &iv)
    }

    /// `Crypticle.encrypt` with a chosen IV (test vectors pin it).
    pub fn encrypt_with_iv(&self, plain: &[u8], iv: &[u8; 16]) -> Result<Vec<u8>, CryptoError> {
        let mut c = CipherCtx::new()?;
        c.encrypt_init(Some(Self::cipher()?), Some(&self.aes), Some(iv))?;
        c.set_padding(true); // PKCS#7: 1..=16 bytes of value n, as Salt pads by hand
        let mut out = vec![0u8; BLOCK + plain.len() + 2 * BLOCK];
        out[..BLOCK].copy_from_slice(iv);
        let mut n = c.cipher_update(plain, Some(&mut out[BLOCK..]))?;
        n += c.cipher_final(&mut out[BLOCK + n..])?;
        out.truncate(BLOCK + n);
        let mac = self.hmac(&out)?;
        out.extend_from_slice(&mac);
        Ok(out)
    }

    /// `Crypticle.decrypt`: constant-time HMAC check over `IV ‖ CT`, then
    /// AES-192-CBC and removal of `last byte` bytes of padding. Errors
    /// (never panics) on a short or misaligned input ([`CryptoError::BadLength`]),
    /// a wrong MAC ([`CryptoError::BadMac`]) or a last byte outside 1..=16
    /// ([`CryptoError::BadPadding`]; Salt would slice blindly, but its own
    /// `encrypt` never produces such a plaintext).
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < BLOCK + BLOCK + MAC_LEN || !(data.len() - MAC_LEN).is_multiple_of(BLOCK) {
            return Err(CryptoError::BadLength);
        }
        let (body, mac) = data.split_at(data.len() - MAC_LEN);
        if !openssl::memcmp::eq(&self.hmac(body)?, mac) {
            return Err(CryptoError::BadMac);
        }
        let (iv, ct) = body.split_at(BLOCK);
        let mut c = CipherCtx::new()?;
        c.decrypt_init(Some(Self::cipher()?), Some(&self.aes), Some(iv))?;
        c.set_padding(false);
        let mut out = vec![0u8; ct.len() + BLOCK];
        let mut n = c.cipher_update(ct, Some(&mut out))?;
        n += c.cipher_final(&mut out[n..])?;
        out.truncate(n);
        let pad = *out.last().ok_or(CryptoError::BadPadding)? as usize;
        if pad == 0 || pad > BLOCK || pad > out.len() {
            return Err(CryptoError::BadPadding);
        }
        out.truncate(out.len() - pad);
        Ok(out)
    }

    /// `Crypticle.dumps` minus serialization: `encrypt(b"pickle::" [‖ nonce]
    /// ‖ payload)` where `payload` is already network msgpack. An empty
    /// nonce counts as none (Salt tests `if nonce:`); the nonce is copied
    /// as given (Salt's are 32 hex characters).
    pub fn seal(&self, payload: &[u8], nonce: Option<&str>) -> Result<Vec<u8>, CryptoError> {
        let nonce = nonce.unwrap_or("");
        let mut p = Vec::with_capacity(PICKLE_PAD.len() + nonce.len() + payload.len());
        p.extend_from_slice(PICKLE_PAD);
        p.extend_from_slice(nonce.as_bytes());
        p.extend_from_slice(payload);
        self.encrypt(&p)
    }

    /// `Crypticle.loads` up to the msgpack step: decrypt; `Ok(None)` when
    /// the plaintext lacks `pickle::` (Salt then returns `{}`); with a
    /// (non-empty) nonce the next 32 bytes must equal it, else
    /// [`CryptoError::BadNonce`]. Returns the msgpack bytes that follow;
    /// the `serial` check of `loads` belongs to the caller.
    pub fn open(&self, data: &[u8], nonce: Option<&str>) -> Result<Option<Vec<u8>>, CryptoError> {
        let plain = self.decrypt(data)?;
        let Some(rest) = plain.strip_prefix(PICKLE_PAD) else {
            return Ok(None);
        };
        let rest = match nonce.filter(|n| !n.is_empty()) {
            Some(n) => {
                if rest.len() < 32 || &rest[..32] != n.as_bytes() {
                    return Err(CryptoError::BadNonce);
                }
                &rest[32..]
            }
            None => rest,
        };
        Ok(Some(rest.to_vec()))
    }
}

/// CPython's non-strict `binascii.a2b_base64` (what `base64.b64decode`
/// runs with `validate=False`): bytes outside the alphabet are skipped; a
/// `=` ends the input once it completes a quantum (`xx==`, `xxx=`) and is
/// otherwise ignored; leftover data is "Incorrect padding".
pub(crate) fn python_b64decode(input: &[u8]) -> Result<Vec<u8>, CryptoError> {
    fn value(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut quad_pos = 0u8;
    let mut left = 0u8;
    let mut pads = 0u8;
    for &c in input {
        if c == b'=' {
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Ok(out);
                }
            }
            continue;
        }
        let Some(v) = value(c) else { continue };
        pads = 0;
        match quad_pos {
            0 => {
                left = v;
                quad_pos = 1;
            }
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
                quad_pos = 2;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
                quad_pos = 3;
            }
            _ => {
                out.push((left << 6) | v);
                quad_pos = 0;
            }
        }
    }
    match quad_pos {
        0 => Ok(out),
        1 => Err(CryptoError::KeyString(
            "invalid base64: number of data characters is 1 more than a multiple of 4".into(),
        )),
        _ => Err(CryptoError::KeyString("invalid base64: incorrect padding".into())),
    }
}
