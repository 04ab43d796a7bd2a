//! Small OS touch-points used by several subcommands: privilege checks, signals, worker
//! lifetime. Each is a thin wrapper so the rest of the code stays free of `unsafe`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// True when the process runs with effective user id 0 (needed for packet capture).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

static STOP_SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP_SIGNALLED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so the caller can send
/// its stop announcement and flush files first. Returns the flag. Blocking system calls are
/// interrupted (no SA_RESTART), so poll loops notice at once.
pub fn stop_on_signals() -> &'static AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installing an async-signal-safe handler (it only stores to an atomic).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    ignore_sigpipe();
    &STOP_SIGNALLED
}

static RELOAD_SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_reload_signal(_: libc::c_int) {
    RELOAD_SIGNALLED.store(true, Ordering::SeqCst);
}

/// Makes SIGHUP set a flag (read and cleared with [`take_reload_signal`]) instead of ending the
/// process: the conventional "reload your configuration" signal, used for the policy file.
pub fn reload_on_sighup() {
    // SAFETY: installing an async-signal-safe handler (it only stores to an atomic).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_reload_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGHUP, &sa, std::ptr::null_mut());
    }
}

/// True once after each SIGHUP (see [`reload_on_sighup`]).
pub fn take_reload_signal() -> bool {
    RELOAD_SIGNALLED.swap(false, Ordering::SeqCst)
}

/// Writes to a closed socket or pipe must return EPIPE, not kill the process.
pub fn ignore_sigpipe() {
    // SAFETY: setting SIGPIPE's disposition to ignore is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// For worker processes: ask the kernel to send SIGTERM when the parent dies (Linux), and exit
/// at once if the parent is already gone. Workers also stop on stdin EOF (see
/// [`stop_on_stdin_eof`]), which covers other systems.
pub fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and has no memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } == 1 {
        std::process::exit(0);
    }
}

/// For worker processes: a flag that becomes true when stdin reaches end of file, i.e. when the
/// parent closed the pipe (asking the worker to stop) or died. Also set by SIGINT/SIGTERM.
pub fn stop_on_stdin_eof() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let signals = stop_on_signals();
    std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
            f.store(true, Ordering::SeqCst);
        })
        .expect("spawn stdin watcher");
    // Fold the signal flag into the returned flag from a tiny watcher, so callers check one.
    let f2 = flag.clone();
    std::thread::Builder::new()
        .name("signal-watch".into())
        .spawn(move || {
            while !f2.load(Ordering::SeqCst) {
                if signals.load(Ordering::SeqCst) {
                    f2.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
        .expect("spawn signal watcher");
    flag
}

/// The machine's host name, as the server will show it.
pub fn host_name() -> String {
    sysinfo::System::host_name()
        .ok()
        .filter(|h: &String| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// The unprivileged user workers switch to once their handles are open (`nobody`).
pub const UNPRIVILEGED_ID: u32 = 65534;

/// For worker processes running as root: give up root once the handles that needed it are open
/// (supplementary groups, then group, then user become `nobody`), so a bug in packet or
/// mount-table parsing cannot be turned into root access. Re-arms the parent-death signal,
/// which the kernel clears on a change of credentials. Does nothing when not root.
pub fn drop_privileges() -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    // SAFETY: plain system calls with valid arguments; results are checked.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
        }
        if libc::setgid(UNPRIVILEGED_ID) != 0 {
            return Err(format!("setgid: {}", std::io::Error::last_os_error()));
        }
        if libc::setuid(UNPRIVILEGED_ID) != 0 {
            return Err(format!("setuid: {}", std::io::Error::last_os_error()));
        }
    }
    die_with_parent();
    Ok(())
}

/// Raises the soft limit on open files to the hard limit (a server holds a socket and a log
/// file per client) and returns the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur
    }
}
