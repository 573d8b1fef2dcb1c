//! Salt's `pam` eauth backend (`salt/auth/pam.py`): a user and password
//! checked by the system's PAM stack for the service `auth.pam.service`
//! (default `login`), and the user's system groups for `group%` entries.
//!
//! Like Salt, Brine loads libpam at run time (`dlopen("libpam.so.0")`)
//! rather than linking it: building against libpam needs its headers
//! (libpam0g-dev), which a machine that only builds and runs the master
//! does not have. Without libpam every PAM login is refused, and the
//! reason is logged once.
//!
//! The check is Salt's: `pam_start`, `pam_authenticate`, then
//! `pam_acct_mgmt` (a locked or expired account is refused even with the
//! right password), and `pam_end` whatever happened. Salt 3007 runs it
//! in a Python subprocess (`auth.pam.python`); Brine calls libpam in
//! process, so that option has no use here.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use brine_config::MasterConfig;
use brine_log::critical;
use log::{debug, error};

use super::Backend;

/// Salt's `pam` backend.
pub struct Pam;

impl Backend for Pam {
    fn auth(&self, cfg: &MasterConfig, username: &str, password: &str) -> bool {
        // Salt passes the service to its subprocess in the environment: a
        // value that is not a string raises, and the call is refused.
        let service = match cfg.get("auth.pam.service") {
            None => "login",
            Some(v) => match v.as_str() {
                Some(s) => s,
                None => {
                    debug!("Authentication module threw: auth.pam.service is not a string");
                    return false;
                }
            },
        };
        // Without libpam: refused, the reason logged once (by lib()).
        let Some(lib) = lib() else {
            return false;
        };
        let ok = match authenticate(lib, service, username, password) {
            Ok(()) => true,
            Err(why) => {
                error!("Pam auth failed for {username}: {why}");
                false
            }
        };
        if !ok {
            shadow_diagnostic_once(username);
        }
        ok
    }

    /// Salt's `groups(username)`: `salt.utils.user.get_group_list`.
    fn groups(&self, _cfg: &MasterConfig, username: &str, _password: &str) -> Option<Vec<String>> {
        group_list(username)
    }
}

// Linux-PAM's ABI (security/_pam_types.h, security/pam_appl.h).
const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_FAIL_DELAY: c_int = 10;
const PAM_MAX_NUM_MSG: c_int = 32;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

/// An opaque `pam_handle_t`.
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

type StartFn = unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut *mut PamHandle) -> c_int;
type HandleFn = unsafe extern "C" fn(*mut PamHandle, c_int) -> c_int;
type SetItemFn = unsafe extern "C" fn(*mut PamHandle, c_int, *const c_void) -> c_int;
type StrerrorFn = unsafe extern "C" fn(*mut PamHandle, c_int) -> *const c_char;

/// The libpam functions Brine calls, resolved once per process.
struct Lib {
    start: StartFn,
    authenticate: HandleFn,
    acct_mgmt: HandleFn,
    end: HandleFn,
    set_item: SetItemFn,
    strerror: StrerrorFn,
}

/// libpam, or why it could not be loaded (logged once, when first asked).
fn lib() -> Option<&'static Lib> {
    static LIB: OnceLock<Option<Lib>> = OnceLock::new();
    LIB.get_or_init(|| match load() {
        Ok(lib) => Some(lib),
        Err(why) => {
            error!("PAM is not available: {why}; every pam login is refused");
            None
        }
    })
    .as_ref()
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: checked non-NULL just above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn load() -> Result<Lib, String> {
    load_from(c"libpam.so.0")
}

fn load_from(soname: &CStr) -> Result<Lib, String> {
    // SAFETY: a NUL-terminated name; the handle is kept for the life of
    // the process (never dlclose'd), so the symbols stay valid.
    let handle = unsafe { libc::dlopen(soname.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(dlerror());
    }
    let sym = |name: &CStr| -> Result<*mut c_void, String> {
        // SAFETY: handle is a live dlopen handle, name is NUL-terminated.
        let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if p.is_null() {
            Err(format!(
                "{} has no {}: {}",
                soname.to_string_lossy(),
                name.to_string_lossy(),
                dlerror()
            ))
        } else {
            Ok(p)
        }
    };
    // SAFETY: each symbol is the libpam function of that name, whose C
    // signature the field's type spells out.
    unsafe {
        Ok(Lib {
            start: std::mem::transmute::<*mut c_void, StartFn>(sym(c"pam_start")?),
            authenticate: std::mem::transmute::<*mut c_void, HandleFn>(sym(c"pam_authenticate")?),
            acct_mgmt: std::mem::transmute::<*mut c_void, HandleFn>(sym(c"pam_acct_mgmt")?),
            end: std::mem::transmute::<*mut c_void, HandleFn>(sym(c"pam_end")?),
            set_item: std::mem::transmute::<*mut c_void, SetItemFn>(sym(c"pam_set_item")?),
            strerror: std::mem::transmute::<*mut c_void, StrerrorFn>(sym(c"pam_strerror")?),
        })
    }
}

/// A NUL-terminated copy of the password that is zeroed when dropped.
struct Secret(Vec<u8>);

impl Secret {
    /// `None` for a password with a NUL byte, which C cannot carry.
    fn new(password: &str) -> Option<Secret> {
        if password.contains('\0') {
            return None;
        }
        // Sized once so that no reallocation leaves a copy behind.
        let mut v = Vec::with_capacity(password.len() + 1);
        v.extend_from_slice(password.as_bytes());
        v.push(0);
        Some(Secret(v))
    }

    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zero(self.0.as_mut_ptr(), self.0.len());
    }
}

