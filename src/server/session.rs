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

/// Name of the marker file, in the logs root, that says a session is running. It is written at
/// start and removed at a clean stop; if the server dies, the next server resumes that session
/// (same id, same directory), so clients reconnect to it and nothing is written twice.
pub const RUNNING_MARKER: &str = ".running-session";

impl Session {
    /// Records that this session is running (atomically: write a temporary file, then rename).
    pub fn mark_running(&self, logs_root: &Path) -> std::io::Result<()> {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = format!(
            "proctor-session-v1\nid {}\ndir {}\nstarted_ms {}\n",
            self.id.hex(),
            name,
            self.started_ms
        );
        let tmp = logs_root.join(format!("{RUNNING_MARKER}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, logs_root.join(RUNNING_MARKER))
    }

    /// Removes the marker after a clean stop.
    pub fn clear_running(logs_root: &Path) {
        let _ = std::fs::remove_file(logs_root.join(RUNNING_MARKER));
    }

    /// The session a previous server left running (it was killed or crashed), if any.
    pub fn resume(logs_root: &Path) -> Option<Session> {
        let text = std::fs::read_to_string(logs_root.join(RUNNING_MARKER)).ok()?;
        let mut lines = text.lines();
        if lines.next()? != "proctor-session-v1" {
            return None;
        }
        let (mut id, mut dir, mut started) = (None, None, None);
        for l in lines {
            match l.split_once(' ') {
                Some(("id", v)) => id = SessionId::from_hex(v),
                Some(("dir", v)) if !v.is_empty() && !v.contains('/') && v != ".." => {
                    dir = Some(logs_root.join(v))
                }
                Some(("started_ms", v)) => started = v.parse().ok(),
                _ => {}
            }
        }
        let dir = dir.filter(|d| d.is_dir())?;
        Some(Session {
            id: id?,
            started_ms: started?,
            dir,
        })
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

    #[test]
    fn a_running_session_can_be_resumed_until_cleared() {
        let root = std::env::temp_dir().join(format!("proctor-resume-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert!(Session::resume(&root).is_none());
        let s = Session::create(&root, SessionId([3; 16]), 5_000).unwrap();
        s.mark_running(&root).unwrap();
        let r = Session::resume(&root).unwrap();
        assert_eq!(
            (r.id, r.started_ms, r.dir.clone()),
            (s.id, s.started_ms, s.dir.clone())
        );
        Session::clear_running(&root);
        assert!(Session::resume(&root).is_none());
        std::fs::write(
            root.join(RUNNING_MARKER),
            "proctor-session-v1\nid zz\ndir ../x\n",
        )
        .unwrap();
        assert!(
            Session::resume(&root).is_none(),
            "malformed marker is ignored"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
