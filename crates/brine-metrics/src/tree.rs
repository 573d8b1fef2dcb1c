//! The process tree as the board and the kernel see it together: each
//! process's row on the board (pid, start, restarts, readiness), checked
//! against `/proc` (a pid whose process died is down), with its CPU time
//! and memory. What the metrics endpoint and `salt-master status` show.

use brine_proc::procstat;

use crate::board::Board;

/// The ProcessManager's title.
pub const MANAGER: &str = "ProcessManager";

/// How a process of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// It runs and reported ready.
    Running,
    /// It runs and has not reported ready yet.
    Starting,
    /// Not running: dead, or being replaced.
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Starting => "starting",
            State::Down => "down",
        }
    }
}

/// One process of the tree.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Its title (the role).
    pub role: String,
    /// 0 while it is down.
    pub pid: u32,
    /// The title of the supervisor that forks it (None: the ProcessManager
    /// and its own children).
    pub parent: Option<String>,
    pub state: State,
    /// When it last started (ms since the epoch).
    pub started_ms: u64,
    /// Starts after the first (None for the ProcessManager).
    pub restarts: Option<u64>,
    pub cpu_seconds: Option<f64>,
    /// Resident and proportional set size, bytes.
    pub memory: Option<(u64, u64)>,
}

/// The ProcessManager, then every process with a row on the board.
pub fn processes(board: &Board) -> Vec<Proc> {
    let (pm, pm_started) = board.manager();
    let roles = board.roles();
    let one = |role: &str, pid: u32, ready: bool, started_ms: u64, restarts: Option<u64>, parent: Option<String>| {
        let stat = (pid != 0).then(|| procstat::stat(pid)).flatten();
        let running = stat.is_some_and(|s| s.running());
        Proc {
            role: role.to_string(),
            pid: if running { pid } else { 0 },
            parent,
            state: match (running, ready) {
                (false, _) => State::Down,
                (true, true) => State::Running,
                (true, false) => State::Starting,
            },
            started_ms,
            restarts,
            cpu_seconds: stat.filter(|s| s.running()).map(|s| s.cpu_seconds),
            memory: running.then(|| procstat::memory(pid)).flatten(),
        }
    };
    let mut out = vec![one(MANAGER, pm, true, pm_started, None, None)];
    for r in &roles {
        let parent = r.parent.and_then(|p| roles.get(p)).map(|p| p.name.clone());
        out.push(one(&r.name, r.pid, r.ready, r.started_ms, Some(r.restarts), parent));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_checked_against_proc() {
        let dir = tempfile::tempdir().unwrap();
        let b = Board::create(&dir.path().join("b"), 1).unwrap();
        b.name_role(0, "ReqServer_ProcessManager", None);
        b.name_role(1, "MWorker-0", Some(0));
        b.name_role(2, "Reactor", None);
        b.set_role(0, Some(std::process::id()), 5, 0, true);
        b.set_role(1, Some(std::process::id()), 5, 2, false);
        // A pid no process has: down, whatever the board says.
        b.set_role(2, Some(u32::MAX - 1), 5, 1, true);
        let p = processes(&b);
        assert_eq!(p.len(), 4);
        assert_eq!(
            (p[0].role.as_str(), p[0].state, p[0].restarts),
            (MANAGER, State::Running, None)
        );
        assert!(p[0].memory.is_some_and(|(rss, pss)| rss > 0 && pss > 0));
        assert_eq!(p[1].state, State::Running);
        assert_eq!(
            (p[2].state, p[2].parent.as_deref(), p[2].restarts),
            (State::Starting, Some("ReqServer_ProcessManager"), Some(2))
        );
        assert_eq!((p[3].state, p[3].pid, p[3].cpu_seconds), (State::Down, 0, None));
    }
}
