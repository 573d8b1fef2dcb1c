//! The Salt mine's requests (`_mine`, `_mine_get`, `_mine_delete`,
//! `_mine_flush`): [`brine_mine`] over this worker's config and key store.

use brine_keys::{KeyState, KeyStore, MinionId};
use brine_proto::Value;
use log::warn;

use super::Services;

impl Services {
    /// `_mine`.
    pub(super) fn mine(&mut self, id: &MinionId, load: &Value) -> Value {
        brine_mine::store(&self.cfg, id, load)
    }

    /// `_mine_get`.
    pub(super) fn mine_get(&mut self, id: &MinionId, load: &Value) -> Value {
        let accepted = self.keys.list(KeyState::Accepted).unwrap_or_else(|e| {
            warn!("cannot list the accepted keys: {e}");
            Vec::new()
        });
        brine_mine::get(&self.cfg, accepted, id, load)
    }

    /// `_mine_delete`.
    pub(super) fn mine_delete(&mut self, id: &MinionId, load: &Value) -> Value {
        brine_mine::delete(&self.cfg, id, load)
    }

    /// `_mine_flush`.
    pub(super) fn mine_flush(&mut self, id: &MinionId, load: &Value) -> Value {
        brine_mine::flush(&self.cfg, id, load)
    }
}
