use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use brine_config::MasterConfig;
use brine_proto::Value;

use super::py;
use super::*;

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_string_lossy().into_owned()
    }
    fn write(&self, rel: &str, data: &[u8]) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.dir.path().join(rel)).unwrap();
    }
}

fn server(extra: serde_json::Value) -> Fileserver {
    let mut m = serde_json::Map::new();
    if let serde_json::Value::Object(o) = extra {
        m.extend(o);
    }
    let cfg = MasterConfig::from_overrides(Path::new("/etc/salt"), m).unwrap();
    Fileserver::new(&cfg)
}

/// base: roots `a` then `b`; dev: `d`; everything under one temp dir.
fn sample() -> (Tree, Fileserver) {
    let t = Tree::new();
    t.write("a/top.sls", b"base:\n  '*':\n    - web\n");
    t.write("a/web/init.sls", b"nginx:\n  pkg.installed\n");
    t.write("a/web/files/nginx.conf", b"conf a");
    t.write("b/web/files/nginx.conf", b"conf b");
    t.write("b/only_b.txt", b"b");
    t.mkdir("a/empty");
    t.write("d/dev.sls", b"dev");
    t.write("outside/secret", b"secret");
    symlink(t.p("outside/secret"), t.p("a/leak")).unwrap();
    symlink("web/init.sls", t.p("a/alias.sls")).unwrap();
    let fs = server(serde_json::json!({
        "file_roots": {"base": [t.p("a"), t.p("b")], "dev": [t.p("d")]},
    }));
    (t, fs)
}

fn load(pairs: &[(&str, Value)]) -> Value {
    Value::map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())))
}

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        other => panic!("not a list: {other:?}"),
    }
}

fn s(x: &str) -> Value {
    Value::from(x)
}

