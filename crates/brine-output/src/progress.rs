//! `salt -p`: Salt's `progress` outputter, a progress bar on stderr
//! (the `progressbar` package's Percentage, Bar, Timer and Counter
//! widgets) redrawn as returns arrive.

use std::io::Write;
use std::time::Instant;

/// The bar of one job.
pub struct ProgressBar {
    max: usize,
    count: usize,
    started: Instant,
    width: usize,
}

/// The terminal's width on stderr, else 80 (`progressbar`'s default).
fn term_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            return usize::from(ws.ws_col);
        }
    }
    80
}

impl ProgressBar {
    /// `progress_iter({"minion_count": n})`: the bar, drawn at 0.
    pub fn start(minion_count: usize) -> ProgressBar {
        let bar = ProgressBar {
            max: minion_count,
            count: 0,
            started: Instant::now(),
            width: term_width(),
        };
        bar.draw();
        bar
    }

    /// `output({"return_count": n}, bar)`: more returns than expected
    /// (syndics) raise the maximum.
    pub fn update(&mut self, return_count: usize) {
        if return_count > self.max {
            self.max = return_count;
        }
        self.count = return_count;
        self.draw();
    }

    /// Leave the bar on its line.
    pub fn finish(&self) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(b"\n");
        let _ = e.flush();
    }

    /// The line as drawn after `secs` seconds.
    pub fn render(&self, secs: u64) -> String {
        let pct = (self.count * 100).checked_div(self.max).unwrap_or(100);
        let timer = format!("Elapsed Time: {}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        let left = format!("{pct:3}% ");
        let right = format!(" {timer} Returns: [{}/{}]", self.count, self.max);
        let room = self.width.saturating_sub(left.len() + right.len() + 2);
        let filled = (room * self.count).checked_div(self.max).unwrap_or(room).min(room);
        format!("{left}|{}{}|{right}", "#".repeat(filled), " ".repeat(room - filled))
    }

    fn draw(&self) {
        // Drawn on stderr, so that stdout (the returns) stays clean.
        let line = self.render(self.started.elapsed().as_secs());
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r{line}");
        let _ = e.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_returns() {
        let mut bar = ProgressBar {
            max: 4,
            count: 0,
            started: Instant::now(),
            width: 60,
        };
        assert_eq!(
            bar.render(0),
            "  0% |                | Elapsed Time: 0:00:00 Returns: [0/4]"
        );
        bar.count = 2;
        assert_eq!(
            bar.render(3661),
            " 50% |########        | Elapsed Time: 1:01:01 Returns: [2/4]"
        );
        assert_eq!(bar.render(0).len(), 60);
    }
}
