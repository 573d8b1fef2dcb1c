//! The unmodified Python `salt-api` (3007.17, rest_cherrypy and
//! rest_tornado) in front of Brine answers as in front of Python's
//! salt-master on the same config, with a real salt-minion connected: the
//! same scenario runs against each master, every answer (status,
//! content type, body) is recorded with what legitimately differs masked,
//! and the two records must be equal.
//!
//! The scenario: eauth logins (`auto` backend; a user without ACL; an eauth
//! backend that is not configured; the `file` backend, with a wrong
//! password too), `local`, `local_async` and its job,
//! `runner`, `runner_async` and its job, `wheel`, `/minions`, `/keys`,
//! `/jobs`, a user allowed only `test.ping` on `minion1*` calling what it
//! may and may not, `/run` with eauth credentials and with tokens (garbage
//! ones, expired ones), `/events` carrying an event fired through
//! `/hook/<path>`, and a webhook driving a reaction.
//!
//! What salt-api asks of the master here: the clear `mk_token` and
//! `get_token` requests, publishes, runner and wheel calls authorised by
//! token or by eauth credentials, the eauth token files in
//! `cachedir/tokens` (rest_tornado makes and reads tokens itself, in the
//! api process, and the master must accept them), the event bus, the job
//! cache and the reactor.
//!
//! Masks (applied to both sides alike, see [`Masker`]):
//! * jids: each distinct jid of one answer becomes `<jid-N>`, N its rank
//!   in time order, so a job list still shows how many jobs there were and
//!   which entries name the same job;
//! * tokens and cherrypy session ids (40 or 64 hex digits): random;
//! * a token's `start` and `expire`: the time of the login; what is kept
//!   is its lifetime, `expire - start` rounded to the second;
//! * `_stamp` and `ts` of events and `StartTime` of jobs: times;
//! * minion key fingerprints: each side's minion made its own key;
//! * `pid` (the minion's grain in `/minions`): a process id;
//! * the side's temp root, and `127.0.0.1:<port>` (each side's salt-api
//!   listens on ports of its own; the `Host` header of webhook events);
//! * `saltutil.find_job` and `runner.jobs.list_job` jobs in job lists:
//!   Salt's LocalClient publishes the first only when a minion is slower
//!   than `timeout`, and the test polls `GET /jobs/<jid>` (a
//!   `jobs.list_job` runner job each time) until a job is done; how many
//!   there are depends on the machine's load, not on the master.
//!
//! Set `BRINE_SALTAPI_BOTH_PYTHON=1` to run the Python master on both
//! sides: the records must then be equal too, which shows the masks
//! cover everything that differs run to run.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::minion::{Minion, READY};
use common::pysalt::EitherMaster;
use common::saltapi::{ApiPorts, Event, Http, Response, SaltApi};
use common::*;
use serde_json::{json, Value};

const VERSION: &str = "3007.17";

/// Both masters' config (after [`ApiPorts::config`]): `fred` may run
/// test.* and grains.items (for `/minions`) on every minion, runners and
/// wheel functions; `bob` only test.ping on `minion1*`; `alice`, whose
/// password is in a text file (the `file` backend), test.*; `nobody` and
/// `locked` (the `pam` backend, a PAM service of the test whose account
/// step refuses `locked`), test.ping.
/// `token_expire_user_override` lets a login ask for a token that expires
/// within seconds.
const CONF: &str = "\
auto_accept: True
token_expire_user_override: True
external_auth:
  auto:
    fred:
      - 'test.*'
      - 'grains.items'
      - '@runner'
      - '@wheel'
      - '@jobs'
    bob:
      - 'minion1*':
        - test.ping
  file:
    ^filename: {root}/users.txt
    alice:
      - 'test.*'
  pam:
    nobody:
      - test.ping
    locked:
      - test.ping
auth.pam.service: {pam}
reactor:
  - 'salt/netapi/hook/react':
    - {root}/reactor/hook.sls
