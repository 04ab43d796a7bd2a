//! Helpers shared by the integration tests: run the real binary, unique temp dirs and ports,
//! wait for text to appear in a file, find the server's session, read the logs, run the
//! line-oriented workers, and clean up processes and mounts even on failure.
#![allow(dead_code)]

use proctor::crypto::Key;
use proctor::protocol::SessionId;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The proctor binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_proctor")
}

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    temp_dir_named("it", name)
}

/// A fresh directory `proctor-<kind>-<pid>-<name>` for one test.
pub fn temp_dir_named(kind: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("proctor-{kind}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port pair unique to this test process and slot (slots 0..99 per test binary).
pub fn ports(slot: u16) -> (u16, u16) {
    // Below 32768, where Linux hands out ephemeral ports (ip_local_port_range), so a listening
    // port is never already taken by some outgoing connection.
    let base = 20000 + (std::process::id() % 60) as u16 * 200 + slot * 2;
    (base, base + 1)
}

/// Writes a fresh real key (mode 0600) into `dir` and returns its path.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let out = Command::new(bin())
        .args(["keygen", "-o"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "keygen failed: {out:?}");
    p
}

/// Like [`keygen`], and also returns the key itself.
pub fn keygen_with_key(dir: &Path, name: &str) -> (PathBuf, Key) {
    let p = keygen(dir, name);
    (p.clone(), read_key(&p))
}

/// The key stored in the key file at `path`.
pub fn read_key(path: &Path) -> Key {
    proctor::keyfile::parse(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .key
}

/// A child process whose stdout+stderr go to a file; killed on drop.
pub struct Proc {
    pub child: Child,
    pub out: PathBuf,
}

impl Proc {
    /// Starts the binary with `args`, output to `out`.
    pub fn start(args: &[&str], out: PathBuf) -> Proc {
        Self::start_limited(args, out, None)
    }

    /// Starts the binary with `args`, output to `out`, optionally with a lower limit on open
    /// files (RLIMIT_NOFILE, soft and hard).
    pub fn start_limited(args: &[&str], out: PathBuf, nofile: Option<u64>) -> Proc {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(bin());
        cmd.args(args);
        if let Some(n) = nofile {
            // SAFETY: setrlimit is a plain system call, safe between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Self::spawn(cmd, out)
    }

    /// Starts `cmd` with no stdin and stdout+stderr going to `out`.
    pub fn spawn(mut cmd: Command, out: PathBuf) -> Proc {
        let f = std::fs::File::create(&out).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Proc { child, out }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the output contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.output().contains(needle))
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for exit with a deadline; returns the exit code (None if killed or timed out).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Asserts the process is alive and never panicked.
    pub fn assert_healthy(&mut self, what: &str) {
        let out = self.output();
        assert!(
            !out.contains("panicked"),
            "{what} panicked:\n{}",
            tail(&out)
        );
        assert!(self.alive(), "{what} is no longer running:\n{}", tail(&out));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last 60 lines of some output, for failure messages.
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Polls `cond` every 20 ms until it holds or the timeout passes.
pub fn wait_until(timeout: Duration, cond: impl FnMut() -> bool) -> bool {
    wait_until_every(Duration::from_millis(20), timeout, cond)
}

/// Polls `cond` every `poll` until it holds or the timeout passes.
pub fn wait_until_every(poll: Duration, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(poll);
    }
}

/// Arguments of a server on loopback for a test (window mode unless `--headless` is added),
/// always announcing to 127.255.255.255 only, every 0.5 s.
pub fn server_args(dir: &Path, key: &Path, sport: u16, cport: u16) -> Vec<String> {
    vec![
        "server".to_string(),
        "-s".into(),
        sport.to_string(),
        "-c".into(),
        cport.to_string(),
        "-k".into(),
        key.display().to_string(),
        "--logs".into(),
        dir.join("logs").display().to_string(),
        "--broadcast".into(),
        "127.255.255.255".into(),
        "--announce-every".into(),
        "0.5".into(),
    ]
}

/// Starts a headless server on loopback for a test.
pub fn server(dir: &Path, key: &Path, sport: u16, cport: u16, extra: &[&str]) -> Proc {
    server_limited(dir, key, sport, cport, extra, None)
}

/// Like [`server`], optionally with a lower limit on open files (see [`Proc::start_limited`]).
pub fn server_limited(
    dir: &Path,
    key: &Path,
    sport: u16,
    cport: u16,
    extra: &[&str],
    nofile: Option<u64>,
) -> Proc {
    let mut args = server_args(dir, key, sport, cport);
    args.insert(1, "--headless".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::start_limited(
        &a,
        dir.join(format!("server-{sport}-{}.out", now_nanos())),
        nofile,
    )
}

/// Arguments of a client capturing on `lo` only, with its own spool directory under `dir`.
pub fn client_args(dir: &Path, key: &Path, cport: u16, host: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "client".to_string(),
        "-p".into(),
        cport.to_string(),
        "-k".into(),
        key.display().to_string(),
        "-i".into(),
        "lo".into(),
        "--hostname".into(),
        host.into(),
        "--spool".into(),
        dir.join(format!("spool-{host}")).display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Starts a client capturing on `lo` for a test.
pub fn client(dir: &Path, key: &Path, cport: u16, host: &str, extra: &[&str]) -> Proc {
    let args = client_args(dir, key, cport, host, extra);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::start(&a, dir.join(format!("client-{host}-{}.out", now_nanos())))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The id of the session a headless server announced on stdout (`session <hex> started ...`),
/// the last one if several.
pub fn session_id(srv: &Proc) -> Option<SessionId> {
    let out = srv.output();
    let line = out
        .lines()
        .rfind(|l| l.starts_with("session ") && l.contains(" started"))?;
    let hex = line.split_whitespace().nth(1)?;
    if hex.len() != 32 {
        return None;
    }
    SessionId::from_hex(hex)
}

/// Waits for the server to print the session start, and returns its id.
pub fn wait_session(srv: &Proc) -> SessionId {
    let mut id = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            id = session_id(srv);
            id.is_some()
        }),
        "server did not start a session:\n{}",
        srv.output()
    );
    id.unwrap()
}

/// Asserts the server reports `host` connected within 10 s, then that the client's log shows
/// its capture worker running within 5 s.
pub fn assert_joined_and_capturing(srv: &Proc, cl: &Proc, dir: &Path, host: &str) {
    assert!(
        srv.wait_for(
            &format!("{host} (127.0.0.1) connected"),
            Duration::from_secs(10)
        ),
        "{}\n{}",
        srv.output(),
        cl.output()
    );
    assert!(
        wait_until(Duration::from_secs(5), || all_logs(dir)
            .contains("capturing on lo")),
        "capture worker started"
    );
}

/// The session directories under `<dir>/logs`, oldest first.
pub fn session_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The log files of the session directory `session`.
pub fn log_files(session: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(session)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// All log text of every client in every session under `dir`.
pub fn all_logs(dir: &Path) -> String {
    let mut s = String::new();
    for d in session_dirs(dir) {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    s
}

/// A tmpfs mount that is removed when dropped.
pub struct TmpfsMount {
    pub path: PathBuf,
    mounted: bool,
}

impl TmpfsMount {
    /// Mounts a 1 MiB tmpfs named `source` on `path`.
    pub fn mount(path: &Path, source: &str) -> TmpfsMount {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", source])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mount failed (the tests need root)");
        TmpfsMount {
            path: path.to_path_buf(),
            mounted: true,
        }
    }

    /// Unmounts now.
    pub fn unmount(&mut self) {
        if self.mounted {
            let st = Command::new("umount").arg(&self.path).status().unwrap();
            assert!(st.success(), "umount failed");
            self.mounted = false;
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Starts the binary with `args`, stdin and stdout piped and stderr inherited; returns the child
/// (stdout taken) and a channel receiving its stdout lines.
pub fn spawn_lines(args: &[&str], what: &str) -> (Child, Receiver<String>) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Kills `child` if it is still running (for Drop of the worker wrappers).
pub fn kill_if_running(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// How long a capture worker may take to start capturing.
pub const STARTUP: Duration = Duration::from_secs(15);
/// How long a capture worker may take to stop or to report a line.
pub const SHORT: Duration = Duration::from_secs(5);

/// A running `__capture-worker` on `lo`; killed (if still running) when dropped, so a failing
/// test leaves nothing.
pub struct CaptureWorker {
    pub child: Child,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl CaptureWorker {
    /// Starts `proctor __capture-worker --iface lo extra..`.
    pub fn spawn(extra: &[&str]) -> CaptureWorker {
        let mut args = vec!["__capture-worker", "--iface", "lo"];
        args.extend_from_slice(extra);
        let (child, lines) = spawn_lines(&args, "capture worker");
        CaptureWorker {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line satisfying `pred`, keeping every line read in `seen`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}; saw {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("worker output ended before {what}; saw {:#?}", self.seen)
                }
            }
        }
    }

    /// Waits for the status line saying it captures on `lo` (failing on `cannot capture`).
    pub fn wait_started(&mut self) {
        self.wait_for("the capturing status", STARTUP, |l| {
            assert!(!l.contains("cannot capture"), "capture failed: {l}");
            l.starts_with("status\t") && l.contains("capturing on lo")
        });
    }

    /// Closes stdin (asking the worker to stop), collects the rest of its output and returns its
    /// exit status.
    pub fn stop(&mut self) -> ExitStatus {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + SHORT;
        loop {
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Output written just before exit.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit after stdin closed; saw {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The detail of every `net` line read so far.
    pub fn net_details(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter_map(|l| l.strip_prefix("net\t"))
            .filter_map(|l| l.split_once('\t').map(|(_, d)| d.to_string()))
            .collect()
    }
}

impl Drop for CaptureWorker {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}