#[test]
fn lists_union_roots_sorted_with_prefix() {
    let (_t, mut fs) = sample();
    let files = fs
        .file_list("m", &load(&[("saltenv", s("base"))]), Form::Files)
        .unwrap();
    assert_eq!(
        strs(&files),
        [
            "alias.sls",
            "leak",
            "only_b.txt",
            "top.sls",
            "web/files/nginx.conf",
            "web/init.sls"
        ]
    );
    let dirs = fs.file_list("m", &load(&[("saltenv", s("base"))]), Form::Dirs).unwrap();
    assert_eq!(strs(&dirs), ["empty", "web", "web/files"]);
    let empty = fs
        .file_list("m", &load(&[("saltenv", s("base"))]), Form::EmptyDirs)
        .unwrap();
    assert_eq!(strs(&empty), ["empty"]);
    let web = load(&[("saltenv", s("base")), ("prefix", s("/web/"))]);
    assert_eq!(
        strs(&fs.file_list("m", &web, Form::Files).unwrap()),
        ["web/files/nginx.conf", "web/init.sls"]
    );
    // Unknown saltenv, no saltenv: empty lists; a bad prefix raises.
    assert_eq!(
        strs(&fs.file_list("m", &load(&[("saltenv", s("qa"))]), Form::Files).unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        fs.file_list("m", &load(&[]), Form::Files).unwrap(),
        Value::Array(vec![])
    );
    let bad = load(&[("saltenv", s("base")), ("prefix", Value::Int(1))]);
    assert!(fs.file_list("m", &bad, Form::Files).is_err());
    // `fsbackend` chooses backends; emptydirs ignores it.
    let other = load(&[("saltenv", s("base")), ("fsbackend", s("gitfs"))]);
    assert_eq!(fs.file_list("m", &other, Form::Files).unwrap(), Value::Array(vec![]));
    assert_eq!(strs(&fs.file_list("m", &other, Form::EmptyDirs).unwrap()), ["empty"]);
    let minus = load(&[("saltenv", s("base")), ("fsbackend", s("-roots"))]);
    assert_eq!(fs.file_list("m", &minus, Form::Files).unwrap(), Value::Array(vec![]));
    // ...and Brine's options are not changed by it.
    assert_eq!(
        strs(
            &fs.file_list("m", &load(&[("saltenv", s("base"))]), Form::Files)
                .unwrap()
        )
        .len(),
        6
    );
}

#[test]
fn symlink_list_keeps_links_inside_or_all_without_follow() {
    let (t, mut fs) = sample();
    let links = fs.symlink_list("m", &load(&[("saltenv", s("base"))])).unwrap();
    // With followsymlinks (default) a link out of the root is a plain file.
    assert_eq!(links, Value::map([("alias.sls", s("web/init.sls"))]));
    let mut nofollow = server(serde_json::json!({
        "file_roots": {"base": [t.p("a")]},
        "fileserver_followsymlinks": false,
    }));
    let links = nofollow.symlink_list("m", &load(&[("saltenv", s("base"))])).unwrap();
    assert_eq!(
        links,
        Value::map([("alias.sls", s("web/init.sls")), ("leak", s(&t.p("outside/secret")))])
    );
    let pre = load(&[("saltenv", s("base")), ("prefix", s("al"))]);
    assert_eq!(
        nofollow.symlink_list("m", &pre).unwrap(),
        Value::map([("alias.sls", s("web/init.sls"))])
    );
    let mut ignoring = server(serde_json::json!({
        "file_roots": {"base": [t.p("a")]},
        "fileserver_ignoresymlinks": true,
    }));
    let files = ignoring
        .file_list("m", &load(&[("saltenv", s("base"))]), Form::Files)
        .unwrap();
    assert_eq!(strs(&files), ["top.sls", "web/files/nginx.conf", "web/init.sls"]);
}

#[test]
fn envs_sorted_and_by_backend() {
    let (_t, fs) = sample();
    assert_eq!(strs(&fs.file_envs(&load(&[]))), ["base", "dev"]);
    assert_eq!(
        fs.file_envs(&load(&[("sources", Value::Bool(true))])),
        Value::map([("roots", Value::Array(vec![s("base"), s("dev")]))])
    );
    assert_eq!(
        strs(&fs.file_envs(&load(&[("back", s("roots,gitfs"))]))),
        ["base", "dev"]
    );
    assert_eq!(fs.file_envs(&load(&[("back", s("-roots"))])), Value::Array(vec![]));
    assert_eq!(fs.file_envs(&load(&[("back", Value::Int(3))])), Value::Array(vec![]));
    assert_eq!(
        fs.file_envs(&load(&[("back", s("gitfs")), ("sources", Value::Bool(true))])),
        Value::Map(vec![])
    );
}

#[test]
fn find_prefers_first_root_and_reports_stat() {
    let (t, mut fs) = sample();
    let f = fs
        .file_find(
            "m",
            &load(&[("path", s("web/files/nginx.conf")), ("saltenv", s("base"))]),
        )
        .unwrap();
    assert_eq!(f.get("path"), Some(&s(&t.p("a/web/files/nginx.conf"))));
    assert_eq!(f.get("rel"), Some(&s("web/files/nginx.conf")));
    assert_eq!(f.get("back"), Some(&s("roots")));
    let Some(Value::Array(st)) = f.get("stat") else {
        panic!("{f:?}")
    };
    assert_eq!(st.len(), 10);
    assert_eq!(st[6], Value::Int(6), "size");
    // saltenv defaults to base; ?saltenv= and ?index= in the path.
    let f = fs.file_find("m", &load(&[("path", s("only_b.txt"))])).unwrap();
    assert_eq!(f.get("path"), Some(&s(&t.p("b/only_b.txt"))));
    let f = fs
        .file_find(
            "m",
            &load(&[("path", s("dev.sls?saltenv=dev")), ("saltenv", s("base"))]),
        )
        .unwrap();
    assert_eq!(f.get("path"), Some(&s(&t.p("d/dev.sls"))));
    let f = fs
        .file_find(
            "m",
            &load(&[("path", s("web/files/nginx.conf?index=1")), ("saltenv", s("base"))]),
        )
        .unwrap();
    assert_eq!(f.get("path"), Some(&s(&t.p("b/web/files/nginx.conf"))));
    let f = fs
        .file_find("m", &load(&[("path", s("web/files/nginx.conf?index=-1"))]))
        .unwrap();
    assert_eq!(f.get("path"), Some(&s(&t.p("b/web/files/nginx.conf"))));
    let missing = Value::map([("path", s("")), ("rel", s(""))]);
    let f = fs.file_find("m", &load(&[("path", s("top.sls?index=7"))])).unwrap();
    assert_eq!(f, missing);
    // Missing, empty path, unknown saltenv; non-text path or saltenv raise.
    assert_eq!(fs.file_find("m", &load(&[("path", s("nope"))])).unwrap(), missing);
    assert_eq!(fs.file_find("m", &load(&[("path", s(""))])).unwrap(), missing);
    assert_eq!(fs.file_find("m", &load(&[])).unwrap(), missing);
    assert_eq!(
        fs.file_find("m", &load(&[("path", s("top.sls")), ("saltenv", s("qa"))]))
            .unwrap(),
        missing
    );
    assert!(fs.file_find("m", &load(&[("path", Value::Int(5))])).is_err());
    assert!(fs
        .file_find("m", &load(&[("path", s("top.sls")), ("saltenv", Value::Nil)]))
        .is_err());
}

#[test]
fn hashes_as_hashlib_and_refresh_on_change() {
    let (t, mut fs) = sample();
    let h = fs
        .file_hash("m", &load(&[("path", s("top.sls")), ("saltenv", s("base"))]))
        .unwrap();
    let want = hex::encode(openssl::sha::sha256(b"base:\n  '*':\n    - web\n"));
    assert_eq!(h, Value::map([("hash_type", s("sha256")), ("hsum", s(&want))]));
    // Same size, rewritten at once: the cache must not answer the old hash.
    t.write("a/top.sls", b"BASE:\n  '*':\n    - web\n");
    let h = fs
        .file_hash("m", &load(&[("path", s("top.sls")), ("saltenv", s("base"))]))
        .unwrap();
    let want = hex::encode(openssl::sha::sha256(b"BASE:\n  '*':\n    - web\n"));
    assert_eq!(h.get("hsum"), Some(&s(&want)));
    // Missing file / missing keys / non-text path.
    let missing = load(&[("path", s("nope")), ("saltenv", s("base"))]);
    assert_eq!(fs.file_hash("m", &missing).unwrap(), s(""));
    assert_eq!(fs.file_hash("m", &load(&[("path", s("top.sls"))])).unwrap(), s(""));
    let bad = load(&[("path", Value::Int(1)), ("saltenv", s("base"))]);
    assert_eq!(fs.file_hash("m", &bad).unwrap(), s(""));
    assert_eq!(
        fs.file_hash_and_stat("m", &bad).unwrap(),
        Value::Array(vec![s(""), Value::Nil])
    );
    let hs = fs
        .file_hash_and_stat("m", &load(&[("path", s("only_b.txt")), ("saltenv", s("base"))]))
        .unwrap();
    let Value::Array(pair) = hs else { panic!() };
    assert_eq!(pair[0].get("hsum"), Some(&s(&hex::encode(openssl::sha::sha256(b"b")))));
    assert!(matches!(&pair[1], Value::Array(st) if st.len() == 10));
    // Other hash types; an unknown one raises (answered "").
    let mut md5 = server(serde_json::json!({"file_roots": {"base": [t.p("b")]}, "hash_type": "md5"}));
    let h = md5
        .file_hash("m", &load(&[("path", s("only_b.txt")), ("saltenv", s("base"))]))
        .unwrap();
    assert_eq!(h.get("hsum"), Some(&s("92eb5ffee6ae2fec3ad71c777531578f")));
    let mut bad = server(serde_json::json!({"file_roots": {"base": [t.p("b")]}, "hash_type": "nope"}));
    assert!(bad
        .file_hash("m", &load(&[("path", s("only_b.txt")), ("saltenv", s("base"))]))
        .is_err());
}

fn fetch(fs: &mut Fileserver, path: &str, gzip: Option<Value>) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut chunks = 0;
    loop {
        let mut l = load(&[
            ("path", s(path)),
            ("saltenv", s("base")),
            ("loc", Value::Int(out.len() as i64)),
        ]);
        if let Some(g) = &gzip {
            l.set("gzip", g.clone());
        }
        let r = fs.serve_file("m", &l).unwrap();
        let data = r.get("data").unwrap().as_bytes().unwrap().to_vec();
        if data.is_empty() {
            assert_eq!(r.get("dest"), Some(&s(path)));
            return (out, chunks);
        }
        chunks += 1;
        // gzip 0 is false: Salt sends the chunk as it is.
        if let Some(g) = gzip.as_ref().filter(|g| truthy(*g)) {
            assert_eq!(r.get("gzip"), Some(g));
            assert_eq!(&data[..4], &[0x1f, 0x8b, 8, 0], "gzip header without a name");
            assert_eq!(data[9], 255, "OS byte as Python writes it");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut plain).unwrap();
            out.extend(plain);
        } else {
            assert!(r.get("gzip").is_none());
            out.extend(data);
        }
    }
}

