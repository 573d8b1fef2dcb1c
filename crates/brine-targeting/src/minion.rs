//! Salt's minion-side matchers (`salt/matchers/*_match.py`): does one
//! minion, known by its id, grains and pillar, match a target? The master
//! runs them for pillar top files (`confirm_top`, default `compound`).

use brine_proto::Value;
use log::{debug, error, warn};

use super::compound::{compound_words, eval_bools, nodegroup_comp, parse_target, BoolTok, OPERS};
use super::data::try_subdict_match;
use super::ip::IpTarget;
use super::pyre::PyRegex;
use super::{TargetError, TargetType};

/// What one minion is matched on.
pub struct MinionData<'a> {
    pub id: &'a str,
    pub grains: &'a Value,
    pub pillar: &'a Value,
}

/// Does this minion match `tgt` of `tgt_type`, as the minion's matcher
/// of that name decides? `nodegroups` is the master's `nodegroups`
/// option (a map, or Nil). Where the Python matcher raises (a bad regex,
/// an unparsable address in the `ipv4` grain, a type Salt has no matcher
/// for) this is false, with a warning. `range` is false (Brine has no
/// range server client, as a minion without `seco.range`); `data` needs the
/// minion's own data store and is refused.
pub fn minion_matches(m: &MinionData, tgt: &Value, tgt_type: &str, delimiter: &str, nodegroups: &Value) -> bool {
    match try_matches(m, tgt, tgt_type, delimiter, nodegroups) {
        Ok(b) => b,
        Err(e) => {
            warn!("{} matching {tgt_type} target {tgt:?}: {e}", m.id);
            false
        }
    }
}

fn try_matches(
    m: &MinionData,
    tgt: &Value,
    tgt_type: &str,
    delimiter: &str,
    nodegroups: &Value,
) -> Result<bool, TargetError> {
    let no_matcher = || TargetError::Invalid(format!("no {tgt_type}_match matcher on the master"));
    match tgt_type.parse::<TargetType>().map_err(|_| no_matcher())? {
        TargetType::Glob => Ok(glob(m, tgt)),
        TargetType::Pcre => pcre(m, tgt),
        TargetType::List => Ok(list(m, tgt)),
        TargetType::Grain => data(m.grains, tgt, delimiter, false, false),
        TargetType::GrainPcre => data(m.grains, tgt, delimiter, true, false),
        TargetType::Pillar => data(m.pillar, tgt, delimiter, false, false),
        TargetType::PillarPcre => data(m.pillar, tgt, delimiter, true, false),
        TargetType::PillarExact => data(m.pillar, tgt, delimiter, false, true),
        TargetType::Ipcidr => ipcidr(m, tgt),
        TargetType::Compound => compound(m, tgt, nodegroups),
        TargetType::Nodegroup => nodegroup(m, tgt, nodegroups),
        TargetType::Range => Ok(false),
        TargetType::CompoundPillarExact | TargetType::Data => Err(no_matcher()),
    }
}

/// `glob_match`: `fnmatch(id, tgt)`; a target that is not text is false.
fn glob(m: &MinionData, tgt: &Value) -> bool {
    tgt.as_str().is_some_and(|t| brine_py::fnmatch(m.id, t))
}

/// `pcre_match`: `re.match(tgt, id)`.
fn pcre(m: &MinionData, tgt: &Value) -> Result<bool, TargetError> {
    let t = tgt
        .as_str()
        .ok_or_else(|| TargetError::Invalid(format!("pcre target {tgt:?} is not text")))?;
    Ok(PyRegex::new(t)?.matches(m.id))
}

/// `list_match`: the id between commas of a string (no trimming), or a
/// member of a list.
fn list(m: &MinionData, tgt: &Value) -> bool {
    let id = m.id;
    match tgt {
        Value::Str(t) => {
            t.contains(&format!(",{id},"))
                || t.starts_with(&format!("{id},"))
                || t.ends_with(&format!(",{id}"))
                || t == id
        }
        Value::Array(items) => items.iter().any(|i| matches!(i, Value::Str(s) if s == id)),
        Value::Map(pairs) => pairs.iter().any(|(k, _)| matches!(k, Value::Str(s) if s == id)),
        _ => false,
    }
}

