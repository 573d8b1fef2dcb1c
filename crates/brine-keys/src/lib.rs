//! Minion key store: being written.
