//! Salt's `CkMinions.check_minions` (`salt/utils/minions.py`): which
//! minions a target names, from the accepted keys and the minion data
//! cache (`cachedir/minions/<id>/data.p`, `{grains, pillar}`).
//!
//! `greedy` (what `publish` uses) starts from every accepted minion and
//! keeps, for grain/pillar targets, those whose cached data matches;
//! non-greedy (the mine) starts from the minions that have cache entries.
//! Salt returns most results as `list(set)`, in no particular order;
//! Brine returns them in the order of the accepted keys (Salt's
//! `sorted_ignorecase`), lists in the order given.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use brine_cache::MinionCache;
use brine_proto::Value;
use brine_py::Glob;
use log::{debug, error, warn};

use super::compound::{compound_words, eval_sets, nodegroup_comp, parse_target, SetTok, OPERS};
use super::data::try_subdict_match;
use super::ip::IpTarget;
use super::pyre::PyRegex;

use super::{TargetError, TargetType};

/// What a target names: the minions expected to answer, and the listed
/// ids that have no accepted key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    pub minions: Vec<String>,
    pub missing: Vec<String>,
}

impl Matched {
    fn of(minions: Vec<String>) -> Matched {
        Matched {
            minions,
            missing: Vec::new(),
        }
    }
}

/// Where a cache matcher starts ([`CkMinions::cache_scope`]).
enum Scope {
    /// The answer without reading any cache data.
    Settled(Matched),
    /// Minions considered, and those whose cached data decides.
    Check {
        considered: Vec<String>,
        candidates: Vec<String>,
    },
}

/// Salt's `sorted_ignorecase`: by `str.lower()`, stable.
pub fn sorted_ignorecase(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids.sort_by_cached_key(|s| s.to_lowercase());
    ids
}

/// The master's view of its minions, for one target check (or several:
/// cache reads are kept for the object's life).
pub struct CkMinions {
    /// Accepted minions, `sorted_ignorecase`.
    pki: Vec<String>,
    cache: MinionCache,
    /// `minion_data_cache`.
    cache_enabled: bool,
    /// The `nodegroups` option (a map).
    nodegroups: Value,
    fetched: RefCell<HashMap<String, Result<Value, TargetError>>>,
    listed: RefCell<Option<Result<Vec<String>, TargetError>>>,
}

impl CkMinions {
    /// `accepted`: the ids of the accepted keys (`pki_dir/minions`, names
    /// not starting with a dot).
    pub fn new(
        accepted: Vec<String>,
        cachedir: impl Into<PathBuf>,
        cache_enabled: bool,
        nodegroups: Value,
    ) -> CkMinions {
        CkMinions {
            pki: sorted_ignorecase(accepted),
            cache: MinionCache::new(&cachedir.into()),
            cache_enabled,
            nodegroups,
            fetched: RefCell::new(HashMap::new()),
            listed: RefCell::new(None),
        }
    }

    /// From the master's options: `cachedir`, `minion_data_cache`
    /// (default on) and `nodegroups`.
    pub fn from_config(cfg: &brine_config::MasterConfig, accepted: Vec<String>) -> CkMinions {
        let nodegroups = cfg
            .get("nodegroups")
            .map(brine_proto::json::from_json)
            .unwrap_or(Value::Map(Vec::new()));
        CkMinions::new(
            accepted,
            &cfg.cachedir,
            cfg.get_bool("minion_data_cache").unwrap_or(true),
            nodegroups,
        )
    }

    pub fn accepted(&self) -> &[String] {
        &self.pki
    }

    /// Salt's `check_minions(expr, tgt_type, delimiter, greedy)`. A target
    /// Salt cannot evaluate (a bad regex, an unknown target type, a range
    /// without a range server) names no minion, with a warning.
    pub fn check_minions(&self, expr: &Value, tgt_type: &str, delimiter: &str, greedy: bool) -> Matched {
        let empty = Value::from("");
        let expr = if expr.is_nil() { &empty } else { expr };
        match self.try_check(expr, tgt_type, delimiter, greedy) {
            Ok(m) => m,
            Err(e) => {
                warn!(
                    "Failed matching available minions with {tgt_type} pattern: {}: {e}",
                    shown(expr)
                );
                Matched::default()
            }
        }
    }

