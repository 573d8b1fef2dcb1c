//! Process titles that `ps aux` and `/proc/PID/cmdline` show.
//!
//! Linux shows `/proc/PID/cmdline` from the memory between `arg_start` and
//! `arg_end` of the process; when the byte at `arg_end - 1` is not NUL, it
//! assumes a `setproctitle`-style rewrite and reads on into the environment
//! area up to the first NUL (see `get_mm_cmdline` in fs/proc/base.c). So,
//! like PostgreSQL's `ps_status.c` and Python's `setproctitle`, we copy the
//! environment strings elsewhere, then write the title as one string over the
//! contiguous argv + environ area. No privilege is needed (unlike
//! `PR_SET_MM_ARG_START`), and `comm` is untouched.
//!
//! The title is `<argv joined by spaces> <name>`. When the area is too small
//! for the longest title the process will use (a master started with an empty
//! environment), [`ensure_capacity`] re-executes the binary once with a
//! padding variable in its environment; the pid stays the same.

use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::sync::Mutex;

/// Environment variable used to enlarge the title area on re-exec.
const PAD_VAR: &str = "BRINE_PROCTITLE_PAD";

struct Area {
    start: *mut u8,
    len: usize,
    base: String,
}

// SAFETY: the area is only touched while holding the mutex, and the memory
// (the initial process stack) lives for the whole process.
unsafe impl Send for Area {}

static AREA: Mutex<Option<Area>> = Mutex::new(None);

extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// `arg_start, arg_end, env_start, env_end` from `/proc/self/stat`.
fn stat_bounds() -> io::Result<[usize; 4]> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields = crate::procstat::fields(&stat).ok_or_else(|| io::Error::other("unparsable /proc/self/stat"))?;
    // The fields start at field 3 (state); arg_start is field 48.
    let get = |n: usize| -> io::Result<usize> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other(format!("/proc/self/stat has no field {n}")))
    };
    Ok([get(48)?, get(49)?, get(50)?, get(51)?])
}

/// The command line as given, joined by spaces (what Salt's titles start with).
pub fn original_command_line() -> String {
    if let Some(a) = AREA.lock().unwrap().as_ref() {
        return a.base.clone();
    }
    join_args(std::env::args_os().collect())
}

fn join_args(args: Vec<OsString>) -> String {
    args.into_iter()
        .map(|a| String::from_utf8_lossy(&a.into_vec()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Take over the argv/environ area. Call once, early, while single-threaded
/// and before anything keeps pointers into `environ` strings. Returns the
/// number of bytes a title may use.
pub fn init() -> io::Result<usize> {
    let mut guard = AREA.lock().unwrap();
    if let Some(a) = guard.as_ref() {
        return Ok(a.len);
    }
    let base = join_args(std::env::args_os().collect());
    let [arg_start, arg_end, env_start, env_end] = stat_bounds()?;
    if arg_start == 0 || arg_end <= arg_start {
        return Err(io::Error::other("no argv area"));
    }
    // Use the environment area too when it directly follows argv (the normal
    // layout set up by execve).
    let end = if env_start == arg_end && env_end > env_start {
        env_end
    } else {
        arg_end
    };
    // SAFETY: single-threaded at this point (documented contract). We copy
    // every environment string to the heap and point `environ` at the copies,
    // so nothing reads the old area afterwards.
    unsafe { relocate_environ() };
    *guard = Some(Area {
        start: arg_start as *mut u8,
        len: end - arg_start,
        base,
    });
    Ok(end - arg_start)
}

unsafe fn relocate_environ() {
    let mut copies: Vec<*mut libc::c_char> = Vec::new();
    let mut p = environ;
    if !p.is_null() {
        while !(*p).is_null() {
            let s = CStr::from_ptr(*p);
            let keep = !s.to_bytes().starts_with(format!("{PAD_VAR}=").as_bytes());
            if keep {
                copies.push(CString::from(s).into_raw());
            }
            p = p.add(1);
        }
    }
    copies.push(std::ptr::null_mut());
    let leaked: &'static mut [*mut libc::c_char] = Box::leak(copies.into_boxed_slice());
    environ = leaked.as_mut_ptr();
}

/// Make sure titles up to `<argv> <longest_name>` fit; if they do not,
/// re-exec this binary with the same argv and a padding variable (once).
/// Must be called right after [`init`], before forking or opening anything
/// that should not survive exec.
pub fn ensure_capacity(longest_name: usize) -> io::Result<()> {
    let (len, base_len) = {
        let g = AREA.lock().unwrap();
        let a = g.as_ref().ok_or_else(|| io::Error::other("title::init not called"))?;
        (a.len, a.base.len())
    };
    let needed = base_len + 1 + longest_name + 1;
    if len >= needed || std::env::var_os(PAD_VAR).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()).map_err(io::Error::other))
        .collect::<Result<_, _>>()?;
    // Re-read argv from our saved copy: the area is still intact here.
    let mut env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{PAD_VAR}={}", "_".repeat(needed - len + 8))).unwrap());
    let exe = CString::new(exe.into_os_string().into_vec()).map_err(io::Error::other)?;
    nix::unistd::execve(&exe, &args, &env).map_err(io::Error::from)?;
    unreachable!()
}

/// Set the title to `<argv> <name>`.
pub fn set(name: &str) {
    let guard = AREA.lock().unwrap();
    let Some(a) = guard.as_ref() else { return };
    let title = if name.is_empty() {
        a.base.clone()
    } else {
        format!("{} {}", a.base, name)
    };
    let bytes = title.as_bytes();
    let n = bytes.len().min(a.len.saturating_sub(1));
    // SAFETY: [start, start+len) is the argv+environ area of this process,
    // writable stack memory that nothing else references after init().
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), a.start, n);
        std::ptr::write_bytes(a.start.add(n), 0, a.len - n);
    }
}

/// Set `/proc/self/comm` (what `pgrep`, `killall`, `top` and `lsof` show);
/// truncated by the kernel to 15 bytes.
pub fn set_comm(name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    let rc = unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
