//! Any load an accepted minion can send once its request is decrypted and
//! its `tok` checked (every AES command of Salt's AESFuncs): one reply
//! each, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    brine_fuzz::channel::aes(data);
});
