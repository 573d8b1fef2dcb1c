//! The Salt mine on the master (Salt's `RemoteFuncs._mine*`): minions
//! store function results with `_mine`, read each other's with
//! `_mine_get`. Data lives in the minion data cache,
//! `cachedir/minions/<id>/mine.p`.

use brine_proto::Value;
use log::warn;

use super::minion::write_p;
use super::ReqHandler;

impl ReqHandler {
    /// `_mine`: merge (or with `clear`, replace) the minion's mine data.
    pub(super) fn mine(&mut self, id: &str, load: &Value) -> Value {
        let Some(Value::Map(new)) = load.get("data") else {
            return Value::Bool(false);
        };
        let path = self.cfg.cachedir.join("minions").join(id).join("mine.p");
        let clear = load.get("clear").and_then(Value::as_bool).unwrap_or(false);
        let mut current = if clear {
            Value::Map(Vec::new())
        } else {
            std::fs::read(&path)
                .ok()
                .and_then(|b| Value::decode(&b).ok())
                .filter(Value::is_map)
                .unwrap_or(Value::Map(Vec::new()))
        };
        for (k, v) in new {
            if let Some(key) = k.as_str() {
                current.set(key, v.clone());
            }
        }
        match write_p(&path, &current) {
            Ok(()) => Value::Bool(true),
            Err(e) => {
                warn!("cannot write {}: {e}", path.display());
                Value::Bool(false)
            }
        }
    }

    /// `_mine_get`: not served yet.
    pub(super) fn mine_get(&mut self, _id: &str, _load: &Value) -> Value {
        Value::Map(Vec::new())
    }

    /// `_mine_delete`: not served yet.
    pub(super) fn mine_delete(&mut self, _id: &str, _load: &Value) -> Value {
        Value::Bool(false)
    }

    /// `_mine_flush`: not served yet.
    pub(super) fn mine_flush(&mut self, _id: &str, _load: &Value) -> Value {
        Value::Bool(false)
    }
}