#[test]
fn serve_in_chunks_and_gzip_round_trip() {
    let t = Tree::new();
    let big: Vec<u8> = (0..250_000u32).map(|i| (i * 7 % 251) as u8).collect();
    t.write("r/big.bin", &big);
    t.write("r/empty", b"");
    let mut fs = server(serde_json::json!({
        "file_roots": {"base": [t.p("r")]},
        "file_buffer_size": 100_000,
    }));
    let (got, chunks) = fetch(&mut fs, "big.bin", None);
    assert_eq!(chunks, 3);
    assert!(got == big);
    for level in [
        Value::Int(1),
        Value::Int(9),
        Value::Int(-1),
        Value::Bool(true),
        Value::Int(0),
    ] {
        let (got, chunks) = fetch(&mut fs, "big.bin", Some(level));
        assert_eq!(chunks, 3);
        assert!(got == big);
    }
    // Level 9 sets XFL 2; an empty file is one empty answer with its dest.
    let r = fs
        .serve_file(
            "m",
            &load(&[
                ("path", s("big.bin")),
                ("saltenv", s("base")),
                ("loc", Value::Int(0)),
                ("gzip", Value::Int(9)),
            ]),
        )
        .unwrap();
    assert_eq!(r.get("data").unwrap().as_bytes().unwrap()[8], 2);
    let (got, chunks) = fetch(&mut fs, "empty", Some(Value::Int(5)));
    assert!(got.is_empty() && chunks == 0);
    // Offsets: past the end is an empty chunk; negative, float, huge and
    // missing raise or answer as Salt does.
    let at = |loc: Value| load(&[("path", s("big.bin")), ("saltenv", s("base")), ("loc", loc)]);
    let r = fs.serve_file("m", &at(Value::Int(10_000_000))).unwrap();
    assert_eq!(r, Value::map([("data", Value::Bytes(vec![])), ("dest", s("big.bin"))]));
    assert!(fs.serve_file("m", &at(Value::Int(-1))).is_err());
    assert!(fs.serve_file("m", &at(Value::F64(1.0))).is_err());
    assert!(fs.serve_file("m", &at(Value::UInt(u64::MAX))).is_err());
    assert!(fs.serve_file("m", &at(s("0"))).is_err());
    let r = fs.serve_file("m", &at(Value::Bool(true))).unwrap();
    assert_eq!(r.get("data").unwrap().as_bytes().unwrap(), &big[1..100_001]);
    let no_loc = load(&[("path", s("big.bin")), ("saltenv", s("base"))]);
    assert_eq!(
        fs.serve_file("m", &no_loc).unwrap(),
        Value::map([("data", s("")), ("dest", s(""))])
    );
    // Bad gzip levels raise (Python's zlib refuses them).
    let mut l = at(Value::Int(0));
    l.set("gzip", Value::Int(10));
    assert!(fs.serve_file("m", &l).is_err());
    l.set("gzip", s("9"));
    assert!(fs.serve_file("m", &l).is_err());
}

