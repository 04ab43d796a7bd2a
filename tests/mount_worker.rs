//! End-to-end tests of the real `proctor __mount-worker` process (Linux, run as root): it reports
//! its baseline, sees a tmpfs mounted and unmounted within a second, quotes paths with spaces,
//! and exits cleanly when its stdin is closed. Each test mounts under its own directory and a
//! guard unmounts it even if an assertion fails, so a failing run leaves no mounts behind.

#![cfg(target_os = "linux")]

mod common;

use common::{kill_if_running, spawn_lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running worker with its stdout lines arriving on a channel.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Worker {
    fn start() -> Worker {
        let (mut child, lines) = spawn_lines(&["__mount-worker"], "proctor __mount-worker");
        let stdin = child.stdin.take();
        Worker {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for a line matching `pred`, failing after `timeout`. Returns the line and how long
    /// it took.
    fn expect_line(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> (String, Duration) {
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return (l, start.elapsed()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no {what} line within {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("worker output ended before {what}"),
            }
        }
    }

    fn wait_baseline(&self) {
        self.expect_line(Duration::from_secs(5), "baseline", |l| {
            l.starts_with("status\t") && l.contains("baseline complete")
        });
    }

    /// Closes stdin (or not, if already dropped) and waits up to `limit` for the exit status.
    fn finish(mut self, limit: Duration) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("worker did not exit within {limit:?} after stdin closed");
                }
                Err(e) => panic!("waiting for worker: {e}"),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Only reached with the child still running when a test failed.
        kill_if_running(&mut self.child);
    }
}

/// A test directory with a tmpfs on it; Drop lazily unmounts and removes it whatever happened.
struct MountGuard {
    dir: PathBuf,
    mounted: bool,
}

impl MountGuard {
    fn new(test: &str) -> MountGuard {
        let dir = std::env::temp_dir().join(format!("proctor-mw-{}-{test}", std::process::id()));
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&dir)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test dir");
        MountGuard {
            dir,
            mounted: false,
        }
    }

    fn mount(&mut self) {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "proctor-test"])
            .arg(&self.dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount failed (tests must run as root)");
        self.mounted = true;
    }

    fn umount(&mut self) {
        let st = Command::new("umount")
            .arg(&self.dir)
            .status()
            .expect("run umount");
        assert!(st.success(), "umount failed");
        self.mounted = false;
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// How the worker writes a mount point: quoted when it contains a space or a quote.
fn shown(dir: &Path) -> String {
    let s = dir.to_string_lossy().into_owned();
    if s.contains([' ', '"']) {
        format!("\"{}\"", s.replace('"', "\\x22"))
    } else {
        s
    }
}

fn mount_cycle(test: &str) {
    let worker = Worker::start();
    worker.wait_baseline();
    let mut guard = MountGuard::new(test);
    let on = format!(" on {} ", shown(&guard.dir));

    guard.mount();
    let (line, took) = worker.expect_line(Duration::from_secs(3), "mount", |l| {
        l.starts_with("mount\t") && l.contains(&on)
    });
    assert!(line.contains(" type=tmpfs "), "{line}");
    assert!(line.contains("proctor-test on "), "{line}");
    assert!(line.contains(" class=virtual"), "{line}");
    assert!(
        took < Duration::from_secs(1),
        "mount reported after {took:?}"
    );

    guard.umount();
    let (line, took) = worker.expect_line(Duration::from_secs(3), "unmount", |l| {
        l.starts_with("unmount\t") && l.contains(&on)
    });
    assert!(line.contains(" type=tmpfs "), "{line}");
    assert!(
        took < Duration::from_secs(1),
        "unmount reported after {took:?}"
    );

    let start = Instant::now();
    let status = worker.finish(Duration::from_secs(2));
    assert!(status.success(), "worker exit status {status:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn reports_tmpfs_mount_and_unmount() {
    mount_cycle("plain");
}

#[test]
fn path_with_space_is_quoted() {
    mount_cycle("with space");
}

#[test]
fn baseline_lists_root_as_status() {
    let worker = Worker::start();
    let (line, _) = worker.expect_line(Duration::from_secs(5), "baseline of /", |l| {
        l.starts_with("status\t") && l.contains("\tbaseline mount ") && l.contains(" on / ")
    });
    assert_eq!(line.split('\t').count(), 3, "{line}");
    worker.wait_baseline();
    assert!(worker.finish(Duration::from_secs(2)).success());
}

#[test]
fn dropping_stdin_writer_ends_worker() {
    let mut worker = Worker::start();
    worker.wait_baseline();
    // Drop the writer directly (as a crashing parent would), then only wait.
    drop(worker.stdin.take());
    let status = worker.finish(Duration::from_secs(2));
    assert!(status.success(), "worker exit status {status:?}");
}
