//! What the kernel says of one process: its parent, state, CPU time and
//! memory, from `/proc/PID/stat` and `/proc/PID/smaps_rollup`. The one
//! reader of `stat`'s fields in the tree.

/// CPU time (user + system) in seconds, state and start, of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub cpu_seconds: f64,
    /// The state letter (`R`, `S`, `Z` for a zombie, …).
    pub state: char,
    /// Parent pid.
    pub ppid: u32,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf with a constant name.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `/proc/PID/stat`, None when there is no such process.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The fields of a `stat` text after the parenthesised comm (which may
/// hold spaces and parentheses itself): the first is field 3 of proc(5),
/// the state.
pub fn fields(text: &str) -> Option<Vec<&str>> {
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// State, ppid, and utime and stime (fields 14 and 15).
fn parse_stat(text: &str) -> Option<Stat> {
    let f = fields(text)?;
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        cpu_seconds: (ticks(11)? + ticks(12)?) as f64 / clock_ticks(),
    })
}

impl Stat {
    /// Whether the process runs (is not a zombie nor dead).
    pub fn running(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    pid != 0 && stat(pid).is_some_and(|s| s.running())
}

/// Resident and proportional set size in bytes (PSS divides shared pages
/// among the processes that map them: the tree's PSS adds up to its real
/// use, its RSS counts the shared code once per process).
pub fn memory(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_rollup(&text)
}

fn parse_rollup(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((kib("Rss:")? * 1024, kib("Pss:")? * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_comm() {
        let line = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 123 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.state, s.ppid), ('S', 1));
        assert!((s.cpu_seconds - 300.0 / clock_ticks()).abs() < 1e-9);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(!alive(0));
        let (rss, pss) = memory(me).unwrap();
        assert!(rss > 0 && pss > 0 && pss <= rss);
        assert!(stat(me).unwrap().cpu_seconds >= 0.0);
    }

    #[test]
    fn rollup() {
        let t = "00400000-7fff [rollup]\nRss:                1000 kB\nPss:                 400 kB\nPss_Anon: 1 kB\n";
        assert_eq!(parse_rollup(t), Some((1_024_000, 409_600)));
    }
}
