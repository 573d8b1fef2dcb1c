//! The engine and the orchestration states with fake effects: what is
//! published, what the states make of the minions' returns, parallel
//! runs, requisite cycles.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brine_client::Publish;
use brine_config::MasterConfig;
use brine_proto::Value;
use brine_state::{orchestrate, CmdReturns, Effects, EventSource, OrchestrateOpts};
use serde_json::json;

/// A runner call: function, `arg`, `kwarg`.
type RunnerCall = (String, Vec<Value>, Value);

/// Canned minion returns per function, the jobs published, a delay per
/// job, and events to deliver.
#[derive(Clone, Default)]
struct Fake {
    returns: Arc<Vec<(String, CmdReturns)>>,
    published: Arc<Mutex<Vec<Publish>>>,
    runners: Arc<Mutex<Vec<RunnerCall>>>,
    delay: Duration,
    events: Arc<Vec<(String, Value)>>,
}

impl Effects for Fake {
    fn cmd(&mut self, job: &Publish, _timeout: Duration) -> Result<CmdReturns, String> {
        std::thread::sleep(self.delay);
        self.published.lock().unwrap().push(job.clone());
        if job.fun == "boom" {
            return Err("Authentication error occurred.".into());
        }
        Ok(self
            .returns
            .iter()
            .find(|(f, _)| *f == job.fun)
            .map(|(_, r)| r.clone())
            .unwrap_or_default())
    }
    fn runner(&mut self, fun: &str, arg: Vec<Value>, kwarg: Value) -> Value {
        self.runners.lock().unwrap().push((fun.into(), arg, kwarg));
        match fun {
            "bad.fun" => Value::map([
                ("return", Value::map([("Error", Value::from("no"))])),
                ("jid", Value::from("1")),
            ]),
            _ => Value::map([("return", Value::Bool(true)), ("success", Value::Bool(true))]),
        }
    }
    fn wheel(&mut self, fun: &str, kwarg: Value) -> Value {
        Value::map([
            ("return", Value::map([("fun", Value::from(fun)), ("kwarg", kwarg)])),
            ("success", Value::Bool(true)),
            ("jid", Value::from("2")),
        ])
    }
    fn subscribe(&mut self) -> Result<Box<dyn EventSource>, String> {
        Ok(Box::new(Events(self.events.iter().cloned().collect())))
    }
    fn fork(&self) -> Option<Box<dyn Effects + Send>> {
        Some(Box::new(self.clone()))
    }
}

struct Events(std::collections::VecDeque<(String, Value)>);

impl EventSource for Events {
    fn next(&mut self, deadline: Instant) -> Option<(String, Value)> {
        match self.0.pop_front() {
            Some(e) => Some(e),
            None => {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                None
            }
        }
    }
}

fn minion(ret: Value, retcode: i64) -> Value {
    Value::map([
        ("ret", ret),
        ("retcode", Value::Int(retcode)),
        ("jid", Value::from("20260101000000000001")),
    ])
}

fn run(sls: &str, fake: &mut Fake, opts: OrchestrateOpts) -> (Value, Vec<(String, Value)>) {
    let tmp = tempfile::tempdir().unwrap();
    let srv = tmp.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    std::fs::write(srv.join("main.sls"), sls).unwrap();
    let o = json!({
        "root_dir": tmp.path(),
        "id": "m",
        "file_roots": {"base": [srv]},
        "pillar_roots": {"base": [tmp.path().join("pillar")]},
        "cachedir": tmp.path().join("cache"),
        "sock_dir": tmp.path().join("sock"),
    });
    let cfg = MasterConfig::from_overrides(tmp.path(), serde_json::from_value(o).unwrap()).unwrap();
    let out = orchestrate(&cfg, &["main".to_string()], opts, fake).unwrap();
    let results = match out.get("data").and_then(|d| d.get("m")) {
        Some(Value::Map(kv)) => kv.iter().map(|(k, v)| (brine_py::to_str(k), v.clone())).collect(),
        _ => Vec::new(),
    };
    (out, results)
}

