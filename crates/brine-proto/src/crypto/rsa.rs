use openssl::bn::BigNum;
use openssl::encrypt::{Decrypter, Encrypter};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{Signer, Verifier};

use super::CryptoError;

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

    /// PKCS#1 or PKCS#8 PEM, optionally passphrase-protected (`key_pass`).
    pub fn from_pem(pem: &[u8], passphrase: Option<&[u8]>) -> Result<PrivateKey, CryptoError> {
        let pkey = match passphrase {
            Some(p) => PKey::private_key_from_pem_passphrase(pem, p)?,
            None => PKey::private_key_from_pem(pem)?,
        };
        PrivateKey::from_rsa(pkey.rsa()?)
    }

    /// `-----BEGIN RSA PRIVATE KEY-----` (TraditionalOpenSSL), as Salt writes master.pem.
    pub fn to_pem_pkcs1(&self) -> Result<Vec<u8>, CryptoError> {
        Ok(self.rsa.private_key_to_pem()?)
    }

    pub fn public_key(&self) -> PublicKey {
        let rsa = Rsa::from_public_components(
            self.rsa.n().to_owned().expect("bignum copy"),
            self.rsa.e().to_owned().expect("bignum copy"),
        )
        .expect("public components of a valid key");
        PublicKey::from_rsa(rsa).expect("public key from a valid key")
    }

    pub fn size_bytes(&self) -> usize {
        self.rsa.size() as usize
    }

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

    pub fn sign(&self, algo: SigAlgo, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut s = Signer::new(algo.md(), &self.pkey)?;
        s.set_rsa_padding(Padding::PKCS1)?;
        s.update(data)?;
        Ok(s.sign_to_vec()?)
    }

    /// Salt's `PrivateKey.encrypt`: X9.31-padded raw RSA, `min(s, n − s)`.
    pub fn x931_encrypt(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.size_bytes();
        if msg.len() + 2 > k {
            return Err(CryptoError::TooLong);
        }
        let j = k - msg.len() - 2;
        let mut block = Vec::with_capacity(k);
        if j == 0 {
            block.push(0x6a);
        } else {
            block.push(0x6b);
            block.extend(std::iter::repeat_n(0xbb, j - 1));
            block.push(0xba);
        }
        block.extend_from_slice(msg);
        block.push(0xcc);
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

    /// SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, CryptoError> {
        let rsa = match Rsa::public_key_from_pem(pem) {
            Ok(r) => r,
            Err(_) => Rsa::public_key_from_pem_pkcs1(pem)?,
        };
        PublicKey::from_rsa(rsa)
    }

    /// `-----BEGIN PUBLIC KEY-----`, as Salt writes master.pub.
    pub fn to_pem_spki(&self) -> Result<Vec<u8>, CryptoError> {
        Ok(self.rsa.public_key_to_pem()?)
    }

    pub fn size_bytes(&self) -> usize {
        self.rsa.size() as usize
    }

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

    pub fn verify(&self, algo: SigAlgo, data: &[u8], sig: &[u8]) -> Result<bool, CryptoError> {
        let mut v = Verifier::new(algo.md(), &self.pkey)?;
        v.set_rsa_padding(Padding::PKCS1)?;
        v.update(data)?;
        Ok(v.verify(sig).unwrap_or(false))
    }

    /// Salt's `PublicKey.decrypt`: undo [`PrivateKey::x931_encrypt`].
    pub fn x931_decrypt(&self, sig: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.size_bytes();
        if sig.len() != k {
            return Err(CryptoError::BadLength);
        }
        let mut raw = vec![0u8; k];
        self.rsa.public_decrypt(sig, &mut raw, Padding::NONE)?;
        let mut m = BigNum::from_slice(&raw)?;
        let low = raw[k - 1];
        if low & 0x0f != 12 {
            let mut other = BigNum::new()?;
            other.checked_sub(self.rsa.n(), &m)?;
            m = other;
        }
        let block = m.to_vec_padded(k as i32)?;
        // 6A ‖ msg ‖ CC  or  6B BB… BA ‖ msg ‖ CC
        let body = match block.first() {
            Some(0x6a) => &block[1..],
            Some(0x6b) => {
                let mut i = 1;
                while i < block.len() && block[i] == 0xbb {
                    i += 1;
                }
                if block.get(i) != Some(&0xba) {
                    return Err(CryptoError::BadPadding);
                }
                &block[i + 1..]
            }
            _ => return Err(CryptoError::BadPadding),
        };
        match body.split_last() {
            Some((0xcc, msg)) => Ok(msg.to_vec()),
            _ => Err(CryptoError::BadPadding),
        }
    }
}
