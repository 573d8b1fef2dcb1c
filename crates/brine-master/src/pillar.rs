//! Pillar compilation on the master (Salt's `salt.pillar.Pillar`).

use brine_config::MasterConfig;
use brine_proto::Value;

/// The pillar of minion `id` with `grains`, for the `_pillar` request
/// `load` (saltenv, pillarenv, pillar_override). Not compiled yet: empty.
pub fn compile(_cfg: &MasterConfig, _id: &str, _grains: &Value, _load: &Value) -> Value {
    Value::Map(Vec::new())
}
