//! `state.orchestrate` against Salt's own results: each case of
//! tests/fixtures/orch (an SLS tree and the runner's arguments) run by
//! Brine must return what `salt-run state.orchestrate` returned for it
//! (expected.json, made by scripts/state-fixtures), apart from the
//! timings and job ids.

use std::path::{Path, PathBuf};
use std::time::Duration;

use brine_client::Publish;
use brine_config::MasterConfig;
use brine_proto::json::{from_json, to_json};
use brine_proto::Value;
use brine_state::{orchestrate, CmdReturns, Effects, EventSource, OrchestrateOpts};
use serde_json::{json, Value as Json};

/// Runners as Salt's `test.arg` answers; no minions, no bus.
struct LocalOnly;

impl Effects for LocalOnly {
    fn cmd(&mut self, _job: &Publish, _timeout: Duration) -> Result<CmdReturns, String> {
        Ok(CmdReturns::default())
    }
    fn runner(&mut self, fun: &str, arg: Vec<Value>, kwarg: Value) -> Value {
        assert_eq!(fun, "test.arg", "only test.arg is faked");
        Value::map([
            ("return", Value::map([("args", Value::Array(arg)), ("kwargs", kwarg)])),
            ("success", Value::Bool(true)),
            ("jid", Value::from("20260101000000000000")),
        ])
    }
    fn wheel(&mut self, _fun: &str, _kwarg: Value) -> Value {
        Value::map([("return", Value::Map(Vec::new())), ("success", Value::Bool(true))])
    }
    fn subscribe(&mut self) -> Result<Box<dyn EventSource>, String> {
        Err("no event bus".into())
    }
    fn fork(&self) -> Option<Box<dyn Effects + Send>> {
        Some(Box::new(LocalOnly))
    }
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orch");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

/// The failed requisites of "One or more requisite failed: a, b" come
/// from a Python set: their order changes from run to run, so they are
/// compared sorted.
const REQ_FAILED: &str = "One or more requisite failed: ";

fn strip(mut v: Json) -> Json {
    if let Some(Json::Object(minions)) = v.get_mut("data") {
        for results in minions.values_mut() {
            if let Json::Object(results) = results {
                for r in results.values_mut() {
                    if let Json::Object(r) = r {
                        for key in ["start_time", "duration", "__jid__"] {
                            r.remove(key);
                        }
                        if let Some(Json::String(c)) = r.get_mut("comment") {
                            if let Some(list) = c.strip_prefix(REQ_FAILED) {
                                let mut items: Vec<&str> = list.split(", ").collect();
                                items.sort();
                                *c = format!("{REQ_FAILED}{}", items.join(", "));
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

fn run_case(case: &Path) -> (Json, Json) {
    let spec: Json = serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = json!({
        "root_dir": tmp.path(),
        "id": "fixture",
        "file_roots": {"base": [case.join("srv")]},
        "pillar_roots": {"base": [tmp.path().join("pillar")]},
        "cachedir": tmp.path().join("cache"),
        "pki_dir": tmp.path().join("pki"),
        "sock_dir": tmp.path().join("sock"),
    });
    for (k, v) in spec["master"].as_object().unwrap() {
        opts[k] = v.clone();
    }
    let cfg = MasterConfig::from_overrides(tmp.path(), serde_json::from_value(opts).unwrap()).unwrap();
    let kw = &spec["kwargs"];
    let opts = OrchestrateOpts {
        test: kw.get("test").and_then(Json::as_bool),
        pillar: kw.get("pillar").map(from_json),
        exclude: match kw.get("exclude") {
            Some(Json::Array(a)) => a.iter().map(from_json).collect(),
            _ => Vec::new(),
        },
        ..Default::default()
    };
    let mods = vec![spec["mods"].as_str().unwrap().to_string()];
    let got = orchestrate(&cfg, &mods, opts, &mut LocalOnly).unwrap();
    let want: Json = serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap()).unwrap();
    (strip(to_json(&got)), strip(want))
}

#[test]
fn orchestrate_returns_what_salt_returns() {
    let mut failed = Vec::new();
    for case in cases() {
        let (got, want) = run_case(&case);
        if got != want {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            eprintln!(
                "== {name}\n-- Brine:\n{}\n-- Salt:\n{}",
                serde_json::to_string_pretty(&got).unwrap(),
                serde_json::to_string_pretty(&want).unwrap()
            );
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "differs from Salt: {failed:?}");
}

/// The comparison is of maps without their order: the run order is each
/// result's `__run_num__`, which it covers.
#[test]
fn every_case_has_its_salt_result() {
    let cases = cases();
    assert!(cases.len() >= 10, "{cases:?}");
    for case in cases {
        assert!(
            case.join("expected.json").is_file(),
            "{}: run scripts/state-fixtures",
            case.display()
        );
    }
}
