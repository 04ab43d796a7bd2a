//! One monitoring session: its random id, start time and the directory its logs go to.

use crate::protocol::SessionId;
use crate::timefmt;
use std::path::{Path, PathBuf};

/// A running (or finished) monitoring session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Random id carried in announcements and checked in every handshake.
    pub id: SessionId,
    /// Wall-clock start, milliseconds since the epoch.
    pub started_ms: u64,
    /// `<logs>/<start time>[-N]/`: a new directory per session, never reused.
    pub dir: PathBuf,
}

impl Session {
    /// Creates the session and its directory under `logs_root`. The directory is named by the
    /// start time; if that exists (two sessions in one second), `-2`, `-3`, ... is appended, so
    /// older logs are never touched.
    pub fn create(logs_root: &Path, id: SessionId, started_ms: u64) -> std::io::Result<Session> {
        std::fs::create_dir_all(logs_root)?;
        let base = timefmt::dir_stamp(started_ms / 1000);
        for n in 1..10_000 {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = logs_root.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    return Ok(Session {
                        id,
                        started_ms,
                        dir,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(
            "too many sessions with the same start time",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_in_the_same_second_get_distinct_directories() {
        let root =
            std::env::temp_dir().join(format!("proctor-session-test-{}", std::process::id()));
        let a = Session::create(&root, SessionId([1; 16]), 1_000_000).unwrap();
        let b = Session::create(&root, SessionId([2; 16]), 1_000_400).unwrap();
        assert_ne!(a.dir, b.dir);
        assert!(a.dir.is_dir() && b.dir.is_dir());
        assert!(b.dir.to_string_lossy().ends_with("-2"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
