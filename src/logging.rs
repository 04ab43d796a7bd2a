//! proctor's own messages (warnings, progress, diagnostics) through the `log` crate, written to
//! standard error. They are not the evidence: the per-machine log files and the exports are.
//!
//! `-q` keeps errors only, the default adds warnings, `-v` information, `-vv` debugging and
//! `-vvv` everything. A line reads `proctor: warning: connection to ... lost`; when standard error
//! is the systemd journal (the `JOURNAL_STREAM` variable names the device and inode of standard
//! error), lines instead start with the sd-daemon level prefix (`<4>connection to ... lost`), so
//! `journalctl -p warning` filters them by level.
//!
//! A logger of its own (as ripgrep has) rather than `env_logger`: it needs 60 lines, no
//! environment-variable filter language and none of env_logger's dependencies.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// The most detailed level shown for `-q` (`quiet`) and a number of `-v`.
pub fn level_for(verbose: u8, quiet: bool) -> LevelFilter {
    if quiet {
        return LevelFilter::Error;
    }
    match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// True when `journal_stream` (the value of `JOURNAL_STREAM`, `DEVICE:INODE`) names the file
/// `(dev, ino)`, i.e. standard error is connected to the journal.
pub fn is_journal(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// Formats one message: with the sd-daemon `<N>` prefix for the journal, otherwise as
/// `proctor: LEVEL: message`.
pub fn format_line(level: Level, msg: &str, journal: bool) -> String {
    if journal {
        let n = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        return format!("<{n}>{msg}\n");
    }
    let word = match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    format!("proctor: {word}: {msg}\n")
}

/// Whether this process's standard error is the journal stream systemd set up.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some(v) = v.to_str() else {
        return false;
    };
    // SAFETY: fstat on descriptor 2 into a zeroed struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    is_journal(v, st.st_dev as u64, st.st_ino as u64)
}

struct StderrLogger {
    journal: AtomicBool,
}

static LOGGER: StderrLogger = StderrLogger {
    journal: AtomicBool::new(false),
};

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format_line(
                r.level(),
                &r.args().to_string(),
                self.journal.load(Ordering::Relaxed),
            );
            // One write per line, so lines from several threads do not interleave.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger at `level`. Called once by `main`; a second call only changes the level.
pub fn init(level: LevelFilter) {
    LOGGER.journal.store(stderr_is_journal(), Ordering::Relaxed);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_flags() {
        assert_eq!(level_for(0, true), LevelFilter::Error);
        assert_eq!(level_for(3, true), LevelFilter::Error);
        assert_eq!(level_for(0, false), LevelFilter::Warn);
        assert_eq!(level_for(1, false), LevelFilter::Info);
        assert_eq!(level_for(2, false), LevelFilter::Debug);
        assert_eq!(level_for(9, false), LevelFilter::Trace);
    }

    #[test]
    fn journal_lines_carry_sd_daemon_prefixes() {
        assert_eq!(format_line(Level::Warn, "w", true), "<4>w\n");
        assert_eq!(format_line(Level::Error, "e", true), "<3>e\n");
        assert_eq!(format_line(Level::Info, "i", true), "<6>i\n");
        assert_eq!(format_line(Level::Debug, "d", true), "<7>d\n");
        assert_eq!(
            format_line(Level::Warn, "w", false),
            "proctor: warning: w\n"
        );
    }

    #[test]
    fn journal_stream_must_name_this_file() {
        assert!(is_journal("8:1234", 8, 1234));
        assert!(!is_journal("8:1234", 8, 1235));
        assert!(!is_journal("8", 8, 1234));
        assert!(!is_journal("x:y", 8, 1234));
        assert!(!is_journal("", 0, 0));
    }
}