fn refused(fs: &mut Fileserver, path: &str, saltenv: &str) {
    let missing = Value::map([("path", s("")), ("rel", s(""))]);
    let l = load(&[("path", s(path)), ("saltenv", s(saltenv)), ("loc", Value::Int(0))]);
    assert_eq!(fs.file_find("m", &l).unwrap(), missing, "{path}");
    assert_eq!(fs.file_hash("m", &l).unwrap(), s(""), "{path}");
    assert_eq!(
        fs.serve_file("m", &l).unwrap(),
        Value::map([("data", s("")), ("dest", s(""))]),
        "{path}"
    );
}

#[test]
fn traversal_is_refused() {
    let (t, mut fs) = sample();
    let secret = t.p("outside/secret");
    for path in [
        "../outside/secret",
        "web/../../outside/secret",
        "..",
        "./../outside/secret",
        "|../outside/secret",
        &secret,
        "/etc/passwd",
        "salt://../outside/secret",
        "top.sls?saltenv=../outside",
    ] {
        refused(&mut fs, path, "base");
    }
    // A symlink out of the root: followed by default (as Salt), refused
    // without fileserver_followsymlinks, also through ?index=.
    let l = load(&[("path", s("leak")), ("saltenv", s("base")), ("loc", Value::Int(0))]);
    assert_eq!(
        fs.serve_file("m", &l).unwrap().get("data"),
        Some(&Value::Bytes(b"secret".to_vec()))
    );
    let mut strict = server(serde_json::json!({
        "file_roots": {"base": [t.p("a")]},
        "fileserver_followsymlinks": false,
    }));
    refused(&mut strict, "leak", "base");
    refused(&mut strict, "leak?index=0", "base");
    // Links that stay inside still work.
    let l = load(&[("path", s("alias.sls")), ("saltenv", s("base")), ("loc", Value::Int(0))]);
    assert_eq!(
        strict.serve_file("m", &l).unwrap().get("data"),
        Some(&Value::Bytes(b"nginx:\n  pkg.installed\n".to_vec()))
    );
    // A symlinked directory leading out of the root.
    symlink(t.p("outside"), t.p("a/outdir")).unwrap();
    refused(&mut strict, "outdir/secret", "base");
}