    fn try_check(&self, expr: &Value, tgt_type: &str, delimiter: &str, greedy: bool) -> Result<Matched, TargetError> {
        match tgt_type.parse::<TargetType>()? {
            TargetType::Glob => self.glob(text(expr)?),
            TargetType::Pcre => self.pcre(text(expr)?),
            TargetType::List => Ok(self.list(expr, false)),
            TargetType::Grain => self.cache_match(expr, delimiter, greedy, "grains", false, false),
            TargetType::GrainPcre => self.cache_match(expr, delimiter, greedy, "grains", true, false),
            TargetType::Pillar => self.cache_match(expr, delimiter, greedy, "pillar", false, false),
            TargetType::PillarPcre => self.cache_match(expr, delimiter, greedy, "pillar", true, false),
            TargetType::PillarExact => self.cache_match(expr, delimiter, greedy, "pillar", false, true),
            TargetType::Compound => self.compound(expr, greedy, false),
            TargetType::CompoundPillarExact => self.compound(expr, greedy, true),
            TargetType::Nodegroup => {
                let words = nodegroup_comp(text(expr)?, &self.nodegroups)?;
                self.compound(&Value::Array(words), greedy, false)
            }
            TargetType::Ipcidr => self.ipcidr(expr, greedy),
            TargetType::Range => Err(TargetError::Invalid(
                "Range matcher unavailable (Brine has no seco.range client)".into(),
            )),
            TargetType::Data => Err(TargetError::Invalid("no target type \"data\"".into())),
        }
    }

    /// In accepted-key order (then any other ids, likewise sorted).
    fn ordered(&self, set: BTreeSet<String>) -> Vec<String> {
        sorted_ignorecase(set.into_iter().collect())
    }

    fn fetch(&self, id: &str, key: &str) -> Result<Value, TargetError> {
        let k = format!("{id}/{key}");
        if let Some(r) = self.fetched.borrow().get(&k) {
            return r.clone();
        }
        let r = self.cache.fetch(id, key).map_err(TargetError::from);
        self.fetched.borrow_mut().insert(k, r.clone());
        r
    }

    fn cached_ids(&self) -> Result<Vec<String>, TargetError> {
        if let Some(r) = self.listed.borrow().as_ref() {
            return r.clone();
        }
        let r = self.cache.list().map_err(TargetError::from);
        *self.listed.borrow_mut() = Some(r.clone());
        r
    }

    fn glob(&self, pat: &str) -> Result<Matched, TargetError> {
        let g = Glob::cached(pat);
        Ok(Matched::of(self.pki.iter().filter(|m| g.matches(m)).cloned().collect()))
    }

    fn pcre(&self, pat: &str) -> Result<Matched, TargetError> {
        let re = PyRegex::new(pat)?;
        Ok(Matched::of(
            self.pki.iter().filter(|m| re.matches(m)).cloned().collect(),
        ))
    }

    /// A comma-separated string or a list; names kept in the order (and
    /// the repetitions) given.
    fn list(&self, expr: &Value, ignore_missing: bool) -> Matched {
        let names: Vec<String> = match expr {
            Value::Str(s) => s.split(',').filter(|m| !m.is_empty()).map(String::from).collect(),
            Value::Array(items) => items.iter().map(brine_py::to_str).collect(),
            other => vec![brine_py::to_str(other)],
        };
        let known = |n: &String| self.pki.binary_search_by(|p| cmp_ignorecase(p, n)).is_ok();
        Matched {
            minions: names.iter().filter(|n| known(n)).cloned().collect(),
            missing: if ignore_missing {
                Vec::new()
            } else {
                names.iter().filter(|n| !known(n)).cloned().collect()
            },
        }
    }

    /// The lists Salt's cache matchers start from: the minions considered
    /// (all accepted when greedy, else those with cache data) and the ones
    /// whose data is read; settled at once without `minion_data_cache`.
    fn cache_scope(&self, greedy: bool) -> Result<Scope, TargetError> {
        let considered: Vec<String> = if greedy {
            self.pki.clone()
        } else if self.cache_enabled {
            self.cached_ids()?
        } else {
            return Ok(Scope::Settled(Matched::default()));
        };
        if !self.cache_enabled {
            return Ok(Scope::Settled(Matched::of(considered)));
        }
        let candidates = if greedy { self.cached_ids()? } else { considered.clone() };
        Ok(Scope::Check { considered, candidates })
    }

