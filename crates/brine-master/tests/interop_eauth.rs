//! eauth, tokens and ACLs through Python Salt's own clients, against
//! Brine and, in the same test, against Python's master on the same
//! config (real salt-minions `a1`, `a2`): `salt -a`, `salt -T` and the
//! saved token file, `mk_token`/`get_token` as salt-api's `Resolver`
//! sends them, a token in a publish's kwargs (`LocalClient.cmd(...,
//! token=...)`), the runner and wheel clients with a token, ACL
//! refusals, and expired tokens. Answers are compared after masking jids,
//! tokens and times. Brine's own `salt -a … -T` prints what Python's
//! prints.

mod common;

use common::minion::{brine_bin, venv};
use common::pysalt::{mask, py, Side};
use common::*;

/// Both masters' eauth config: `fred` may run test functions anywhere,
/// runners and wheel; `bob` may only ping `a1`; `eve` is not listed.
fn config(root_hint: &str) -> String {
    format!(
        "auto_accept: True\nexternal_auth:\n  auto:\n    fred:\n      - 'test.*'\n      - '@runner'\n      - '@wheel'\n    bob:\n      - a1:\n        - test.ping\n    'dev.*':\n      - '@jobs'\n\
         token_expire: {root_hint}\nloop_interval: 1\n"
    )
}

fn side(brine: bool, expire: &str) -> Side {
    side_with(brine, expire, "")
}

fn side_with(brine: bool, expire: &str, extra: &str) -> Side {
    Side::start(brine, "3007.17", &format!("{}{extra}", config(expire)), "", "", |env| {
        // The CLI's token file, inside the test's root.
        let conf = env.conf_dir.join("master");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("token_file: {}\n", env.root().join("salt_token").display()));
        std::fs::write(&conf, text).unwrap();
    })
}

/// Tokens (hex digests), jids and times masked.
fn masked(s: &str) -> String {
    let tok = regex::Regex::new(r"\b[0-9a-f]{64}\b").unwrap();
    let float = regex::Regex::new(r"\b1\d{9}\.\d+").unwrap();
    let s = mask(s);
    let s = tok.replace_all(&s, "<token>");
    float.replace_all(&s, "<time>").into_owned()
}

/// Run a Python snippet with Salt's client modules against `env`'s
/// master; its stdout (JSON lines).
fn client_script(env: &Env, body: &str) -> String {
    let script = format!(
        "import json, sys, salt.config, salt.auth, salt.client, salt.runner, salt.wheel, salt.exceptions\n\
         opts = salt.config.client_config({conf:?})\n\
         def show(what, f):\n\
         \x20   try:\n\
         \x20       r = f()\n\
         \x20   except Exception as e:\n\
         \x20       r = {{'raised': type(e).__name__, 'text': str(e)}}\n\
         \x20   print(what + '\\t' + json.dumps(r, sort_keys=True, default=str))\n\
         \x20   sys.stdout.flush()\n\
         \x20   return r\n\
         {body}\n",
        conf = env.conf_dir.join("master").display().to_string(),
    );
    let (out, err, code) = output(
        std::process::Command::new(venv("3007.17").join("bin/python"))
            .arg("-c")
            .arg(&script),
    );
    assert_eq!(code, 0, "client script failed: {err}\n{out}");
    out
}

