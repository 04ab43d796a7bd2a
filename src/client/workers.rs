//! The client's worker processes (capture, mounts, USB devices): the same binary started with
//! a hidden subcommand through `std::process`, streaming events back over a pipe. The parent
//! reads them without blocking, restarts a worker that dies, and asks them to stop by closing
//! their stdin.

use crate::event::Event;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

/// How to start one worker: the program (normally this binary) and its arguments.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Short name for status events (`capture`, `mounts`).
    pub name: &'static str,
    /// Program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// A running worker.
pub struct Worker {
    spec: WorkerSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    buf: Vec<u8>,
    eof: bool,
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with standard flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Worker {
    /// Starts the worker with piped stdin/stdout (stderr goes to ours).
    pub fn spawn(spec: &WorkerSpec) -> std::io::Result<Worker> {
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        set_nonblocking(stdout.as_raw_fd())?;
        Ok(Worker {
            spec: spec.clone(),
            child,
            stdin,
            stdout,
            buf: Vec::new(),
            eof: false,
        })
    }

    /// How it was started (for restarts).
    pub fn spec(&self) -> &WorkerSpec {
        &self.spec
    }

    /// Process id, for status events.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stdout pipe, for poll.
    pub fn fd(&self) -> RawFd {
        self.stdout.as_raw_fd()
    }

    /// The pipe reached end of file: the worker exited (or closed stdout).
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Reads every complete line available now; malformed lines are skipped.
    pub fn read_events(&mut self) -> Vec<Event> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stdout.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.eof = true;
                    break;
                }
            }
            if self.buf.len() > 4 * 1024 * 1024 {
                break;
            }
        }
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buf[start..start + pos];
            if let Some(e) = std::str::from_utf8(line)
                .ok()
                .and_then(Event::parse_worker_line)
            {
                events.push(e);
            }
            start += pos + 1;
        }
        self.buf.drain(..start);
        events
    }

    /// Asks the worker to finish (it sees EOF on stdin, reports what it still holds, exits).
    pub fn request_stop(&mut self) {
        self.stdin = None;
    }

    /// Ends the worker at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the exited worker and returns its status (call after EOF).
    pub fn wait(&mut self) -> Option<ExitStatus> {
        self.child.wait().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
