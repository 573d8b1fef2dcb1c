//! The reactor map and settings, as Salt reads them from the master's
//! options: `reactor` is a list of one-key maps `{tag glob: sls}` where
//! `sls` is one path or a list of them (a `salt://` URL or a filesystem
//! path, either possibly a glob), or the path of a YAML file that holds
//! such a list. An event's tag selects the paths of every entry whose
//! glob matches it (`fnmatch`, in map order, duplicates kept).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use brine_config::{MasterConfig, Value as Json};
use log::{debug, error, warn};

/// `reactor_refresh_interval`, `reactor_worker_threads`,
/// `reactor_worker_hwm`, `reactor_niceness`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub refresh_interval: Duration,
    /// Threads running reactions (at least 1).
    pub worker_threads: usize,
    /// Reactions queued for the threads before new ones are dropped.
    pub worker_hwm: usize,
    /// `os.nice` increment for the Reactor process.
    pub niceness: Option<i32>,
}

impl Settings {
    /// The `reactor_*` options; a `reactor` entry of `engines:` (Salt
    /// 3007's way to run the reactor) overrides them with its
    /// `refresh_interval`, `worker_threads` and `worker_hwm`.
    pub fn from_config(cfg: &MasterConfig) -> Settings {
        let engine = match cfg.get("engines") {
            Some(Json::Array(list)) => list.iter().find_map(|e| e.get("reactor").and_then(Json::as_object)),
            _ => None,
        };
        let num = |k: &str, default: u64| {
            engine
                .and_then(|e| e.get(k.trim_start_matches("reactor_")))
                .or_else(|| cfg.get(k))
                .and_then(brine_py::int)
                .map_or(default, |n| n.max(0) as u64)
        };
        Settings {
            refresh_interval: Duration::from_secs(num("reactor_refresh_interval", 60)),
            worker_threads: num("reactor_worker_threads", 10).clamp(1, 1024) as usize,
            worker_hwm: num("reactor_worker_hwm", 10_000).max(1) as usize,
            niceness: cfg
                .get("reactor_niceness")
                .and_then(brine_py::int)
                .filter(|n| *n != 0)
                .map(|n| n.clamp(-20, 19) as i32),
        }
    }
}

/// Where the map comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// The option itself (also what `salt/reactors/manage/add` changes).
    Inline,
    /// A YAML file, re-read when its modification time changes.
    File { path: PathBuf, mtime: Option<SystemTime> },
}

/// The `reactor` option: `(tag glob, [paths])` in configuration order.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactorMap {
    entries: Vec<(String, Vec<String>)>,
    source: Source,
}

impl ReactorMap {
    pub fn from_config(cfg: &MasterConfig) -> ReactorMap {
        match cfg.get("reactor") {
            Some(Json::String(path)) => {
                let mut map = ReactorMap {
                    entries: Vec::new(),
                    source: Source::File {
                        path: PathBuf::from(path),
                        mtime: None,
                    },
                };
                map.refresh();
                map
            }
            Some(v) => ReactorMap {
                entries: entries(v, "the reactor option"),
                source: Source::Inline,
            },
            None => ReactorMap {
                entries: Vec::new(),
                source: Source::Inline,
            },
        }
    }

    /// A map from already-parsed entries.
    pub fn new(entries: Vec<(String, Vec<String>)>) -> ReactorMap {
        ReactorMap {
            entries,
            source: Source::Inline,
        }
    }

    /// Re-read a map kept in a file if the file changed; errors are logged
    /// (as Salt's "Failed to read reactor map") and keep the last map.
    pub fn refresh(&mut self) {
        let Source::File { path, mtime } = &mut self.source else {
            return;
        };
        let now = std::fs::metadata(&*path).and_then(|m| m.modified()).ok();
        if now.is_some() && now == *mtime {
            return;
        }
        *mtime = now;
        match std::fs::read_to_string(&*path) {
            Ok(text) => match brine_py::parse_yaml(&text, path) {
                Ok(v) => {
                    self.entries = entries(&v, &path.display().to_string());
                    debug!(
                        "reactor map read from {}: {} entries",
                        path.display(),
                        self.entries.len()
                    );
                }
                Err(e) => error!("Failed to parse YAML in reactor map: \"{}\": {e}", path.display()),
            },
            Err(e) => error!("Failed to read reactor map: \"{}\": {e}", path.display()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many `{tag glob: paths}` entries the map has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The paths for `tag`: Salt's `list_reactors`.
    pub fn reactors(&self, tag: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(glob, _)| brine_py::fnmatch(tag, glob))
            .flat_map(|(_, paths)| paths.iter().map(String::as_str))
            .collect()
    }

    /// The map as `reactor.list` shows it: `[{glob: [paths]}]`.
    pub fn to_value(&self) -> brine_proto::Value {
        use brine_proto::Value;
        Value::Array(
            self.entries
                .iter()
                .map(|(glob, paths)| {
                    Value::Map(vec![(
                        Value::from(glob.as_str()),
                        Value::Array(paths.iter().map(|p| Value::from(p.as_str())).collect()),
                    )])
                })
                .collect(),
        )
    }

    /// `salt/reactors/manage/add`: a new entry unless the glob has one.
    pub fn add(&mut self, glob: &str, paths: Vec<String>) -> Result<(), &'static str> {
        if self.entries.iter().any(|(g, _)| g == glob) {
            return Err("Reactor already exists.");
        }
        self.entries.push((glob.to_string(), paths));
        Ok(())
    }

    /// `salt/reactors/manage/delete`: remove the glob's entry.
    pub fn delete(&mut self, glob: &str) -> Result<(), &'static str> {
        let before = self.entries.len();
        self.entries.retain(|(g, _)| g != glob);
        if self.entries.len() == before {
            Err("Reactor does not exists.")
        } else {
            Ok(())
        }
    }
}

