//! Salt's state engine on the master (`salt/state.py`).
//!
//! * [`compile`]: the `Compiler` (`pad_funcs`, `verify_high`,
//!   `compile_high_data`, `order_chunks`), shared with the reactor.

pub mod compile;

pub use compile::{compile_high_data, verify_high, Chunk};