/// `grain_match` and friends: no delimiter in the target is false.
fn data(data: &Value, tgt: &Value, delimiter: &str, regex: bool, exact: bool) -> Result<bool, TargetError> {
    let t = tgt
        .as_str()
        .ok_or_else(|| TargetError::Invalid(format!("target {tgt:?} is not text")))?;
    if !t.contains(delimiter) {
        error!("Got insufficient arguments for match statement from master: {t:?}");
        return Ok(false);
    }
    try_subdict_match(data, t, delimiter, regex, exact)
}

/// `ipcidr_match`: an address in, or a network over, the `ipv4`/`ipv6`
/// grain. An invalid target returns `[]` in Salt: false.
fn ipcidr(m: &MinionData, tgt: &Value) -> Result<bool, TargetError> {
    let Some(target) = tgt.as_str().and_then(IpTarget::parse) else {
        error!("Invalid IP/CIDR target: {tgt:?}");
        return Ok(false);
    };
    target.matches_grains(m.grains)
}

/// `nodegroup_match`: the group's expansion as a compound target.
fn nodegroup(m: &MinionData, tgt: &Value, nodegroups: &Value) -> Result<bool, TargetError> {
    let known = match (tgt, nodegroups) {
        (_, Value::Map(groups)) if groups.is_empty() => false,
        (Value::Str(name), Value::Map(groups)) => groups.iter().any(|(k, _)| matches!(k, Value::Str(s) if s == name)),
        _ => false,
    };
    if !known {
        debug!("Nodegroup matcher: {tgt:?} is not a nodegroup");
        return Ok(false);
    }
    let words = nodegroup_comp(tgt.as_str().unwrap_or(""), nodegroups)?;
    compound(m, &Value::Array(words), nodegroups)
}

