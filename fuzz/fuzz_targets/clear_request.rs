//! Any bytes on ret_port, as an MWorker's request channel receives them
//! from a peer with no key: one reply each (never a panic), and the
//! master's secrets are never in it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    brine_fuzz::channel::clear(data);
});
