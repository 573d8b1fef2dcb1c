//! The key a master writes for each local user allowed to publish
//! (`cachedir/.<user>_key`), which Salt's LocalClient sends with its clear
//! requests.

use std::path::Path;

use brine_config::MasterConfig;

use crate::ClientError;

/// A user name and the key that authenticates it to the master.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKey {
    user: String,
    key: String,
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserKey")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Salt's `get_specific_user`: the effective user, or `sudo_<SUDO_USER>`
/// for root under sudo.
fn specific_user() -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into());
    if me == "root" {
        if let Some(sudo) = std::env::var_os("SUDO_USER") {
            return format!("sudo_{}", sudo.to_string_lossy());
        }
    }
    me
}

impl UserKey {
    pub fn new(user: &str, key: &str) -> UserKey {
        UserKey {
            user: user.to_string(),
            key: key.trim().to_string(),
        }
    }

    /// The key of whoever runs this process, as Salt's LocalClient finds it:
    /// the requests name the user (`sudo_<name>` under sudo); the key file
    /// is the master user's for root and sudo users, else the user's own.
    pub fn current(cfg: &MasterConfig) -> Result<UserKey, ClientError> {
        let user = specific_user();
        let key_user = if user == "root" || user.starts_with("sudo_") {
            cfg.user.as_str()
        } else {
            user.as_str()
        };
        let key = read(cfg, key_user)?;
        Ok(UserKey { user, key })
    }

    /// The key of `user` (the master's own user, for requests the master
    /// makes to itself).
    pub fn of_user(cfg: &MasterConfig, user: &str) -> Result<UserKey, ClientError> {
        Ok(UserKey {
            user: user.to_string(),
            key: read(cfg, user)?,
        })
    }

    /// `user` with the key in `path` (a copy of a `.<user>_key` file).
    pub fn from_file(path: &Path, user: &str) -> Result<UserKey, ClientError> {
        let key = std::fs::read_to_string(path).map_err(|source| ClientError::UserKey {
            path: path.to_path_buf(),
            master_user: user.to_string(),
            source,
        })?;
        Ok(UserKey::new(user, &key))
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether `other` is this key (compared in constant time).
    pub fn matches(&self, other: &str) -> bool {
        brine_proto::crypto::secret_eq(self.key.as_bytes(), other.trim().as_bytes())
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

fn read(cfg: &MasterConfig, key_user: &str) -> Result<String, ClientError> {
    // A user name is a file name here: refuse one that would leave cachedir.
    let path = cfg
        .cachedir
        .join(format!(".{}_key", key_user.replace(['/', '\0'], "_")));
    match std::fs::read_to_string(&path) {
        Ok(k) => Ok(k.trim().to_string()),
        Err(source) => Err(ClientError::UserKey {
            path,
            master_user: cfg.user.clone(),
            source,
        }),
    }
}