";

/// The reaction to `/hook/react`: the posted message echoed by the
/// minion, and a file the minion touches (seen on disk even if salt-api
/// cannot stream events).
const REACTION: &str = "\
echo-back:
  local.test.echo:
    - tgt: minion1
    - arg:
      - {{ data['post']['msg'] }}
touch:
  local.file.touch:
    - tgt: minion1
    - arg:
      - {root}/reacted-{{ data['post']['msg'] }}
";

/// One master with its minion and a salt-api in front. Fields drop in
/// order: salt-api, the minion, the master, then the temp root.
struct Side {
    api: SaltApi,
    minion: Minion,
    _master: EitherMaster,
    env: Env,
}

impl Side {
    fn start(label: &'static str, python: bool, pam: &str) -> Side {
        let ports = ApiPorts::new();
        let env = Env::with_extra(2, "");
        let root = env.root().display().to_string();
        let conf_path = env.conf_dir.join("master");
        let conf = std::fs::read_to_string(&conf_path).unwrap();
        std::fs::write(
            &conf_path,
            format!(
                "{conf}{}{}",
                ports.config(),
                CONF.replace("{root}", &root).replace("{pam}", pam)
            ),
        )
        .unwrap();
        std::fs::write(env.root().join("users.txt"), "alice:wonderland\n").unwrap();
        std::fs::create_dir_all(env.root().join("reactor")).unwrap();
        std::fs::write(env.root().join("reactor/hook.sls"), REACTION.replace("{root}", &root)).unwrap();
        let master = EitherMaster::start(&env, python, VERSION);
        let minion = Minion::start(&env, VERSION, "minion1", "");
        let api = SaltApi::start(&env, VERSION, ports);
        assert!(
            minion.wait_log(READY, Duration::from_secs(120)),
            "{label}: minion1 not ready\n{}",
            minion.log()
        );
        Side {
            api,
            minion,
            _master: master,
            env,
        }
    }

