use openssl::bn::BigNum;
use openssl::encrypt::{Decrypter, Encrypter};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{Signer, Verifier};

use super::{x931, CryptoError};

/// Salt's OAEP variants (`enc_algo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncAlgo {
    OaepSha1,
    OaepSha224,
}

/// Salt's PKCS#1 v1.5 signature variants (`sig_algo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlgo {
    Pkcs1v15Sha1,
    Pkcs1v15Sha224,
}

impl std::str::FromStr for EncAlgo {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        match s {
            "OAEP-SHA1" => Ok(EncAlgo::OaepSha1),
            "OAEP-SHA224" => Ok(EncAlgo::OaepSha224),
            other => Err(CryptoError::UnsupportedAlgorithm(other.to_string())),
        }
    }
}

impl EncAlgo {
    pub fn as_str(self) -> &'static str {
        match self {
            EncAlgo::OaepSha1 => "OAEP-SHA1",
            EncAlgo::OaepSha224 => "OAEP-SHA224",
        }
    }
    fn md(self) -> MessageDigest {
        match self {
            EncAlgo::OaepSha1 => MessageDigest::sha1(),
            EncAlgo::OaepSha224 => MessageDigest::sha224(),
        }
    }
}

impl std::str::FromStr for SigAlgo {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        match s {
            "PKCS1v15-SHA1" => Ok(SigAlgo::Pkcs1v15Sha1),
            "PKCS1v15-SHA224" => Ok(SigAlgo::Pkcs1v15Sha224),
            other => Err(CryptoError::UnsupportedAlgorithm(other.to_string())),
        }
    }
}

impl SigAlgo {
    pub fn as_str(self) -> &'static str {
        match self {
            SigAlgo::Pkcs1v15Sha1 => "PKCS1v15-SHA1",
            SigAlgo::Pkcs1v15Sha224 => "PKCS1v15-SHA224",
        }
    }
    fn md(self) -> MessageDigest {
        match self {
            SigAlgo::Pkcs1v15Sha1 => MessageDigest::sha1(),
            SigAlgo::Pkcs1v15Sha224 => MessageDigest::sha224(),
        }
    }
}

#[derive(Clone)]
pub struct PrivateKey {
    rsa: Rsa<Private>,
    pkey: PKey<Private>,
}

#[derive(Clone)]
pub struct PublicKey {
    rsa: Rsa<Public>,
    pkey: PKey<Public>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bits)", self.rsa.size() * 8)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits)", self.rsa.size() * 8)
    }
}

impl PrivateKey {
    /// A new key, e = 65537 (`gen_keys`).
    pub fn generate(bits: u32) -> Result<PrivateKey, CryptoError> {
        PrivateKey::from_rsa(Rsa::generate(bits)?)
    }

    fn from_rsa(rsa: Rsa<Private>) -> Result<PrivateKey, CryptoError> {
        let pkey = PKey::from_rsa(rsa.clone())?;
        Ok(PrivateKey { rsa, pkey })
    }

    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`, optionally with `Proc-Type:
    /// 4,ENCRYPTED`) or PKCS#8 (`BEGIN [ENCRYPTED] PRIVATE KEY`), as
    /// `load_pem_private_key` reads `master.pem` with `key_pass`. An
    /// encrypted key without a passphrase is an error (never a terminal
    /// prompt); a passphrase given for a plain key is ignored. The key is
    /// checked for consistency (a pairwise sign/verify test), as
    /// `cryptography` checks keys on load. An empty
    /// passphrase means none (Salt tests `if passphrase:`).
    pub fn from_pem(pem: &[u8], passphrase: Option<&[u8]>) -> Result<PrivateKey, CryptoError> {
        let pkey = match passphrase.filter(|p| !p.is_empty()) {
            Some(p) => PKey::private_key_from_pem_callback(pem, |buf| {
                if p.len() > buf.len() {
                    return Err(ErrorStack::get());
                }
                buf[..p.len()].copy_from_slice(p);
                Ok(p.len())
            })?,
            None => PKey::private_key_from_pem_callback(pem, |_| Err(ErrorStack::get()))?,
        };
        let rsa = pkey
            .rsa()
            .map_err(|_| CryptoError::InvalidKey("not an RSA key".into()))?;
        let key = PrivateKey::from_rsa(rsa)?;
        key.pairwise_check()?;
        Ok(key)
    }

