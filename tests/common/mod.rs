//! Helpers shared by the integration tests: run the real binary, unique temp dirs and ports,
//! wait for text to appear in a file, and clean up processes and mounts even on failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The proctor binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_proctor")
}

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("proctor-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port pair unique to this test process and slot (slots 0..99 per test binary).
pub fn ports(slot: u16) -> (u16, u16) {
    let base = 20000 + ((std::process::id() as u16 % 150) * 200) % 20000 + slot * 2;
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

/// A child process whose stdout+stderr go to a file; killed on drop.
pub struct Proc {
    pub child: Child,
    pub out: PathBuf,
}

impl Proc {
    /// Starts the binary with `args`, output to `out`.
    pub fn start(args: &[&str], out: PathBuf) -> Proc {
        let f = std::fs::File::create(&out).unwrap();
        let child = Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Proc { child, out }
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
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
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
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms until it holds or the timeout passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a headless server on loopback for a test.
pub fn server(dir: &Path, key: &Path, sport: u16, cport: u16, extra: &[&str]) -> Proc {
    let mut args = vec![
        "server".to_string(),
        "--headless".into(),
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
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::start(&a, dir.join(format!("server-{sport}-{}.out", now_nanos())))
}

/// Starts a client capturing on `lo` for a test.
pub fn client(dir: &Path, key: &Path, cport: u16, host: &str, extra: &[&str]) -> Proc {
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
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::start(&a, dir.join(format!("client-{host}-{}.out", now_nanos())))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
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
        assert!(st.success(), "mount failed");
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