    /// A minion's cached `data` (grains and pillar), which must be a dict.
    fn cached_data(&self, id: &str) -> Result<Value, TargetError> {
        let data = self.fetch(id, "data")?;
        if !data.is_map() {
            return Err(TargetError::Invalid(format!("the cached data of {id} is not a dict")));
        }
        Ok(data)
    }

    /// Salt's `_check_cache_minions`: minions whose cached `search_type`
    /// data matches `expr`; a minion without cache data never matches.
    fn cache_match(
        &self,
        expr: &Value,
        delimiter: &str,
        greedy: bool,
        search_type: &str,
        regex_match: bool,
        exact: bool,
    ) -> Result<Matched, TargetError> {
        let (minions, candidates) = match self.cache_scope(greedy)? {
            Scope::Settled(m) => return Ok(m),
            Scope::Check { considered, candidates } => (considered, candidates),
        };
        if candidates.is_empty() {
            return Ok(Matched::default());
        }
        let considered: BTreeSet<String> = minions.into_iter().collect();
        let mut kept = BTreeSet::new();
        for id in candidates {
            if !considered.contains(&id) {
                continue;
            }
            let data = self.cached_data(&id)?;
            let found = data.get(search_type).unwrap_or(&Value::Nil);
            if try_subdict_match(found, text(expr)?, delimiter, regex_match, exact)? {
                kept.insert(id);
            }
        }
        Ok(Matched::of(self.ordered(kept)))
    }

    /// Salt's `_check_ipcidr_minions`: by the cached `ipv4`/`ipv6` grains.
    /// Greedy, an accepted minion without a cache entry is kept (Salt only
    /// drops the minions it finds data for and that do not match).
    fn ipcidr(&self, expr: &Value, greedy: bool) -> Result<Matched, TargetError> {
        let (minions, candidates) = match self.cache_scope(greedy)? {
            Scope::Settled(m) => return Ok(m),
            Scope::Check { considered, candidates } => (considered, candidates),
        };
        let Some(target) = expr.as_str().and_then(IpTarget::parse) else {
            error!("Invalid IP/CIDR target: {}", shown(expr));
            return Ok(Matched::default());
        };
        let mut kept: BTreeSet<String> = minions.into_iter().collect();
        for id in candidates {
            let data = self.cached_data(&id)?;
            let matched = match data.get("grains") {
                None | Some(Value::Nil) => false,
                Some(grains) => target.matches_grains(grains)?,
            };
            if !matched {
                kept.remove(&id);
            }
        }
        Ok(Matched::of(self.ordered(kept)))
    }