#[test]
fn env_template_maps_saltenvs_but_not_out_of_the_tree() {
    let t = Tree::new();
    t.write("envs/feature1/x.sls", b"x");
    t.write("secret/s", b"s");
    let mut fs = server(serde_json::json!({"file_roots": {"__env__": [format!("{}/__env__", t.p("envs"))]}}));
    let l = load(&[("path", s("x.sls")), ("saltenv", s("feature1")), ("loc", Value::Int(0))]);
    assert_eq!(
        fs.serve_file("m", &l).unwrap().get("data"),
        Some(&Value::Bytes(b"x".to_vec()))
    );
    assert_eq!(
        strs(
            &fs.file_list("m", &load(&[("saltenv", s("feature1"))]), Form::Files)
                .unwrap()
        ),
        ["x.sls"]
    );
    assert_eq!(strs(&fs.file_envs(&load(&[]))), ["__env__"]);
    refused(&mut fs, "s", "../secret");
    refused(&mut fs, "s", "..");
    assert_eq!(
        fs.file_list("m", &load(&[("saltenv", s("../secret"))]), Form::Files)
            .unwrap(),
        Value::Array(vec![])
    );
}

#[test]
fn ignored_files_are_neither_listed_nor_found() {
    let t = Tree::new();
    t.write("r/keep.sls", b"k");
    t.write("r/.git/config", b"c");
    t.write("r/skip.bak", b"b");
    let mut fs = server(serde_json::json!({
        "file_roots": {"base": [t.p("r")]},
        "file_ignore_regex": ["/\\.git($|/)"],
        "file_ignore_glob": ["*.bak"],
    }));
    let files = strs(
        &fs.file_list("m", &load(&[("saltenv", s("base"))]), Form::Files)
            .unwrap(),
    );
    // Salt matches lists on relative paths, so `.git/config` (no leading
    // slash) stays listed while find_file (full paths) refuses it.
    assert_eq!(files, [".git/config", "keep.sls"]);
    let f = fs.file_find("m", &load(&[("path", s(".git/config"))])).unwrap();
    assert_eq!(f.get("path"), Some(&s("")));
    let f = fs.file_find("m", &load(&[("path", s("skip.bak"))])).unwrap();
    assert_eq!(f.get("path"), Some(&s("")));
}

