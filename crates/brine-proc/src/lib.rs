//! Process management for Brine: what PostgreSQL's postmaster and gunicorn's
//! arbiter do, for a salt-master.
//!
//! * [`title`] rewrites the process title in place (argv + environ area), as
//!   PostgreSQL's `ps_status.c` and Python's `setproctitle` do, so `ps aux`
//!   shows `salt-master -c /etc/salt MWorker-0` while `comm` stays
//!   `salt-master`.
//! * [`signals`] turns signals into wake-ups of a poll loop (self-pipe).
//! * [`supervisor`] forks named children, learns of their death on SIGCHLD,
//!   respawns them with the same title and backs off crash loops.
//! * [`pidfile`] holds an exclusive lock on the pidfile while the master runs.
//! * [`procstat`] reads a process's parent, state, CPU time and memory.
//! * [`notify`] speaks systemd's `sd_notify` datagram protocol.
//! * [`command`] runs an external command within a deadline and an output
//!   bound, killing its process group when one is passed.
//!
//! Everything here is written for a single-threaded process that forks
//! before any thread or ZeroMQ context exists.

pub mod command;
pub mod notify;
pub mod pidfile;
pub mod procstat;
pub mod shm;
pub mod signals;
pub mod supervisor;
pub mod title;

/// Exit status a child uses when it cannot boot for a reason a respawn will
/// not fix (port in use, unreadable key, bad config): the supervisor stops
/// the whole tree instead of looping. (`EX_CONFIG` from sysexits.h.)
pub const EXIT_FATAL: i32 = 78;
