//! A private PostgreSQL server for tests (the pgjsonb job cache): a fresh
//! cluster in a temp dir, started from Debian's binaries under
//! `/usr/lib/postgresql/<highest version>/bin`, listening on 127.0.0.1 on a
//! free port, its unix socket in the temp dir. PostgreSQL refuses to run
//! as root, so when the tests run as root (CI does) `initdb` and the
//! server run as Debian's `postgres` system user (set by `Command::uid`,
//! so the server is still our child, stopped by its pid).
//!
//! The superuser `postgres` is trusted (no password) over the socket and
//! 127.0.0.1; the role `salt` (password `salt`, LOGIN CREATEDB: Salt's
//! pgjsonb returner defaults) and any other role must give its password
//! over TCP (scram-sha-256), as on a real server.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// How long [`PgServer::start`] and [`PgServer::start_again`] wait for the
/// server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a fast shutdown may take before the server is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// A private PostgreSQL cluster and its running server (see the module
/// doc). Dropping it stops the server and removes the temp dir.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `Some((uid, gid))` of `postgres` when we run as root.
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
}

/// The `bin` dir of the highest PostgreSQL version under
/// `/usr/lib/postgresql` holding `initdb` and `postgres`; panics telling
/// to install Debian's `postgresql` when there is none.
fn pg_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let best = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version: Vec<u32> = name.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((version, bin))
        })
        .max();
    match best {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb): \
             install Debian's postgresql package (apt-get install postgresql; scripts/test does)"
        ),
    }
}

