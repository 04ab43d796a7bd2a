//! The policy the server judges by, and its file: reloaded when the invigilator asks (window
//! button, SIGHUP) or by itself when the file's modification time or size changes (looked at
//! once a second). A change is read only once the file has stayed the same for [`SETTLE`], so
//! an editor that truncates and then writes is not caught with an empty file. A reload that
//! fails keeps the previous policy, so a half-saved edit never leaves a session unjudged; the
//! error is returned for the front end to show.

use super::Policy;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How often the file's modification time is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a changed file must stay unchanged before it is read.
pub const SETTLE: Duration = Duration::from_millis(250);

/// What identifies a version of the file without reading it.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The loaded policy and where it came from.
#[derive(Debug, Clone)]
pub struct PolicyWatch {
    path: PathBuf,
    policy: Policy,
    /// The version last read (loaded or refused), so a broken file is reported once.
    seen: Stamp,
    last_check: Option<Instant>,
    /// A change seen but not read yet: the new stamp and when it was seen.
    pending: Option<(Stamp, Instant)>,
}

impl PolicyWatch {
    /// Loads the file; a missing or invalid file is an error (the server does not start).
    pub fn load(path: &Path) -> Result<PolicyWatch, String> {
        let seen = stamp(path);
        let policy = super::load(path)?;
        Ok(PolicyWatch {
            path: path.to_path_buf(),
            policy,
            seen,
            last_check: None,
            pending: None,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again now. On success the new policy is in force and its summary
    /// returned; on failure the old one stays and the error is returned.
    pub fn reload(&mut self) -> Result<String, String> {
        self.seen = stamp(&self.path);
        let p = super::load(&self.path)?;
        self.policy = p;
        Ok(self.policy.summary())
    }

    /// Reloads now if `force` is set; otherwise looks at the file once per [`CHECK_EVERY`] and
    /// reloads a change once it has settled for [`SETTLE`]. `None` when nothing was reloaded.
    pub fn poll(&mut self, now: Instant, force: bool) -> Option<Result<String, String>> {
        if force {
            self.pending = None;
            return Some(self.reload());
        }
        if let Some((changed, since)) = self.pending {
            if now.duration_since(since) < SETTLE {
                return None;
            }
            let current = stamp(&self.path);
            if current != changed {
                // Still being written: wait for it to settle.
                self.pending = Some((current, now));
                return None;
            }
            self.pending = None;
            return Some(self.reload());
        }
        if self
            .last_check
            .is_some_and(|t| now.duration_since(t) < CHECK_EVERY)
        {
            return None;
        }
        self.last_check = Some(now);
        let current = stamp(&self.path);
        if current != self.seen {
            self.pending = Some((current, now));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_picked_up_and_a_broken_file_keeps_the_old_policy() {
        let dir = std::env::temp_dir().join(format!("proctor-policy-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.toml");
        std::fs::write(&f, "[programs]\nallow = [\"a\"]\n").unwrap();
        let mut w = PolicyWatch::load(&f).unwrap();
        let t0 = Instant::now();
        assert!(w.poll(t0, false).is_none(), "unchanged file");
        std::fs::write(&f, "[programs]\nallow = [\"a\", \"b\"]\n").unwrap();
        assert!(w.poll(t0, false).is_none(), "checked at most once a second");
        let t1 = t0 + CHECK_EVERY;
        assert!(w.poll(t1, false).is_none(), "a change waits to settle");
        // Still being written: the change is read only once it stops changing.
        std::fs::write(&f, "[programs]\nallow = [\"a\", \"b\", \"c\"]\n").unwrap();
        assert!(w.poll(t1 + SETTLE, false).is_none());
        let r = w.poll(t1 + 2 * SETTLE, false).unwrap();
        assert_eq!(r.unwrap(), "3 programs");
        let t2 = t1 + CHECK_EVERY;
        std::fs::write(&f, "[programs]\nallow = [\"a\"\n").unwrap();
        assert!(w.poll(t2, false).is_none());
        let e = w.poll(t2 + SETTLE, false).unwrap().unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert_eq!(w.policy().programs.as_ref().unwrap().allow.len(), 3);
        let t3 = t2 + CHECK_EVERY;
        assert!(w.poll(t3, false).is_none(), "reported once");
        assert!(w.poll(t3 + SETTLE, false).is_none(), "reported once");
        assert!(
            w.poll(t0, true).unwrap().is_err(),
            "forced reload reads again"
        );
        std::fs::remove_file(&f).unwrap();
        let t4 = t3 + CHECK_EVERY;
        assert!(w.poll(t4, false).is_none());
        assert!(w.poll(t4 + SETTLE, false).unwrap().is_err());
        assert!(
            PolicyWatch::load(&f)
                .unwrap_err()
                .contains("cannot read policy file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
