//! The master's own keys: `pki_dir/master.pem` (RSA `keysize`, PKCS#1 PEM,
//! mode 0400) and `master.pub` (SubjectPublicKeyInfo PEM, 0644), generated
//! at first start as Salt's `gen_keys` does; with `master_sign_pubkey`, the
//! signing key pair `<master_sign_key_name>.pem/.pub` (or the ready-made
//! signature file of `master_use_pubkey_signature`) that vouches for
//! master.pub in auth replies; and the AES key shared by every process.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use brine_config::MasterConfig;
use brine_proto::crypto::{PrivateKey, SigAlgo};
use brine_proto::Value;
use brine_py::clean_key;
use log::{debug, info};

/// The master's keys as the ProcessManager loads them once at start (the
/// children inherit them through fork).
pub struct Keys {
    /// master.pem.
    pub key: PrivateKey,
    /// `clean_key(master.pub)`: the `pub_key` of auth replies.
    pub public: String,
    /// With `master_sign_pubkey`: what makes the `pub_sig` of auth replies.
    pub pub_sig: Option<PubkeySignature>,
}

/// How the master signs its public key for minions that verify it
/// (`verify_master_pubkey_sign`), as Salt's `MasterKeys` sets it up.
#[derive(Clone)]
pub enum PubkeySignature {
    /// `master_use_pubkey_signature`: the signature file
    /// (`master_pubkey_signature`, made by `salt-key --gen-signature`),
    /// `clean_key`ed, sent as the string it is.
    File(String),
    /// The signing key pair's private half (`<master_sign_key_name>.pem`).
    Key(PrivateKey),
}

/// The master's key pair as loaded once by the ProcessManager.
pub type MasterKeys = std::rc::Rc<Keys>;

impl PubkeySignature {
    /// The `pub_sig` of an accepted auth reply whose `pub_key` is `public`
    /// (`clean_key` of master.pub), to a minion that asked for `algo`. As
    /// Salt's `_auth`: the signing key signs the `pub_key` text with the
    /// minion's `sig_algo` (PKCS#1 v1.5, deterministic), sent as
    /// `binascii.b2a_base64` makes it (bytes, with a trailing newline); a
    /// signature file is sent as read, whatever the algorithm.
    pub fn sign(&self, public: &str, algo: SigAlgo) -> Result<Value, String> {
        match self {
            PubkeySignature::File(sig) => Ok(Value::from(sig.clone())),
            PubkeySignature::Key(key) => {
                let sig = key.sign(algo, public.as_bytes()).map_err(|e| e.to_string())?;
                let mut b64 = openssl::base64::encode_block(&sig).into_bytes();
                b64.push(b'\n');
                Ok(Value::Bytes(b64))
            }
        }
    }
}

/// Load the master's keys, generating master.pem/master.pub (and, with
/// `master_sign_pubkey`, the signing key pair) when missing.
pub fn ensure_master_keys(cfg: &MasterConfig) -> Result<Keys, String> {
    let key = ensure_key_pair(cfg, "master", cfg.get_str("key_pass"))?;
    let pub_path = cfg.pki_dir.join("master.pub");
    let public = std::fs::read_to_string(&pub_path).map_err(|e| format!("cannot read {}: {e}", pub_path.display()))?;
    Ok(Keys {
        key,
        public: clean_key(&public),
        pub_sig: pubkey_signature(cfg)?,
    })
}

/// What signs master.pub with `master_sign_pubkey` (Salt's `MasterKeys`):
/// the signature file when `master_use_pubkey_signature` (its absence stops
/// the master, as in Salt), else the signing key pair, made when missing.
fn pubkey_signature(cfg: &MasterConfig) -> Result<Option<PubkeySignature>, String> {
    if !cfg.get_bool("master_sign_pubkey").unwrap_or(false) {
        return Ok(None);
    }
    if cfg.get_bool("master_use_pubkey_signature").unwrap_or(false) {
        let name = cfg
            .get_str("master_pubkey_signature")
            .unwrap_or("master_pubkey_signature");
        let path = cfg.pki_dir.join(name);
        let sig = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "Signing the master.pub key with a signature is enabled but no signature file found at the defined location {} ({e}); \
                 the signature-file may be either named differently or has to be created with 'salt-key --gen-signature'",
                path.display()
            )
        })?;
        info!("Read master.pub's signature from {name}");
        return Ok(Some(PubkeySignature::File(clean_key(&sig))));
    }
    let name = cfg.get_str("master_sign_key_name").unwrap_or("master_sign");
    // Salt generates the signing key without a passphrase and signs with
    // `signing_key_pass`; a passphrase given for a plain key is ignored
    // here, so either kind of key loads.
    let key = ensure_key_pair(cfg, name, cfg.get_str("signing_key_pass"))?;
    Ok(Some(PubkeySignature::Key(key)))
}