const WIRE: &str = r#"
res = salt.auth.Resolver(opts)
bad = show('mk_token wrong user', lambda: res.mk_token({'eauth': 'auto', 'username': 'eve', 'password': 'x'}))
show('mk_token unknown backend', lambda: res.mk_token({'eauth': 'nope', 'username': 'fred', 'password': 'x'}))
show('mk_token no password', lambda: res.mk_token({'eauth': 'auto', 'username': 'fred'}))
tok = show('mk_token fred', lambda: res.mk_token({'eauth': 'auto', 'username': 'fred', 'password': 'x'}))
t = tok['token']
show('get_token fred', lambda: res.get_token(t))
show('get_token garbage', lambda: res.get_token('0' * 64))
show('get_token climbing', lambda: res.get_token('../../etc/passwd'))
local = salt.client.LocalClient(mopts=opts)
show('publish by token', lambda: sorted(local.cmd('*', 'test.ping', timeout=30, token=t).items()))
show('publish by garbage token', lambda: local.cmd('*', 'test.ping', timeout=5, token='f' * 64))
show('publish by eauth', lambda: sorted(local.cmd('*', 'test.ping', timeout=30, eauth='auto', username='fred', password='x').items()))
show('publish refused by ACL', lambda: local.cmd('*', 'cmd.run', ['id'], timeout=5, eauth='auto', username='fred', password='x'))
show('bob on a1', lambda: local.cmd('a1', 'test.ping', timeout=30, eauth='auto', username='bob', password='x'))
show('bob on a2', lambda: local.cmd('a2', 'test.ping', timeout=5, eauth='auto', username='bob', password='x'))
show('bob echo', lambda: local.cmd('a1', 'test.echo', ['hi'], timeout=5, eauth='auto', username='bob', password='x'))
show('eve', lambda: local.cmd('*', 'test.ping', timeout=5, eauth='auto', username='eve', password='x'))
show('user pattern entry by token', lambda: salt.runner.RunnerClient(opts).cmd_sync({'fun': 'jobs.list_jobs', 'token': res.mk_token({'eauth': 'auto', 'username': 'dev1', 'password': 'x'})['token']}) is not None)
show('user pattern entry by eauth', lambda: salt.runner.RunnerClient(opts).cmd_sync({'fun': 'jobs.list_jobs', 'eauth': 'auto', 'username': 'dev1', 'password': 'x'}))
show('runner by token', lambda: sorted(salt.runner.RunnerClient(opts).cmd_sync({'fun': 'manage.up', 'token': t})))
show('wheel by token', lambda: sorted(salt.wheel.WheelClient(opts).cmd_sync({'fun': 'key.list_all', 'token': t})))
show('wheel by garbage token', lambda: salt.wheel.WheelClient(opts).cmd_sync({'fun': 'key.list_all', 'token': 'a' * 64}))
show('runner bad syntax', lambda: salt.runner.RunnerClient(opts).cmd_sync({'fun': 'nodot', 'token': t}))
"#;

const EXPIRY: &str = r#"
import time, os
res = salt.auth.Resolver(opts)
tok = res.mk_token({'eauth': 'auto', 'username': 'fred', 'password': 'x'})
t = tok['token']
show('expire - start', lambda: round(tok['expire'] - tok['start']))
show('token fields (keep_acl_in_token)', lambda: sorted(tok))
show('stored auth_list', lambda: tok.get('auth_list', 'absent'))
show('publish by a token that keeps its ACL', lambda: salt.client.LocalClient(mopts=opts).cmd('a1', 'test.ping', timeout=10, token=t))
show('fresh token', lambda: sorted(res.get_token(t)))
time.sleep(4)
local = salt.client.LocalClient(mopts=opts)
show('publish by expired token', lambda: local.cmd('*', 'test.ping', timeout=5, token=t))
show('expired token', lambda: res.get_token(t))
show('file left', lambda: os.path.exists(os.path.join(opts['cachedir'], 'tokens', t)))
tok = res.mk_token({'eauth': 'auto', 'username': 'fred', 'password': 'x'})
time.sleep(5)
show('Maintenance removed it', lambda: os.path.exists(os.path.join(opts['cachedir'], 'tokens', tok['token'])))
"#;

/// Both masters' answers, one after the other, for the test's output.
fn show_side_by_side(b: &[(String, String)], p: &[(String, String)]) {
    for (bw, pw) in b.iter().zip(p) {
        eprintln!("{}\n  brine:  {}\n  python: {}", bw.0, bw.1, pw.1);
    }
}

fn results(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(what, json)| (what.to_string(), masked(json)))
        .collect()
}

