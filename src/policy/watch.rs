//! The policy the server judges by, and its file: reloaded when the invigilator asks (window
//! button, SIGHUP) or by itself when the file's modification time or size changes (checked at
//! most once a second). A reload that fails keeps the previous policy, so a half-saved edit
//! never leaves a session unjudged; the error is returned for the front end to show.

use super::Policy;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How often the file's modification time is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

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

    /// Reloads if `force` is set, or if at least [`CHECK_EVERY`] has passed since the last look
    /// and the file changed. `None` when nothing was reloaded.
    pub fn poll(&mut self, now: Instant, force: bool) -> Option<Result<String, String>> {
        if !force {
            if self
                .last_check
                .is_some_and(|t| now.duration_since(t) < CHECK_EVERY)
            {
                return None;
            }
            self.last_check = Some(now);
            if stamp(&self.path) == self.seen {
                return None;
            }
        }
        Some(self.reload())
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
        std::fs::write(&f, "[programs]\nallow = [\"a\", \"b\", \"c\"]\n").unwrap();
        assert!(w.poll(t0, false).is_none(), "checked at most once a second");
        let r = w.poll(t0 + CHECK_EVERY, false).unwrap();
        assert_eq!(r.unwrap(), "3 programs");
        std::fs::write(&f, "[programs]\nallow = [\"a\"\n").unwrap();
        let e = w.poll(t0 + 2 * CHECK_EVERY, false).unwrap().unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert_eq!(w.policy().programs.as_ref().unwrap().allow.len(), 3);
        assert!(
            w.poll(t0 + 3 * CHECK_EVERY, false).is_none(),
            "reported once"
        );
        assert!(
            w.poll(t0, true).unwrap().is_err(),
            "forced reload reads again"
        );
        std::fs::remove_file(&f).unwrap();
        assert!(w.poll(t0 + 4 * CHECK_EVERY, false).unwrap().is_err());
        assert!(
            PolicyWatch::load(&f)
                .unwrap_err()
                .contains("cannot read policy file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
