//! The Salt mine's requests (`_mine`, `_mine_get`, `_mine_delete`,
//! `_mine_flush`): [`brine_mine`] over this worker's config and key store.

use brine_keys::{KeyState, KeyStore, MinionId};
use brine_proto::Value;
use log::warn;

use super::Ctx;

/// `_mine`.
pub(super) fn mine(ctx: &Ctx, id: &MinionId, load: &Value) -> Value {
    brine_mine::store(&ctx.cfg, id, load)
}

/// `_mine_get`.
pub(super) fn mine_get(ctx: &Ctx, id: &MinionId, load: &Value) -> Value {
    let accepted = ctx.keys.list(KeyState::Accepted).unwrap_or_else(|e| {
        warn!("cannot list the accepted keys: {e}");
        Vec::new()
    });
    brine_mine::get(&ctx.cfg, accepted, id, load)
}

/// `_mine_delete`.
pub(super) fn mine_delete(ctx: &Ctx, id: &MinionId, load: &Value) -> Value {
    brine_mine::delete(&ctx.cfg, id, load)
}

/// `_mine_flush`.
pub(super) fn mine_flush(ctx: &Ctx, id: &MinionId, load: &Value) -> Value {
    brine_mine::flush(&ctx.cfg, id, load)
}
