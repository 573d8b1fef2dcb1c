//! Signals as wake-ups of a poll loop (the self-pipe trick).
//!
//! The handler only records the signal in an atomic flag and writes one byte
//! to a non-blocking pipe; the loop polls the pipe's read end and asks
//! [`take`] which signals arrived. After `fork`, a child calls
//! [`reset_in_child`] so that it neither shares the parent's pipe nor keeps
//! its handlers.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
#[allow(clippy::declare_interior_mutable_const)]
const FALSE: AtomicBool = AtomicBool::new(false);
static PENDING: [AtomicBool; 65] = [FALSE; 65];
static INSTALLED: [AtomicBool; 65] = [FALSE; 65];

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: only async-signal-safe calls (atomics, write, errno access).
    unsafe {
        let errno = *libc::__errno_location();
        if let Some(p) = PENDING.get(sig as usize) {
            p.store(true, Ordering::SeqCst);
        }
        let fd = WAKE_FD.load(Ordering::SeqCst);
        if fd >= 0 {
            let b = sig as u8;
            libc::write(fd, &b as *const u8 as *const libc::c_void, 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// The self-pipe; dropping it does not uninstall the handlers.
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl SignalPipe {
    /// Install handlers for `sigs` and return the pipe to poll.
    pub fn install(sigs: &[Signal]) -> io::Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        for &s in sigs {
            let mut flags = SaFlags::SA_RESTART;
            if s == Signal::SIGCHLD {
                flags |= SaFlags::SA_NOCLDSTOP;
            }
            let act = SigAction::new(SigHandler::Handler(on_signal), flags, SigSet::empty());
            // SAFETY: the handler is async-signal-safe.
            unsafe { sigaction(s, &act) }?;
            INSTALLED[s as usize].store(true, Ordering::SeqCst);
        }
        Ok(SignalPipe { read, write })
    }

    /// The fd to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Both fds, for a child to close after fork.
    pub fn raw_fds(&self) -> [RawFd; 2] {
        [self.read.as_raw_fd(), self.write.as_raw_fd()]
    }

    /// Empty the pipe (call after poll says it is readable).
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(self.read.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

/// Whether `sig` arrived since the last call (and clear it).
pub fn take(sig: Signal) -> bool {
    PENDING[sig as usize].swap(false, Ordering::SeqCst)
}

/// In a freshly forked child: forget the parent's pipe and put every signal
/// the parent handled back to its default action.
pub fn reset_in_child() {
    WAKE_FD.store(-1, Ordering::SeqCst);
    for (n, inst) in INSTALLED.iter().enumerate() {
        PENDING[n].store(false, Ordering::SeqCst);
        if inst.swap(false, Ordering::SeqCst) {
            if let Ok(s) = Signal::try_from(n as i32) {
                // SAFETY: restoring the default disposition.
                let _ = unsafe {
                    sigaction(
                        s,
                        &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
                    )
                };
            }
        }
    }
}

/// Unblock every signal (the supervisor blocks them across fork; a child
/// calls this once its dispositions are set).
pub fn unblock_all() {
    let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Ignore `sig` (e.g. SIGINT in children: the supervisor coordinates stops).
pub fn ignore(sig: Signal) -> io::Result<()> {
    // SAFETY: SIG_IGN is always valid.
    unsafe {
        sigaction(
            sig,
            &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()),
        )
    }?;
    Ok(())
}