/// Overwrites `len` bytes at `p` with zeros in a way the compiler keeps.
fn zero(p: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: the caller owns p[..len].
        unsafe { std::ptr::write_volatile(p.add(i), 0) };
    }
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// What the conversation answers with.
struct Credentials {
    user: CString,
    password: Secret,
}

/// The conversation function: a hidden prompt gets the password, a
/// visible one the user name (some modules ask for it again); error and
/// informational messages get an empty answer. PAM frees the answers it
/// is given, so they are allocated with the C allocator.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    let n = num_msg as usize;
    // SAFETY: appdata is the Credentials that authenticate() passed to
    // pam_start and that outlives the handle.
    let creds = unsafe { &*(appdata as *const Credentials) };
    // SAFETY: calloc of n zeroed responses (NULL answers).
    let replies = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // Linux-PAM passes an array of n pointers to messages.
        // SAFETY: PAM gives num_msg entries.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: replies holds n entries, those set are strdup'ed.
            unsafe { free_replies(replies, n) };
            return PAM_CONV_ERR;
        }
        // SAFETY: m points to a pam_message.
        let (style, text) = unsafe { ((*m).msg_style, (*m).msg) };
        let answer = match style {
            PAM_PROMPT_ECHO_OFF => creds.password.as_ptr(),
            PAM_PROMPT_ECHO_ON => creds.user.as_ptr(),
            PAM_ERROR_MSG | PAM_TEXT_INFO => {
                if !text.is_null() {
                    // SAFETY: a NUL-terminated message from the module.
                    debug!("PAM: {}", unsafe { CStr::from_ptr(text) }.to_string_lossy());
                }
                continue;
            }
            _ => continue,
        };
        // SAFETY: answer is NUL-terminated and lives in creds.
        let copy = unsafe { libc::strdup(answer) };
        if copy.is_null() {
            // SAFETY: as above.
            unsafe { free_replies(replies, n) };
            return PAM_BUF_ERR;
        }
        // SAFETY: i < n.
        unsafe { (*replies.add(i)).resp = copy };
    }
    // SAFETY: resp is PAM's out-pointer; PAM now owns the replies.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// Zeroes and frees the answers given so far and the array (a failed
/// conversation keeps nothing).
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: replies holds n entries, each NULL or strdup'ed.
        let r = unsafe { (*replies.add(i)).resp };
        if !r.is_null() {
            // SAFETY: a NUL-terminated string we allocated.
            unsafe {
                zero(r.cast(), libc::strlen(r));
                libc::free(r.cast());
            }
        }
    }
    // SAFETY: allocated by calloc.
    unsafe { libc::free(replies.cast()) };
}

/// The PAM_FAIL_DELAY hook: does nothing. Without it pam_unix (and
/// pam_faildelay) sleep two seconds or more inside pam_authenticate
/// after a wrong password, holding the MWorker; Brine answers failures
/// without holding a worker.
unsafe extern "C" fn no_fail_delay(_retval: c_int, _usec_delay: c_uint, _appdata: *mut c_void) {}