/// `pki_dir/<name>.pem` loaded with `passphrase`; when it is missing, a new
/// RSA `keysize` key written there (PKCS#1, 0400, unencrypted) as Salt's
/// `gen_keys` does, and `<name>.pub` (SubjectPublicKeyInfo, 0644) written
/// when missing.
fn ensure_key_pair(cfg: &MasterConfig, name: &str, passphrase: Option<&str>) -> Result<PrivateKey, String> {
    let pem_path = cfg.pki_dir.join(format!("{name}.pem"));
    let pub_path = cfg.pki_dir.join(format!("{name}.pub"));
    let key = if pem_path.exists() {
        let pem = std::fs::read(&pem_path).map_err(|e| format!("cannot read {}: {e}", pem_path.display()))?;
        let key = PrivateKey::from_pem(&pem, passphrase.map(str::as_bytes))
            .map_err(|e| format!("cannot load {}: {e}", pem_path.display()))?;
        debug!("Loaded {name} key: {}", pem_path.display());
        key
    } else {
        let bits = cfg.get_u64("keysize").unwrap_or(2048) as u32;
        info!("generating a {bits}-bit {name} key in {}", pem_path.display());
        let key = PrivateKey::generate(bits).map_err(|e| e.to_string())?;
        write_file(&pem_path, &key.to_pem_pkcs1().map_err(|e| e.to_string())?, 0o400)?;
        key
    };
    if !pub_path.exists() {
        write_file(
            &pub_path,
            &key.public_key().to_pem_spki().map_err(|e| e.to_string())?,
            0o644,
        )?;
    }
    Ok(key)
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `cachedir/.<user>_key` for the users whose key the master accepts
/// (Salt's `access_keys`): the master's user, root when started as root,
/// and each user named in `publisher_acl` who exists on the host (with
/// `client_acl_verify`, Salt's default; without it, any name). The key
/// local CLIs present with `publish`, mode 0600, owned by that user.
/// Existing files are kept, as Salt 3007 does, so running CLIs keep
/// working across a restart. With `publisher_acl` or `external_auth`
/// set, `cachedir` gets the others-execute bit so non-root users can
/// reach their key file (Salt does the same).
pub fn ensure_user_keys(cfg: &MasterConfig) -> Result<(), String> {
    let me = nix::unistd::Uid::effective();
    let verify = cfg.get_bool("client_acl_verify").unwrap_or(true);
    let users: Vec<String> = brine_auth::key_users(cfg)
        .into_iter()
        .filter(|u| {
            if *u == "root" {
                // Root's key only when the master starts as root.
                return me.is_root();
            }
            *u == cfg.user || !verify || nix::unistd::User::from_name(u).ok().flatten().is_some()
        })
        .collect();
    let acl_set = |k: &str| cfg.get(k).is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()));
    if acl_set("publisher_acl") || acl_set("external_auth") {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&cfg.cachedir) {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o001 == 0 {
                if let Err(e) = std::fs::set_permissions(&cfg.cachedir, std::fs::Permissions::from_mode(mode | 0o001)) {
                    log::warn!(
                        "Unable to set traversal permissions on cachedir {}: {e}",
                        cfg.cachedir.display()
                    );
                }
            }
        }
    }
    for user in users {
        let path = cfg.cachedir.join(format!(".{user}_key"));
        if path.exists() {
            continue;
        }
        let key = brine_proto::crypto::Crypticle::generate_key_string();
        write_file(&path, key.as_bytes(), 0o600)?;
        if me.is_root() {
            if let Ok(Some(u)) = nix::unistd::User::from_name(&user) {
                nix::unistd::chown(&path, Some(u.uid), Some(u.gid))
                    .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pub_sig_is_base64_of_a_pkcs1_signature_of_the_pub_key_text_with_a_newline() {
        let key = PrivateKey::generate(2048).unwrap();
        let public = "-----BEGIN PUBLIC KEY-----\nMIIB...\n-----END PUBLIC KEY-----";
        for algo in [SigAlgo::Pkcs1v15Sha1, SigAlgo::Pkcs1v15Sha224] {
            let Value::Bytes(b64) = PubkeySignature::Key(key.clone()).sign(public, algo).unwrap() else {
                panic!("pub_sig is bytes, as binascii.b2a_base64 returns");
            };
            assert_eq!(b64.last(), Some(&b'\n'));
            assert!(!b64[..b64.len() - 1].contains(&b'\n'), "one line");
            let sig = openssl::base64::decode_block(std::str::from_utf8(&b64[..b64.len() - 1]).unwrap()).unwrap();
            assert!(key.public_key().verify(algo, public.as_bytes(), &sig).unwrap());
        }
        let file = PubkeySignature::File("c2ln".into());
        assert_eq!(file.sign(public, SigAlgo::Pkcs1v15Sha224).unwrap(), Value::from("c2ln"));
    }
}
