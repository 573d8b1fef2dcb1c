//! Salt's `wheel.key` on [`brine_keys::Keys`], the same key operations
//! `salt-key` runs.

use brine_keys::{Detail, Keys, Listing, Match};
use brine_proto::Value;
use brine_py::text;
use log::{info, warn};

use super::super::Ctx;
use brine_client::low::{strs, CallArgs};

/// A key-match argument: a glob, a comma-separated list, or a list.
fn match_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().filter_map(text).collect(),
        other => brine_keys::globs(&text(other).unwrap_or_default()),
    }
}

/// Key management as Salt's `salt.key.Key`.
pub(in crate::services) fn key_ops(ctx: &Ctx) -> Keys {
    Keys::new(&ctx.cfg)
}

pub(super) fn call(ctx: &mut Ctx, fun: &str, args: &CallArgs) -> Result<Value, String> {
    let listing = |l: Listing| Value::Map(l.into_iter().map(|(s, ids)| (Value::from(s), strs(&ids))).collect());
    let detail = |d: Detail| {
        Value::Map(
            d.into_iter()
                .map(|(s, items)| {
                    let items = items.into_iter().map(|(k, v)| (Value::from(k), Value::from(v)));
                    (Value::from(s), Value::Map(items.collect()))
                })
                .collect(),
        )
    };
    let keys = key_ops(ctx);
    let pattern = || args.get(0, "match").map(match_list).ok_or("missing argument: match");
    let dict_arg = |v: &Value| -> Listing {
        match v {
            Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), match_list(v))))
                .collect(),
            _ => Vec::new(),
        }
    };
    let flag = |i: usize, name: &str| args.get(i, name).and_then(Value::as_bool).unwrap_or(false);
    let hash_type = |i: usize| {
        args.get(i, "hash_type")
            .and_then(text)
            .unwrap_or_else(|| ctx.cfg.hash_type().to_string())
    };
    let failed = |e: brine_keys::KeyError| e.to_string();
    match fun {
        "key.list_all" | "key.all_keys" => Ok(listing(keys.all_keys().map_err(failed)?)),
        "key.list" | "key.list_status" => {
            let m = args.get(0, "match").and_then(text).ok_or("missing argument: match")?;
            Ok(listing(keys.list_status(&m).map_err(failed)?))
        }
        "key.name_match" => Ok(listing(keys.name_match(&pattern()?, false).map_err(failed)?)),
        "key.accept" | "key.accept_dict" | "key.reject" | "key.reject_dict" | "key.delete" | "key.delete_dict" => {
            let m = if fun.ends_with("_dict") {
                Match::Dict(args.get(0, "match").map(dict_arg).unwrap_or_default())
            } else {
                Match::Globs(pattern()?)
            };
            let verb = fun.trim_start_matches("key.").trim_end_matches("_dict");
            let out = match verb {
                "accept" => keys.accept(
                    &mut ctx.events,
                    &m,
                    flag(1, "include_rejected"),
                    flag(2, "include_denied"),
                ),
                "reject" => keys.reject(
                    &mut ctx.events,
                    &m,
                    flag(1, "include_accepted"),
                    flag(2, "include_denied"),
                ),
                _ => keys.delete_key(&mut ctx.events, &m),
            };
            for id in &out.changed {
                info!("wheel key.{verb}: {id}");
            }
            for id in &out.invalid {
                warn!("wheel key.{verb}: {id} is not a valid public key; not accepted");
            }
            for e in &out.errors {
                warn!("wheel key.{verb}: {e}");
            }
            Ok(listing(out.keys))
        }
        "key.key_str" => Ok(detail(keys.key_str(&pattern()?).map_err(failed)?)),
        "key.finger" => Ok(detail(keys.finger(&pattern()?, &hash_type(1)).map_err(failed)?)),
        "key.finger_master" | "key.master_key_str" => {
            let path = ctx.cfg.pki_dir.join("master.pub");
            let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let v = if fun == "key.finger_master" {
                brine_keys::fingerprint(&pem, &hash_type(0)).unwrap_or_default()
            } else {
                pem
            };
            Ok(Value::map([("local", Value::map([("master.pub", Value::from(v))]))]))
        }
        other => Err(format!("{other} is not implemented")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_arguments_split_on_commas() {
        assert_eq!(match_list(&Value::from("a,b")), ["a", "b"]);
        assert_eq!(
            match_list(&Value::Array(vec![Value::from("a"), Value::Int(2)])),
            ["a", "2"]
        );
    }
}