#[test]
fn eauth_tokens_and_acls_answer_as_pythons_master() {
    let brine = side(true, "43200");
    let python = side(false, "43200");
    let b = results(&client_script(&brine.env, WIRE));
    let p = results(&client_script(&python.env, WIRE));
    show_side_by_side(&b, &p);
    assert_eq!(b.len(), p.len(), "brine:\n{b:#?}\npython:\n{p:#?}");
    for (bw, pw) in b.iter().zip(&p) {
        assert_eq!(bw, pw, "{}", bw.0);
    }
    // The token files: mode 0600, one per token, readable by Python.
    let tokens = brine.env.root().join("cache/tokens");
    let files: Vec<_> = std::fs::read_dir(&tokens).unwrap().flatten().collect();
    assert!(!files.is_empty());
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            f.metadata().unwrap().permissions().mode() & 0o777,
            0o600,
            "{:?}",
            f.path()
        );
    }
    // No password or token in Brine's log.
    let log = read(&brine.env.log_file());
    assert!(!log.contains("password"), "a password in the log");
    for f in &files {
        let name = f.file_name().into_string().unwrap();
        assert!(!log.contains(&name), "a token in the log");
    }

    // The CLIs: Python's salt and Brine's salt print the same things
    // against each master, for eauth, -T and refusals.
    // (user, arguments after `-a auto --username USER --password x`).
    let cli_cases: &[(&str, &[&str])] = &[
        ("fred", &["*", "test.ping", "--out", "json", "--static", "-t", "30"]),
        ("bob", &["a2", "test.ping", "-t", "5"]),
        ("eve", &["*", "test.ping", "-t", "5"]),
        ("fred", &["-T", "a1", "test.ping", "-t", "30"]),
    ];
    for (user, rest) in cli_cases {
        let mut args = vec!["-a", "auto", "--username", user, "--password", "x"];
        args.extend_from_slice(rest);
        let args = &args;
        let (po, pe, pc) = py(&python.env, "3007.17", "salt", args);
        let (bo, be, bc) = py(&brine.env, "3007.17", "salt", args);
        let what = args.join(" ");
        eprintln!("== salt {what}\n-- brine: {bo}{be}\n-- python: {po}{pe}");
        assert_eq!((bc, sorted(&bo)), (pc, sorted(&po)), "python salt {what}");
        let (bo, be, bc) = output(
            std::process::Command::new(brine_bin("salt"))
                .arg("-c")
                .arg(&brine.env.conf_dir)
                .args(args.iter()),
        );
        assert_eq!((bc, sorted(&bo)), (pc, sorted(&po)), "brine salt {what}\n{be}");
    }
    // -T saved the raw token, mode 0600.
    for side in [&brine, &python] {
        let path = side.env.root().join("salt_token");
        let tok = std::fs::read_to_string(&path).unwrap();
        assert!(brine_auth_like_token(&tok), "{tok:?}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // salt-run by eauth, refused, then with -T: Brine's salt-run prints
    // what Python's prints against Python's master. (A saved token makes
    // Salt's CLIs go by root's key, readable here: removed first.)
    for side in [&brine, &python] {
        std::fs::remove_file(side.env.root().join("salt_token")).unwrap();
    }
    for (user, make_token) in [("bob", "--no-parse=x"), ("fred", "-T")] {
        let args = [
            "-a",
            "auto",
            "--username",
            user,
            "--password",
            "x",
            make_token,
            "manage.up",
        ];
        let (po, pe, pc) = py(&python.env, "3007.17", "salt-run", &args);
        let (bo, be, bc) = output(
            std::process::Command::new(brine_bin("salt-run"))
                .arg("-c")
                .arg(&brine.env.conf_dir)
                .args(args),
        );
        let what = args.join(" ");
        eprintln!("== salt-run {what}\n-- brine: {bo}{be}\n-- python: {po}{pe}");
        assert_eq!((bc, sorted(&bo)), (pc, sorted(&po)), "brine salt-run {what}\n{be}");
    }
    for side in [&brine, &python] {
        let tok = std::fs::read_to_string(side.env.root().join("salt_token")).unwrap();
        assert!(brine_auth_like_token(&tok), "salt-run -T saved {tok:?}");
    }
}

/// Masked lines in order (returns arrive in either order).
fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = masked(s).lines().map(|l| l.trim_end_matches(',').to_string()).collect();
    v.sort();
    v
}

