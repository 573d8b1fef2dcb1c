//! One connection to the database and what is said on it: Salt's pgjsonb
//! schema, the batched writes, the reads and the cleanup.

use std::collections::HashMap;
use std::time::Duration;

use log::info;
use postgres::{Client, Statement};

use super::options::PgOptions;
use super::spool::Rec;

/// Salt's pgjsonb schema, as its returner's documentation gives it, made
/// when the tables are missing (Salt leaves that to the operator).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jids (
   jid varchar(255) NOT NULL primary key,
   load jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_jids_jsonb on jids USING gin (load) WITH (fastupdate=on);
CREATE TABLE IF NOT EXISTS salt_returns (
  fun varchar(50) NOT NULL,
  jid varchar(255) NOT NULL,
  return jsonb NOT NULL,
  id varchar(255) NOT NULL,
  success varchar(10) NOT NULL,
  full_ret jsonb NOT NULL,
  alter_time TIMESTAMP WITH TIME ZONE DEFAULT NOW());
CREATE INDEX IF NOT EXISTS idx_salt_returns_id ON salt_returns (id);
CREATE INDEX IF NOT EXISTS idx_salt_returns_jid ON salt_returns (jid);
CREATE INDEX IF NOT EXISTS idx_salt_returns_fun ON salt_returns (fun);
CREATE INDEX IF NOT EXISTS idx_salt_returns_return ON salt_returns USING gin (return) with (fastupdate=on);
CREATE INDEX IF NOT EXISTS idx_salt_returns_full_ret ON salt_returns USING gin (full_ret) with (fastupdate=on);
CREATE SEQUENCE IF NOT EXISTS seq_salt_events_id;
CREATE TABLE IF NOT EXISTS salt_events (
    id BIGINT NOT NULL UNIQUE DEFAULT nextval('seq_salt_events_id'),
    tag varchar(255) NOT NULL,
    data jsonb NOT NULL,
    alter_time TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    master_id varchar(255) NOT NULL);
CREATE INDEX IF NOT EXISTS idx_salt_events_tag on salt_events (tag);
CREATE INDEX IF NOT EXISTS idx_salt_events_data ON salt_events USING gin (data) with (fastupdate=on);
";

/// The key of the advisory lock under which the schema is made, so that
/// the masters' writers that start together do not race on it.
const SCHEMA_LOCK: i64 = 0x0062_7269_6e65_7067; // "brinepg"

/// A publication's load: it replaces the row a return may have made.
const LOAD_REPLACE: &str =
    "INSERT INTO jids (jid, load) SELECT j, l::jsonb FROM unnest($1::text[], $2::text[]) AS v(j, l) \
     ON CONFLICT (jid) DO UPDATE SET load = EXCLUDED.load";
/// A return's load, kept only for a job the table does not have.
const LOAD_KEEP: &str =
    "INSERT INTO jids (jid, load) SELECT j, l::jsonb FROM unnest($1::text[], $2::text[]) AS v(j, l) ON CONFLICT (jid) DO NOTHING";
/// Returns, as they come.
const RETURNS: &str = "INSERT INTO salt_returns (fun, jid, return, id, success, full_ret, alter_time) \
     SELECT f, j, r::jsonb, i, s, fr::jsonb, to_timestamp(t) \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[]) AS v(f, j, r, i, s, fr, t)";
/// Returns replayed from the spool: one that is there already (a write
/// whose answer was lost, then spooled) is not written again. Checked only
/// here, since the check costs every insert a look at the job's rows.
const RETURNS_REPLAYED: &str = "INSERT INTO salt_returns (fun, jid, return, id, success, full_ret, alter_time) \
     SELECT f, j, r::jsonb, i, s, fr::jsonb, to_timestamp(t) \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[]) AS v(f, j, r, i, s, fr, t) \
     WHERE NOT EXISTS (SELECT 1 FROM salt_returns x WHERE x.jid = v.j AND x.id = v.i)";
const EVENTS: &str = "INSERT INTO salt_events (tag, data, master_id, alter_time) \
     SELECT g, d::jsonb, m, to_timestamp(t) \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) WITH ORDINALITY AS v(g, d, m, t, n) ORDER BY n";

pub struct Conn {
    client: Client,
    load_replace: Statement,
    load_keep: Statement,
    returns: Statement,
    returns_replayed: Statement,
    events: Statement,
}

/// An error of the database, and whether it is about the connection (the
/// write can be made later) or about the data (it never can).
pub struct DbError {
    pub text: String,
    pub transient: bool,
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        let transient = e.is_closed()
            || match e.code() {
                // No SQLSTATE: the socket, the TLS session, a timeout.
                None => true,
                Some(c) => {
                    let c = c.code();
                    // connection_exception, operator_intervention (shutdown,
                    // cannot_connect_now), insufficient_resources,
                    // system_error, serialization and deadlock failures.
                    ["08", "57", "53", "58"].iter().any(|p| c.starts_with(p)) || c == "40001" || c == "40P01"
                }
            };
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        DbError { text, transient }
    }
}

