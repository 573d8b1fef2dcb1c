//! Targeting as Salt does it.
//!
//! * [`CkMinions`]: the master's `salt.utils.minions.CkMinions` — which
//!   accepted minions a target names (`publish` expects their returns,
//!   the mine reads their data), from the accepted keys and the minion
//!   data cache (`cachedir/minions/<id>/data.p`, written by `_pillar`).
//! * [`minion_matches`]: the minion-side matchers (`salt/matchers/`),
//!   which the master runs for pillar top files.
//! * The pieces both use: Python's `fnmatch` (`brine_py`), `re.match`
//!   (`pyre`), `ipaddress` (`ip`), Salt's `subdict_match`, and the
//!   compound grammar with nodegroups (`compound`).

mod ckminions;
mod compound;
pub mod connected;
mod data;
mod ip;
mod minion;
mod pyre;

pub use ckminions::{sorted_ignorecase, CkMinions, Matched};
pub use compound::{nodegroup_comp, parse_target, Word};
pub use connected::connected_ids;
pub use data::{subdict_match, traverse};
pub use ip::IpTarget;
pub use minion::{minion_matches, MinionData};
pub use pyre::PyRegex;

/// Salt's target types (`tgt_type`, `expr_form` in older loads), by the
/// names the wire and the CLIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetType {
    Glob,
    Pcre,
    List,
    Grain,
    GrainPcre,
    Pillar,
    PillarPcre,
    PillarExact,
    Compound,
    CompoundPillarExact,
    Nodegroup,
    Ipcidr,
    Range,
    Data,
}

impl TargetType {
    pub const ALL: [TargetType; 14] = [
        TargetType::Glob,
        TargetType::Pcre,
        TargetType::List,
        TargetType::Grain,
        TargetType::GrainPcre,
        TargetType::Pillar,
        TargetType::PillarPcre,
        TargetType::PillarExact,
        TargetType::Compound,
        TargetType::CompoundPillarExact,
        TargetType::Nodegroup,
        TargetType::Ipcidr,
        TargetType::Range,
        TargetType::Data,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Glob => "glob",
            TargetType::Pcre => "pcre",
            TargetType::List => "list",
            TargetType::Grain => "grain",
            TargetType::GrainPcre => "grain_pcre",
            TargetType::Pillar => "pillar",
            TargetType::PillarPcre => "pillar_pcre",
            TargetType::PillarExact => "pillar_exact",
            TargetType::Compound => "compound",
            TargetType::CompoundPillarExact => "compound_pillar_exact",
            TargetType::Nodegroup => "nodegroup",
            TargetType::Ipcidr => "ipcidr",
            TargetType::Range => "range",
            TargetType::Data => "data",
        }
    }
}

impl std::fmt::Display for TargetType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TargetType {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<TargetType, TargetError> {
        TargetType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| TargetError::Invalid(format!("no target type {s:?}")))
    }
}

/// Why a target could not be evaluated: where Salt raises (and then
/// answers with no minions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid regular expression {0:?}: {1}")]
    Regex(String, String),
    #[error("cannot read the minion data cache {0}: {1}")]
    Cache(String, String),
    #[error("{0}")]
    Invalid(String),
}