/// Salt's `_authenticate(username, password, service)`; `Err` says why
/// PAM refused.
fn authenticate(lib: &Lib, service: &str, username: &str, password: &str) -> Result<(), String> {
    let (Ok(service), Ok(user), Some(password)) =
        (CString::new(service), CString::new(username), Secret::new(password))
    else {
        return Err("a NUL byte in the service, user name or password".into());
    };
    let creds = Credentials {
        user: user.clone(),
        password,
    };
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: &creds as *const Credentials as *mut c_void,
    };
    let mut handle: *mut PamHandle = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings, conv and creds outlive the handle
    // (pam_end is called below before they drop).
    let rc = unsafe { (lib.start)(service.as_ptr(), user.as_ptr(), &conv, &mut handle) };
    if rc != PAM_SUCCESS {
        let why = describe(lib, handle, rc);
        if !handle.is_null() {
            // SAFETY: a handle pam_start returned.
            unsafe { (lib.end)(handle, rc) };
        }
        return Err(format!("pam_start for service {service:?}: {why}"));
    }
    // SAFETY: a live handle; the item is a function of the type
    // PAM_FAIL_DELAY expects.
    unsafe { (lib.set_item)(handle, PAM_FAIL_DELAY, no_fail_delay as *const c_void) };
    // SAFETY: a live handle.
    let mut rc = unsafe { (lib.authenticate)(handle, 0) };
    if rc == PAM_SUCCESS {
        // SAFETY: a live handle.
        rc = unsafe { (lib.acct_mgmt)(handle, 0) };
    }
    let result = if rc == PAM_SUCCESS {
        Ok(())
    } else {
        Err(describe(lib, handle, rc))
    };
    // SAFETY: a live handle, ended exactly once.
    unsafe { (lib.end)(handle, rc) };
    result
}

