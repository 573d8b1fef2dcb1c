//! The pgjsonb job cache against a real PostgreSQL (a private server
//! started from Debian's package): what it writes is Salt's schema and
//! rows, it reads them back, a database that goes away loses nothing and
//! writes nothing twice, a row the database refuses does not take the
//! others with it, and clean_old_jobs is Salt's.

use std::path::Path;
use std::time::Duration;

use brine_cache::{Jid, JobCache, PgJsonb};
use brine_config::MasterConfig;
use brine_proto::json::to_json;
use brine_proto::Value;
use brine_testutil::postgres::PgServer;
use brine_testutil::wait_until;

fn config(pg: &PgServer, db: &str, cachedir: &Path, extra: serde_json::Value) -> MasterConfig {
    let mut o = serde_json::json!({
        "cachedir": cachedir,
        "id": "brine-test-master",
        "returner.pgjsonb.host": pg.host(),
        "returner.pgjsonb.port": pg.port(),
        "returner.pgjsonb.db": db,
        "returner.pgjsonb.connect_timeout": 2,
    });
    o.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let serde_json::Value::Object(o) = o else {
        unreachable!()
    };
    MasterConfig::from_overrides(Path::new("/etc/salt"), o).unwrap()
}

fn ret(jid: &Jid, id: &str, value: Value) -> Value {
    Value::map([
        ("jid", Value::from(jid)),
        ("id", Value::from(id)),
        ("fun", Value::from("test.echo")),
        ("fun_args", Value::Array(vec![Value::from("x")])),
        ("return", value),
        ("retcode", Value::Int(0)),
        ("success", Value::Bool(true)),
    ])
}

fn count(pg: &PgServer, db: &str, sql: &str) -> i64 {
    pg.psql(db, sql).trim().parse().unwrap()
}

/// Wait for the writer: a barrier, then the rows.
fn settle(cache: &PgJsonb) {
    if let Some(wait) = cache.barrier() {
        wait();
    }
}

#[test]
fn writes_salts_rows_and_reads_them_back() {
    let pg = PgServer::start();
    pg.create_db("jobs");
    let dir = tempfile::tempdir().unwrap();
    let cache = PgJsonb::open(&config(&pg, "jobs", dir.path(), serde_json::json!({}))).unwrap();
    let jid = Jid::generate();
    let load = Value::map([
        ("fun", Value::from("test.echo")),
        ("arg", Value::Array(vec![Value::from("x")])),
        ("tgt", Value::from("*")),
        ("tgt_type", Value::from("glob")),
        ("jid", Value::from(&jid)),
        ("user", Value::from("root")),
    ]);
    cache.save_load(&jid, &load, &["m1".into(), "m2".into()]).unwrap();
    settle(&cache);
    // The tables were made, in Salt's schema.
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM jids"), 1);
    // jsonb keeps its own key order: compared as JSON objects.
    let same = |a: &Value, b: &Value| to_json(a) == to_json(b);
    assert!(same(&cache.load(&jid).unwrap(), &load));
    for id in ["m1", "m2"] {
        assert!(cache.store_return(&jid, id, &ret(&jid, id, Value::from("x"))).unwrap());
    }
    settle(&cache);
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM salt_returns"), 2);
    assert_eq!(
        pg.psql(
            "jobs",
            "SELECT fun || ' ' || success || ' ' || return::text FROM salt_returns WHERE id = 'm1'"
        )
        .trim(),
        "test.echo true \"x\""
    );
    // The publication's load stays the job's load.
    assert!(same(&cache.get_load(&jid), &load));
    let got = cache.get_jid(&jid);
    assert_eq!(got.get("m2").and_then(|r| r.get("return")), Some(&Value::from("x")));
    assert_eq!(got.get("m2").and_then(|r| r.get("retcode")), Some(&Value::Int(0)));
    assert_eq!(cache.get_jids().len(), 1);

    // A standalone job's return makes the job's row when it has none.
    let other = Jid::parse("20261207000000000002").unwrap();
    cache
        .store_return(&other, "m3", &ret(&other, "m3", Value::Bool(true)))
        .unwrap();
    settle(&cache);
    assert_eq!(
        cache.get_load(&other).get("id").and_then(Value::as_str),
        Some("m3"),
        "the return's load"
    );

    // A row the database refuses (jsonb takes no NUL) is dropped alone.
    let bad = Jid::parse("20261207000000000003").unwrap();
    cache
        .store_return(&bad, "m1", &ret(&bad, "m1", Value::from("a\0b")))
        .unwrap();
    cache
        .store_return(&bad, "m2", &ret(&bad, "m2", Value::from("fine")))
        .unwrap();
    settle(&cache);
    let ids = pg.psql("jobs", &format!("SELECT id FROM salt_returns WHERE jid = '{bad}'"));
    assert_eq!(ids.trim(), "m2");

    // Events, with this master's id.
    cache
        .event_return(&[Value::map([
            ("tag", Value::from("a/b")),
            ("data", Value::map([("k", Value::Int(1))])),
        ])])
        .unwrap();
    cache.flush();
    assert_eq!(
        pg.psql(
            "jobs",
            "SELECT tag || ' ' || master_id || ' ' || data::text FROM salt_events"
        )
        .trim(),
        "a/b brine-test-master {\"k\": 1}"
    );
}