    /// A pairwise consistency test (sign, then verify with the public
    /// half), as FIPS 140 asks of a loaded key: it catches a damaged
    /// private exponent or CRT parameter in ~0.3 ms, where RSA_check_key's
    /// primality tests cost ~80 ms a start for the same purpose.
    fn pairwise_check(&self) -> Result<(), CryptoError> {
        const PROBE: &[u8] = b"brine pairwise consistency test";
        let ok = self
            .sign(SigAlgo::Pkcs1v15Sha1, PROBE)
            .and_then(|sig| self.public_key().verify(SigAlgo::Pkcs1v15Sha1, PROBE, &sig))
            .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(CryptoError::InvalidKey("inconsistent RSA key".into()))
        }
    }

    /// An unencrypted PEM key this program wrote itself (e.g. a load
    /// generator's key cache), loaded without [`PrivateKey::from_pem`]'s
    /// consistency check: the primality tests cost ~30 ms a key.
    pub fn from_pem_trusted(pem: &[u8]) -> Result<PrivateKey, CryptoError> {
        let pkey = PKey::private_key_from_pem_callback(pem, |_| Err(ErrorStack::get()))?;
        let rsa = pkey
            .rsa()
            .map_err(|_| CryptoError::InvalidKey("not an RSA key".into()))?;
        PrivateKey::from_rsa(rsa)
    }

    /// `-----BEGIN RSA PRIVATE KEY-----` (TraditionalOpenSSL, 64-column
    /// base64, trailing newline), byte-identical to `gen_keys`'s master.pem.
    pub fn to_pem_pkcs1(&self) -> Result<Vec<u8>, CryptoError> {
        Ok(self.rsa.private_key_to_pem()?)
    }

    /// `gen_keys` with a passphrase (`key_pass`, non-FIPS):
    /// TraditionalOpenSSL under `BestAvailableEncryption`, i.e. a PKCS#1
    /// PEM with `Proc-Type: 4,ENCRYPTED` / `DEK-Info: AES-256-CBC,…`.
    pub fn to_pem_pkcs1_encrypted(&self, passphrase: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(self
            .rsa
            .private_key_to_pem_passphrase(openssl::symm::Cipher::aes_256_cbc(), passphrase)?)
    }

    pub fn public_key(&self) -> PublicKey {
        let rsa = Rsa::from_public_components(
            self.rsa.n().to_owned().expect("bignum copy"),
            self.rsa.e().to_owned().expect("bignum copy"),
        )
        .expect("public components of a valid key");
        PublicKey::from_rsa(rsa).expect("public key from a valid key")
    }

    /// `k` = `RSA_size`: the modulus length in bytes.
    pub fn size_bytes(&self) -> usize {
        self.rsa.size() as usize
    }

    /// RSAES-OAEP decryption, MGF1 with the same hash, empty label.
    pub fn decrypt_oaep(&self, algo: EncAlgo, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut d = Decrypter::new(&self.pkey)?;
        d.set_rsa_padding(Padding::PKCS1_OAEP)?;
        d.set_rsa_oaep_md(algo.md())?;
        d.set_rsa_mgf1_md(algo.md())?;
        let mut out = vec![0u8; d.decrypt_len(data)?];
        let n = d.decrypt(data, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// RSASSA-PKCS1-v1_5 over `data` (hashed here with the algorithm's digest).
    pub fn sign(&self, algo: SigAlgo, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut s = Signer::new(algo.md(), &self.pkey)?;
        s.set_rsa_padding(Padding::PKCS1)?;
        s.update(data)?;
        Ok(s.sign_to_vec()?)
    }

    /// Salt's `PrivateKey.encrypt` (`RSA_private_encrypt(…,
    /// RSA_X931_PADDING)`): X9.31 block, `s = m^d mod n`, output
    /// `min(s, n − s)` as `k` big-endian bytes. `msg` is at most `k − 2` bytes.
    pub fn x931_encrypt(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.size_bytes();
        let block = x931::pad(msg, k)?;
        let mut raw = vec![0u8; k];
        self.rsa.private_encrypt(&block, &mut raw, Padding::NONE)?;
        let s = BigNum::from_slice(&raw)?;
        let mut other = BigNum::new()?;
        other.checked_sub(self.rsa.n(), &s)?;
        let min = if s > other { other } else { s };
        Ok(min.to_vec_padded(k as i32)?)
    }
}

impl PublicKey {
    fn from_rsa(rsa: Rsa<Public>) -> Result<PublicKey, CryptoError> {
        let pkey = PKey::from_rsa(rsa.clone())?;
        Ok(PublicKey { rsa, pkey })
    }

    /// SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA
    /// PUBLIC KEY`), with or without the trailing newline (stored minion
    /// keys are `clean_key`ed), as `load_pem_public_key` accepts.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, CryptoError> {
        let rsa = match Rsa::public_key_from_pem(pem) {
            Ok(r) => r,
            Err(_) => Rsa::public_key_from_pem_pkcs1(pem)?,
        };
        PublicKey::from_rsa(rsa)
    }

    /// `-----BEGIN PUBLIC KEY-----` (64-column base64, trailing newline),
    /// byte-identical to `gen_keys`'s master.pub.
    pub fn to_pem_spki(&self) -> Result<Vec<u8>, CryptoError> {
        Ok(self.rsa.public_key_to_pem()?)
    }

    /// `k` = `RSA_size`: the modulus length in bytes.
    pub fn size_bytes(&self) -> usize {
        self.rsa.size() as usize
    }

    /// RSAES-OAEP encryption (random), MGF1 with the same hash, empty label.
    pub fn encrypt_oaep(&self, algo: EncAlgo, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut e = Encrypter::new(&self.pkey)?;
        e.set_rsa_padding(Padding::PKCS1_OAEP)?;
        e.set_rsa_oaep_md(algo.md())?;
        e.set_rsa_mgf1_md(algo.md())?;
        let mut out = vec![0u8; e.encrypt_len(data)?];
        let n = e.encrypt(data, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// `Ok(false)` for any signature that does not verify (wrong length,
    /// wrong key, tampered data), as Salt's `PublicKey.verify` returns False.
    pub fn verify(&self, algo: SigAlgo, data: &[u8], sig: &[u8]) -> Result<bool, CryptoError> {
        let mut v = Verifier::new(algo.md(), &self.pkey)?;
        v.set_rsa_padding(Padding::PKCS1)?;
        v.update(data)?;
        Ok(v.verify(sig).unwrap_or(false))
    }

    /// Salt's `PublicKey.decrypt` (`RSA_public_decrypt(…, RSA_X931_PADDING)`):
    /// `m = s^e mod n`; if `m & 0xF != 12` then `m = n − m`; strip the
    /// X9.31 padding. Like libcrypto, a signature shorter than `k` bytes is
    /// read as a big-endian number; longer ones, values ≥ n and bad padding
    /// are errors.
    pub fn x931_decrypt(&self, sig: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.size_bytes();
        if sig.len() > k {
            return Err(CryptoError::BadLength);
        }
        let mut input = vec![0u8; k];
        input[k - sig.len()..].copy_from_slice(sig);
        let mut raw = vec![0u8; k];
        self.rsa.public_decrypt(&input, &mut raw, Padding::NONE)?;
        let block = if raw[k - 1] & 0x0f == 12 {
            raw
        } else {
            let m = BigNum::from_slice(&raw)?;
            let mut other = BigNum::new()?;
            other.checked_sub(self.rsa.n(), &m)?;
            other.to_vec_padded(k as i32)?
        };
        Ok(x931::unpad(&block)?.to_vec())
    }
}