fn brine_auth_like_token(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn expired_tokens_are_refused_and_removed_as_by_pythons_master() {
    // keep_acl_in_token too: the token keeps what the backend's own ACL
    // function gives (auto has none), as Salt stores it.
    let brine = side_with(true, "3", "keep_acl_in_token: True\n");
    let python = side_with(false, "3", "keep_acl_in_token: True\n");
    let b = results(&client_script(&brine.env, EXPIRY));
    let p = results(&client_script(&python.env, EXPIRY));
    show_side_by_side(&b, &p);
    assert_eq!(b, p);
    assert!(
        b.iter().any(|(w, v)| w == "Maintenance removed it" && v == "false"),
        "{b:?}"
    );
}

const PUBLISHER_ACL: &str = r#"
import os, stat
cachedir = opts['cachedir']
def key_of(user):
    with open(os.path.join(cachedir, '.%s_key' % user)) as f:
        return f.read()
st = os.stat(os.path.join(cachedir, '.nobody_key'))
show('nobody key file', lambda: [oct(st.st_mode & 0o777), st.st_uid])
show('cachedir traversable', lambda: bool(os.stat(cachedir).st_mode & stat.S_IXOTH))
local = salt.client.LocalClient(mopts=opts)
show('root blacklisted module', lambda: local.cmd('a1', 'cmd.run', ['id'], timeout=5))
show('root ping', lambda: local.cmd('a1', 'test.ping', timeout=30))
local.salt_user = 'nobody'
local.key = key_of('nobody')
show('nobody ping', lambda: local.cmd('a1', 'test.ping', timeout=30))
show('nobody echo', lambda: local.cmd('a1', 'test.echo', ['hi'], timeout=5))
show('nobody blacklisted module', lambda: local.cmd('a1', 'cmd.run', ['id'], timeout=5))
local.key = 'not-the-key'
show('nobody wrong key', lambda: local.cmd('a1', 'test.ping', timeout=5))
local.salt_user = 'mallory'
local.key = key_of(opts['user'])
show('blacklisted user', lambda: local.cmd('a1', 'test.ping', timeout=5))
local.salt_user = 'sudo_nobody'
show('sudo nobody ping', lambda: local.cmd('a1', 'test.ping', timeout=30))
show('sudo nobody echo', lambda: local.cmd('a1', 'test.echo', ['hi'], timeout=5))
"#;

/// `publisher_acl` for a local user other than root (its key file made
/// by the master, owned by the user), `sudo_acl` for `sudo_<user>`, and
/// `publisher_acl_blacklist` for users and modules, through Python's
/// LocalClient presenting each user's key as Python's `salt` run by that
/// user would.
#[test]
fn publisher_acl_and_its_blacklist_as_on_pythons_master() {
    let extra = "auto_accept: True\npublisher_acl:\n  nobody:\n    - test.ping\nsudo_acl: True\n\
                 publisher_acl_blacklist:\n  users:\n    - '^mall.*'\n  modules:\n    - 'cmd.*'\n";
    let brine = Side::start(true, "3007.17", extra, "", "", |_| {});
    let python = Side::start(false, "3007.17", extra, "", "", |_| {});
    let b = results(&client_script(&brine.env, PUBLISHER_ACL));
    let p = results(&client_script(&python.env, PUBLISHER_ACL));
    show_side_by_side(&b, &p);
    assert_eq!(b, p);
    assert!(b.iter().any(|(w, v)| w == "nobody ping" && v.contains("true")), "{b:?}");
    assert!(
        b.iter()
            .any(|(w, v)| w == "nobody echo" && v.contains("AuthorizationError")),
        "{b:?}"
    );
}

const BACKENDS: &str = r#"
res = salt.auth.Resolver(opts)
local = salt.client.LocalClient(mopts=opts)
show('pam alice', lambda: sorted(res.mk_token({'eauth': 'pam', 'username': 'alice', 'password': 's3cret'})))
show('pam alice wrong password', lambda: res.mk_token({'eauth': 'pam', 'username': 'alice', 'password': 'nope'}))
show('pam unknown user', lambda: res.mk_token({'eauth': 'pam', 'username': 'zed', 'password': 's3cret'}))
show('pam locked account', lambda: res.mk_token({'eauth': 'pam', 'username': 'locked', 'password': 's3cret'}))
nob = res.mk_token({'eauth': 'pam', 'username': 'nobody', 'password': 's3cret'})
show('pam groups in the token', lambda: nob.get('groups'))
show('pam group entry allows', lambda: local.cmd('a1', 'test.ping', timeout=30, token=nob['token']))
show('pam group entry refuses', lambda: local.cmd('a1', 'test.echo', ['x'], timeout=5, token=nob['token']))
show('pam publish by eauth', lambda: local.cmd('a1', 'test.echo', ['x'], timeout=30, eauth='pam', username='alice', password='s3cret'))
show('pam publish wrong password', lambda: local.cmd('a1', 'test.echo', ['x'], timeout=5, eauth='pam', username='alice', password='nope'))
show('file carol', lambda: sorted(res.mk_token({'eauth': 'file', 'username': 'carol', 'password': 'c4rol'})))
show('file carol wrong password', lambda: res.mk_token({'eauth': 'file', 'username': 'carol', 'password': 'nope'}))
show('file wheel', lambda: sorted(salt.wheel.WheelClient(opts).cmd_sync({'fun': 'key.list_all', 'eauth': 'file', 'username': 'carol', 'password': 'c4rol'})))
show('file wheel wrong password', lambda: salt.wheel.WheelClient(opts).cmd_sync({'fun': 'key.list_all', 'eauth': 'file', 'username': 'carol', 'password': 'nope'}))
show('file runner refused', lambda: salt.runner.RunnerClient(opts).cmd_sync({'fun': 'manage.up', 'eauth': 'file', 'username': 'carol', 'password': 'c4rol'}))
"#;

/// The `pam` backend (a PAM service of the test: pam_exec scripts; a
/// locked account; `group%` entries from the user's system groups) and
/// the `file` backend (an htpasswd file), logging in and running through
/// both masters.
#[test]
fn pam_and_file_logins_as_on_pythons_master() {
    let pam = brine_testutil::pam::PamService::new(true, "");
    let sha = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), b"c4rol").unwrap();
    let htpasswd = format!("carol:{{SHA}}{}\n", openssl::base64::encode_block(&sha));
    let make = |brine: bool| {
        Side::start(brine, "3007.17", "", "", "", |env| {
            let file = env.root().join("htpasswd");
            std::fs::write(&file, &htpasswd).unwrap();
            let conf = env.conf_dir.join("master");
            let mut text = std::fs::read_to_string(&conf).unwrap();
            text.push_str(&format!(
                "auto_accept: True\nauth.pam.service: {svc}\nexternal_auth:\n  pam:\n    alice:\n      - 'test.*'\n    nogroup%:\n      - test.ping\n  file:\n    ^filename: {file}\n    ^filetype: htpasswd\n    carol:\n      - 'test.*'\n      - '@wheel'\n",
                svc = pam.name,
                file = file.display()
            ));
            std::fs::write(&conf, text).unwrap();
        })
    };
    let brine = make(true);
    let python = make(false);
    let b = results(&client_script(&brine.env, BACKENDS));
    let p = results(&client_script(&python.env, BACKENDS));
    show_side_by_side(&b, &p);
    assert_eq!(b, p);
    assert!(
        b.iter()
            .any(|(w, v)| w == "pam groups in the token" && v.contains("nogroup")),
        "{b:?}"
    );
    assert!(b.iter().any(|(w, v)| w == "pam locked account" && v == "\"\""), "{b:?}");
    let log = read(&brine.env.log_file());
    for secret in ["s3cret", "c4rol"] {
        assert!(!log.contains(secret), "a password in the log");
    }
}

