//! The job cache on PostgreSQL (`master_job_cache: pgjsonb`, `event_return:
//! pgjsonb`), with real minions and a private PostgreSQL started from
//! Debian's package: Brine and Python's master (3007.17) on the same
//! config, each on a database of its own made with Salt's documented
//! schema. Python's tools read what Brine wrote; Brine's read what Python's
//! master wrote; a database stopped mid-job loses no return.

mod common;

use std::time::Duration;

use brine_testutil::postgres::PgServer;
use common::minion::venv;
use common::pysalt::Side;
use common::*;
use serde_json::Value as Json;

/// A new database `db`, owned by `salt`, with Salt's schema.
fn salts_db(pg: &PgServer, db: &str) {
    pg.create_db(db);
    pg.psql(db, &format!("SET ROLE salt; {}", salt_schema()));
}

/// Salt's pgjsonb schema, as its returner's documentation gives it (read
/// from the reference venv's module, so the tables are Salt's own).
fn salt_schema() -> String {
    let module = venv("3007.17").join("lib/python3.11/site-packages/salt/returners/pgjsonb.py");
    let text = read(&module);
    let start = text
        .find("DROP TABLE IF EXISTS jids;")
        .expect("the schema in pgjsonb's doc");
    let end = start + text[start..].find("Required python modules").expect("the schema's end");
    text[start..end].to_string()
}

fn pg_conf(pg: &PgServer, db: &str) -> String {
    format!(
        "master_job_cache: pgjsonb\nevent_return: pgjsonb\nreturner.pgjsonb.host: {}\nreturner.pgjsonb.port: {}\n\
         returner.pgjsonb.db: {db}\nreturner.pgjsonb.user: salt\nreturner.pgjsonb.pass: salt\n",
        pg.host(),
        pg.port()
    )
}

fn brine_extra() -> String {
    format!(
        "python_loader_executable: {}\n",
        venv("3007.17").join("bin/python").display()
    )
}

fn side(brine: bool, pg: &PgServer, db: &str) -> Side {
    Side::start(
        brine,
        "3007.17",
        &format!("auto_accept: True\n{}", pg_conf(pg, db)),
        &brine_extra(),
        "",
        |_| {},
    )
}

/// A runner's JSON output: from Python's `salt-run` (`python`), else
/// Brine's, on the env's config.
fn run_json(env: &Env, python: bool, args: &[&str]) -> Json {
    let args = [args, &["--out", "json"]].concat();
    let (out, err, code) = if python {
        common::pysalt::py(env, "3007.17", "salt-run", &args)
    } else {
        common::minion::run_cli(&env.conf_dir, "salt-run", &args)
    };
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}{err}"))
}

fn count(pg: &PgServer, db: &str, sql: &str) -> i64 {
    pg.psql(db, sql).trim().parse().unwrap()
}

/// The rows of a job, as a reader of the tables sees them: each return's
/// columns and the keys of its `full_ret`, and the tags of the job's
/// events (the jid masked).
fn rows(pg: &PgServer, db: &str, jid: &str) -> Json {
    let returns = pg.psql(
        db,
        &format!(
            "SELECT json_build_object('fun', fun, 'id', id, 'success', success, 'return', return, \
             'keys', (SELECT json_agg(k ORDER BY k) FROM jsonb_object_keys(full_ret) k)) \
             FROM salt_returns WHERE jid = '{jid}' ORDER BY id"
        ),
    );
    let tags = pg.psql(
        db,
        &format!("SELECT DISTINCT replace(tag, '{jid}', '<jid>') FROM salt_events WHERE tag LIKE '%{jid}%' ORDER BY 1"),
    );
    serde_json::json!({
        "returns": returns.lines().map(|l| serde_json::from_str::<Json>(l).unwrap()).collect::<Vec<_>>(),
        "event tags": tags.lines().collect::<Vec<_>>(),
    })
}

/// `jobs.lookup_jid` with the jid masked.
fn masked(v: &Json, jid: &str) -> Json {
    serde_json::from_str(&v.to_string().replace(jid, "<jid>")).unwrap()
}

