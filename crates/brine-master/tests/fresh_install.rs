//! A first start as root with `user: nobody` on a machine where none of
//! Salt's directories exist yet: the master creates them so that it can
//! still use them after dropping privileges, with the modes and owners
//! Python's salt-master 3007.17 leaves on the same layout, and serves a
//! real minion.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::attack::Watch;
use common::{current_user, read, Env};

/// The FHS layout of a packaged Salt under `<root>/fs`, run as `nobody`.
/// `fs` and `fs/var` stand for `/` and `/var`, which every machine has;
/// nothing of Salt's exists yet.
fn fresh(env: &Env) {
    let root = env.root().display().to_string();
    let fs = format!("{root}/fs");
    let conf = read(&env.conf_dir.join("master"))
        .replace(&format!("root_dir: {root}\n"), &format!("root_dir: {fs}\n"))
        .replace(&format!("{root}/pki"), &format!("{fs}/etc/salt/pki/master"))
        .replace(&format!("{root}/cache"), &format!("{fs}/var/cache/salt/master"))
        .replace(&format!("{root}/sock"), &format!("{fs}/var/run/salt/master"))
        .replace(
            &format!("{root}/run/salt-master.pid"),
            &format!("{fs}/var/run/salt-master.pid"),
        )
        .replace(&format!("{root}/log/master"), &format!("{fs}/var/log/salt/master"))
        .replace(&format!("user: {}\n", current_user()), "user: nobody\n");
    std::fs::write(env.conf_dir.join("master"), conf).unwrap();
    for d in [env.root(), env.root().join("fs"), env.root().join("fs/var")] {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// path under `fs` → (file type, mode, owner) for directories and files.
fn layout(fs: &Path) -> BTreeMap<String, (&'static str, u32, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![fs.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let kind = if meta.is_dir() {
                todo.push(e.path());
                "dir"
            } else if meta.is_file() {
                "file"
            } else {
                continue;
            };
            let rel = e.path().strip_prefix(fs).unwrap().display().to_string();
            out.insert(rel, (kind, meta.mode() & 0o7777, meta.uid()));
        }
    }
    out
}

#[test]
fn first_start_as_root_creates_what_the_user_needs() {
    if !nix::unistd::Uid::effective().is_root() {
        // Dropping privileges needs root (CI runs the tests as root); as
        // anyone else the master runs as that user, which every test covers.
        return;
    }
    let env = Env::new(2);
    fresh(&env);
    let mut master = env.start();
    master.wait_ready();
    let ours = layout(&env.root().join("fs"));

    // What Python's salt-master 3007.17 leaves on this layout when started
    // as root with `user: nobody` (read off a run here; its master cannot
    // finish starting as nobody on this machine, whose Python lives under
    // /root, so the table is kept rather than the run): parents 0755 and
    // root's, the master's own directories the user's, pki 0700, the key
    // pair 0400/0644, the per-user CLI keys 0600 each its user's, the log
    // directories 0750 and the log file 0640 (Salt's logging umask 027).
    let n = nobody();
    let want = [
        ("etc", ("dir", 0o755, 0)),
        ("etc/salt", ("dir", 0o755, 0)),
        ("etc/salt/pki", ("dir", 0o755, 0)),
        ("etc/salt/pki/master", ("dir", 0o700, n)),
        ("etc/salt/pki/master/minions", ("dir", 0o755, n)),
        ("etc/salt/pki/master/minions_pre", ("dir", 0o755, n)),
        ("etc/salt/pki/master/minions_rejected", ("dir", 0o755, n)),
        ("etc/salt/pki/master/minions_denied", ("dir", 0o755, n)),
        ("etc/salt/pki/master/minions_autosign", ("dir", 0o755, n)),
        ("etc/salt/pki/master/master.pem", ("file", 0o400, n)),
        ("etc/salt/pki/master/master.pub", ("file", 0o644, n)),
        ("var/cache", ("dir", 0o755, 0)),
        ("var/cache/salt", ("dir", 0o755, 0)),
        ("var/cache/salt/master", ("dir", 0o755, n)),
        ("var/cache/salt/master/jobs", ("dir", 0o755, n)),
        ("var/cache/salt/master/proc", ("dir", 0o755, n)),
        ("var/cache/salt/master/queues", ("dir", 0o755, n)),
        ("var/cache/salt/master/syndics", ("dir", 0o755, n)),
        ("var/cache/salt/master/tokens", ("dir", 0o755, n)),
        ("var/cache/salt/master/.nobody_key", ("file", 0o600, n)),
        ("var/cache/salt/master/.root_key", ("file", 0o600, 0)),
        ("var/run", ("dir", 0o755, 0)),
        ("var/run/salt", ("dir", 0o755, 0)),
        ("var/run/salt/master", ("dir", 0o755, n)),
        ("var/run/salt-master.pid", ("file", 0o644, n)),
        ("var/log", ("dir", 0o750, 0)),
        ("var/log/salt", ("dir", 0o750, 0)),
        ("var/log/salt/master", ("file", 0o640, n)),
    ];
    let show = |v: Option<&(&str, u32, u32)>| v.map(|(k, m, u)| format!("{k} {m:o} uid {u}"));
    let differ: Vec<_> = want
        .iter()
        .filter(|(p, w)| ours.get(*p) != Some(w))
        .map(|(p, w)| format!("{p}: want {:?}, got {:?}", show(Some(w)), show(ours.get(*p))))
        .collect();
    assert!(differ.is_empty(), "\n{}", differ.join("\n"));

    // It serves after the drop: a real minion signs in (its key written by
    // `nobody`), is accepted and answers.
    let watch = Watch::start(&env, &master);
    watch.finish();
    let key = std::fs::metadata(env.root().join("fs/etc/salt/pki/master/minions/bystander")).unwrap();
    assert_eq!(key.uid(), n);
}

fn nobody() -> u32 {
    nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw()
}