/// `compound_match`: every word is matched now (so a matcher's error is
/// the whole target's), then the `True`/`False`/`and`/`or`/`not` text is
/// evaluated as Python would.
fn compound(m: &MinionData, tgt: &Value, nodegroups: &Value) -> Result<bool, TargetError> {
    let Some(mut words) = compound_words(tgt) else {
        error!("Compound target received that is neither string, list nor tuple");
        return Ok(false);
    };
    let mut results: Vec<BoolTok> = Vec::new();
    words.reverse();
    while let Some(word) = words.pop() {
        let Value::Str(word) = word else {
            return Err(TargetError::Invalid(format!("compound word {word:?} is not text")));
        };
        let target = parse_target(&word);
        if OPERS.contains(&word.as_str()) {
            let tok = match word.as_str() {
                "and" => BoolTok::And,
                "or" => BoolTok::Or,
                "not" => BoolTok::Not,
                "(" => BoolTok::Open,
                _ => BoolTok::Close,
            };
            match results.last() {
                Some(last) => {
                    if *last == BoolTok::Open && matches!(tok, BoolTok::And | BoolTok::Or) {
                        error!("Invalid beginning operator after \"(\": {word}");
                        return Ok(false);
                    }
                    if tok == BoolTok::Not && !matches!(last, BoolTok::And | BoolTok::Or | BoolTok::Open) {
                        results.push(BoolTok::And);
                    }
                }
                None => {
                    if !matches!(tok, BoolTok::Open | BoolTok::Not) {
                        error!("Invalid beginning operator: {word}");
                        return Ok(false);
                    }
                }
            }
            results.push(tok);
            continue;
        }
        let hit = match target.engine {
            Some('N') => {
                let mut expanded = nodegroup_comp(&target.pattern, nodegroups)?;
                expanded.reverse();
                words.extend(expanded);
                continue;
            }
            Some(engine) => {
                let pat = Value::from(target.pattern.as_str());
                let delim = target.delimiter.map_or(":".to_string(), String::from);
                match engine {
                    'G' => data(m.grains, &pat, &delim, false, false)?,
                    'P' => data(m.grains, &pat, &delim, true, false)?,
                    'I' => data(m.pillar, &pat, &delim, false, false)?,
                    'J' => data(m.pillar, &pat, &delim, true, false)?,
                    'L' => list(m, &pat),
                    'S' => ipcidr(m, &pat)?,
                    'E' => pcre(m, &pat)?,
                    other => {
                        error!("Unrecognized target engine \"{other}\" for target expression \"{word}\"");
                        return Ok(false);
                    }
                }
            }
            None => glob(m, &Value::from(word.as_str())),
        };
        results.push(BoolTok::Val(hit));
    }
    match eval_bools(&results) {
        Some(b) => Ok(b),
        None => {
            error!("Invalid compound target: {tgt:?}");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grains() -> Value {
        Value::map([
            ("os", Value::from("Debian")),
            ("roles", Value::Array(vec![Value::from("web"), Value::from("db")])),
            (
                "ipv4",
                Value::Array(vec![Value::from("10.0.0.5"), Value::from("127.0.0.1")]),
            ),
        ])
    }

    fn ngs() -> Value {
        Value::map([
            ("webs", Value::from("web*")),
            ("debs", Value::Array(vec![Value::from("G@os:Debian")])),
            ("both", Value::from("N@webs and N@debs")),
        ])
    }

    #[test]
    fn compound_targets_match_as_the_minion_does() {
        let g = grains();
        let p = Value::map([("tier", Value::from("front"))]);
        let m = MinionData {
            id: "web1",
            grains: &g,
            pillar: &p,
        };
        let ngs = ngs();
        let t = |tgt: &str| minion_matches(&m, &Value::from(tgt), "compound", ":", &ngs);
        assert!(t("web*"));
        assert!(t("G@os:Debian and web1"));
        assert!(!t("G@os:RedHat or db*"));
        assert!(t("not G@os:RedHat"));
        assert!(t("web1 not G@os:RedHat"), "`not` after a term means `and not`");
        assert!(t("( G@roles:db or L@x,y ) and I@tier:front"));
        assert!(t("S@10.0.0.0/8 and E@web\\d"));
        assert!(!t("S@10.0.0.5/8"), "host bits set: an invalid target, false");
        assert!(t("N@both"));
        assert!(t("P@os:^deb and J@tier:fr.nt"));
        assert!(t("G|@roles|web"));
        assert!(!t("and web1"));
        assert!(!t("( web1"), "the minion adds no closing parenthesis");
        assert!(!t("web1 web1"));
        assert!(!t("E@( or web1"), "a bad regex raises before evaluation");
        assert!(!t("R@%foo or web1"), "no R@ without seco.range");
        assert!(t("web1 or web2 ( web3 )"), "Python never evaluates the call");
        assert!(minion_matches(
            &m,
            &Value::Array(vec![
                Value::from("web1"),
                Value::from("and"),
                Value::from("G@os:Debian")
            ]),
            "compound",
            ":",
            &ngs
        ));
    }

    #[test]
    fn simple_matchers() {
        let g = grains();
        let p = Value::map([("tier", Value::from("front"))]);
        let m = MinionData {
            id: "web1",
            grains: &g,
            pillar: &p,
        };
        let ngs = ngs();
        let t = |tgt: &str, ty: &str| minion_matches(&m, &Value::from(tgt), ty, ":", &ngs);
        assert!(t("web1,db1", "list"));
        assert!(t("db1,web1", "list"));
        assert!(!t("db1, web1", "list"), "no trimming");
        assert!(t("webs", "nodegroup"));
        assert!(!t("nope", "nodegroup"));
        assert!(t("10.0.0.5", "ipcidr"));
        assert!(!t("10.0.0.6", "ipcidr"));
        assert!(t("w.b", "pcre"));
        assert!(!t("(", "pcre"));
        assert!(t("tier:front", "pillar_exact"));
        assert!(!t("tier:fr*", "pillar_exact"));
        assert!(t("tier:fr*", "pillar"));
        assert!(!t("x", "range"));
        assert!(!t("x", "data"));
        assert!(!t("os", "grain"));
    }
}