fn by_id<'a>(results: &'a [(String, Value)], id: &str) -> &'a Value {
    results
        .iter()
        .find(|(_, v)| v.get("__id__").and_then(Value::as_str) == Some(id))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no result for {id}: {results:?}"))
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn salt_function_publishes_and_reports_each_minion() {
    let mut fake = Fake {
        returns: Arc::new(vec![(
            "cmd.run".into(),
            CmdReturns {
                returns: vec![
                    ("web1".into(), minion(Value::from("up"), 0)),
                    ("web2".into(), minion(Value::from("err"), 1)),
                ],
                missing: vec!["web3".into()],
                unknown: vec![],
            },
        )]),
        ..Default::default()
    };
    let (out, results) = run(
        "uptime:\n  salt.function:\n    - name: cmd.run\n    - tgt: 'web*'\n    - arg: [uptime]\n    - kwarg: {timeout: 3}\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    let job = fake.published.lock().unwrap()[0].clone();
    assert_eq!(job.tgt, Value::from("web*"));
    assert_eq!(
        job.arg,
        vec![
            Value::from("uptime"),
            Value::map([("timeout", Value::Int(3)), ("__kwarg__", Value::Bool(true))])
        ]
    );
    let r = by_id(&results, "uptime");
    assert_eq!(r.get("result"), Some(&Value::Bool(false)));
    assert_eq!(
        text(r, "comment"),
        "Running function cmd.run failed on minions: web2 Function cmd.run ran on web1, web2."
    );
    assert_eq!(
        r.get("changes"),
        Some(&Value::map([(
            "ret",
            Value::map([("web1", Value::from("up")), ("web2", Value::from("err"))])
        )]))
    );
    assert_eq!(text(r, "__jid__"), "20260101000000000001");
    assert_eq!(out.get("retcode"), Some(&Value::Int(1)));

    // fail_minions forgives a False return but not a retcode; expect_minions
    // counts the silent minion as failed.
    let (_, results) = run(
        "uptime:\n  salt.function:\n    - name: cmd.run\n    - tgt: 'web*'\n    - expect_minions: True\n    - fail_minions: web3\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    let r = by_id(&results, "uptime");
    assert_eq!(
        text(r, "comment"),
        "Running function cmd.run failed on minions: web2 Function cmd.run ran on web1, web2, web3."
    );

    // Nobody answered; the client failed; test mode publishes nothing.
    let (_, results) = run(
        "a:\n  salt.function:\n    - name: test.ping\n    - tgt: none\nb:\n  salt.function:\n    - name: boom\n    - tgt: x\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    assert_eq!(text(by_id(&results, "a"), "comment"), "No minions responded");
    assert_eq!(text(by_id(&results, "b"), "comment"), "Authentication error occurred.");
    let before = fake.published.lock().unwrap().len();
    let (_, results) = run(
        "a:\n  salt.function:\n    - name: test.ping\n    - tgt: x\n",
        &mut fake,
        OrchestrateOpts {
            test: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(fake.published.lock().unwrap().len(), before);
    assert_eq!(by_id(&results, "a").get("result"), Some(&Value::Nil));
}

fn highstate_ret(changes: bool, ok: bool) -> Value {
    let c = if changes {
        Value::map([("x", Value::Int(1))])
    } else {
        Value::Map(Vec::new())
    };
    Value::map([(
        "pkg_|-a_|-a_|-installed",
        Value::map([("result", Value::Bool(ok)), ("changes", c)]),
    )])
}

#[test]
fn salt_state_publishes_state_sls_and_sums_up_the_minions() {
    let mut fake = Fake {
        returns: Arc::new(vec![(
            "state.sls".into(),
            CmdReturns {
                returns: vec![
                    ("m1".into(), minion(highstate_ret(true, true), 0)),
                    ("m2".into(), minion(highstate_ret(false, true), 0)),
                ],
                missing: vec![],
                unknown: vec![],
            },
        )]),
        ..Default::default()
    };
    let (_, results) = run(
        "web:\n  salt.state:\n    - tgt: 'm*'\n    - sls: [web, db]\n    - pillar: {a: 1}\n    - saltenv: prod\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    let job = fake.published.lock().unwrap()[0].clone();
    assert_eq!(job.fun, "state.sls");
    assert_eq!(
        job.arg,
        vec![
            Value::from("web,db"),
            Value::map([
                ("pillar", Value::map([("a", Value::Int(1))])),
                ("saltenv", Value::from("prod")),
                ("queue", Value::Bool(false)),
                ("concurrent", Value::Bool(false)),
                ("__kwarg__", Value::Bool(true)),
            ])
        ]
    );
    let r = by_id(&results, "web");
    assert_eq!(r.get("result"), Some(&Value::Bool(true)));
    assert_eq!(
        text(r, "comment"),
        "States ran successfully. Updating m1. No changes made to m2."
    );
    assert_eq!(
        r.get("changes").and_then(|c| c.get("out")),
        Some(&Value::from("highstate"))
    );

    // A failed state, a minion that returned errors, one that never did.
    let mut fake = Fake {
        returns: Arc::new(vec![(
            "state.highstate".into(),
            CmdReturns {
                returns: vec![
                    ("m1".into(), minion(highstate_ret(true, false), 2)),
                    (
                        "m2".into(),
                        minion(Value::Array(vec![Value::from("Rendering SLS failed")]), 1),
                    ),
                ],
                missing: vec![],
                unknown: vec!["m3".into()],
            },
        )]),
        ..Default::default()
    };
    let (_, results) = run(
        "all:\n  salt.state:\n    - tgt: '*'\n    - highstate: True\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    let r = by_id(&results, "all");
    assert_eq!(r.get("result"), Some(&Value::Bool(false)));
    assert_eq!(
        text(r, "comment"),
        "Run failed on minions: m1, m2, m3\nMinion m2 returned errors: Rendering SLS failed\nMinion m3 did not return a state result."
    );
    // allow_fail forgives up to that many minions.
    let (_, results) = run(
        "all:\n  salt.state:\n    - tgt: '*'\n    - highstate: True\n    - allow_fail: 3\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    assert_eq!(by_id(&results, "all").get("result"), Some(&Value::Bool(true)));

    // Nothing to run, a bad concurrent, no minion at all, test mode.
    let (_, results) = run(
        "a:\n  salt.state:\n    - tgt: '*'\nb:\n  salt.state:\n    - tgt: '*'\n    - sls: x\n    - concurrent: 'yes'\nc:\n  salt.state:\n    - tgt: nobody\n    - sls: x\n",
        &mut Fake::default(),
        OrchestrateOpts::default(),
    );
    assert_eq!(
        text(by_id(&results, "a"), "comment"),
        "No highstate or sls specified, no execution made"
    );
    assert_eq!(
        text(by_id(&results, "b"), "comment"),
        "Must pass in boolean for value of 'concurrent'"
    );
    assert_eq!(text(by_id(&results, "c"), "comment"), "No minions returned");
    let mut fake = Fake {
        returns: Arc::new(vec![(
            "state.sls".into(),
            CmdReturns {
                returns: vec![("m1".into(), minion(highstate_ret(true, true), 0))],
                missing: vec![],
                unknown: vec![],
            },
        )]),
        ..Default::default()
    };
    let (_, results) = run(
        "web:\n  salt.state:\n    - tgt: m1\n    - sls: web\n",
        &mut fake,
        OrchestrateOpts {
            test: Some(true),
            ..Default::default()
        },
    );
    // Salt's salt.state publishes in test mode too, with test=True.
    let job = fake.published.lock().unwrap()[0].clone();
    assert_eq!(job.arg[1].get("test"), Some(&Value::Bool(true)));
    assert_eq!(by_id(&results, "web").get("result"), Some(&Value::Nil));
}

#[test]
fn runner_and_wheel_results() {
    let mut fake = Fake::default();
    let (_, results) = run(
        "r:\n  salt.runner:\n    - name: jobs.list_jobs\n    - arg: [1]\n    - kwarg: {a: 1}\n    - b: 2\nbad:\n  salt.runner:\n    - name: bad.fun\nw:\n  salt.wheel:\n    - name: key.accept\n    - match: web1\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    let calls = fake.runners.lock().unwrap().clone();
    assert_eq!(calls[0].0, "jobs.list_jobs");
    assert_eq!(calls[0].1, vec![Value::Int(1)]);
    assert_eq!(calls[0].2, Value::map([("a", Value::Int(1)), ("b", Value::Int(2))]));
    assert_eq!(
        text(by_id(&results, "r"), "comment"),
        "Runner function 'jobs.list_jobs' executed."
    );
    let bad = by_id(&results, "bad");
    assert_eq!(bad.get("result"), Some(&Value::Bool(false)));
    assert_eq!(text(bad, "comment"), "Runner function 'bad.fun' failed.");
    assert_eq!(text(bad, "__jid__"), "1");
    let w = by_id(&results, "w");
    assert_eq!(text(w, "comment"), "Wheel function 'key.accept' executed.");
    assert_eq!(
        w.get("changes")
            .and_then(|c| c.get("return"))
            .and_then(|r| r.get("kwarg")),
        Some(&Value::map([("match", Value::from("web1"))]))
    );
}

#[test]
fn wait_for_event_counts_ids_off() {
    let mut fake = Fake {
        events: Arc::new(vec![
            ("other/tag".into(), Value::map([("id", Value::from("a"))])),
            ("salt/minion/a/start".into(), Value::map([("id", Value::from("a"))])),
            (
                "salt/minion/b/start".into(),
                Value::map([("data", Value::map([("id", Value::from("b"))]))]),
            ),
        ]),
        ..Default::default()
    };
    let (_, results) = run(
        "w:\n  salt.wait_for_event:\n    - name: salt/minion/*/start\n    - id_list: [a, b]\n    - timeout: 1\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    let w = by_id(&results, "w");
    assert_eq!(w.get("result"), Some(&Value::Bool(true)));
    assert!(text(w, "comment").starts_with("All events seen in "), "{w:?}");
    assert_eq!(
        w.get("changes"),
        Some(&Value::map([(
            "minions_seen",
            Value::Array(vec![Value::from("a"), Value::from("b")])
        )]))
    );
    let (_, results) = run(
        "w:\n  salt.wait_for_event:\n    - name: salt/minion/*/start\n    - id_list: [a, c]\n    - timeout: 0.2\n",
        &mut fake,
        OrchestrateOpts::default(),
    );
    let w = by_id(&results, "w");
    assert_eq!(w.get("result"), Some(&Value::Bool(false)));
    assert_eq!(text(w, "comment"), "Timeout value reached.");
}

#[test]
fn parallel_states_overlap_and_return_what_sequential_ones_do() {
    let sls = |parallel: bool| {
        format!(
            "a:\n  salt.function:\n    - name: test.ping\n    - tgt: x\n    - parallel: {parallel}\nb:\n  salt.function:\n    - name: test.ping\n    - tgt: y\n    - parallel: {parallel}\nafter:\n  test.nop:\n    - require:\n      - salt: a\n      - salt: b\n"
        )
    };
    let returns = Arc::new(vec![(
        "test.ping".to_string(),
        CmdReturns {
            returns: vec![("x".into(), minion(Value::Bool(true), 0))],
            missing: vec![],
            unknown: vec![],
        },
    )]);
    let mut fake = Fake {
        returns: returns.clone(),
        delay: Duration::from_millis(400),
        ..Default::default()
    };
    let started = Instant::now();
    let (par, par_results) = run(&sls(true), &mut fake, OrchestrateOpts::default());
    let par_time = started.elapsed();
    let started = Instant::now();
    let (seq, seq_results) = run(&sls(false), &mut fake, OrchestrateOpts::default());
    let seq_time = started.elapsed();
    assert!(par_time < Duration::from_millis(750), "{par_time:?}");
    assert!(seq_time >= Duration::from_millis(800), "{seq_time:?}");
    // As maps: a parallel result's keys come in another order, as in Salt.
    let strip = |rs: &[(String, Value)]| -> Vec<(String, serde_json::Value)> {
        rs.iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v.remove("start_time");
                v.remove("duration");
                (k.clone(), brine_proto::json::to_json(&v))
            })
            .collect()
    };
    assert_eq!(strip(&par_results), strip(&seq_results));
    assert_eq!(par.get("retcode"), seq.get("retcode"));
    assert_eq!(by_id(&par_results, "after").get("result"), Some(&Value::Bool(true)));
}

#[test]
fn a_requisite_cycle_is_reported_not_followed() {
    let (out, results) = run(
        "a:\n  test.nop:\n    - require:\n      - test: b\nb:\n  test.nop:\n    - require:\n      - test: c\nc:\n  test.nop:\n    - require:\n      - test: a\n",
        &mut Fake::default(),
        OrchestrateOpts::default(),
    );
    assert_eq!(out.get("retcode"), Some(&Value::Int(1)));
    assert!(
        results
            .iter()
            .any(|(_, r)| text(r, "comment") == "Recursive requisite found"),
        "{results:?}"
    );
    // Two states requiring each other are refused before anything runs.
    let (out, _) = run(
        "a:\n  test.nop:\n    - require:\n      - test: b\nb:\n  test.nop:\n    - require:\n      - test: a\n",
        &mut Fake::default(),
        OrchestrateOpts::default(),
    );
    assert_eq!(
        out.get("data").and_then(|d| d.get("m")),
        Some(&Value::Array(vec![Value::from(
            "A recursive requisite was found, SLS \"main\" ID \"b\" ID \"a\""
        )]))
    );
}

#[test]
fn missing_requisites_and_render_errors() {
    let (_, results) = run(
        "a:\n  test.nop:\n    - require:\n      - test: ghost\n    - onchanges:\n      - sls: nowhere\n",
        &mut Fake::default(),
        OrchestrateOpts::default(),
    );
    assert_eq!(
        text(by_id(&results, "a"), "comment"),
        "The following requisites were not found:\n                   require:\n                       test: ghost\n                   onchanges:\n                       sls: nowhere\n"
    );
    let (out, _) = run("a: [unclosed\n", &mut Fake::default(), OrchestrateOpts::default());
    let errs = out.get("data").and_then(|d| d.get("m")).unwrap();
    let Value::Array(errs) = errs else { panic!("{errs:?}") };
    assert!(
        brine_py::to_str(&errs[0]).starts_with("Rendering SLS 'base:main' failed: "),
        "{errs:?}"
    );
    assert_eq!(out.get("retcode"), Some(&Value::Int(1)));
}