/// The entries of a reactor list; what Salt skips (not a one-key map) is
/// skipped with a warning, paths that are not text are dropped.
fn entries(v: &Json, origin: &str) -> Vec<(String, Vec<String>)> {
    let Json::Array(items) = v else {
        if !v.is_null() {
            error!("{origin}: the reactor map must be a list of {{tag: [sls, ...]}} entries");
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some((glob, val)) = item.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            warn!("{origin}: reactor entry {item} is not a one-key map; ignored");
            continue;
        };
        let paths = match val {
            Json::String(s) => vec![s.clone()],
            Json::Array(a) => a
                .iter()
                .filter_map(|p| {
                    let s = p.as_str().map(String::from);
                    if s.is_none() {
                        warn!("{origin}: reactor {glob:?}: {p} is not a path; ignored");
                    }
                    s
                })
                .collect(),
            other => {
                warn!("{origin}: reactor {glob:?}: {other} is not a path or a list of paths; ignored");
                continue;
            }
        };
        out.push((glob.clone(), paths));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Json) -> ReactorMap {
        ReactorMap::new(entries(&v, "test"))
    }

    #[test]
    fn tags_select_paths_in_map_order() {
        let m = map(json!([
            {"salt/minion/*/start": ["/srv/reactor/start.sls", "salt://reactor/highstate.sls"]},
            {"salt/auth": "/srv/reactor/auth.sls"},
            {"salt/minion/web*/start": ["/srv/reactor/web.sls"]},
            {"a": "x", "b": "y"},
            "not a map",
            {"myapp/[dp]*": [1, "/srv/reactor/app.sls"]},
        ]));
        assert_eq!(
            m.reactors("salt/minion/web1/start"),
            vec![
                "/srv/reactor/start.sls",
                "salt://reactor/highstate.sls",
                "/srv/reactor/web.sls"
            ]
        );
        assert_eq!(m.reactors("salt/auth"), vec!["/srv/reactor/auth.sls"]);
        assert!(m.reactors("salt/auth/x").is_empty(), "a glob matches the whole tag");
        assert_eq!(m.reactors("myapp/deploy"), vec!["/srv/reactor/app.sls"]);
        assert!(m.reactors("myapp/build").is_empty());
        assert!(m.reactors("a").is_empty(), "two-key entries are skipped as Salt does");
    }

    #[test]
    fn add_and_delete_as_the_manage_events() {
        let mut m = map(json!([{"t/1": "/a.sls"}]));
        assert_eq!(m.add("t/1", vec!["/b.sls".into()]), Err("Reactor already exists."));
        assert_eq!(m.add("t/2", vec!["/b.sls".into()]), Ok(()));
        assert_eq!(m.reactors("t/2"), vec!["/b.sls"]);
        assert_eq!(m.delete("t/1"), Ok(()));
        assert_eq!(m.delete("t/1"), Err("Reactor does not exists."));
        assert!(m.reactors("t/1").is_empty());
        assert_eq!(
            m.to_value().to_network().len(),
            brine_proto::Value::Array(vec![brine_proto::Value::Map(vec![(
                "t/2".into(),
                brine_proto::Value::Array(vec!["/b.sls".into()])
            )])])
            .to_network()
            .len()
        );
    }

    #[test]
    fn a_map_file_is_reread_when_it_changes() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("reactor.yaml");
        std::fs::write(&f, "- 'salt/auth':\n  - /srv/a.sls\n").unwrap();
        let cfg = MasterConfig::from_overrides(
            d.path(),
            serde_json::from_value(json!({"reactor": f.to_str().unwrap(), "root_dir": d.path().to_str().unwrap()}))
                .unwrap(),
        )
        .unwrap();
        let mut m = ReactorMap::from_config(&cfg);
        assert_eq!(m.reactors("salt/auth"), vec!["/srv/a.sls"]);
        std::fs::write(&f, "- 'salt/auth': /srv/b.sls\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        m.refresh();
        assert_eq!(m.reactors("salt/auth"), vec!["/srv/b.sls"]);
        std::fs::write(&f, "- [unclosed\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later + Duration::from_secs(5))
            .unwrap();
        m.refresh();
        assert_eq!(
            m.reactors("salt/auth"),
            vec!["/srv/b.sls"],
            "a broken file keeps the last map"
        );
    }

    #[test]
    fn settings_default_as_salt() {
        let d = tempfile::tempdir().unwrap();
        let cfg = MasterConfig::from_overrides(
            d.path(),
            serde_json::from_value(json!({"root_dir": d.path().to_str().unwrap()})).unwrap(),
        )
        .unwrap();
        let s = Settings::from_config(&cfg);
        assert_eq!(s.refresh_interval, Duration::from_secs(60));
        assert_eq!((s.worker_threads, s.worker_hwm, s.niceness), (10, 10_000, None));
        let cfg = MasterConfig::from_overrides(
            d.path(),
            serde_json::from_value(json!({
                "root_dir": d.path().to_str().unwrap(),
                "reactor_worker_threads": 3,
                "reactor_niceness": 5,
                "engines": ["pytest", {"reactor": {"worker_hwm": 50, "refresh_interval": 7}}],
            }))
            .unwrap(),
        )
        .unwrap();
        let s = Settings::from_config(&cfg);
        assert_eq!(s.refresh_interval, Duration::from_secs(7));
        assert_eq!((s.worker_threads, s.worker_hwm, s.niceness), (3, 50, Some(5)));
    }
}
