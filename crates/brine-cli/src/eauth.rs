//! How `salt` and `salt-run` authenticate to the master, in Salt's
//! order: a saved token (`-T` earlier) for a user who cannot read root's
//! key in cachedir (with it, the user key wins, even over `-a`); eauth
//! credentials (`-a BACKEND`, `--username`, `--password`, prompted for
//! when missing), exchanged for a token first and saved with `-T`; else
//! the key the master keeps for the local user in cachedir.

use std::io::{BufRead, Write};

use brine_client::{LocalClient, UserKey};
use brine_config::MasterConfig;

/// The eauth options of Salt's CLIs.
#[derive(Debug, Default)]
pub struct EauthOpts {
    pub eauth: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub make_token: bool,
}

impl EauthOpts {
    /// Take `flag` if it is one of the eauth options (`value` reads its
    /// argument); whether it was.
    pub fn take(&mut self, flag: &str, mut value: impl FnMut(&str) -> Result<String, String>) -> Result<bool, String> {
        match flag {
            "-a" | "--auth" | "--eauth" | "--external-auth" => self.eauth = Some(value(flag)?),
            "--username" => self.username = Some(value(flag)?),
            "--password" => self.password = Some(value(flag)?),
            "-T" | "--make-token" => self.make_token = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A line typed at the terminal after `prompt` (the password without
/// echo when stdin is a terminal).
fn ask(prompt: &str, secret: bool) -> String {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data, read and written for our own stdin.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        (secret && libc::isatty(fd) == 1 && libc::tcgetattr(fd, &mut t) == 0).then_some(t)
    };
    if let Some(t) = saved {
        let mut quiet = t;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: as above; the terminal gets its echo back.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
        eprintln!();
    }
    line.trim_end_matches(['\r', '\n']).to_string()
}

/// Why a CLI could not authenticate, with the exit status Salt's gives.
pub struct Refused {
    pub message: String,
    pub status: i32,
}

/// The client for `cfg` authenticated as Salt's CLIs do.
pub fn client(cfg: &MasterConfig, o: &EauthOpts) -> Result<LocalClient, Refused> {
    let key = UserKey::current(cfg);
    // A saved token is used by whoever cannot read root's key; whoever
    // can goes by key, `-a` or not (Salt's CLIs check `.root_key`).
    let saved = brine_client::token::saved(cfg);
    if let Some(tok) = &saved {
        if std::fs::File::open(cfg.cachedir.join(".root_key")).is_err() {
            let user = brine_config::current_user();
            return Ok(LocalClient::from_config(cfg, UserKey::new(&user, "")).with_token(tok));
        }
    }
    let eauth = o.eauth.as_ref().filter(|_| saved.is_none());
    let Some(eauth) = eauth else {
        return key.map(|k| LocalClient::from_config(cfg, k)).map_err(|e| Refused {
            message: e.to_string(),
            status: 2,
        });
    };
    let mut username = o.username.clone().unwrap_or_else(|| ask("username: ", false));
    if username.is_empty() {
        username = brine_config::current_user();
    }
    let password = o.password.clone().unwrap_or_else(|| ask("password: ", true));
    // The key file is not needed for eauth, but the client holds one.
    let key = key.unwrap_or_else(|_| UserKey::new(&brine_config::current_user(), ""));
    let mut client = LocalClient::from_config(cfg, key);
    if o.make_token {
        match client.mk_token(eauth, &username, &password) {
            Ok(Some(tdata)) => {
                let tok = tdata.get("token").and_then(|t| t.as_str()).unwrap_or("").to_string();
                brine_client::token::save(cfg, &tok);
                return Ok(client.with_token(&tok));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(Refused {
                    message: e.to_string(),
                    status: 2,
                })
            }
        }
    }
    Ok(client.with_eauth(eauth, &username, &password))
}