impl Conn {
    /// Connect, make the schema if it is missing, and prepare the writes.
    pub fn open(opts: &PgOptions, application: &str) -> Result<Conn, DbError> {
        let mut client = opts
            .connect(application)
            .map_err(|text| DbError { text, transient: true })?;
        let missing: bool = client
            .query_one(
                "SELECT to_regclass('jids') IS NULL OR to_regclass('salt_returns') IS NULL OR to_regclass('salt_events') IS NULL",
                &[],
            )?
            .get(0);
        if missing {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()?;
            info!("pgjsonb: made Salt's pgjsonb tables in {}", opts.describe());
        }
        Ok(Conn {
            load_replace: client.prepare(LOAD_REPLACE)?,
            load_keep: client.prepare(LOAD_KEEP)?,
            returns: client.prepare(RETURNS)?,
            returns_replayed: client.prepare(RETURNS_REPLAYED)?,
            events: client.prepare(EVENTS)?,
            client,
        })
    }

    /// A connection for reads only.
    pub fn reader(opts: &PgOptions, application: &str) -> Result<Client, DbError> {
        opts.connect(application)
            .map_err(|text| DbError { text, transient: true })
    }

    /// Write `recs` in one transaction: all of them or none. `replayed`:
    /// they come from the spool, and a return already written is skipped.
    pub fn write(&mut self, recs: &[Rec], replayed: bool) -> Result<(), DbError> {
        // One row per job: a publication's load wins over a return's.
        let mut loads: HashMap<&str, (&str, bool)> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut rets: [Vec<&str>; 6] = Default::default();
        let mut ret_times = Vec::new();
        let mut evs: [Vec<&str>; 3] = Default::default();
        let mut ev_times = Vec::new();
        for r in recs {
            match r {
                Rec::Load { jid, load, replace } => match loads.get_mut(jid.as_str()) {
                    None => {
                        loads.insert(jid, (load, *replace));
                    }
                    Some(e) if *replace => *e = (load, true),
                    Some(_) => {}
                },
                Rec::Return {
                    fun,
                    jid,
                    id,
                    success,
                    ret,
                    full,
                    time,
                } => {
                    if seen.insert((jid.as_str(), id.as_str())) {
                        for (col, v) in rets.iter_mut().zip([fun, jid, ret, id, success, full]) {
                            col.push(v.as_str());
                        }
                        ret_times.push(*time);
                    }
                }
                Rec::Event {
                    tag,
                    data,
                    master,
                    time,
                } => {
                    for (col, v) in evs.iter_mut().zip([tag, data, master]) {
                        col.push(v.as_str());
                    }
                    ev_times.push(*time);
                }
            }
        }
        let mut tx = self.client.transaction()?;
        for (replace, st) in [(true, &self.load_replace), (false, &self.load_keep)] {
            let (jids, texts): (Vec<&str>, Vec<&str>) = loads
                .iter()
                .filter(|(_, (_, r))| *r == replace)
                .map(|(j, (l, _))| (*j, *l))
                .unzip();
            if !jids.is_empty() {
                tx.execute(st, &[&jids, &texts])?;
            }
        }
        if !ret_times.is_empty() {
            let [f, j, r, i, s, fr] = &rets;
            let st = if replayed {
                &self.returns_replayed
            } else {
                &self.returns
            };
            tx.execute(st, &[f, j, r, i, s, fr, &ret_times])?;
        }
        if !ev_times.is_empty() {
            let [g, d, m] = &evs;
            tx.execute(&self.events, &[g, d, m, &ev_times])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Salt's pgjsonb `clean_old_jobs`: the events and returns older than
    /// `keep`, and the jobs all of whose returns are (a job without any
    /// return is kept, as Salt keeps it); copied first to the `_archive`
    /// tables when `archive`. One transaction: a pass that fails leaves
    /// nothing half-moved. Returns the jobs removed.
    pub fn clean(&mut self, keep: Duration, archive: bool) -> Result<u64, DbError> {
        let mut tx = self.client.transaction()?;
        let stamp: std::time::SystemTime = tx
            .query_one("SELECT now() - make_interval(secs => $1)", &[&(keep.as_secs_f64())])?
            .get(0);
        const OLD_JIDS: &str = "FROM jids j WHERE EXISTS (SELECT 1 FROM salt_returns r WHERE r.jid = j.jid) \
             AND NOT EXISTS (SELECT 1 FROM salt_returns r WHERE r.jid = j.jid AND r.alter_time >= $1)";
        if archive {
            for t in ["jids", "salt_returns", "salt_events"] {
                tx.batch_execute(&format!("CREATE TABLE IF NOT EXISTS {t}_archive (LIKE {t})"))?;
            }
            tx.execute(&format!("INSERT INTO jids_archive SELECT * {OLD_JIDS}"), &[&stamp])?;
            tx.execute(
                "INSERT INTO salt_returns_archive SELECT * FROM salt_returns WHERE alter_time < $1",
                &[&stamp],
            )?;
            tx.execute(
                "INSERT INTO salt_events_archive SELECT * FROM salt_events WHERE alter_time < $1",
                &[&stamp],
            )?;
        }
        let removed = tx.execute(&format!("DELETE {OLD_JIDS}"), &[&stamp])?;
        tx.execute("DELETE FROM salt_returns WHERE alter_time < $1", &[&stamp])?;
        tx.execute("DELETE FROM salt_events WHERE alter_time < $1", &[&stamp])?;
        tx.commit()?;
        Ok(removed)
    }
}
