//! Salt's `_validate_opts` (salt/config/__init__.py): every option listed
//! in `VALID_OPTS` whose value has the wrong type gets a warning, and the
//! value is kept (Salt does not stop). `valid_opts.txt` is Salt 3007.17's
//! `VALID_OPTS` table (one `name type[,type…]` a line, Python type names).

use serde_json::{Map, Value};

static TABLE: &str = include_str!("valid_opts.txt");

/// `TABLE` by option name, parsed once (every option of a config is looked
/// up at each start of the master and of each CLI).
static BY_KEY: std::sync::LazyLock<std::collections::HashMap<&'static str, &'static str>> =
    std::sync::LazyLock::new(|| TABLE.lines().filter_map(|line| line.split_once(' ')).collect());

/// The Python type names `VALID_OPTS` lists for `key`.
pub fn valid_types(key: &str) -> Option<Vec<&'static str>> {
    BY_KEY.get(key).map(|t| t.split(',').collect())
}

/// `isinstance(v, <type named t>)` (a bool is an int, as in Python).
fn isinstance(v: &Value, t: &str) -> bool {
    brine_py::type_name(v) == t || (t == "int" && v.is_boolean())
}

/// Whether calling the Python type named `t` on `v` succeeds.
fn converts(t: &str, v: &Value) -> bool {
    match t {
        "str" | "bool" => true,
        "int" => brine_py::int(v).is_some(),
        "float" => match v {
            Value::Bool(_) | Value::Number(_) => true,
            Value::String(s) => {
                let s = s.trim().replace('_', "");
                s.parse::<f64>().is_ok()
                    || matches!(
                        s.to_ascii_lowercase().trim_start_matches(['-', '+']),
                        "inf" | "infinity" | "nan"
                    )
            }
            _ => false,
        },
        "list" | "tuple" => matches!(v, Value::String(_) | Value::Array(_) | Value::Object(_)),
        "dict" => match v {
            Value::Object(_) => true,
            Value::String(s) => s.is_empty(),
            Value::Array(items) => items.iter().all(|i| match i {
                Value::String(s) => s.chars().count() == 2,
                Value::Array(a) => a.len() == 2,
                Value::Object(o) => o.len() == 2,
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

/// The "non-failing" conversions Salt still rejects (`nf_types`).
fn nf_types(t: &str) -> &'static [&'static str] {
    match t {
        "str" => &["list", "tuple", "dict"],
        "list" | "tuple" => &["dict", "str"],
        "bool" => &["list", "tuple", "str", "int", "float", "dict", "NoneType"],
        "int" => &["bool", "float"],
        "float" => &["bool"],
        _ => &[],
    }
}

fn is_valid(v: &Value, types: &[&str]) -> bool {
    if v.is_boolean() {
        if types == ["bool"] {
            return true;
        }
    } else if types.iter().any(|t| isinstance(v, t)) {
        return true;
    }
    if matches!(v, Value::String(s) if s.starts_with("sdb://")) {
        return true;
    }
    if let [t] = types {
        return converts(t, v) && !nf_types(t).iter().any(|nf| isinstance(v, nf));
    }
    if types.contains(&brine_py::type_name(v)) {
        return true;
    }
    let mut valid = Vec::new();
    for nf_type in ["str", "list", "tuple", "bool", "int", "float"] {
        if !converts(nf_type, v) {
            valid.push(false);
        } else if types.contains(&nf_type) {
            let rejected = nf_types(nf_type)
                .iter()
                .filter(|t| !types.contains(t))
                .any(|t| isinstance(v, t));
            valid.push(!rejected);
        }
    }
    valid.contains(&true)
}

fn describe(types: &[&str]) -> String {
    match types.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Check every option, log Salt's warning for each bad one and return the
/// warnings; also joins a list-valued `return` with commas, as Salt does.
pub fn validate_opts(opts: &mut Map<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    for (key, val) in opts.iter() {
        let Some(types) = valid_types(key) else {
            continue;
        };
        if !is_valid(val, &types) {
            errors.push(format!(
                "Config option '{key}' with value {} has an invalid type of {}, a {} is required for this option",
                brine_py::to_str(val),
                brine_py::type_name(val),
                describe(&types)
            ));
        }
    }
    if let Some(Value::Array(items)) = opts.get("return") {
        let joined = items.iter().map(brine_py::to_str).collect::<Vec<_>>().join(",");
        opts.insert("return".into(), Value::String(joined));
    }
    for e in &errors {
        log::warn!("{e}");
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(key: &str, v: Value) -> bool {
        is_valid(&v, &valid_types(key).unwrap())
    }

    #[test]
    fn types_as_salt_checks_them() {
        assert_eq!(valid_types("publish_port"), Some(vec!["int"]));
        assert!(check("publish_port", json!(4505)));
        assert!(check("publish_port", json!("4505")), "int('4505') works");
        assert!(!check("publish_port", json!("abc")));
        assert!(!check("publish_port", json!(true)));
        assert!(!check("publish_port", json!(1.5)));
        assert!(check("auto_accept", json!(false)));
        assert!(!check("auto_accept", json!("yes")));
        assert!(!check("auto_accept", json!(1)));
        assert!(!check("auto_accept", Value::Null));
        assert!(check("pki_dir", Value::Null), "str(None) is accepted");
        assert!(!check("pki_dir", json!(["a"])));
        assert!(check("pki_dir", json!(5)));
        assert!(check("loop_interval", json!(60)), "an int is a float here");
        assert!(!check("file_roots", json!(["a"])));
        assert!(check("file_roots", json!({})));
        assert!(check("return", json!(["a", "b"])));
        assert!(check("return", json!("a")));
        assert!(check("pki_dir", json!("sdb://x/y")));
        // Multi-type options.
        assert_eq!(valid_types("cluster_key_pass"), Some(vec!["NoneType", "str"]));
        assert!(check("cluster_key_pass", Value::Null));
        assert!(check("cluster_key_pass", json!("x")));
        assert!(
            check("cluster_key_pass", json!(5)),
            "str(5) works and int is not rejected"
        );
        assert!(!check("cluster_key_pass", json!(["x"])));
    }

    #[test]
    fn warnings_and_return_join() {
        let mut opts = crate::object(json!({
            "publish_port": "abc", "return": ["a", "b"], "unknown_option": [1], "auto_accept": "yes"
        }));
        let w = validate_opts(&mut opts);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[0],
            "Config option 'publish_port' with value abc has an invalid type of str, a int is required for this option"
        );
        assert_eq!(opts["return"], json!("a,b"));
    }
}
