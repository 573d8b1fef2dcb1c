//! The `file` eauth backend against Python Salt's own `salt.auth.file`
//! (Salt 3007.17 with passlib, from `scripts/salt-venv`): one table of
//! files, options and credentials, answered by both, must agree, and
//! must hold the answers written beside each case.
//!
//! The htpasswd hashes are made by passlib itself, so each scheme is
//! checked against the library Salt verifies with.

use std::path::Path;

use brine_config::MasterConfig;
use serde_json::{json, Value as Json};

/// passlib makes one hash per request: `[scheme, password, settings]`.
const MAKE_HASHES: &str = r#"
import json, sys, warnings
warnings.simplefilter("ignore")
import passlib.hash
out = []
for scheme, password, settings in json.load(sys.stdin):
    out.append(getattr(passlib.hash, scheme).using(**settings).hash(password))
json.dump(out, sys.stdout)
"#;

/// Salt's `file.auth` for each case, with the `__opts__` and `__salt__`
/// Salt's loader would give it; an exception is a refusal, as LoadAuth
/// makes it.
const SALT_AUTH: &str = r#"
import json, sys, logging, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
import salt.auth.file as fileauth
import salt.modules.hashutil as hashutil
hashutil.__salt__ = {
    "hashutil.md5_digest": hashutil.md5_digest,
    "hashutil.sha256_digest": hashutil.sha256_digest,
    "hashutil.sha512_digest": hashutil.sha512_digest,
}
fileauth.__salt__ = {"hashutil.digest": hashutil.digest}
out = []
for case in json.load(sys.stdin):
    fileauth.__opts__ = {"external_auth": {"file": case["section"]}}
    try:
        ok = bool(fileauth.auth(case["user"], case["password"]))
    except Exception:
        ok = False
    out.append(ok)
json.dump(out, sys.stdout)
"#;

fn python(script: &str, input: &Json) -> Json {
    let out = brine_testutil::salt_python("3007.17", script, input.to_string().as_bytes());
    serde_json::from_slice(&out).expect("python's JSON")
}

/// Brine's answer through the registered backend, as LoadAuth asks it.
fn brine(dir: &Path, section: &Json, user: &str, password: &str) -> bool {
    let cfg = MasterConfig::from_overrides(
        dir,
        serde_json::from_value(json!({"external_auth": {"file": section}})).unwrap(),
    )
    .unwrap();
    let backend = brine_auth::eauth::backend("file").expect("the file backend is registered");
    assert!(
        backend.groups(&cfg, user, password).is_none(),
        "Salt's file backend has no groups"
    );
    backend.auth(&cfg, user, password)
}

struct Case {
    what: &'static str,
    section: Json,
    user: String,
    password: String,
    expect: bool,
}

#[derive(Default)]
struct Table {
    cases: Vec<Case>,
}

impl Table {
    fn add(&mut self, what: &'static str, section: &Json, user: &str, password: &str, expect: bool) {
        self.cases.push(Case {
            what,
            section: section.clone(),
            user: user.into(),
            password: password.into(),
            expect,
        });
    }
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_string()
}

fn md5_hex(s: &str) -> String {
    hex::encode(openssl::hash::hash(openssl::hash::MessageDigest::md5(), s.as_bytes()).unwrap())
}

fn sha_hex(md: openssl::hash::MessageDigest, s: &str) -> String {
    hex::encode(openssl::hash::hash(md, s.as_bytes()).unwrap())
}

/// Swaps the last character of a bcrypt salt (index 28 of the hash) for
/// one with its unused low bits set, which passlib repairs.
fn dirty_bcrypt_salt(h: &str) -> String {
    let alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let c = h.as_bytes()[28] as char;
    let i = alphabet.find(c).unwrap();
    let dirty = alphabet.as_bytes()[(i & !15) | 5] as char;
    format!("{}{}{}", &h[..28], dirty, &h[29..])
}