    fn tokens(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.env.root().join("cache/tokens"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One answer as recorded: status, content type, masked body.
#[derive(Debug, PartialEq)]
struct Step {
    name: String,
    status: u16,
    content_type: String,
    body: String,
}

/// What is masked in one side's answers (the module's documentation says
/// why).
struct Masker {
    root: String,
    jid: regex::Regex,
    token: regex::Regex,
    finger: regex::Regex,
    time: regex::Regex,
    host: regex::Regex,
    page: regex::Regex,
}

impl Masker {
    fn new(root: &std::path::Path) -> Masker {
        Masker {
            root: root.display().to_string(),
            jid: regex::Regex::new(r"\b\d{20}\b").unwrap(),
            token: regex::Regex::new(r"\b(?:[0-9a-f]{64}|[0-9a-f]{40})\b").unwrap(),
            finger: regex::Regex::new(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){15,63}\b").unwrap(),
            time: regex::Regex::new(r"\d{4}, \w{3} \d{2} \d{2}:\d{2}:\d{2}\.\d{6}").unwrap(),
            host: regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap(),
            page: regex::Regex::new(r#"(?s)<h2>(.*?)</h2>\s*<p>(.*?)</p>\s*<pre id="traceback">(.*?)</pre>"#).unwrap(),
        }
    }

    fn body(&self, body: &str) -> String {
        let text = match serde_json::from_str::<Value>(body) {
            Ok(v) => serde_json::to_string_pretty(&canonical(v)).unwrap(),
            Err(_) => self.error_page(body),
        };
        self.text(&text)
    }

    /// CherryPy's error page (the same HTML template around every error)
    /// as what varies in it: the status, the message and the traceback
    /// (empty unless salt-api runs with `debug`).
    fn error_page(&self, body: &str) -> String {
        match self.page.captures(body) {
            Some(c) if body.contains("Powered by") => {
                format!("cherrypy error page: {} | {} | traceback: {}", &c[1], &c[2], &c[3])
            }
            _ => body.to_string(),
        }
    }

    fn text(&self, text: &str) -> String {
        let text = text.replace(&self.root, "<root>");
        let jids: BTreeSet<&str> = self.jid.find_iter(&text).map(|m| m.as_str()).collect();
        let ranks: Vec<&str> = jids.into_iter().collect();
        let text = self.jid.replace_all(&text, |c: &regex::Captures| {
            format!("<jid-{}>", ranks.iter().position(|j| *j == &c[0]).unwrap())
        });
        let text = self.token.replace_all(&text, "<token>");
        let text = self.finger.replace_all(&text, "<fingerprint>");
        let text = self.time.replace_all(&text, "<time>");
        self.host.replace_all(&text, "127.0.0.1:<port>").into_owned()
    }
}

/// `v` with the keys of every object sorted (JSON objects are unordered:
/// Python's dicts and Brine's maps may list them differently) and the
/// value-level masks applied.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m
                .into_iter()
                .filter(|(_, v)| {
                    let fun = v.get("Function").and_then(Value::as_str);
                    !matches!(fun, Some("saltutil.find_job" | "runner.jobs.list_job"))
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = serde_json::Map::new();
            let lifetime = match (
                entries.iter().find(|e| e.0 == "start").and_then(|e| e.1.as_f64()),
                entries.iter().find(|e| e.0 == "expire").and_then(|e| e.1.as_f64()),
            ) {
                (Some(s), Some(e)) => Some((e - s).round()),
                _ => None,
            };
            for (k, v) in entries {
                let v = match (k.as_str(), lifetime) {
                    ("_stamp", _) => json!("<stamp>"),
                    ("ts", _) if v.is_number() => json!("<ts>"),
                    ("pid", _) if v.is_number() => json!("<pid>"),
                    ("start", Some(_)) => json!("<start>"),
                    ("expire", Some(l)) => json!(format!("<start> + {l}")),
                    _ => canonical(v),
                };
                out.insert(k, v);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        v => v,
    }
}

/// The answers of one side, in the scenario's order.
struct Record {
    masker: Masker,
    steps: Vec<Step>,
    last: Instant,
}

impl Record {
    fn push(&mut self, name: &str, status: u16, content_type: &str, body: &str) {
        let body = self.masker.body(body);
        eprintln!("[{name}] {status} {content_type} ({:?})\n{body}", self.last.elapsed());
        self.last = Instant::now();
        self.steps.push(Step {
            name: name.to_string(),
            status,
            content_type: content_type.to_string(),
            body,
        });
    }

    fn response(&mut self, name: &str, r: &Response) {
        self.push(name, r.status, r.header("Content-Type").unwrap_or(""), &r.body);
    }

    /// An event from `/events`: None if it did not come, `Err` if there
    /// was no stream to wait on (or the event it follows did not come).
    fn event(&mut self, name: &str, ev: Result<Option<Event>, &str>) {
        match ev {
            Ok(Some(ev)) => self.push(name, 200, "event", &ev.event.to_string()),
            Ok(None) => self.push(name, 0, "event", "no such event within 30 s"),
            Err(why) => self.push(name, 0, "event", why),
        }
    }
}

fn local(tgt: &str, fun: &str, arg: &[&str]) -> Value {
    json!({"client": "local", "tgt": tgt, "fun": fun, "arg": arg})
}

/// `low` with eauth credentials, for `/run`.
fn with_creds(low: Value, user: &str, eauth: &str) -> Value {
    with_password(low, user, "secret", eauth)
}

fn with_password(mut low: Value, user: &str, password: &str, eauth: &str) -> Value {
    low["username"] = json!(user);
    low["password"] = json!(password);
    low["eauth"] = json!(eauth);
    low
}

/// Poll `GET /jobs/<jid>` until the job has a return (a minion's or, for a
/// runner job, the master's), at most 30 s; the last answer.
fn job_when_done(api: &Http, token: Option<&str>, jid: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = api.get(&format!("/jobs/{jid}"), token);
        let done = r
            .json()
            .and_then(|v| v["return"][0].as_object().map(|m| !m.is_empty()))
            .unwrap_or(false);
        if done || r.status != 200 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

const EVENT_WAIT: Duration = Duration::from_secs(30);

fn cherrypy(side: &Side, rec: &mut Record) {
    let api = side.api.cherrypy();

    // Logins: a form and a JSON body; a user the `auto` backend accepts
    // though external_auth gives it nothing; a backend not configured; the
    // `file` backend with the right password and a wrong one (refused
    // after Salt's time_auth delay).
    let r = api.post_form(
        "/login",
        None,
        &[("username", "fred"), ("password", "secret"), ("eauth", "auto")],
    );
    rec.response("cherrypy POST /login fred (form)", &r);
    let fred = r.token();
    let fred = fred.as_deref();
    let r = api.post_json(
        "/login",
        None,
        &json!({"username": "bob", "password": "secret", "eauth": "auto"}),
    );
    rec.response("cherrypy POST /login bob (json)", &r);
    let bob = r.token();
    let bob = bob.as_deref();
    let r = api.post_json(
        "/login",
        None,
        &json!({"username": "mallory", "password": "secret", "eauth": "auto"}),
    );
    rec.response("cherrypy POST /login mallory (not in external_auth)", &r);
    let mallory = r.token();
    let mallory = mallory.as_deref();
    let r = api.post_form(
        "/login",
        None,
        &[("username", "fred"), ("password", "secret"), ("eauth", "nosuch")],
    );
    rec.response("cherrypy POST /login eauth not configured", &r);
    let r = api.post_json(
        "/login",
        None,
        &json!({"username": "alice", "password": "wonderland", "eauth": "file"}),
    );
    rec.response("cherrypy POST /login alice (file)", &r);
    let alice = r.token();
    let r = api.post_json(
        "/login",
        None,
        &json!({"username": "alice", "password": "rabbit", "eauth": "file"}),
    );
    rec.response("cherrypy POST /login alice wrong password", &r);
    let r = api.post_json("/", alice.as_deref(), &json!([local("minion1", "test.echo", &["a"])]));
    rec.response("cherrypy alice test.echo", &r);
    // PAM logins: a user with the right password, a wrong one, a locked
    // account whose password is right.
    let pam_login = |user: &str, password: &str| {
        api.post_json(
            "/login",
            None,
            &json!({"username": user, "password": password, "eauth": "pam"}),
        )
    };
    let r = pam_login("nobody", "s3cret");
    rec.response("cherrypy POST /login nobody (pam)", &r);
    let nobody = r.token();
    rec.response(
        "cherrypy POST /login nobody (pam) wrong password",
        &pam_login("nobody", "nope"),
    );
    rec.response(
        "cherrypy POST /login locked (pam, account locked)",
        &pam_login("locked", "s3cret"),
    );
    let r = api.post_json("/", nobody.as_deref(), &json!([local("minion1", "test.ping", &[])]));
    rec.response("cherrypy nobody (pam) test.ping", &r);
    let r = api.post_json("/", nobody.as_deref(), &json!([local("minion1", "test.echo", &["a"])]));
    rec.response("cherrypy nobody (pam) test.echo refused", &r);

    // fred: local (two lowstate chunks in one request), local_async and
    // its job, runner, runner_async and its job, wheel.
    let r = api.post_json(
        "/",
        fred,
        &json!([
            local("minion1", "test.ping", &[]),
            local("minion1", "test.echo", &["hello"])
        ]),
    );
    rec.response("cherrypy local test.ping + test.echo", &r);
    let r = api.post_json(
        "/",
        fred,
        &json!([{"client": "local_async", "tgt": "minion1", "fun": "test.echo", "arg": ["async"]}]),
    );
    rec.response("cherrypy local_async test.echo", &r);
    match r.json().and_then(|v| v["return"][0]["jid"].as_str().map(String::from)) {
        Some(jid) => rec.response("cherrypy GET /jobs/<local_async jid>", &job_when_done(&api, fred, &jid)),
        None => rec.push("cherrypy GET /jobs/<local_async jid>", 0, "", "no jid"),
    }
    let r = api.post_json("/", fred, &json!([{"client": "runner", "fun": "manage.up"}]));
    rec.response("cherrypy runner manage.up", &r);
    let r = api.post_json(
        "/",
        fred,
        &json!([{"client": "runner", "fun": "jobs.list_jobs", "search_function": "test.echo"}]),
    );
    rec.response("cherrypy runner jobs.list_jobs search_function=test.echo", &r);
    let r = api.post_json("/", fred, &json!([{"client": "runner_async", "fun": "manage.up"}]));
    rec.response("cherrypy runner_async manage.up", &r);
    match r.json().and_then(|v| v["return"][0]["jid"].as_str().map(String::from)) {
        Some(jid) => rec.response(
            "cherrypy GET /jobs/<runner_async jid>",
            &job_when_done(&api, fred, &jid),
        ),
        None => rec.push("cherrypy GET /jobs/<runner_async jid>", 0, "", "no jid"),
    }
    let r = api.post_json("/", fred, &json!([{"client": "wheel", "fun": "key.list_all"}]));
    rec.response("cherrypy wheel key.list_all", &r);

    // The convenience URLs.
    rec.response("cherrypy GET /minions/minion1", &api.get("/minions/minion1", fred));
    rec.response("cherrypy GET /keys", &api.get("/keys", fred));
    rec.response("cherrypy GET /keys/minion1", &api.get("/keys/minion1", fred));
    let r = api.post_json("/minions", fred, &json!([{"tgt": "minion1", "fun": "test.ping"}]));
    rec.response("cherrypy POST /minions test.ping", &r);
    if let Some(jid) = r.json().and_then(|v| v["return"][0]["jid"].as_str().map(String::from)) {
        job_when_done(&api, fred, &jid);
    }
    rec.response("cherrypy GET /jobs", &api.get("/jobs", fred));

    // bob may run test.ping on minion1* only. An accepted key `other1`
    // (no minion behind it) is a target outside that.
    let pki = side.env.root().join("pki/minions");
    std::fs::copy(pki.join("minion1"), pki.join("other1")).unwrap();
    let bob_cases = [
        ("test.ping on minion1", local("minion1", "test.ping", &[])),
        ("test.echo on minion1 (refused)", local("minion1", "test.echo", &["x"])),
        ("test.ping on other1 (refused)", local("other1", "test.ping", &[])),
        (
            "runner manage.up (refused)",
            json!({"client": "runner", "fun": "manage.up"}),
        ),
        (
            "wheel key.list_all (refused)",
            json!({"client": "wheel", "fun": "key.list_all"}),
        ),
    ];
    rec.response("cherrypy bob GET /minions (refused)", &api.get("/minions", bob));
    for (what, low) in &bob_cases {
        rec.response(&format!("cherrypy bob {what}"), &api.post_json("/", bob, &json!([low])));
    }
    // Gone again: every minion matched by a target is waited for, and
    // `other1` would never answer.
    std::fs::remove_file(pki.join("other1")).unwrap();
    let r = api.post_json("/", mallory, &json!([local("minion1", "test.ping", &[])]));
    rec.response("cherrypy mallory test.ping (refused)", &r);

    // /run: eauth credentials in each chunk (what `salt -a` sends), and
    // tokens that are not valid.
    let run_cases = [
        (
            "fred eauth local test.ping",
            with_creds(local("minion1", "test.ping", &[]), "fred", "auto"),
        ),
        (
            "fred eauth runner manage.up",
            with_creds(json!({"client": "runner", "fun": "manage.up"}), "fred", "auto"),
        ),
        (
            "fred eauth wheel key.list_all",
            with_creds(json!({"client": "wheel", "fun": "key.list_all"}), "fred", "auto"),
        ),
        (
            "bob eauth test.echo (refused)",
            with_creds(local("minion1", "test.echo", &["x"]), "bob", "auto"),
        ),
        (
            "eauth not configured",
            with_creds(local("minion1", "test.ping", &[]), "fred", "nosuch"),
        ),
        (
            "alice eauth file test.ping",
            with_password(local("minion1", "test.ping", &[]), "alice", "wonderland", "file"),
        ),
        (
            "alice eauth file wrong password",
            with_password(local("minion1", "test.ping", &[]), "alice", "rabbit", "file"),
        ),
        ("garbage hex token", {
            let mut l = local("minion1", "test.ping", &[]);
            l["token"] = json!("deadbeef");
            l
        }),
        ("token not hex", {
            let mut l = local("minion1", "test.ping", &[]);
            l["token"] = json!("not-a-token");
            l
        }),
    ];
    for (what, low) in &run_cases {
        rec.response(
            &format!("cherrypy /run {what}"),
            &api.post_json("/run", None, &json!([low])),
        );
    }
    let r = api.post_json("/", Some("deadbeef"), &json!([local("minion1", "test.ping", &[])]));
    rec.response("cherrypy garbage X-Auth-Token", &r);

    // Tokens that expire 4 s after the login (time enough for one call
    // while valid on a loaded machine): one through its cherrypy
    // session (/events asks the master with `get_token`), one as the raw
    // Salt token, the file the master wrote in cachedir/tokens (/run
    // publishes with it).
    let before = side.tokens();
    let short = json!({"username": "fred", "password": "secret", "eauth": "auto", "token_expire": 4});
    let r = api.post_json("/login", None, &short);
    rec.response("cherrypy POST /login fred token_expire=4", &r);
    let session = r.token();
    let mid = side.tokens();
    let r = api.post_json("/login", None, &short);
    // Both tokens have expired 5 s from here.
    let t0 = Instant::now();
    let raw: Vec<String> = side.tokens().difference(&mid).cloned().collect();
    rec.push(
        "cherrypy token files made by two logins",
        r.status,
        "",
        &format!(
            "first: {} new, second: {} new",
            mid.difference(&before).count(),
            raw.len()
        ),
    );
    let raw = raw.first().cloned().unwrap_or_default();
    let with_raw = {
        let mut l = local("minion1", "test.ping", &[]);
        l["token"] = json!(raw);
        l
    };
    rec.response(
        "cherrypy /run raw token before it expires",
        &api.post_json("/run", None, &json!([with_raw])),
    );
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t0.elapsed()));
    match api.events(session.as_deref()) {
        Ok(s) => rec.push("cherrypy GET /events expired token", s.status(), "", "stream"),
        Err(r) => rec.response("cherrypy GET /events expired token", &r),
    }
    rec.response(
        "cherrypy /run expired raw token",
        &api.post_json("/run", None, &json!([with_raw])),
    );
    let r = api.post_json("/", session.as_deref(), &json!([local("minion1", "test.ping", &[])]));
    rec.response("cherrypy expired session", &r);

    // /events: an event fired through /hook/<path>, then a webhook whose
    // reaction has the minion echo the posted message and touch a file.
    let mut stream = match api.events(fred) {
        Ok(s) => {
            rec.push(
                "cherrypy GET /events",
                s.status(),
                s.content_type().unwrap_or(""),
                "stream",
            );
            Some(s)
        }
        Err(r) => {
            rec.response("cherrypy GET /events", &r);
            None
        }
    };
    let r = api.post_json("/hook/brine/test", None, &json!({"msg": "hi"}));
    rec.response("cherrypy POST /hook/brine/test", &r);
    const NO_STREAM: &str = "no event stream";
    let ev = stream
        .as_mut()
        .map(|s| s.wait_for(EVENT_WAIT, |e| e.tag == "salt/netapi/hook/brine/test"))
        .ok_or(NO_STREAM);
    rec.event("cherrypy event salt/netapi/hook/brine/test", ev);

    let r = api.post_json("/hook/react", None, &json!({"msg": "reacted"}));
    rec.response("cherrypy POST /hook/react", &r);
    let echo = |e: &Event| e.event["data"]["fun"] == "test.echo" && e.event["data"]["arg"] == json!(["reacted"]);
    let new = stream
        .as_mut()
        .map(|s| {
            s.wait_for(EVENT_WAIT, |e| {
                e.tag.starts_with("salt/job/") && e.tag.ends_with("/new") && echo(e)
            })
        })
        .ok_or(NO_STREAM);
    let jid = match &new {
        Ok(Some(e)) => e.event["data"]["jid"].as_str().map(String::from),
        _ => None,
    };
    rec.event("cherrypy reaction's job (new)", new);
    let ret = match (stream.as_mut(), jid) {
        (Some(s), Some(jid)) => Ok(s.wait_for(EVENT_WAIT, |e| e.tag == format!("salt/job/{jid}/ret/minion1"))),
        (None, _) => Err(NO_STREAM),
        (Some(_), None) => Err("no job to wait for"),
    };
    rec.event("cherrypy reaction's return", ret);
    let touched = side.env.root().join("reacted-reacted");
    let done = wait_until(EVENT_WAIT, || touched.exists());
    rec.push("cherrypy reaction's file", 200, "", &format!("touched: {done}"));
}

fn tornado(side: &Side, rec: &mut Record) {
    let api = side.api.tornado();
    let login = |user: &str, eauth: &str| {
        api.post_json(
            "/login",
            None,
            &json!({"username": user, "password": "secret", "eauth": eauth}),
        )
    };
    // rest_tornado makes the token in the api process (LoadAuth writes
    // cachedir/tokens); the master reads it when the token comes with a
    // publish.
    let r = login("fred", "auto");
    rec.response("tornado POST /login fred", &r);
    let fred = r.token();
    let r = api.post_json("/", fred.as_deref(), &json!([local("minion1", "test.ping", &[])]));
    rec.response("tornado fred local test.ping", &r);
    let r = api.post_json("/", fred.as_deref(), &json!([{"client": "runner", "fun": "manage.up"}]));
    rec.response("tornado fred runner manage.up", &r);
    let r = login("bob", "auto");
    rec.response("tornado POST /login bob", &r);
    let bob = r.token();
    let r = api.post_json("/", bob.as_deref(), &json!([local("minion1", "test.ping", &[])]));
    rec.response("tornado bob test.ping on minion1", &r);
    let r = api.post_json("/", bob.as_deref(), &json!([local("minion1", "test.echo", &["x"])]));
    rec.response("tornado bob test.echo on minion1 (refused)", &r);
    let r = api.post_json("/", Some("deadbeef"), &json!([local("minion1", "test.ping", &[])]));
    rec.response("tornado garbage X-Auth-Token", &r);
    let mut low = local("minion1", "test.ping", &[]);
    low["token"] = json!("deadbeef");
    rec.response(
        "tornado /run garbage token",
        &api.post_json("/run", None, &json!([low])),
    );
    rec.response("tornado POST /login eauth not configured", &login("fred", "nosuch"));
}

fn scenario(label: &'static str, python: bool, pam: &str) -> Vec<Step> {
    let t0 = Instant::now();
    let side = Side::start(label, python, pam);
    eprintln!("===== {label}: up in {:?}", t0.elapsed());
    let mut rec = Record {
        masker: Masker::new(&side.env.root()),
        steps: Vec::new(),
        last: Instant::now(),
    };
    cherrypy(&side, &mut rec);
    tornado(&side, &mut rec);
    eprintln!(
        "===== {label}: done in {:?}\n-- salt-api stderr:\n{}\n-- minion log (tail):\n{}",
        t0.elapsed(),
        side.api.log(),
        tail(&side.minion.log(), 30)
    );
    if !python {
        eprintln!("-- Brine's log (tail):\n{}", tail(&read(&side.env.log_file()), 60));
    }
    rec.steps
}

/// The lines of `a` and `b` that are not in their longest common
/// subsequence, `-` for `a`'s and `+` for `b`'s, in order.
fn line_diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // lcs[i][j]: the length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j == b.len() || (i < a.len() && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out.join("\n")
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn salt_api_answers_for_brine_as_for_python_salt() {
    let both_python = std::env::var_os("BRINE_SALTAPI_BOTH_PYTHON").is_some();
    let pam = brine_testutil::pam::PamService::new(true, "");
    let python = scenario("python", true, &pam.name);
    let other = if both_python {
        scenario("python (again)", true, &pam.name)
    } else {
        scenario("brine", false, &pam.name)
    };
    let other_label = if both_python { "python (again)" } else { "brine" };
    // The reference did what the scenario is about (a harness that broke
    // both sides alike would otherwise compare failures with failures).
    for (name, status, needle) in [
        ("cherrypy POST /login fred (form)", 200, "\"user\": \"fred\""),
        (
            "cherrypy POST /login alice wrong password",
            401,
            "Could not authenticate",
        ),
        ("cherrypy alice test.echo", 200, "\"minion1\": \"a\""),
        ("cherrypy local test.ping + test.echo", 200, "\"minion1\": \"hello\""),
        (
            "cherrypy bob test.echo on minion1 (refused)",
            401,
            "Authorization error occurred.",
        ),
        ("cherrypy /run raw token before it expires", 200, "\"minion1\": true"),
        ("cherrypy /run expired raw token", 401, "Authentication error occurred."),
        ("cherrypy event salt/netapi/hook/brine/test", 200, "\"msg\": \"hi\""),
        ("cherrypy reaction's return", 200, "\"return\": \"reacted\""),
        ("tornado fred local test.ping", 200, "\"minion1\": true"),
        ("cherrypy POST /login nobody (pam)", 200, "\"eauth\": \"pam\""),
        (
            "cherrypy POST /login locked (pam, account locked)",
            401,
            "Could not authenticate",
        ),
        ("cherrypy nobody (pam) test.ping", 200, "\"minion1\": true"),
    ] {
        let step = python.iter().find(|s| s.name == name).expect(name);
        assert!(
            step.status == status && step.body.contains(needle),
            "Python's master: {name}: {} {}",
            step.status,
            step.body
        );
    }
    let mut failed = Vec::new();
    for (p, b) in python.iter().zip(&other) {
        assert_eq!(p.name, b.name, "the scenario ran the same steps");
        if p == b {
            continue;
        }
        let head = format!(
            "== {}\n-- python: {} {} / {other_label}: {} {}",
            p.name, p.status, p.content_type, b.status, b.content_type
        );
        if p.status == b.status && p.body.lines().count() > 20 {
            // Long bodies of the same kind (a minion's grains, job lists):
            // only the lines that differ.
            failed.push(format!("{head}\n{}", line_diff(&p.body, &b.body)));
        } else {
            failed.push(format!("{head}\n-- python:\n{}\n-- {other_label}:\n{}", p.body, b.body));
        }
    }
    assert_eq!(python.len(), other.len(), "the scenario ran the same steps");
    assert!(
        failed.is_empty(),
        "{} of {} answers differ:\n{}",
        failed.len(),
        python.len(),
        failed.join("\n")
    );
}
