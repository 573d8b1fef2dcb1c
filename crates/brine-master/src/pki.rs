//! The master's own keys: `pki_dir/master.pem` (RSA `keysize`, PKCS#1 PEM,
//! mode 0400) and `master.pub` (SubjectPublicKeyInfo PEM, 0644), generated
//! at first start as Salt's `gen_keys` does; and the AES key shared by
//! every process.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use brine_config::MasterConfig;
use brine_proto::crypto::PrivateKey;
use brine_py::clean_key;
use log::info;

/// Create master.pem/master.pub when missing.
/// Generate master.pem/master.pub when missing; the loaded pair.
pub fn ensure_master_keys(cfg: &MasterConfig) -> Result<(PrivateKey, String), String> {
    let pem_path = cfg.pki_dir.join("master.pem");
    let pub_path = cfg.pki_dir.join("master.pub");
    let key = if pem_path.exists() {
        load_private(cfg)?
    } else {
        let bits = cfg.get_u64("keysize").unwrap_or(2048) as u32;
        info!("generating a {bits}-bit master key in {}", pem_path.display());
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
    let public = std::fs::read_to_string(&pub_path).map_err(|e| format!("cannot read {}: {e}", pub_path.display()))?;
    Ok((key, clean_key(&public)))
}

fn write_file(path: &std::path::Path, data: &[u8], mode: u32) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn load_private(cfg: &MasterConfig) -> Result<PrivateKey, String> {
    let path = cfg.pki_dir.join("master.pem");
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let pass = cfg.get_str("key_pass").map(str::as_bytes);
    PrivateKey::from_pem(&pem, pass).map_err(|e| format!("cannot load {}: {e}", path.display()))
}

/// The master key and `clean_key(master.pub)`, for the request handlers.
/// The master's key pair as loaded once by the ProcessManager.
pub type MasterKeys = std::rc::Rc<(PrivateKey, String)>;

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
