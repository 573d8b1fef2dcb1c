//! A pillar that fails to render must stop a state run (the point of
//! CVE-2024-37088: states must never be applied with their defaults in
//! place of the pillar values they ask for). With a real salt-minion
//! 3007.17, `salt-call state.sls` against Brine and against Python's
//! master on the same config: same exit status (non-zero), nothing
//! applied, and the pillar's render error reported.

mod common;

use std::time::Duration;

use common::minion::{Minion, READY};
use common::pysalt::EitherMaster;
use common::*;

const VERSION: &str = "3007.17";

/// One master's side: the trees, a minion, and what `salt-call` gave for
/// a state whose pillar fails to render, for a state that itself fails
/// to render, and for the same state once the pillar is fixed.
fn side(python: bool) -> Vec<(i32, bool, bool)> {
    let env = Env::with_extra(
        3,
        "auto_accept: True\nfile_roots:\n  base:\n    - {root}/states\npillar_roots:\n  base:\n    - {root}/pillar\n",
    );
    let root = env.root();
    let conf = std::fs::read_to_string(env.conf_dir.join("master")).unwrap();
    std::fs::write(
        env.conf_dir.join("master"),
        conf.replace("{root}", &root.display().to_string()),
    )
    .unwrap();
    let target = root.join("applied.txt");
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("pillar/top.sls", "base:\n  '*':\n    - values\n");
    write("pillar/values.sls", "foobar: from-pillar\n{{ broken\n");
    write(
        "states/uses_pillar.sls",
        &format!(
            "{{%- set var = salt['pillar.get']('foobar', 'state default') %}}\ntest:\n  file.managed:\n    - name: {}\n    - contents: {{{{ var }}}}\n",
            target.display()
        ),
    );
    write("states/broken.sls", "test:\n  file.managed:\n    - name: {{ nope(\n");

    let _master = EitherMaster::start(&env, python, VERSION);
    let minion = Minion::start(&env, VERSION, "render", "");
    assert!(minion.wait_log(READY, Duration::from_secs(90)), "{}", minion.log());

    let mut seen = Vec::new();
    for sls in ["uses_pillar", "broken"] {
        let (code, out) = minion.salt_call(&["state.sls", sls, "--out", "json"]);
        let reported = out.contains("Rendering SLS") || out.contains("failed to render");
        seen.push((code, target.exists(), reported));
    }
    // Fixed pillar: the state applies the pillar's value (the control).
    write("pillar/values.sls", "foobar: from-pillar\n");
    let (code, out) = minion.salt_call(&["state.sls", "uses_pillar", "--out", "json"]);
    let applied = std::fs::read_to_string(&target).unwrap_or_default();
    seen.push((code, applied.trim() == "from-pillar", !out.contains("state default")));
    seen
}

#[test]
fn a_pillar_render_error_stops_salt_call_as_with_pythons_master() {
    let brine = side(false);
    let python = side(true);
    assert_eq!(brine, python, "Brine (left) and Python's master (right) differ");
    // A failed pillar: non-zero, nothing written, the error reported.
    assert_ne!(brine[0].0, 0, "{brine:?}");
    assert!(!brine[0].1, "the state was applied with its default: {brine:?}");
    assert!(brine[0].2, "{brine:?}");
    // A state that does not render: non-zero.
    assert_ne!(brine[1].0, 0, "{brine:?}");
    // Once the pillar renders: applied with the pillar's value, status 0.
    assert_eq!(brine[2], (0, true, true), "{brine:?}");
}
