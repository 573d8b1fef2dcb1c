//! The connection options of Salt's `pgjsonb` returner, read from the
//! master configuration as Salt's `get_returner_options` reads them:
//! `returner.pgjsonb.<opt>` as a key of its own, or `<opt>` inside a
//! `returner.pgjsonb` mapping. Brine also reads the shorter `pgjsonb.<opt>`
//! and `pgjsonb: {<opt>: ...}` forms, after those. Salt's defaults:
//! host `localhost`, user, password and database `salt`, port 5432.

use std::path::PathBuf;
use std::time::Duration;

use brine_config::MasterConfig;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use postgres::config::SslMode;
use postgres_openssl::MakeTlsConnector;
use serde_json::Value as Json;

use crate::CacheError;

/// How long a connection attempt may take when `connect_timeout` is not
/// set. libpq waits for the system's TCP timeout; a master should not
/// stall a writer or a runner that long on a database that is gone.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to reach the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    pub host: String,
    pub port: u16,
    pub db: String,
    pub user: String,
    pub pass: String,
    pub connect_timeout: Duration,
    /// libpq's `sslmode`: disable, allow, prefer, require, verify-ca,
    /// verify-full; unset is no TLS, as Salt's None.
    pub sslmode: Option<String>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub sslrootcert: Option<PathBuf>,
}

/// One option's value: the first of Salt's places that holds a
/// non-empty one.
fn lookup<'a>(cfg: &'a MasterConfig, name: &str) -> Option<&'a Json> {
    let flat = |prefix: &str| cfg.get(&format!("{prefix}.{name}"));
    let nested = |prefix: &str| cfg.get(prefix).and_then(|m| m.get(name));
    [
        flat("returner.pgjsonb"),
        nested("returner.pgjsonb"),
        flat("pgjsonb"),
        nested("pgjsonb"),
    ]
    .into_iter()
    .flatten()
    .find(|v| !v.is_null() && v.as_str() != Some(""))
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl PgOptions {
    pub fn from_config(cfg: &MasterConfig) -> Result<PgOptions, CacheError> {
        let s = |name: &str, default: &str| lookup(cfg, name).map(text).unwrap_or_else(|| default.to_string());
        let opt = |name: &str| lookup(cfg, name).map(text).filter(|v| v != "None");
        let int = |name: &str| -> Result<Option<u64>, CacheError> {
            match lookup(cfg, name) {
                None => Ok(None),
                Some(v) => brine_py::int(v)
                    .and_then(|n| u64::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| CacheError::Backend(format!("pgjsonb: {name} is not a number: {v}"))),
            }
        };
        let port = int("port")?.unwrap_or(5432);
        let port =
            u16::try_from(port).map_err(|_| CacheError::Backend(format!("pgjsonb: port {port} is out of range")))?;
        Ok(PgOptions {
            host: s("host", "localhost"),
            port,
            db: s("db", "salt"),
            user: s("user", "salt"),
            pass: s("pass", "salt"),
            connect_timeout: int("connect_timeout")?
                .filter(|t| *t > 0)
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            sslmode: opt("sslmode"),
            sslcert: opt("sslcert").map(PathBuf::from),
            sslkey: opt("sslkey").map(PathBuf::from),
            sslrootcert: opt("sslrootcert").map(PathBuf::from),
        })
    }

    /// `user@host:port/db`, for log lines (never the password).
    pub fn describe(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.db)
    }

    /// A new connection, with TLS as `sslmode` asks (libpq's meanings:
    /// `require` encrypts without checking the server's certificate unless
    /// `sslrootcert` is given, `verify-ca` checks it against `sslrootcert`,
    /// `verify-full` checks the host name too).
    pub fn connect(&self, application: &str) -> Result<postgres::Client, String> {
        let mut c = postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.db)
            .user(&self.user)
            .password(&self.pass)
            .application_name(application)
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(60));
        let mode = self.sslmode.as_deref().unwrap_or("disable").to_ascii_lowercase();
        let (ssl, verify, hostname) = match mode.as_str() {
            "disable" => (SslMode::Disable, false, false),
            "allow" | "prefer" => (SslMode::Prefer, false, false),
            "require" => (SslMode::Require, self.sslrootcert.is_some(), false),
            "verify-ca" => (SslMode::Require, true, false),
            _ => (SslMode::Require, true, true),
        };
        c.ssl_mode(ssl);
        let connected = if ssl == SslMode::Disable {
            c.connect(postgres::NoTls)
        } else {
            let tls = self.tls(verify, hostname).map_err(|e| format!("TLS settings: {e}"))?;
            c.connect(tls)
        };
        connected.map_err(|e| e.to_string())
    }

    fn tls(&self, verify: bool, hostname: bool) -> Result<MakeTlsConnector, openssl::error::ErrorStack> {
        let mut b = SslConnector::builder(SslMethod::tls())?;
        if let Some(ca) = &self.sslrootcert {
            b.set_ca_file(ca)?;
        }
        if let Some(cert) = &self.sslcert {
            b.set_certificate_file(cert, SslFiletype::PEM)?;
        }
        if let Some(key) = &self.sslkey {
            b.set_private_key_file(key, SslFiletype::PEM)?;
        }
        b.set_verify(if verify {
            SslVerifyMode::PEER
        } else {
            SslVerifyMode::NONE
        });
        let mut tls = MakeTlsConnector::new(b.build());
        if !hostname {
            tls.set_callback(|conf, _| {
                conf.set_verify_hostname(false);
                Ok(())
            });
        }
        Ok(tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn opts(v: serde_json::Value) -> PgOptions {
        let serde_json::Value::Object(o) = v else {
            unreachable!()
        };
        PgOptions::from_config(&MasterConfig::from_overrides(Path::new("/etc/salt"), o).unwrap()).unwrap()
    }

    #[test]
    fn salt_defaults() {
        let o = opts(serde_json::json!({}));
        assert_eq!(o.describe(), "salt@localhost:5432/salt");
        assert_eq!(o.pass, "salt");
        assert_eq!(o.sslmode, None);
        assert_eq!(o.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn salt_keys_win_over_the_short_ones() {
        let o = opts(serde_json::json!({
            "returner.pgjsonb.host": "db1",
            "returner.pgjsonb": {"port": "6432", "db": "jobs"},
            "pgjsonb.host": "ignored",
            "pgjsonb.user": "brine",
            "pgjsonb": {"pass": "secret", "db": "ignored"},
            "returner.pgjsonb.sslmode": "None",
            "returner.pgjsonb.connect_timeout": 2,
        }));
        assert_eq!(o.describe(), "brine@db1:6432/jobs");
        assert_eq!(o.pass, "secret");
        assert_eq!(o.sslmode, None);
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_bad_port_is_an_error() {
        let serde_json::Value::Object(o) = serde_json::json!({"returner.pgjsonb.port": "x"}) else {
            unreachable!()
        };
        let cfg = MasterConfig::from_overrides(Path::new("/etc/salt"), o).unwrap();
        assert!(PgOptions::from_config(&cfg).is_err());
    }
}