/// The uid and gid of the `postgres` system user, when we run as root.
fn postgres_user() -> Option<(u32, u32)> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .expect("look up the postgres user")
        .unwrap_or_else(|| {
            panic!(
                "running as root and there is no postgres system user to run PostgreSQL as: \
                 install Debian's postgresql package (apt-get install postgresql; scripts/test does)"
            )
        });
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// Quote `name` as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgServer {
    /// Create a cluster in a fresh temp dir (`initdb`, superuser
    /// `postgres`, UTF8, locale C), configure it (127.0.0.1 on a free
    /// port, socket in the temp dir, `max_connections=200`,
    /// `shared_buffers=128MB`, log in `<temp dir>/postgres.log`, all else
    /// default: fsync stays on), start the server, wait until it accepts
    /// connections (up to 60 s) and create the role `salt`. Panics with
    /// the server's log when any of it fails, and telling to install
    /// Debian's `postgresql` when its binaries are missing.
    pub fn start() -> PgServer {
        let bin = pg_bin_dir();
        let run_as = postgres_user();
        let dir = tempfile::Builder::new()
            .prefix("brine-pg-")
            .tempdir()
            .expect("a temp dir for PostgreSQL");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the temp dir to postgres");
        }
        let mut pg = PgServer {
            dir,
            bin,
            port: 0,
            run_as,
            child: None,
        };
        let data = pg.data_dir();
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth=trust",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = "# brine-testutil: the superuser is trusted, other roles give their password over TCP\n\
                   local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        let socket_dir = pg.dir.path().to_str().expect("a UTF-8 temp dir").to_owned();
        let conf = format!(
            "\n# brine-testutil\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = 200\n\
             shared_buffers = 128MB\n"
        );
        OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("configure postgresql.conf");
        // The port is free when we pick it, not necessarily when the
        // server binds it: another pick when it was taken meanwhile.
        for attempt in 1.. {
            pg.port = crate::free_port();
            OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .and_then(|mut f| writeln!(f, "port = {}", pg.port))
                .expect("set the port in postgresql.conf");
            match pg.spawn_and_wait() {
                Ok(()) => break,
                Err(e) if attempt < 5 && e.contains("could not bind") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        pg.psql("postgres", "CREATE ROLE salt LOGIN CREATEDB PASSWORD 'salt'");
        pg
    }

    /// A command running `name` from the PostgreSQL bin dir, as `postgres`
    /// when we are root, in the temp dir.
    fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(name));
        cmd.current_dir(self.dir.path()).env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            // Also drops root's supplementary groups (std does setgroups).
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Start the server on the data dir (its own process group, output
    /// appended to the log) and wait until it accepts connections. `Err`
    /// with the log when it exits or is not ready within 60 s (then it is
    /// killed).
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the PostgreSQL log");
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid)).expect("chown the log to postgres");
        }
        let err = log.try_clone().expect("the log's fd");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        let this_run = |pg: &PgServer| {
            let text = pg.log();
            text.get(log_start as usize..).unwrap_or(&text).to_owned()
        };
        loop {
            let child = self.child.as_mut().expect("the server");
            if let Some(status) = child.try_wait().expect("the server's status") {
                self.child = None;
                return Err(format!(
                    "PostgreSQL exited ({status}) before accepting connections on port {}; its log:\n{}",
                    self.port,
                    this_run(self)
                ));
            }
            if self.ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "PostgreSQL did not accept connections on port {} within {READY_TIMEOUT:?}; its log:\n{}",
                    self.port,
                    this_run(self)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server accepts connections on 127.0.0.1 (`pg_isready`).
    fn ready(&self) -> bool {
        crate::accepts(self.port)
            && Command::new(self.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-t",
                    "2",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-p",
                ])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The cluster's data dir (`<temp dir>/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The dir of the PostgreSQL binaries used (`psql`, `pg_dump`...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The pid of the running server (the postmaster), `None` when it is
    /// stopped.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server's log so far (every start of it), empty when none.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Create the database `name`, owned by `salt`. Panics when it fails.
    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {} OWNER salt", ident(name)));
    }

    /// Run `sql` in database `db` as the superuser over TCP (`psql -X -q
    /// -At -v ON_ERROR_STOP=1 -c sql`): its stdout, rows one a line,
    /// columns separated by `|`, no headers and no command tags. Panics
    /// with psql's stderr when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql -d {db} -c {sql:?} failed: {e}"))
    }

    /// [`PgServer::psql`], with `Err(stderr)` when psql fails.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-d", db, "-c", sql])
            .env_remove("PGPASSWORD")
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("{}{}", String::from_utf8_lossy(&out.stderr), out.status))
        }
    }

    /// Stop the server with a fast shutdown (SIGINT to its pid: clients
    /// are disconnected, a checkpoint is written) and wait for it to exit;
    /// SIGKILL when it takes more than 30 s. Nothing when it is stopped.
    pub fn stop(&mut self) {
        self.shutdown(Signal::SIGINT, STOP_GRACE);
    }

    /// Start the stopped (or killed) server again on the same data dir
    /// and port and wait until it accepts connections (after crash
    /// recovery when it was killed). Panics with its log when it fails,
    /// and when it is running.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "start_again: PostgreSQL is running (pid {:?})",
            self.pid()
        );
        self.spawn_and_wait().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Crash the server: SIGKILL to its process group (the postmaster
    /// and its backends, by the postmaster's pid) and wait for them to
    /// go. Nothing when it is stopped.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pgid = Pid::from_raw(child.id() as i32);
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait();
        wait_group_gone(pgid, Duration::from_secs(10));
    }

    /// `signal` to the server's pid, up to `grace` for it to exit, then
    /// SIGKILL to its process group.
    fn shutdown(&mut self, signal: Signal, grace: Duration) {
        let Some(mut child) = self.child.take() else { return };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, signal);
        let exited = crate::wait_until(grace, || child.try_wait().is_ok_and(|s| s.is_some()));
        if !exited {
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.wait();
        }
        // Backends leave before the postmaster does, unless it was killed.
        wait_group_gone(pid, Duration::from_secs(10));
    }
}

/// Wait up to `timeout` until no live (non-zombie) process is left in
/// process group `pgid`.
fn wait_group_gone(pgid: Pid, timeout: Duration) -> bool {
    let in_group = |pid: i32| {
        crate::stat_fields(pid)
            .is_some_and(|f| f.first().map(String::as_str) != Some("Z") && f.get(2) == Some(&pgid.to_string()))
    };
    crate::wait_until(timeout, || {
        std::fs::read_dir("/proc").map_or(true, |d| {
            !d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .any(in_group)
        })
    })
}

