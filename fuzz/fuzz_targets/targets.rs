//! Targets as a minion (`_mine_get`, peer publish) or a CLI sends them,
//! every type, checked by the master against its accepted minions and
//! their cached grains and pillar, and matched minion-side (pillar top
//! files): no panic, no unbounded recursion, and what `check_minions`
//! names is always an accepted minion.
#![no_main]

use brine_fuzz::targets::{check, TGT_TYPES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let tgt_type = TGT_TYPES[sel as usize % TGT_TYPES.len()];
    let delimiter = if sel & 0x80 != 0 { ":" } else { "/" };
    check(&String::from_utf8_lossy(rest), tgt_type, delimiter);
});