    /// Salt's `_check_compound_minions`: each word becomes a set (or an
    /// operator) of a Python expression, evaluated at the end. Without
    /// `minion_data_cache` every accepted minion is expected.
    fn compound(&self, expr: &Value, greedy: bool, pillar_exact: bool) -> Result<Matched, TargetError> {
        let Some(mut words) = compound_words(expr) else {
            error!("Compound target that is neither string, list nor tuple");
            return Ok(Matched::default());
        };
        let all: BTreeSet<String> = self.pki.iter().cloned().collect();
        if !self.cache_enabled {
            return Ok(Matched::of(self.pki.clone()));
        }
        let invalid = |why: &str| {
            error!("{why}");
            Ok(Matched::default())
        };
        let mut results: Vec<SetTok> = Vec::new();
        // '(' for an open parenthesis, '-' for an open `not`.
        let mut unmatched: Vec<char> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        words.reverse();
        while let Some(word) = words.pop() {
            let Value::Str(word) = word else {
                return Err(TargetError::Invalid(format!("compound word {word:?} is not text")));
            };
            let target = parse_target(&word);
            if OPERS.contains(&word.as_str()) {
                match results.last() {
                    Some(last) => {
                        if *last == SetTok::Open && (word == "and" || word == "or") {
                            return invalid(&format!("Invalid beginning operator after \"(\": {word}"));
                        }
                        match word.as_str() {
                            "not" => {
                                if !matches!(last, SetTok::And | SetTok::Or | SetTok::Open) {
                                    results.push(SetTok::And);
                                }
                                results.extend([SetTok::Open, SetTok::Set(all.clone()), SetTok::Minus]);
                                unmatched.push('-');
                            }
                            "and" => results.push(SetTok::And),
                            "or" => results.push(SetTok::Or),
                            "(" => {
                                results.push(SetTok::Open);
                                unmatched.push('(');
                            }
                            _ => {
                                if unmatched.last() != Some(&'(') {
                                    return invalid(&format!(
                                        "Invalid compound expr (unexpected right parenthesis): {}",
                                        shown(expr)
                                    ));
                                }
                                results.push(SetTok::Close);
                                unmatched.pop();
                                if unmatched.last() == Some(&'-') {
                                    results.push(SetTok::Close);
                                    unmatched.pop();
                                }
                            }
                        }
                    }
                    None => match word.as_str() {
                        "not" => {
                            results.extend([SetTok::Open, SetTok::Set(all.clone()), SetTok::Minus]);
                            unmatched.push('-');
                        }
                        "(" => {
                            results.push(SetTok::Open);
                            unmatched.push('(');
                        }
                        _ => return invalid(&format!("Expression may begin with binary operator: {word}")),
                    },
                }
                continue;
            }
            let found = match target.engine {
                Some('N') => {
                    let mut expanded = nodegroup_comp(&target.pattern, &self.nodegroups)?;
                    expanded.reverse();
                    words.extend(expanded);
                    continue;
                }
                Some(engine) => {
                    let pat = Value::from(target.pattern.as_str());
                    let delim = target.delimiter.map_or(":".to_string(), String::from);
                    let (search, regex) = match engine {
                        'G' => ("grains", false),
                        'P' => ("grains", true),
                        'I' => ("pillar", false),
                        'J' => ("pillar", true),
                        _ => ("", false),
                    };
                    match engine {
                        'G' | 'P' | 'I' | 'J' => {
                            let exact = pillar_exact && search == "pillar";
                            self.cache_match(&pat, &delim, greedy, search, regex && !exact, exact)?
                        }
                        'L' => self.list(&pat, results.last() == Some(&SetTok::Minus)),
                        'S' => self.ipcidr(&pat, greedy)?,
                        'E' => self.pcre(&target.pattern)?,
                        // Salt calls `_all_minions` with one argument too many.
                        'R' => {
                            return Err(TargetError::Invalid(
                                "R@ in a compound target: _all_minions() takes from 1 to 2 positional arguments but 3 were given".into(),
                            ))
                        }
                        other => {
                            return invalid(&format!(
                                "Unrecognized target engine \"{other}\" for target expression \"{word}\""
                            ))
                        }
                    }
                }
                None => self.glob(&word)?,
            };
            results.push(SetTok::Set(found.minions.into_iter().collect()));
            missing.extend(found.missing);
            if unmatched.last() == Some(&'-') {
                results.push(SetTok::Close);
                unmatched.pop();
            }
        }
        results.extend(unmatched.iter().map(|_| SetTok::Close));
        debug!("Evaluating compound expression of {} tokens", results.len());
        match eval_sets(&results) {
            Some(set) => Ok(Matched {
                minions: self.ordered(set),
                missing,
            }),
            None => invalid(&format!("Invalid compound target: {}", shown(expr))),
        }
    }
}

fn cmp_ignorecase(a: &str, b: &str) -> std::cmp::Ordering {
    a.to_lowercase().cmp(&b.to_lowercase()).then_with(|| a.cmp(b))
}

/// The text of a target (Python raises for anything else).
fn text(expr: &Value) -> Result<&str, TargetError> {
    expr.as_str()
        .ok_or_else(|| TargetError::Invalid(format!("target {expr:?} is not text")))
}

fn shown(expr: &Value) -> String {
    match expr {
        Value::Str(s) => s.clone(),
        other => brine_py::to_str(other),
    }
}