impl From<brine_cache::CacheError> for TargetError {
    fn from(e: brine_cache::CacheError) -> TargetError {
        match e {
            brine_cache::CacheError::File { path, why } => TargetError::Cache(path, why),
            other => TargetError::Cache("cachedir/minions".into(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::Value;

    /// A pki dir and data cache: web1 (Debian), web2 (RedHat), db1
    /// (Debian, no pillar), nocache (accepted, no data), gone (data, no key).
    fn fixture() -> (tempfile::TempDir, CkMinions) {
        let dir = tempfile::tempdir().unwrap();
        let write = |id: &str, data: Value| {
            let p = dir.path().join("minions").join(id);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("data.p"), data.to_file()).unwrap();
        };
        let g = |os: &str, ip: &str, role: &str| {
            Value::map([
                ("os", Value::from(os)),
                ("ipv4", Value::Array(vec![Value::from(ip)])),
                ("roles", Value::Array(vec![Value::from(role)])),
            ])
        };
        write(
            "web1",
            Value::map([
                ("grains", g("Debian", "10.0.0.1", "web")),
                ("pillar", Value::map([("tier", Value::from("front"))])),
            ]),
        );
        write(
            "web2",
            Value::map([
                ("grains", g("RedHat", "10.0.1.2", "web")),
                ("pillar", Value::map([("tier", Value::from("front*"))])),
            ]),
        );
        write("db1", Value::map([("grains", g("Debian", "192.168.1.5", "db"))]));
        write("gone", Value::map([("grains", g("Debian", "10.9.9.9", "db"))]));
        let ngs = Value::map([
            ("webs", Value::from("web*")),
            ("pair", Value::from("db1 zz")),
            ("debweb", Value::from("N@webs and G@os:Debian")),
        ]);
        let accepted = ["web2", "nocache", "db1", "web1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ck = CkMinions::new(accepted, dir.path(), true, ngs);
        (dir, ck)
    }

    fn check(ck: &CkMinions, expr: &str, ty: &str, greedy: bool) -> (Vec<String>, Vec<String>) {
        let m = ck.check_minions(&Value::from(expr), ty, ":", greedy);
        (m.minions, m.missing)
    }

    #[test]
    fn long_compound_chains_evaluate() {
        let (_d, ck) = fixture();
        let chain = vec!["web1"; 50_000].join(" and ");
        assert_eq!(check(&ck, &chain, "compound", true).0, ["web1"]);
        let deep = format!("{}web1{}", "( ".repeat(201), " )".repeat(201));
        assert!(check(&ck, &deep, "compound", true).0.is_empty());
        let deep = format!("{}web1{}", "( ".repeat(200), " )".repeat(200));
        assert_eq!(check(&ck, &deep, "compound", true).0, ["web1"]);
    }

    #[test]
    fn greedy_checks() {
        let (_d, ck) = fixture();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check(&ck, "*", "glob", true).0, s(&["db1", "nocache", "web1", "web2"]));
        assert_eq!(check(&ck, "os:Debian", "grain", true).0, s(&["db1", "web1"]));
        assert_eq!(check(&ck, "tier:front*", "pillar_exact", true).0, s(&["web2"]));
        assert_eq!(
            check(&ck, "10.0.0.0/16", "ipcidr", true).0,
            s(&["nocache", "web1", "web2"])
        );
        assert_eq!(
            check(&ck, "zz,web1,db1", "list", true),
            (s(&["web1", "db1"]), s(&["zz"]))
        );
        assert_eq!(check(&ck, "webs", "nodegroup", true).0, s(&["web1", "web2"]));
        assert_eq!(check(&ck, "pair", "nodegroup", true), (s(&["db1"]), s(&["zz"])));
        assert_eq!(check(&ck, "N@debweb", "compound", true).0, s(&["web1"]));
        assert_eq!(
            check(&ck, "G@os:Debian and not L@zz,db1", "compound", true),
            (s(&["web1"]), s(&[]))
        );
        assert_eq!(check(&ck, "not ( web* or db1 )", "compound", true).0, s(&["nocache"]));
        assert_eq!(check(&ck, "( web1", "compound", true).0, s(&["web1"]));
        assert!(check(&ck, "web1 )", "compound", true).0.is_empty());
        assert!(check(&ck, "E@( or web1", "compound", true).0.is_empty());
        assert!(check(&ck, "(", "pcre", true).0.is_empty());
        assert!(check(&ck, "x", "range", true).0.is_empty());
        assert!(check(&ck, "x", "nosuch", true).0.is_empty());
    }

    #[test]
    fn non_greedy_checks_start_from_the_cache() {
        let (_d, ck) = fixture();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check(&ck, "os:Debian", "grain", false).0, s(&["db1", "gone", "web1"]));
        assert_eq!(
            check(&ck, "10.0.0.0/8", "ipcidr", false).0,
            s(&["gone", "web1", "web2"])
        );
        assert_eq!(
            check(&ck, "G@os:Debian", "compound", false).0,
            s(&["db1", "gone", "web1"])
        );
        assert_eq!(check(&ck, "*", "glob", false).0, s(&["db1", "nocache", "web1", "web2"]));
    }

    #[test]
    fn without_the_data_cache_everyone_is_expected() {
        let dir = tempfile::tempdir().unwrap();
        let ck = CkMinions::new(vec!["b".into(), "A".into()], dir.path(), false, Value::Nil);
        let all = vec!["A".to_string(), "b".to_string()];
        assert_eq!(ck.check_minions(&Value::from("os:x"), "grain", ":", true).minions, all);
        assert_eq!(
            ck.check_minions(&Value::from("G@os:x and b"), "compound", ":", true)
                .minions,
            all
        );
        assert!(ck
            .check_minions(&Value::from("os:x"), "grain", ":", false)
            .minions
            .is_empty());
    }
}
