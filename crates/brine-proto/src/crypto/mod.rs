//! Salt's crypto (`salt/crypt.py`), on the system libcrypto
//! through the `openssl` crate.
//!
//! * [`Crypticle`]: AES-192-CBC + HMAC-SHA256 under a 76-character base64
//!   key string (master AES key, session keys, pillar one-time keys).
//! * [`PrivateKey`]/[`PublicKey`]: RSA with OAEP (SHA1/SHA224), PKCS#1 v1.5
//!   signatures (SHA1/SHA224) and Salt's X9.31 "encrypt"/"decrypt" (raw RSA
//!   with X9.31 padding and no digest, as `RSA_private_encrypt` with
//!   `RSA_X931_PADDING` does: `tok` and the `_auth` reply `sig`).
//!
//! Nothing here panics on hostile input: lengths, padding, MACs and
//! encodings are checked and reported as [`CryptoError`].
//!
//! Where this follows Salt's code rather than its documentation:
//!
//! * X9.31 unpadding is libcrypto's `RSA_padding_check_X931`, quirks
//!   included (see `x931.rs`, checked against libcrypto's own
//!   `RSA_X931_PADDING` in the tests): `6B BA ‖ msg ‖ CC` (no `BB`) and
//!   empty messages are refused although the padder makes them, and
//!   signatures shorter than `k` bytes are read as numbers.
//! * Key strings decode like Python's lenient `base64.b64decode` (stray
//!   newlines/spaces skipped) and are kept verbatim, not trimmed;
//!   [`Crypticle::from_key_bytes`] is the `bytes` form.
//! * An empty nonce is no nonce in [`Crypticle::seal`]/[`Crypticle::open`]
//!   (Salt tests `if nonce:`).
//! * Stricter than Salt on purpose: [`Crypticle::decrypt`] refuses a last
//!   padding byte outside 1..=16 (Salt slices blindly; only a key holder
//!   can produce one); [`PrivateKey::from_pem`] ignores a passphrase given
//!   for an unencrypted key (cryptography raises TypeError).
//! * Beyond what Salt's channel uses: [`Crypticle::generate`],
//!   [`PrivateKey::to_pem_pkcs1_encrypted`] (`gen_keys` with `key_pass`),
//!   [`PublicKey::size_bytes`], [`new_nonce`].

mod crypticle;
mod rsa;
mod x931;

pub use crypticle::Crypticle;
pub use rsa::{EncAlgo, PrivateKey, PublicKey, SigAlgo};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    #[error("invalid key string: {0}")]
    KeyString(String),
    #[error("message authentication failed")]
    BadMac,
    #[error("ciphertext too short or not block-aligned")]
    BadLength,
    #[error("bad padding")]
    BadPadding,
    #[error("nonce verification error")]
    BadNonce,
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("message too long for the key")]
    TooLong,
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// `n` cryptographically random bytes.
///
/// Small requests (an IV or a nonce per message) are served from a
/// per-thread block of OpenSSL's output, drawn 4 KiB at a time: one call
/// into OpenSSL's locked DRBG costs about as much as the AES of a short
/// message. The block belongs to the process that drew it: after a fork
/// the child draws its own, so no two processes ever hand out the same
/// bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    if n > RNG_SMALL {
        openssl::rand::rand_bytes(&mut b).expect("the system RNG failed");
        return b;
    }
    RNG_BLOCK.with(|cell| cell.borrow_mut().take(std::process::id(), &mut b));
    b
}

/// The largest request served from the per-thread block.
const RNG_SMALL: usize = 64;

pub(crate) struct RngBlock {
    pid: u32,
    used: usize,
    bytes: Box<[u8; 4096]>,
}

impl RngBlock {
    fn new_empty() -> RngBlock {
        RngBlock {
            pid: 0,
            used: 4096,
            bytes: Box::new([0; 4096]),
        }
    }

    /// Fill `out` (at most [`RNG_SMALL`] bytes) for process `pid`.
    fn take(&mut self, pid: u32, out: &mut [u8]) {
        let n = out.len();
        if self.pid != pid || self.used + n > self.bytes.len() {
            openssl::rand::rand_bytes(&mut self.bytes[..]).expect("the system RNG failed");
            self.pid = pid;
            self.used = 0;
        }
        let start = self.used;
        out.copy_from_slice(&self.bytes[start..start + n]);
        // Bytes handed out are wiped from the block.
        self.bytes[start..start + n].fill(0);
        self.used += n;
    }
}

thread_local! {
    static RNG_BLOCK: std::cell::RefCell<RngBlock> = std::cell::RefCell::new(RngBlock::new_empty());
}

/// Whether two secrets (a user key, a token) are the same, compared in
/// constant time so that a peer guessing learns nothing from the timing
/// (only the lengths are compared plainly). An empty secret matches
/// nothing.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    // memcmp::eq is constant-time but asserts equal lengths.
    !a.is_empty() && a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

/// A uuid4-style nonce as Salt sends (`uuid.uuid4().hex`): 32 lowercase hex.
pub fn new_nonce() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    hex::encode(b)
}

#[cfg(test)]
mod tests;
