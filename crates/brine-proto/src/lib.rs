//! Salt's wire protocol. One implementation of framing, envelopes and crypto, shared by the master, the CLIs and the load
//! generator.

pub mod commands;
pub mod crypto;
pub mod event;
pub mod json;
pub mod msgpack;
pub mod value;

#[cfg(test)]
mod testvec;

pub use value::{Dialect, Value};
