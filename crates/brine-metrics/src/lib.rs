//! What the master tells operators about itself: the status board every
//! process writes ([`board`]), the Prometheus view of it ([`render`]) and
//! its HTTP endpoint ([`http`]), with each process's CPU and memory from
//! `brine_proc::procstat`. `salt-master status` reads the same board.

pub mod board;
pub mod http;
pub mod render;
pub mod tree;

pub use board::{command_index, AuthResult, Board, Counter, Outcome};

use std::sync::OnceLock;

static BOARD: OnceLock<Board> = OnceLock::new();

/// Make `board` the one every `record` call of this process (and of the
/// processes it forks afterwards) writes to. Set once, by the
/// ProcessManager, before its first fork.
pub fn install(board: Board) -> &'static Board {
    let _ = BOARD.set(board);
    BOARD.get().expect("just set")
}

/// The board, when this process belongs to a master (None in tests and
/// tools, where recording does nothing).
pub fn board() -> Option<&'static Board> {
    BOARD.get()
}

/// Add `n` to counter `c` of the board, if there is one.
pub fn count(c: Counter, n: u64) {
    if let Some(b) = board() {
        b.add_counter(c, n);
    }
}

/// Set the gauge `c` of the board, if there is one.
pub fn gauge(c: Counter, n: u64) {
    if let Some(b) = board() {
        b.set_counter(c, n);
    }
}

/// Count a sign-in's answer, if there is a board.
pub fn auth(r: AuthResult) {
    if let Some(b) = board() {
        b.auth(r);
    }
}

/// Count a job cache write, if there is a board.
pub fn cache_write(ok: bool, took: std::time::Duration) {
    if let Some(b) = board() {
        b.cache_write(ok, took);
    }
}