#[test]
fn list_cache_is_reused_and_refreshed_on_change() {
    let t = Tree::new();
    t.write("r/a.sls", b"a");
    t.mkdir("r/sub");
    let mut fs = server(serde_json::json!({"file_roots": {"base": [t.p("r")]}}));
    let list = |fs: &mut Fileserver| {
        strs(
            &fs.file_list("m", &load(&[("saltenv", s("base"))]), Form::Files)
                .unwrap(),
        )
    };
    // Fresh changes are never trusted to the cache, yet always visible.
    assert_eq!(list(&mut fs), ["a.sls"]);
    t.write("r/b.sls", b"b");
    assert_eq!(list(&mut fs), ["a.sls", "b.sls"]);
    std::thread::sleep(roots::RACY_MARGIN + Duration::from_millis(200));
    let walks = fs.lists.walks();
    assert_eq!(list(&mut fs), ["a.sls", "b.sls"]);
    assert_eq!(list(&mut fs), ["a.sls", "b.sls"]);
    assert_eq!(
        fs.lists.walks(),
        walks + 1,
        "the second request is served from the cache"
    );
    // Added, removed, in a subdirectory, a new root appearing.
    t.write("r/sub/c.sls", b"c");
    assert_eq!(list(&mut fs), ["a.sls", "b.sls", "sub/c.sls"]);
    std::fs::remove_file(t.p("r/a.sls")).unwrap();
    assert_eq!(list(&mut fs), ["b.sls", "sub/c.sls"]);
    std::fs::rename(t.p("r/b.sls"), t.p("r/sub/b.sls")).unwrap();
    assert_eq!(list(&mut fs), ["sub/b.sls", "sub/c.sls"]);
    let mut late = server(serde_json::json!({"file_roots": {"base": [t.p("later")]}}));
    assert_eq!(list(&mut late), Vec::<String>::new());
    t.write("later/new.sls", b"n");
    assert_eq!(list(&mut late), ["new.sls"]);
}

#[test]
fn symlink_loops_do_not_walk_forever() {
    let t = Tree::new();
    t.write("r/f", b"f");
    symlink(t.p("r"), t.p("r/self")).unwrap();
    symlink(t.p("r"), t.p("r/again")).unwrap();
    let mut fs = server(serde_json::json!({"file_roots": {"base": [t.p("r")]}}));
    let files = strs(
        &fs.file_list("m", &load(&[("saltenv", s("base"))]), Form::Files)
            .unwrap(),
    );
    assert_eq!(files, ["f"]);
    let dirs = strs(&fs.file_list("m", &load(&[("saltenv", s("base"))]), Form::Dirs).unwrap());
    assert_eq!(dirs, ["again", "self"]);
}

#[test]
fn python_path_semantics() {
    let t = Tree::new();
    t.mkdir("real/sub");
    symlink(t.p("real"), t.p("link")).unwrap();
    symlink(t.p("loop2"), t.p("loop1")).unwrap();
    symlink(t.p("loop1"), t.p("loop2")).unwrap();
    assert_eq!(
        py::realpath(&t.p("link/sub/missing")),
        format!("{}/sub/missing", py::realpath(&t.p("real")))
    );
    assert_eq!(py::realpath(&t.p("loop1/x")), format!("{}/x", t.p("loop1")));
    assert_eq!(py::commonpath("/srv/salt/x", "/srv/salt"), "/srv/salt");
    assert_eq!(py::commonpath("/a", "//a"), "/a");
    assert!(
        !py::clean_path("/", "//srv", "//srv/x", false),
        "Python's commonpath drops the double slash"
    );
    // What clean_path returns: the real path, under the root or directly
    // in it.
    let (root, real) = (t.p("real"), py::realpath(&t.p("real")));
    let child = |p: &str| py::clean_real("/", &root, p, false);
    assert_eq!(child(&format!("{root}/good.conf")), Some(format!("{real}/good.conf")));
    assert_eq!(child(&format!("{root}/../evil.conf")), None);
    assert_eq!(child(&format!("{root}/sub/deeper.conf")), None);
    assert_eq!(child(&root), None);
    assert_eq!(
        py::clean_real("/", &t.p("link"), &format!("{root}/x"), false),
        Some(format!("{real}/x"))
    );
    assert_eq!(
        py::clean_real("/", &t.p("link"), "sub/x", true),
        Some(format!("{real}/sub/x"))
    );
    assert_eq!(py::clean_real("/", &root, "../link/../x", true), None);
    assert_eq!(py::relpath("/srv/./salt/x", "/srv/salt/"), "x");
    assert_eq!(py::relpath("/srv/x", "/srv/salt"), "../x");
    assert!(py::is_escaped("|x") && py::is_escaped("salt://|x") && !py::is_escaped("c:|x"));
    assert_eq!(py::unescape("salt://|a/b?saltenv=dev"), "salt://a/b?saltenv=dev");
}
