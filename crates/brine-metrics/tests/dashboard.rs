//! The Grafana dashboard in docs/grafana asks only for what the metrics
//! endpoint exposes: every `salt_master_*` name in its queries is a
//! sample of a scrape, and it is a dashboard Grafana can import.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use brine_metrics::render::Snapshot;
use brine_metrics::{command_index, AuthResult, Board, Outcome};
use serde_json::Value;

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana/brine-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample names of a scrape of a board that has seen a request, a
/// sign-in and a job cache write (requests and their latency have no
/// sample before the first request).
fn exposed() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let b = Board::create(&dir.path().join("board"), 2).unwrap();
    b.name_role(0, "EventPublisher", None);
    b.set_role(0, Some(std::process::id()), 1, 0, true);
    b.request(command_index("_return"), Outcome::Ok, Duration::from_millis(2));
    b.auth(AuthResult::Accepted);
    b.cache_write(true, Duration::from_millis(1));
    let text = Snapshot::take(&b, 1, "local_cache").render();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Every `salt_master_[a-z_]+` in `expr`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("salt_master_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Every `$name` and `${name}` in `expr`.
fn variables(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        let tail = rest[i + 1..].trim_start_matches('{');
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn panels(d: &Value) -> &Vec<Value> {
    d["panels"].as_array().expect("a dashboard has panels")
}

fn exprs(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("").to_string(),
                t["expr"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

#[test]
fn every_metric_the_dashboard_queries_is_exposed() {
    let d = dashboard();
    let have = exposed();
    let mut queries = exprs(&d);
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"].as_str().expect("a variable's query as text").to_string();
            queries.push((format!("variable {}", v["name"]), q));
        }
    }
    let mut seen = 0;
    for (title, expr) in &queries {
        for name in metric_names(expr) {
            assert!(
                have.contains(&name),
                "{title:?} queries {name}, which a scrape does not have; it has:\n{have:#?}"
            );
            seen += 1;
        }
    }
    assert!(seen > 20, "only {seen} metric names in the dashboard's queries");
}

#[test]
fn it_is_a_dashboard_grafana_imports() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    let vars: Vec<&Value> = d["templating"]["list"]
        .as_array()
        .expect("template variables")
        .iter()
        .collect();
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource" && v["query"] == "prometheus"),
        "no Prometheus data source variable in {names:?}"
    );
    assert!(names.contains(&"instance"), "{names:?}");

    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut graphs = 0;
    for p in panels(&d) {
        let title = p["title"]
            .as_str()
            .unwrap_or_else(|| panic!("a panel without a title: {p}"));
        let kind = p["type"].as_str().unwrap_or_else(|| panic!("{title:?} has no type"));
        assert!(
            ids.insert(p["id"].as_u64().unwrap_or_else(|| panic!("{title:?} has no id"))),
            "{title:?}: id taken"
        );
        let g = &p["gridPos"];
        let [x, y, w, h] =
            ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap_or_else(|| panic!("{title:?}: gridPos.{k}")));
        assert!(w > 0 && h > 0 && x + w <= 24, "{title:?}: gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{title:?} overlaps another panel at ({cx}, {cy})"
                );
            }
        }
        if kind == "row" {
            continue;
        }
        graphs += 1;
        assert!(["timeseries", "stat"].contains(&kind), "{title:?}: {kind}");
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title:?}");
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title:?} has no targets"));
        assert!(!targets.is_empty(), "{title:?} has no targets");
        for t in targets {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title:?}: a target without expr"));
            assert!(!metric_names(expr).is_empty(), "{title:?}: {expr}");
            for v in variables(expr) {
                assert!(
                    names.contains(&v.as_str()) || ["__rate_interval", "__range", "__interval"].contains(&v.as_str()),
                    "{title:?} uses ${v}, which is not a variable of the dashboard: {expr}"
                );
            }
        }
    }
    assert!(graphs >= 20, "{graphs} panels");
}

#[test]
fn names_and_variables_are_found() {
    assert_eq!(
        metric_names("sum(rate(salt_master_returns_total{a=\"$x\"}[$__rate_interval])) / salt_master_up"),
        ["salt_master_returns_total", "salt_master_up"]
    );
    assert_eq!(
        variables("{a=~\"$job\", b=~\"${instance}\"}[$__rate_interval]"),
        ["job", "instance", "__rate_interval"]
    );
}

/// histogram_quantile, as the dashboard's latency panels use it, reads
/// each `_bucket` as the count of observations up to its `le`: the counts
/// rise with `le` and the `+Inf` bucket is `_count`.
#[test]
fn histogram_buckets_are_cumulative_counts() {
    let dir = tempfile::tempdir().unwrap();
    let b = Board::create(&dir.path().join("board"), 2).unwrap();
    for ms in [1, 2, 2, 40, 300] {
        b.request(command_index("_return"), Outcome::Ok, Duration::from_millis(ms));
        b.cache_write(true, Duration::from_millis(ms));
    }
    let text = Snapshot::take(&b, 0, "local_cache").render();
    for (name, labels) in [
        ("salt_master_request_duration_seconds", "cmd=\"_return\""),
        (
            "salt_master_job_cache_write_duration_seconds",
            "backend=\"local_cache\"",
        ),
    ] {
        let sample = |l: &str| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}_bucket{{")) && l.contains(labels))
            .map(sample)
            .collect();
        let count = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}_count{{{labels}}}")))
            .map(sample)
            .unwrap_or_else(|| panic!("no {name}_count in:\n{text}"));
        assert_eq!(count, 5.0, "{text}");
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{name}: {buckets:?}");
        assert_eq!(
            buckets.last(),
            Some(&count),
            "{name}: the +Inf bucket is not _count: {buckets:?}"
        );
    }
}