/// Run Brine's `salt` as the user `nobody` (who cannot read root's key
/// in cachedir): (stdout, stderr, status).
fn salt_as_nobody(env: &Env, args: &[&str]) -> (String, String, i32) {
    output(
        std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(brine_bin("salt"))
            .arg("-c")
            .arg(&env.conf_dir)
            .args(args),
    )
}

/// `salt -T` by a user who cannot read the master's keys: the token is
/// saved in `token_file` (0600, theirs) and the next `salt` goes by it,
/// with the token user's ACL.
#[test]
fn a_saved_token_is_reused_by_a_user_without_a_key() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let brine = Side::start(true, "3007.17", &config("43200"), "", "", |env| {
        let tokens = env.root().join("user-tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = env.conf_dir.join("master");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("token_file: {}\n", tokens.join("salt_token").display()));
        std::fs::write(&conf, text).unwrap();
    });
    // The user reaches the config, not the keys.
    for dir in [brine.env.root(), brine.env.conf_dir.clone()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        brine.env.conf_dir.join("master"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let token_file = brine.env.root().join("user-tokens/salt_token");
    let (out, err, code) = salt_as_nobody(
        &brine.env,
        &[
            "-a",
            "auto",
            "--username",
            "fred",
            "--password",
            "x",
            "-T",
            "--async",
            "a1",
            "test.ping",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("Executed command with job ID: "), "{out}{err}");
    let meta = std::fs::metadata(&token_file).expect("the token was saved");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 65534, "the token file is the user's");
    // No credentials now: the saved token.
    let (out, err, code) = salt_as_nobody(&brine.env, &["--async", "a1", "test.ping"]);
    assert_eq!(code, 0, "{out}{err}");
    let jid = out
        .trim()
        .strip_prefix("Executed command with job ID: ")
        .unwrap_or_else(|| panic!("{out}{err}"))
        .to_string();
    let (job, err, _) = output(
        std::process::Command::new(brine_bin("salt-run"))
            .arg("-c")
            .arg(&brine.env.conf_dir)
            .args(["jobs.list_job", &jid, "--out", "json"]),
    );
    assert!(
        job.contains("\"User\": \"fred\""),
        "the job runs as the token's user: {job}{err}"
    );
    // The token's user's ACL applies.
    let (out, err, _) = salt_as_nobody(&brine.env, &["--async", "a1", "cmd.run", "id"]);
    assert_eq!(out.trim(), "Authorization error occurred.", "{err}");
}
