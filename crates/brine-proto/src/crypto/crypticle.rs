use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{Cipher, Crypter, Mode};

use super::{random_bytes, CryptoError};

const AES_KEY_LEN: usize = 24;
const MAC_LEN: usize = 32;
const PICKLE_PAD: &[u8] = b"pickle::";

/// Salt's symmetric scheme: `IV ‖ AES-192-CBC(PKCS7(p)) ‖ HMAC-SHA256`.
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
    /// A fresh key string: base64 of 56 random bytes (76 characters).
    pub fn generate_key_string() -> String {
        base64::engine::general_purpose::STANDARD.encode(random_bytes(AES_KEY_LEN + MAC_LEN))
    }

    pub fn generate() -> Crypticle {
        Crypticle::from_key_string(&Crypticle::generate_key_string()).expect("a generated key string is valid")
    }

    pub fn from_key_string(s: &str) -> Result<Crypticle, CryptoError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s.trim().as_bytes())
            .map_err(|e| CryptoError::KeyString(e.to_string()))?;
        if raw.len() != AES_KEY_LEN + MAC_LEN {
            return Err(CryptoError::KeyString(format!("{} bytes, expected 56", raw.len())));
        }
        let mut aes = [0u8; AES_KEY_LEN];
        let mut mac = [0u8; MAC_LEN];
        aes.copy_from_slice(&raw[..AES_KEY_LEN]);
        mac.copy_from_slice(&raw[AES_KEY_LEN..]);
        Ok(Crypticle {
            key_string: s.trim().to_string(),
            aes,
            mac,
        })
    }

    pub fn key_string(&self) -> &str {
        &self.key_string
    }

    fn hmac(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = PKey::hmac(&self.mac)?;
        let mut s = Signer::new(MessageDigest::sha256(), &key)?;
        s.update(data)?;
        Ok(s.sign_to_vec()?)
    }

    pub fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let iv: [u8; 16] = random_bytes(16).try_into().unwrap();
        self.encrypt_with_iv(plain, &iv)
    }

    pub fn encrypt_with_iv(&self, plain: &[u8], iv: &[u8; 16]) -> Result<Vec<u8>, CryptoError> {
        let cipher = Cipher::aes_192_cbc();
        let mut c = Crypter::new(cipher, Mode::Encrypt, &self.aes, Some(iv))?;
        c.pad(true); // PKCS#7, as Salt pads by hand
        let mut out = vec![0u8; 16 + plain.len() + 32];
        out[..16].copy_from_slice(iv);
        let mut n = c.update(plain, &mut out[16..])?;
        n += c.finalize(&mut out[16 + n..])?;
        out.truncate(16 + n);
        let mac = self.hmac(&out)?;
        out.extend_from_slice(&mac);
        Ok(out)
    }

    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < 16 + 16 + MAC_LEN || !(data.len() - MAC_LEN).is_multiple_of(16) {
            return Err(CryptoError::BadLength);
        }
        let (body, mac) = data.split_at(data.len() - MAC_LEN);
        if !openssl::memcmp::eq(&self.hmac(body)?, mac) {
            return Err(CryptoError::BadMac);
        }
        let (iv, ct) = body.split_at(16);
        let mut c = Crypter::new(Cipher::aes_192_cbc(), Mode::Decrypt, &self.aes, Some(iv))?;
        c.pad(false);
        let mut out = vec![0u8; ct.len() + 16];
        let mut n = c.update(ct, &mut out)?;
        n += c.finalize(&mut out[n..])?;
        out.truncate(n);
        let pad = *out.last().ok_or(CryptoError::BadPadding)? as usize;
        if pad == 0 || pad > 16 || pad > out.len() {
            return Err(CryptoError::BadPadding);
        }
        out.truncate(out.len() - pad);
        Ok(out)
    }

    /// `Crypticle.dumps`: `pickle::` [‖ nonce] ‖ payload, encrypted.
    /// `payload` is already network-msgpack.
    pub fn seal(&self, payload: &[u8], nonce: Option<&str>) -> Result<Vec<u8>, CryptoError> {
        let mut p = Vec::with_capacity(PICKLE_PAD.len() + 32 + payload.len());
        p.extend_from_slice(PICKLE_PAD);
        if let Some(n) = nonce {
            p.extend_from_slice(n.as_bytes());
        }
        p.extend_from_slice(payload);
        self.encrypt(&p)
    }

    /// `Crypticle.loads` up to the msgpack step: `Ok(None)` when the
    /// plaintext lacks `pickle::` (Salt then returns `{}`).
    pub fn open(&self, data: &[u8], nonce: Option<&str>) -> Result<Option<Vec<u8>>, CryptoError> {
        let plain = self.decrypt(data)?;
        let Some(rest) = plain.strip_prefix(PICKLE_PAD) else {
            return Ok(None);
        };
        let rest = match nonce {
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
