//! A minimal safe wrapper over poll(2): the server's one event loop waits on all client sockets,
//! the listening socket and a wake-up socket with it.

use std::os::fd::RawFd;
use std::time::Duration;

/// Readable.
pub const IN: i16 = libc::POLLIN;
/// Writable.
pub const OUT: i16 = libc::POLLOUT;
/// Urgent/priority data (also used by /proc/self/mountinfo for changes).
pub const PRI: i16 = libc::POLLPRI;
/// Error or hang-up (always reported, never requested).
pub const ERR_OR_HUP: i16 = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;

/// A set of descriptors to wait on, reused across iterations.
#[derive(Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the set, keeping its allocation.
    pub fn clear(&mut self) {
        self.fds.clear();
    }

    /// Adds a descriptor with the events of interest; returns its index.
    pub fn push(&mut self, fd: RawFd, events: i16) -> usize {
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.fds.len() - 1
    }

    /// Waits until a descriptor is ready or the timeout passes. EINTR counts as a wake-up
    /// with nothing ready (the caller checks its flags).
    pub fn wait(&mut self, timeout: Duration) -> std::io::Result<usize> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: the pointer and length describe our own initialized Vec of pollfd.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                for f in self.fds.iter_mut() {
                    f.revents = 0;
                }
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// The events that occurred on the descriptor at `index`.
    pub fn revents(&self, index: usize) -> i16 {
        self.fds.get(index).map(|f| f.revents).unwrap_or(0)
    }
}