impl Drop for PgServer {
    /// Stop the server (SIGTERM to its pid, SIGKILL to its process group
    /// after 5 s) and remove the temp dir.
    fn drop(&mut self) {
        // SIGTERM is a "smart" shutdown, which waits for clients to
        // disconnect; a test dropping its server while a master still
        // holds connections gets the SIGKILL after the grace.
        self.shutdown(Signal::SIGTERM, Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_query_password_stop_restart_kill() {
        let mut pg = PgServer::start();
        assert_eq!(pg.host(), "127.0.0.1");
        assert!(pg.data_dir().join("PG_VERSION").is_file());
        assert!(pg.log().contains("ready to accept connections"), "{}", pg.log());
        if let Some((uid, _)) = pg.run_as {
            let meta = std::fs::metadata(format!("/proc/{}", pg.pid().unwrap())).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(meta.uid(), uid, "the server runs as postgres");
        }
        assert_eq!(pg.psql("postgres", "SHOW fsync").trim(), "on");
        assert_eq!(pg.psql("postgres", "SHOW max_connections").trim(), "200");
        assert_eq!(pg.psql("postgres", "SHOW listen_addresses").trim(), "127.0.0.1");

        pg.create_db("salt");
        pg.psql(
            "salt",
            "CREATE TABLE t (id int PRIMARY KEY, doc jsonb); INSERT INTO t VALUES (1, '{\"a\": 1}'), (2, '[]'); \
             ALTER TABLE t OWNER TO salt",
        );
        assert_eq!(pg.psql("salt", "SELECT id, doc->>'a' FROM t ORDER BY id"), "1|1\n2|\n");
        let owner = pg.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'salt'",
        );
        assert_eq!(owner.trim(), "salt");
        let err = pg.try_psql("salt", "SELECT * FROM missing").unwrap_err();
        assert!(err.contains("missing"), "{err}");

        // As salt over TCP: the password is checked.
        let as_salt = |password: &str| {
            Command::new(pg.bin_dir().join("psql"))
                .args(["-X", "-At", "-h", "127.0.0.1", "-U", "salt", "-d", "salt", "-p"])
                .arg(pg.port().to_string())
                .args(["-c", "INSERT INTO t VALUES (3, 'null') RETURNING current_user"])
                .env("PGPASSWORD", password)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let bad = as_salt("wrong");
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
        let good = as_salt("salt");
        assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
        assert!(String::from_utf8_lossy(&good.stdout).starts_with("salt\n"));

        let port = pg.port();
        let pid = pg.pid().unwrap();
        pg.stop();
        assert!(pg.pid().is_none());
        assert!(!crate::alive(pid));
        assert!(!crate::accepts(port));
        assert!(pg.try_psql("salt", "SELECT 1").is_err());
        pg.stop(); // a no-op when stopped

        pg.start_again();
        assert_eq!(pg.port(), port);
        assert_eq!(pg.psql("salt", "SELECT count(*) FROM t").trim(), "3");

        // A crash: everything killed, crash recovery on the next start.
        let pid = pg.pid().unwrap();
        pg.kill();
        assert!(!crate::alive(pid));
        pg.start_again();
        assert_eq!(pg.psql("salt", "SELECT count(*) FROM t").trim(), "3");
        assert!(pg.log().contains("database system was interrupted"), "{}", pg.log());

        let dir = pg.dir.path().to_path_buf();
        let pid = pg.pid().unwrap();
        drop(pg);
        assert!(!crate::alive(pid));
        assert!(!dir.exists());
    }

    #[test]
    fn two_servers_side_by_side() {
        let a = PgServer::start();
        let b = PgServer::start();
        assert_ne!(a.port(), b.port());
        a.create_db("only_a");
        assert_eq!(
            b.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'only_a'")
                .trim(),
            "0"
        );
    }
}