fn describe(lib: &Lib, handle: *mut PamHandle, rc: c_int) -> String {
    // SAFETY: pam_strerror accepts any handle (it is unused by
    // Linux-PAM) and returns a static string.
    let s = unsafe { (lib.strerror)(handle, rc) };
    if s.is_null() {
        format!("PAM error {rc}")
    } else {
        // SAFETY: checked non-NULL.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }
}

/// Salt logs, once per process, why PAM cannot check other users'
/// passwords when the master is neither root nor able to read
/// /etc/shadow (pam_unix's unix_chkpwd helper then refuses).
fn shadow_diagnostic_once(username: &str) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if LOGGED.load(Ordering::Relaxed) {
        return;
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() || nix::unistd::access("/etc/shadow", nix::unistd::AccessFlags::R_OK).is_ok() {
        return;
    }
    if LOGGED.swap(true, Ordering::Relaxed) {
        return;
    }
    critical!(
        "PAM authentication for {} failed and process running as uid {uid} cannot read /etc/shadow, so PAM's \
         unix_chkpwd helper will refuse to authenticate users other than the caller. Either run the salt-master \
         as the 'root' user, or add the master's user to the 'shadow' group so it can read /etc/shadow (the \
         latter works on Debian-derived distributions; on RPM-based distributions the master must run as root \
         for PAM eauth to work).",
        brine_py::str_repr(username)
    );
}

/// Salt's `salt.utils.user.get_group_list(user)`: the names of the
/// groups `getgrouplist` gives for the user and their primary group,
/// sorted and without duplicates. Salt names the gids it finds in
/// /etc/group from that file (every entry with the gid) and the others
/// through NSS; if anything in that fails (unknown user, an /etc/group
/// line it cannot parse, a gid without a name) it falls back to the NSS
/// groups that list the user as a member, plus the primary group.
/// `None` where Salt's function raises (a NUL in the name).
fn group_list(user: &str) -> Option<Vec<String>> {
    let cuser = CString::new(user).ok()?;
    let mut names = from_grouplist(&cuser).unwrap_or_else(|| fallback_groups(user, &cuser));
    names.sort();
    names.dedup();
    Some(names)
}

/// Salt's first way, through `os.getgrouplist`; `None` where it raises.
fn from_grouplist(cuser: &CStr) -> Option<Vec<String>> {
    let pw = nix::unistd::User::from_name(cuser.to_str().ok()?).ok()??;
    let mut gids: Vec<i128> = nix::unistd::getgrouplist(cuser, pw.gid)
        .ok()?
        .into_iter()
        .map(|g| i128::from(g.as_raw()))
        .collect();
    gids.sort();
    let local = etc_group()?;
    let mut local_gids: Vec<i128> = local.iter().map(|(_, gid)| *gid).collect();
    local_gids.sort();
    // The highest gid of /etc/group below 65000 (nogroup and the like
    // are above); with none, Salt's index runs off the list and raises.
    let local_max = *local_gids.iter().rev().find(|&&g| g < 65000)?;
    let mut names: Vec<String> = local
        .iter()
        .filter(|(_, gid)| *gid <= local_max && gids.contains(gid))
        .map(|(name, _)| name.clone())
        .collect();
    for gid in gids.iter().filter(|&&g| g > local_max) {
        let gid = nix::unistd::Gid::from_raw(u32::try_from(*gid).ok()?);
        names.push(nix::unistd::Group::from_gid(gid).ok()??.name);
    }
    Some(names)
}

/// Salt's `_getgrall()`: (name, gid) of each /etc/group line, read as
/// Salt reads it; `None` where that raises (an unreadable file, a
/// line without four fields, a gid that is not a number).
fn etc_group() -> Option<Vec<(String, i128)>> {
    let text = String::from_utf8(std::fs::read("/etc/group").ok()?).ok()?;
    let mut out = Vec::new();
    // Read as Salt reads it: a text file with universal line ends.
    for line in super::file::py_lines(&text) {
        let comps: Vec<&str> = line.trim_matches(super::file::py_isspace).split(':').collect();
        if comps.len() != 4 {
            return None;
        }
        out.push((comps[0].to_string(), brine_py::int_str(comps[2])?));
    }
    Some(out)
}

/// Salt's fallback: the groups NSS lists the user in, and the primary
/// group's name when the user and that group exist.
fn fallback_groups(user: &str, cuser: &CStr) -> Vec<String> {
    // getgrent walks a process-wide cursor: one walk at a time.
    static WALK: Mutex<()> = Mutex::new(());
    let _walk = WALK.lock().unwrap_or_else(|e| e.into_inner());
    let mut names = Vec::new();
    // SAFETY: the cursor is only used under WALK; each entry is read
    // before the next call overwrites it.
    unsafe {
        libc::setgrent();
        loop {
            let g = libc::getgrent();
            if g.is_null() {
                break;
            }
            let mut member = (*g).gr_mem;
            while !member.is_null() && !(*member).is_null() {
                if CStr::from_ptr(*member) == cuser {
                    names.push(CStr::from_ptr((*g).gr_name).to_string_lossy().into_owned());
                    break;
                }
                member = member.add(1);
            }
        }
        libc::endgrent();
    }
    if let Ok(Some(pw)) = nix::unistd::User::from_name(user) {
        if let Ok(Some(g)) = nix::unistd::Group::from_gid(pw.gid) {
            if !names.contains(&g.name) {
                names.push(g.name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(style: c_int, text: &CStr) -> PamMessage {
        PamMessage {
            msg_style: style,
            msg: text.as_ptr(),
        }
    }

    /// Runs the conversation over `styles` and returns the answers.
    fn answers(styles: &[c_int]) -> (c_int, Vec<Option<String>>) {
        let creds = Credentials {
            user: CString::new("alice").unwrap(),
            password: Secret::new("s3cret").unwrap(),
        };
        let msgs: Vec<PamMessage> = styles.iter().map(|&s| message(s, c"text")).collect();
        let mut ptrs: Vec<*const PamMessage> = msgs.iter().map(|m| m as *const PamMessage).collect();
        let mut resp: *mut PamResponse = std::ptr::null_mut();
        let rc = unsafe {
            converse(
                styles.len() as c_int,
                ptrs.as_mut_ptr(),
                &mut resp,
                &creds as *const Credentials as *mut c_void,
            )
        };
        if rc != PAM_SUCCESS {
            return (rc, Vec::new());
        }
        let mut out = Vec::new();
        unsafe {
            for i in 0..styles.len() {
                let r = (*resp.add(i)).resp;
                out.push((!r.is_null()).then(|| CStr::from_ptr(r).to_string_lossy().into_owned()));
                assert_eq!((*resp.add(i)).resp_retcode, 0);
            }
            free_replies(resp, styles.len());
        }
        (rc, out)
    }

    #[test]
    fn the_conversation_answers_each_prompt() {
        let (rc, got) = answers(&[
            PAM_TEXT_INFO,
            PAM_PROMPT_ECHO_OFF,
            PAM_ERROR_MSG,
            PAM_PROMPT_ECHO_ON,
            99,
        ]);
        assert_eq!(rc, PAM_SUCCESS);
        assert_eq!(got, [None, Some("s3cret".into()), None, Some("alice".into()), None]);
    }

    #[test]
    fn the_conversation_refuses_bad_counts() {
        assert_eq!(answers(&[]).0, PAM_CONV_ERR);
        assert_eq!(answers(&[PAM_TEXT_INFO; 33]).0, PAM_CONV_ERR);
        assert_eq!(answers(&[PAM_TEXT_INFO; 32]).0, PAM_SUCCESS);
    }

    #[test]
    fn a_missing_library_says_why() {
        let err = load_from(c"libpam-brine-missing.so.0").err().expect("no such library");
        assert!(err.contains("libpam-brine-missing.so.0"), "{err}");
        // A library without PAM's symbols is refused too.
        let err = load_from(c"libc.so.6").err().expect("libc has no pam_start");
        assert!(err.contains("has no pam_start"), "{err}");
        assert!(load().is_ok(), "libpam.so.0 loads here");
    }

    #[test]
    fn secrets_refuse_nul_and_are_terminated() {
        assert!(Secret::new("a\0b").is_none());
        let s = Secret::new("pw").unwrap();
        assert_eq!(s.0, b"pw\0");
    }
}