#[test]
fn a_database_that_goes_away_loses_nothing_and_writes_nothing_twice() {
    let mut pg = PgServer::start();
    pg.create_db("jobs");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&pg, "jobs", dir.path(), serde_json::json!({}));
    let cache = PgJsonb::open(&cfg).unwrap();
    let jid = Jid::generate();
    cache
        .save_load(&jid, &Value::map([("fun", Value::from("test.echo"))]), &[])
        .unwrap();
    for i in 0..50 {
        let id = format!("m{i}");
        cache.store_return(&jid, &id, &ret(&jid, &id, Value::Int(i))).unwrap();
    }
    settle(&cache);
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM salt_returns"), 50);

    pg.stop();
    for i in 50..150 {
        let id = format!("m{i}");
        cache.store_return(&jid, &id, &ret(&jid, &id, Value::Int(i))).unwrap();
    }
    // The publication of a job while the database is down is answered:
    // its load is safe in the spool.
    let later = Jid::generate();
    cache
        .save_load(&later, &Value::map([("fun", Value::from("test.ping"))]), &[])
        .unwrap();
    let t = std::time::Instant::now();
    settle(&cache);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the barrier waited {:?}",
        t.elapsed()
    );
    let spool = brine_cache::pgjsonb::spool::dir(dir.path());
    assert!(std::fs::read_dir(&spool).unwrap().count() > 0, "nothing spooled");

    // A second process's spool, left behind when it died, is replayed
    // too (the same rows again among them: written once).
    std::fs::copy(
        spool.join(format!("{}.jsonl", std::process::id())),
        spool.join("999999.jsonl"),
    )
    .unwrap();

    pg.start_again();
    for i in 150..200 {
        let id = format!("m{i}");
        cache.store_return(&jid, &id, &ret(&jid, &id, Value::Int(i))).unwrap();
    }
    cache.tend();
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &pg,
            "jobs",
            "SELECT count(*) FROM salt_returns"
        ) == 200
            && !spool.join("999999.jsonl").exists()),
        "returns after the restart: {}",
        count(&pg, "jobs", "SELECT count(*) FROM salt_returns")
    );
    assert_eq!(
        count(
            &pg,
            "jobs",
            "SELECT count(*) FROM (SELECT jid, id FROM salt_returns GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        0
    );
    assert_eq!(cache.get_load(&later).get("fun"), Some(&Value::from("test.ping")));
}

#[test]
fn clean_old_jobs_is_salts_with_archives() {
    let pg = PgServer::start();
    pg.create_db("jobs");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&pg, "jobs", dir.path(), serde_json::json!({"archive_jobs": true}));
    let cache = PgJsonb::open(&cfg).unwrap();
    let j = |s: &str| Jid::parse(s).unwrap();
    let (old, new, bare) = (
        j("20261207000000000001"),
        j("20261207000000000002"),
        j("20261207000000000003"),
    );
    for j in [&old, &new, &bare] {
        cache
            .save_load(j, &Value::map([("fun", Value::from("test.ping"))]), &[])
            .unwrap();
    }
    cache
        .store_return(&old, "m1", &ret(&old, "m1", Value::Bool(true)))
        .unwrap();
    cache
        .store_return(&new, "m1", &ret(&new, "m1", Value::Bool(true)))
        .unwrap();
    cache
        .store_return(&new, "m2", &ret(&new, "m2", Value::Bool(true)))
        .unwrap();
    cache
        .event_return(&[Value::map([("tag", Value::from("old/event")), ("data", Value::Nil)])])
        .unwrap();
    settle(&cache);
    // Age the old job's return, one of the new job's, and the event.
    pg.psql(
        "jobs",
        &format!(
            "UPDATE salt_returns SET alter_time = now() - interval '2 hours' WHERE jid = '{old}' OR (jid = '{new}' AND id = 'm1');
             UPDATE salt_events SET alter_time = now() - interval '2 hours';"
        ),
    );
    cache.clean_old_jobs(Duration::from_secs(3600));
    assert!(
        wait_until(Duration::from_secs(20), || count(
            &pg,
            "jobs",
            "SELECT count(*) FROM salt_returns"
        ) == 1),
        "old returns not removed"
    );
    // The job whose returns are all old goes; the job with a recent return
    // and the job without returns stay, as Salt's pgjsonb keeps them.
    let jids = pg.psql("jobs", "SELECT jid FROM jids ORDER BY jid");
    assert_eq!(
        jids.split_whitespace().collect::<Vec<_>>(),
        [new.as_str(), bare.as_str()]
    );
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM salt_events"), 0);
    assert_eq!(pg.psql("jobs", "SELECT jid FROM jids_archive").trim(), old.as_str());
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM salt_returns_archive"), 2);
    assert_eq!(count(&pg, "jobs", "SELECT count(*) FROM salt_events_archive"), 1);
}
