//! A client call's low data, as Salt's `ClearFuncs` and runner/wheel
//! clients read it: the arguments (`arg`/`kwarg` or top-level keys), the
//! text of an argument, and the `{"error": …}` reply Salt's clients raise.

use brine_proto::Value;

/// `{"error": {"name", "message"}}`, which Salt's clients raise as the
/// named exception.
pub fn error(name: &str, message: &str) -> Value {
    Value::map([(
        "error",
        Value::map([("name", Value::from(name)), ("message", Value::from(message))]),
    )])
}

/// Arguments of a client call, resolved as Salt's `low()` does: `arg`
/// positionally and `kwarg` by name when both are present, otherwise the
/// load's own top-level keys by name (`format_call`).
pub struct CallArgs {
    positional: Vec<Value>,
    named: Vec<(String, Value)>,
}

impl CallArgs {
    pub fn from_load(load: &Value) -> CallArgs {
        let positional = match load.get("arg") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let source = match load.get("kwarg") {
            Some(k @ Value::Map(_)) => k,
            _ => load,
        };
        let named = match source {
            Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect(),
            _ => Vec::new(),
        };
        CallArgs { positional, named }
    }

    /// The `i`th parameter, called `name`.
    pub fn get(&self, i: usize, name: &str) -> Option<&Value> {
        self.positional
            .get(i)
            .or_else(|| self.named.iter().find(|(k, _)| k == name).map(|(_, v)| v))
            .filter(|v| !v.is_nil())
    }

    /// The arguments given by position.
    pub fn positional(&self) -> &[Value] {
        &self.positional
    }

    /// The arguments given by name.
    pub fn named(&self) -> &[(String, Value)] {
        &self.named
    }

    /// Salt's `fun_args`: positional args, then the kwargs dict if any.
    pub fn fun_args(&self, load: &Value) -> Value {
        let mut out = self.positional.clone();
        if let Some(k @ Value::Map(pairs)) = load.get("kwarg") {
            if !pairs.is_empty() {
                out.push(k.clone());
            }
        }
        Value::Array(out)
    }
}

/// A list of texts as a Value.
pub fn strs<S: AsRef<str>>(v: &[S]) -> Value {
    Value::Array(v.iter().map(|s| Value::from(s.as_ref())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_args_follow_salt_low() {
        let load = Value::map([
            ("fun", Value::from("key.finger")),
            ("arg", Value::Array(vec![Value::from("a*")])),
            ("kwarg", Value::map([("hash_type", Value::from("md5"))])),
        ]);
        let a = CallArgs::from_load(&load);
        assert_eq!(a.get(0, "match").and_then(Value::as_str), Some("a*"));
        assert_eq!(a.get(1, "hash_type").and_then(Value::as_str), Some("md5"));
        // salt-api style: everything at the top level.
        let load = Value::map([("fun", Value::from("key.finger")), ("match", Value::from("b*"))]);
        let a = CallArgs::from_load(&load);
        assert_eq!(a.get(0, "match").and_then(Value::as_str), Some("b*"));
    }
}
