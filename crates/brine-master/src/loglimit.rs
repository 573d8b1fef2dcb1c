//! Log lines a peer can trigger at will, rate-limited.

use std::time::{Duration, Instant};

/// At most `burst` log lines per `window`; what was held back is counted
/// and reported with the next line allowed.
pub struct LogLimiter {
    burst: u32,
    window: Duration,
    start: Option<Instant>,
    logged: u32,
    held: u64,
}

impl LogLimiter {
    pub fn new(burst: u32, window: Duration) -> LogLimiter {
        LogLimiter {
            burst,
            window,
            start: None,
            logged: 0,
            held: 0,
        }
    }

    /// `Some(held back since the last line)` if a line may be written now.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.start.is_none_or(|s| now.duration_since(s) >= self.window) {
            self.start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.burst {
            self.logged += 1;
            Some(std::mem::take(&mut self.held))
        } else {
            self.held += 1;
            None
        }
    }
}

/// What a line allowed by [`LogLimiter::allow`] adds when lines were held
/// back before it: " (N more since the last such line were not logged)",
/// or nothing.
pub fn held_note(more: u64) -> String {
    if more > 0 {
        format!(" ({more} more since the last such line were not logged)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_a_few_lines_a_window() {
        let mut l = LogLimiter::new(3, Duration::from_secs(3600));
        let allowed: Vec<_> = (0..100).map(|_| l.allow()).collect();
        assert_eq!(&allowed[..3], &[Some(0), Some(0), Some(0)]);
        assert!(allowed[3..].iter().all(Option::is_none));
        assert_eq!(l.held, 97);
        // A new window reports what was held back with its first line.
        l.start = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(l.allow(), Some(97));
        assert_eq!(l.allow(), Some(0));
    }
}
