//! What a peer holding one accepted minion key may send on ret_port, and
//! what the master must do with it: answer as Salt does (or refuse and log
//! it), keep every MWorker alive, and record nothing forged.

mod common;

use brine_proto::Value;
use common::aes::accepted_minion;
use common::requests::{env_with_tree, load, s};
use common::{children_of, read};

/// Compound and grain targets a hostile minion can put in `_mine_get`:
/// parentheses nested far past Python's 200 levels, a long `not` run, and
/// a grain target of 100,000 parts. Salt answers `{}`; a recursive parser
/// without a limit overflows the MWorker's stack (SIGABRT) instead.
#[test]
fn deep_and_long_targets_cost_no_worker() {
    let env = env_with_tree(2, "");
    let mut master = env.start();
    master.wait_ready();
    let argv = format!("{} -c {}", env!("CARGO_BIN_EXE_salt-master"), env.conf_dir.display());
    let rs = master.named_children(master.pid, &argv)["ReqServer_ProcessManager"];
    let workers = children_of(rs);
    let m = accepted_minion(&env, "hostile");
    let port = env.ret_port;
    let mine_get = |tgt: &str, tgt_type: &str| {
        m.call(
            port,
            &load(
                "_mine_get",
                &[("tgt", s(tgt)), ("fun", s("test.ping")), ("tgt_type", s(tgt_type))],
            ),
        )
    };
    let deep = format!("{}hostile{}", "( ".repeat(5000), " )".repeat(5000));
    let nots = format!("{}hostile", "not ".repeat(100_000));
    let long_grain = format!("os:{}", vec!["x"; 100_000].join(":"));
    let chain = vec!["hostile"; 20_000].join(" and ");
    for (tgt, tgt_type) in [
        (deep.as_str(), "compound"),
        (nots.as_str(), "compound"),
        (chain.as_str(), "compound"),
        (long_grain.as_str(), "grain"),
        (long_grain.as_str(), "pillar"),
    ] {
        for _ in 0..3 {
            assert_eq!(mine_get(tgt, tgt_type), Value::Map(Vec::new()), "{tgt_type}");
        }
    }
    // Still serving, with the same workers: none died and was respawned.
    assert_eq!(mine_get("hostile", "glob"), Value::Map(Vec::new()));
    assert_eq!(children_of(rs), workers, "an MWorker was replaced");
    assert!(
        read(&env.log_file()).contains("deeper than 200 levels"),
        "the refusal is logged"
    );
}