#[test]
fn the_job_cache_on_postgresql_as_pythons_master_keeps_it() {
    let pg = PgServer::start();
    let mut seen = Vec::new();
    let mut python_jid = String::new();
    for brine in [true, false] {
        let what = if brine { "Brine" } else { "Python" };
        let db = if brine { "brine" } else { "python" };
        salts_db(&pg, db);
        let side = side(brine, &pg, db);
        let log = || read(&side.env.log_file());
        // Python's salt reads the job's load from the database as soon as
        // the publication is answered (else: "jid does not exist", {}).
        let pinged = side.salt_json(&["*", "test.ping"]);
        assert_eq!(pinged, serde_json::json!({"a1": true, "a2": true}), "{what}\n{}", log());
        let jid = side.salt_async(&["*", "test.arg", "1", "two=2"]);
        let returned = wait_until(Duration::from_secs(60), || {
            count(
                &pg,
                db,
                &format!("SELECT count(*) FROM salt_returns WHERE jid = '{jid}'"),
            ) == 2
                && count(
                    &pg,
                    db,
                    &format!("SELECT count(*) FROM salt_events WHERE tag LIKE 'salt/job/{jid}/ret/%'"),
                ) == 2
        });
        assert!(returned, "{what}: the returns did not reach the database\n{}", log());
        // Python's salt-run reads the job through its pgjsonb returner.
        let lookup = run_json(&side.env, true, &["jobs.lookup_jid", &jid]);
        assert_eq!(lookup["a1"]["args"][0], 1, "{what}: {lookup}");
        assert_eq!(lookup["a2"]["kwargs"]["two"], 2, "{what}: {lookup}");
        let listed = run_json(&side.env, true, &["jobs.list_jobs"]);
        assert!(listed.get(&jid).is_some(), "{what}: {listed}");
        if brine {
            // Brine's own runners read the same rows.
            let own = run_json(&side.env, false, &["jobs.lookup_jid", &jid]);
            assert_eq!(own, lookup, "Brine's jobs.lookup_jid vs Python's on Brine's rows");
            // The publication's load stays the job's: its target is kept
            // (Python's master replaces it with each return's load).
            assert_eq!(listed[&jid]["Target"], "*", "{listed}");
            let local = side.env.root().join("cache/jobs");
            assert_eq!(
                std::fs::read_dir(&local).map_or(0, |d| d.count()),
                0,
                "local_cache written beside pgjsonb"
            );
        } else {
            python_jid = jid.clone();
        }
        seen.push(serde_json::json!({
            "test.ping": pinged,
            "lookup_jid": masked(&lookup, &jid),
            "rows": masked(&rows(&pg, db, &jid), &jid),
        }));
    }
    assert_eq!(seen[0], seen[1], "Brine vs Python");

    // Brine's runners read what Python's master wrote.
    let env = Env::with_extra(1, &format!("{}{}", pg_conf(&pg, "python"), brine_extra()));
    let mut m = env.start();
    m.wait_ready();
    let theirs = run_json(&env, true, &["jobs.lookup_jid", &python_jid]);
    let ours = run_json(&env, false, &["jobs.lookup_jid", &python_jid]);
    assert_eq!(ours, theirs, "jobs.lookup_jid on Python's rows");
    let listed = run_json(&env, false, &["jobs.list_jobs"]);
    assert!(listed.get(&python_jid).is_some(), "{listed}");
}