#[test]
fn brine_and_salt_agree_on_every_case() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut t = Table::default();

    // --- text files, plaintext -------------------------------------------
    let plain = write(dir, "plain.txt", "dean:goneFishing\ngene:OceanMan\nnopw:\n");
    let s = json!({"^filename": plain, "dean": [".*"]});
    t.add("plaintext, right password", &s, "dean", "goneFishing", true);
    t.add("plaintext, wrong password", &s, "dean", "gonefishing", false);
    t.add("plaintext, second line", &s, "gene", "OceanMan", true);
    t.add("plaintext, unknown user", &s, "mike", "goneFishing", false);
    t.add(
        "plaintext, empty password field and empty password",
        &s,
        "nopw",
        "",
        true,
    );
    t.add("plaintext, empty password field", &s, "nopw", "x", false);
    t.add("plaintext, empty password", &s, "dean", "", false);
    let s = json!({"^filename": plain, "^filetype": "text"});
    t.add("explicit text filetype", &s, "dean", "goneFishing", true);
    let s = json!({"^filename": plain, "^filetype": "csv"});
    t.add("unknown filetype", &s, "dean", "goneFishing", false);
    let s = json!({"^filename": plain, "^filetype": "TEXT"});
    t.add("filetype is case-sensitive", &s, "dean", "goneFishing", false);

    let missing = dir.join("missing.txt").to_str().unwrap().to_string();
    t.add(
        "missing file",
        &json!({"^filename": missing}),
        "dean",
        "goneFishing",
        false,
    );
    t.add("no ^filename", &json!({"dean": [".*"]}), "dean", "goneFishing", false);
    let s = json!({"^filename": dir.to_str().unwrap()});
    t.add("filename is a directory", &s, "dean", "goneFishing", false);

    let f = write(dir, "comment.txt", "# the users\ndean:goneFishing\n");
    t.add(
        "comment line before the user",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        false,
    );
    let f = write(dir, "comment-colon.txt", "# user:password\ndean:goneFishing\n");
    t.add(
        "comment with a colon before the user",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        true,
    );
    let f = write(dir, "blank-before.txt", "\ndean:goneFishing\n");
    t.add(
        "blank line before the user",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        false,
    );
    let f = write(dir, "blank-after.txt", "dean:goneFishing\n\n\n");
    t.add(
        "blank lines after the user",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        true,
    );
    let f = write(dir, "crlf.txt", "gene:OceanMan\r\ndean:goneFishing\r\n");
    t.add("CRLF line ends", &json!({"^filename": f}), "dean", "goneFishing", true);
    let f = write(dir, "cr.txt", "gene:OceanMan\rdean:goneFishing");
    t.add(
        "CR line ends, no final newline",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        true,
    );
    let f = write(dir, "spaces.txt", "  dean:goneFishing \t\n");
    t.add(
        "whitespace around the line",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        true,
    );
    let f = write(dir, "inner-space.txt", "dean :goneFishing\n");
    t.add(
        "whitespace inside a field",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        false,
    );
    let f = write(dir, "dup.txt", "dean:first\ndean:goneFishing\n");
    t.add(
        "duplicate user, second password",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        false,
    );
    t.add(
        "duplicate user, first password",
        &json!({"^filename": f}),
        "dean",
        "first",
        true,
    );
    let f = write(dir, "colon-pw.txt", "dean:a:b\n");
    t.add(
        "password with the separator",
        &json!({"^filename": f}),
        "dean",
        "a:b",
        false,
    );
    t.add(
        "password cut at the separator",
        &json!({"^filename": f}),
        "dean",
        "a",
        true,
    );
    let f = write(dir, "latin1.txt", b"dean:goneFishing\nj\xfcrgen:x\n");
    t.add(
        "a byte that is not UTF-8 anywhere",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        false,
    );
    let f = write(dir, "utf8.txt", "jürgen:pässwörd\n");
    t.add(
        "UTF-8 user and password",
        &json!({"^filename": f}),
        "jürgen",
        "pässwörd",
        true,
    );
    t.add(
        "UTF-8 password, wrong",
        &json!({"^filename": f}),
        "jürgen",
        "passwort",
        false,
    );
    let f = write(dir, "nbsp.txt", "dean:goneFishing\u{a0}\u{1c}\n");
    t.add(
        "Unicode whitespace stripped",
        &json!({"^filename": f}),
        "dean",
        "goneFishing",
        true,
    );

    // Field numbers, separators.
    let f = write(dir, "swapped.txt", "goneFishing:dean\n");
    let s = json!({"^filename": f, "^username_field": "2", "^password_field": 1});
    t.add("fields swapped, numbers as text", &s, "dean", "goneFishing", true);
    let s = json!({"^filename": f, "^username_field": 0, "^password_field": 1});
    t.add("field 0 is the last field", &s, "dean", "goneFishing", true);
    let s = json!({"^filename": f, "^username_field": 3});
    t.add("username field out of range", &s, "dean", "goneFishing", false);
    let s = json!({"^filename": f, "^username_field": "two"});
    t.add("username field not a number", &s, "dean", "goneFishing", false);
    let f = write(dir, "ws.txt", "dean \t goneFishing\n");
    t.add(
        "separator None splits on whitespace",
        &json!({"^filename": f, "^field_separator": null}),
        "dean",
        "goneFishing",
        true,
    );
    t.add(
        "empty separator",
        &json!({"^filename": f, "^field_separator": ""}),
        "dean",
        "goneFishing",
        false,
    );

    // Salt's legacy example: '|' separated, md5 hex in the third field.
    let f = write(
        dir,
        "legacy.txt",
        format!("46|trey|{}\n555|mike|{}\n", md5_hex("hello"), md5_hex("world")),
    );
    let s = json!({"^filename": f, "^hashtype": "md5", "^username_field": 2, "^password_field": 3, "^field_separator": "|"});
    t.add("md5, right password", &s, "mike", "world", true);
    t.add("md5, wrong password", &s, "trey", "world", false);
    t.add("md5, unknown user", &s, "page", "world", false);
    let s = json!({"^filename": f, "^hashtype": "MD5", "^username_field": 2, "^password_field": 3, "^field_separator": "|"});
    t.add("hashtype is case-sensitive", &s, "mike", "world", false);
    let f = write(
        dir,
        "sha.txt",
        format!(
            "a:{}\nb:{}\nc:{}\nd:{}\n",
            sha_hex(openssl::hash::MessageDigest::sha256(), "pw-a"),
            sha_hex(openssl::hash::MessageDigest::sha512(), "pw-b"),
            sha_hex(openssl::hash::MessageDigest::sha1(), "pw-c"),
            sha_hex(openssl::hash::MessageDigest::sha256(), "pw-d").to_uppercase(),
        ),
    );
    t.add(
        "sha256",
        &json!({"^filename": f, "^hashtype": "sha256"}),
        "a",
        "pw-a",
        true,
    );
    t.add(
        "sha256, wrong",
        &json!({"^filename": f, "^hashtype": "sha256"}),
        "a",
        "pw-b",
        false,
    );
    t.add(
        "sha512",
        &json!({"^filename": f, "^hashtype": "sha512"}),
        "b",
        "pw-b",
        true,
    );
    t.add(
        "sha1 is not a hashutil.digest type",
        &json!({"^filename": f, "^hashtype": "sha1"}),
        "c",
        "pw-c",
        false,
    );
    t.add(
        "uppercase hex never matches",
        &json!({"^filename": f, "^hashtype": "sha256"}),
        "d",
        "pw-d",
        false,
    );
    t.add(
        "hex stored, plaintext compared",
        &json!({"^filename": f}),
        "a",
        "pw-a",
        false,
    );

    // --- htpasswd ----------------------------------------------------------
    let long = "x".repeat(72);
    let requests = json!([
        ["apr_md5_crypt", "apr-pw", {}],
        ["sha256_crypt", "sha256-pw", {"rounds": 1000}],
        ["sha512_crypt", "sha512-pw", {"rounds": 5000}],
        ["bcrypt", "bcrypt-2y", {"rounds": 4, "ident": "2y"}],
        ["bcrypt", "bcrypt-2b", {"rounds": 4, "ident": "2b"}],
        ["bcrypt", "bcrypt-2a", {"rounds": 4, "ident": "2a"}],
        ["des_crypt", "despassw", {}],
        ["ldap_sha1", "sha1-pw", {}],
        ["md5_crypt", "md5-pw", {}],
        ["bcrypt", long, {"rounds": 4}],
        ["apr_md5_crypt", "", {}],
        ["sha256_crypt", "ünïcödé", {"rounds": 1000, "salt": "saltsaltsaltsalt"}],
    ]);
    let hashes = python(MAKE_HASHES, &requests);
    let h: Vec<&str> = hashes.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let md5crypt = h[8].to_string();
    let sha256_plus = h[1].replacen("rounds=1000", "rounds=+1000", 1);
    let sha256_padded = h[1].replacen("rounds=1000", "rounds=01000", 1);
    let htpasswd = format!(
        "# made by passlib\n\
         alice:{}\nbob:{}\ncarol:{}\ndave:{}\nerin:{}\nfrank:{}\ngil:{}\nhal:{}\njack:{}\nkim:{}\n\n   \n\
         ivy:plain-pw\nlen:abcdefghijklm\nnoah:\nempty:{}\nuni:{}\nplus:{}\npad:{}\ndirty:{}\n\
         \x20spaced:plain-pw\nalice:second-entry\ntrail:plain-pw  \n",
        h[0],
        h[1],
        h[2],
        h[3],
        h[4],
        h[5],
        h[6],
        h[7],
        md5crypt,
        h[9],
        h[10],
        h[11],
        sha256_plus,
        sha256_padded,
        dirty_bcrypt_salt(h[3]),
    );
    let f = write(dir, "htpasswd", &htpasswd);
    let s = json!({"^filename": f, "^filetype": "htpasswd"});
    for (user, right) in [
        ("alice", "apr-pw"),
        ("bob", "sha256-pw"),
        ("carol", "sha512-pw"),
        ("dave", "bcrypt-2y"),
        ("erin", "bcrypt-2b"),
        ("frank", "bcrypt-2a"),
        ("gil", "despassw"),
        ("hal", "sha1-pw"),
        ("ivy", "plain-pw"),
        ("kim", long.as_str()),
        ("empty", ""),
        ("uni", "ünïcödé"),
        ("plus", "sha256-pw"),
        ("dirty", "bcrypt-2y"),
        ("trail", "plain-pw"),
    ] {
        t.add("htpasswd, right password", &s, user, right, true);
        t.add("htpasswd, wrong password", &s, user, "wrong", false);
    }
    t.add("bcrypt ignores bytes past 72", &s, "kim", &format!("{long}more"), true);
    t.add("des_crypt uses 8 bytes", &s, "gil", "desp4ssw0rd", false);
    t.add("des_crypt uses only 8 bytes", &s, "gil", "despasswXYZ", true);
    t.add("md5_crypt ($1$) is compared as plaintext", &s, "jack", "md5-pw", false);
    t.add("md5_crypt ($1$) string itself", &s, "jack", &md5crypt, true);
    t.add("13 characters are read as DES", &s, "len", "abcdefghijklm", false);
    t.add("empty entry, empty password", &s, "noah", "", true);
    t.add("zero-padded rounds", &s, "pad", "sha256-pw", false);
    t.add("leading space is part of the name", &s, "spaced", "plain-pw", false);
    t.add("first of duplicate users wins", &s, "alice", "second-entry", false);
    t.add("unknown user", &s, "zoe", "apr-pw", false);
    t.add("user with a colon", &s, "alice:x", "apr-pw", false);
    t.add("password with NUL, crypt scheme", &s, "alice", "apr-pw\0", false);
    t.add("password over 4096 bytes", &s, "ivy", &"p".repeat(4097), false);

    let f = write(dir, "htpasswd-bad", format!("alice:{}\nthis line has no colon\n", h[0]));
    let s = json!({"^filename": f, "^filetype": "htpasswd"});
    t.add("one malformed line refuses everyone", &s, "alice", "apr-pw", false);
    let f = write(dir, "htpasswd-3", format!("alice:{}:extra\nbob:{}\n", h[0], h[1]));
    let s = json!({"^filename": f, "^filetype": "htpasswd"});
    t.add("three fields is malformed", &s, "bob", "sha256-pw", false);
    let s = json!({"^filename": missing, "^filetype": "htpasswd"});
    t.add("htpasswd, missing file", &s, "alice", "apr-pw", false);

    // --- htdigest ------------------------------------------------------------
    let digest = |u: &str, r: &str, p: &str| md5_hex(&format!("{u}:{r}:{p}"));
    let f = write(
        dir,
        "htdigest",
        format!(
            "# realm file\nalice:MySecureRealm:{}\nalice:Other:{}\nbob:MySecureRealm:{}\n",
            digest("alice", "MySecureRealm", "s3cret"),
            digest("alice", "Other", "other-pw"),
            digest("bob", "MySecureRealm", "b0b").to_uppercase(),
        ),
    );
    let s = json!({"^filename": f, "^filetype": "htdigest", "^realm": "MySecureRealm"});
    t.add("htdigest, right password", &s, "alice", "s3cret", true);
    t.add("htdigest, wrong password", &s, "alice", "other-pw", false);
    t.add("htdigest, uppercase hex", &s, "bob", "b0b", false);
    t.add("htdigest, unknown user", &s, "carol", "s3cret", false);
    let s = json!({"^filename": f, "^filetype": "htdigest", "^realm": "Other"});
    t.add("htdigest, other realm", &s, "alice", "other-pw", true);
    t.add(
        "htdigest, other realm, first realm's password",
        &s,
        "alice",
        "s3cret",
        false,
    );
    let s = json!({"^filename": f, "^filetype": "htdigest"});
    t.add("htdigest without ^realm", &s, "alice", "s3cret", false);
    let s = json!({"^filename": f, "^filetype": "htdigest", "^realm": ""});
    t.add("htdigest with an empty ^realm", &s, "alice", "s3cret", false);
    let f = write(
        dir,
        "htdigest-bad",
        format!(
            "alice:MySecureRealm:{}\nbob:x\n",
            digest("alice", "MySecureRealm", "s3cret")
        ),
    );
    let s = json!({"^filename": f, "^filetype": "htdigest", "^realm": "MySecureRealm"});
    t.add("htdigest, a malformed line", &s, "alice", "s3cret", false);

    // --- both answer --------------------------------------------------------
    let input: Vec<Json> = t
        .cases
        .iter()
        .map(|c| json!({"section": c.section, "user": c.user, "password": c.password}))
        .collect();
    let salt = python(SALT_AUTH, &Json::Array(input));
    let salt = salt.as_array().unwrap();
    assert_eq!(salt.len(), t.cases.len());
    let mut wrong = Vec::new();
    for (case, salt) in t.cases.iter().zip(salt) {
        let salt = salt.as_bool().unwrap();
        let brine = brine(dir, &case.section, &case.user, &case.password);
        if brine != salt || brine != case.expect {
            wrong.push(format!(
                "{} (user {:?}, password {:?}): brine {brine}, salt {salt}, expected {}",
                case.what, case.user, case.password, case.expect
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        t.cases.len(),
        wrong.join("\n")
    );
}