#[test]
fn a_database_stopped_mid_job_loses_no_return_and_writes_none_twice() {
    let mut pg = PgServer::start();
    pg.create_db("jobs");
    let side = side(true, &pg, "jobs");
    let log = || read(&side.env.log_file());
    let salt = |args: &[&str]| common::minion::run_cli(&side.env.conf_dir, "salt", args);
    let (out, err, code) = salt(&["*", "test.ping", "--out", "json", "--static"]);
    assert_eq!(code, 0, "{out}{err}");
    // A job that returns while the database is down.
    let (out, err, code) = salt(&["*", "test.sleep", "3", "--async"]);
    assert_eq!(code, 0, "{out}{err}");
    let jid = jid_in(&out);
    pg.stop();
    // The master keeps publishing and taking returns.
    let (out, err, code) = salt(&["*", "test.echo", "while-down", "--out", "json", "--static", "-t", "30"]);
    assert_eq!(code, 0, "{out}{err}\n{}", log());
    let echoed: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(echoed, serde_json::json!({"a1": "while-down", "a2": "while-down"}));
    assert!(
        wait_until(Duration::from_secs(30), || log()
            .contains(&format!("salt/job/{jid}/ret/a2"))
            || std::fs::read_dir(side.env.root().join("cache/pgjsonb/spool"))
                .map(|d| d.count() > 0)
                .unwrap_or(false)),
        "nothing spooled\n{}",
        log()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(log().contains("is unavailable"), "{}", log());
    pg.start_again();
    let all = wait_until(Duration::from_secs(60), || {
        count(
            &pg,
            "jobs",
            &format!("SELECT count(*) FROM salt_returns WHERE jid = '{jid}'"),
        ) == 2
            && count(&pg, "jobs", "SELECT count(*) FROM salt_returns WHERE fun = 'test.echo'") == 2
    });
    assert!(all, "the spooled returns were not written\n{}", log());
    assert!(
        wait_until(Duration::from_secs(30), || log().contains("is back")),
        "{}",
        log()
    );
    assert_eq!(
        count(
            &pg,
            "jobs",
            "SELECT count(*) FROM (SELECT jid, id FROM salt_returns GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        0,
        "a return written twice"
    );
    // The loads of both jobs, published while the database was up and
    // while it was down.
    assert_eq!(
        count(
            &pg,
            "jobs",
            "SELECT count(*) FROM jids WHERE load->>'fun' IN ('test.sleep', 'test.echo')"
        ),
        2
    );
    let lookup = run_json(&side.env, false, &["jobs.lookup_jid", &jid]);
    assert_eq!(lookup, serde_json::json!({"a1": true, "a2": true}), "{}", log());
}

#[test]
fn a_job_published_on_one_master_is_looked_up_on_another() {
    let pg = PgServer::start();
    let mut seen = Vec::new();
    for brine in [true, false] {
        let what = if brine { "Brine" } else { "Python" };
        let db = if brine { "shared_brine" } else { "shared_python" };
        salts_db(&pg, db);
        // Master A with the minions, master B beside it on the same
        // database.
        let a = side(brine, &pg, db);
        let b = Env::with_extra(1, &format!("{}{}", pg_conf(&pg, db), brine_extra()));
        let (_brine_b, _python_b) = if brine {
            let mut m = b.start();
            m.wait_ready();
            (Some(m), None)
        } else {
            (None, Some(common::pysalt::PyMaster::start(&b, "3007.17")))
        };
        let jid = a.salt_async(&["*", "test.echo", "shared"]);
        assert!(
            wait_until(Duration::from_secs(60), || count(
                &pg,
                db,
                &format!("SELECT count(*) FROM salt_returns WHERE jid = '{jid}'")
            ) == 2),
            "{what}: the returns did not reach the database\n{}",
            read(&a.env.log_file())
        );
        let on_b = run_json(&b, true, &["jobs.lookup_jid", &jid]);
        assert_eq!(on_b, serde_json::json!({"a1": "shared", "a2": "shared"}), "{what}");
        if brine {
            assert_eq!(
                run_json(&b, false, &["jobs.lookup_jid", &jid]),
                on_b,
                "Brine's salt-run on master B"
            );
            let listed = run_json(&b, false, &["jobs.list_jobs"]);
            assert_eq!(listed[&jid]["Function"], "test.echo", "{listed}");
        }
        seen.push(on_b);
    }
    assert_eq!(seen[0], seen[1], "Brine vs Python");
}

#[test]
fn maintenance_cleans_old_jobs_from_the_database_as_salt_does() {
    let pg = PgServer::start();
    salts_db(&pg, "jobs");
    // Two jobs, one whose returns are all older than keep_jobs_seconds.
    pg.psql(
        "jobs",
        "INSERT INTO jids VALUES ('20200101000000000001', '{\"fun\": \"test.ping\"}'), ('20200101000000000002', '{\"fun\": \"test.ping\"}');
         INSERT INTO salt_returns (fun, jid, return, id, success, full_ret, alter_time) VALUES
           ('test.ping', '20200101000000000001', 'true', 'm1', 'true', '{}', now() - interval '2 hours'),
           ('test.ping', '20200101000000000002', 'true', 'm1', 'true', '{}', now());
         INSERT INTO salt_events (tag, data, master_id, alter_time) VALUES ('old', '{}', 'x', now() - interval '2 hours');",
    );
    let env = Env::with_extra(
        1,
        &format!(
            "{}keep_jobs_seconds: 3600\narchive_jobs: True\nloop_interval: 1\n",
            pg_conf(&pg, "jobs")
        ),
    );
    let mut m = env.start();
    m.wait_ready();
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &pg,
            "jobs",
            "SELECT count(*) FROM jids"
        ) == 1),
        "the old job was not cleaned\n{}",
        read(&env.log_file())
    );
    assert_eq!(pg.psql("jobs", "SELECT jid FROM jids").trim(), "20200101000000000002");
    assert_eq!(
        pg.psql("jobs", "SELECT jid FROM jids_archive").trim(),
        "20200101000000000001"
    );
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM salt_returns_archive"), 1);
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM salt_events"), 0);
    assert!(
        read(&env.log_file()).contains("removed 1 jobs older than 3600s"),
        "{}",
        read(&env.log_file())
    );
}
