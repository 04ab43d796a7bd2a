//! `--jsonl FILE`: every event as one JSON object per line, appended to FILE (or written to
//! standard output with `-`), flushed once per batch of the server's loop.
//!
//! A line looks like
//! `{"time":"2026-11-26T13:08:50.325Z","session":"979a…","host":"pc1","address":"127.0.0.1","seq":28,"source":"client","kind":"net","detail":"new udp 127.0.0.1:48222 -> 127.0.0.1:47001"}`
//! with the fields in that order. `time` is the event time on the lab PC (RFC 3339 UTC, ms), as in
//! the log files; `host` and `detail` are the log files' escaped text, JSON-escaped once more.
//! The server's own lines (`seq=-` in the files) have `"seq":null`, `"source":"server"`, the
//! server's time, and the kind `server` or `warning`. With `--policy`, events that carry a verdict
//! (it stays at the end of `detail`, as in the file) also get `"verdict":"ok"` or
//! `"verdict":"flagged","why":"..."` after `detail`; the server's lines never do.

use super::{ExportEvent, RateLimit};
use crate::timefmt::rfc3339_ms;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

pub use crate::json::escape_into as escape_json_into;

/// Formats one event as a JSON object followed by a newline.
pub fn format(ev: &ExportEvent<'_>) -> String {
    let mut s = String::with_capacity(160 + ev.detail.len());
    s.push_str("{\"time\":\"");
    s.push_str(&rfc3339_ms(ev.ts_ms));
    s.push_str("\",\"session\":\"");
    escape_json_into(&mut s, ev.session);
    s.push_str("\",\"host\":\"");
    escape_json_into(&mut s, ev.host);
    s.push_str("\",\"address\":\"");
    s.push_str(&ev.addr.to_string());
    s.push_str("\",\"seq\":");
    match ev.seq {
        Some(n) => s.push_str(&n.to_string()),
        None => s.push_str("null"),
    }
    s.push_str(",\"source\":\"");
    s.push_str(if ev.seq.is_some() { "client" } else { "server" });
    s.push_str("\",\"kind\":\"");
    escape_json_into(&mut s, ev.kind);
    s.push_str("\",\"detail\":\"");
    escape_json_into(&mut s, ev.detail);
    match ev.seq.and_then(|_| crate::policy::verdict_of(ev.detail)) {
        Some(crate::policy::Verdict::Ok) => s.push_str("\",\"verdict\":\"ok"),
        Some(crate::policy::Verdict::Flagged(why)) => {
            s.push_str("\",\"verdict\":\"flagged\",\"why\":\"");
            escape_json_into(&mut s, &why);
        }
        None => {}
    }
    s.push_str("\"}\n");
    s
}

/// The open JSONL destination.
pub struct JsonlWriter {
    out: BufWriter<File>,
    /// Lines that could not be written since the last report, and the last error.
    lost: u64,
    last_error: Option<String>,
    limit: RateLimit,
}

impl JsonlWriter {
    /// Opens `path` for appending (created if missing). `-` means standard output: proctor then
    /// keeps the real standard output for JSON Lines alone and points its own file descriptor 1
    /// at standard error, so the headless front end's human-readable lines go to stderr and a
    /// pipe reading stdout sees nothing but JSON.
    pub fn open(path: &Path) -> std::io::Result<JsonlWriter> {
        let file = if path.as_os_str() == "-" {
            take_stdout()?
        } else {
            OpenOptions::new().create(true).append(true).open(path)?
        };
        Ok(JsonlWriter {
            out: BufWriter::with_capacity(64 * 1024, file),
            lost: 0,
            last_error: None,
            limit: RateLimit::default(),
        })
    }

    /// Buffers one event's line.
    pub fn push(&mut self, ev: &ExportEvent<'_>) {
        if let Err(e) = self.out.write_all(format(ev).as_bytes()) {
            self.lost += 1;
            self.last_error = Some(e.to_string());
        }
    }

    /// Writes the buffered lines out. Returns a warning if lines were lost and a report is due.
    pub fn flush(&mut self, now: Instant) -> Option<String> {
        if let Err(e) = self.out.flush() {
            self.last_error = Some(e.to_string());
        }
        self.report(now)
    }

    /// Flushes a last time and reports any loss not reported yet, whatever the rate limit.
    pub fn finish(&mut self) -> Option<String> {
        if let Err(e) = self.out.flush() {
            self.last_error = Some(e.to_string());
        }
        self.limit = RateLimit::default();
        self.report(Instant::now())
    }

    fn report(&mut self, now: Instant) -> Option<String> {
        if self.last_error.is_none() || !self.limit.allow(now) {
            return None;
        }
        let e = self.last_error.take().unwrap_or_default();
        let lost = std::mem::take(&mut self.lost);
        Some(format!(
            "JSON Lines output: cannot write ({e}); {lost} event line(s) lost since the last report (the log files are complete)"
        ))
    }
}

/// Duplicates standard output for the JSONL stream and redirects descriptor 1 to standard error.
fn take_stdout() -> std::io::Result<File> {
    use std::os::fd::FromRawFd;
    let _ = std::io::stdout().flush();
    // SAFETY: plain descriptor calls; the duplicate is owned by the returned File alone.
    let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: replaces descriptor 1 with a copy of descriptor 2; both stay valid.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(host: &'a str, detail: &'a str) -> ExportEvent<'a> {
        ExportEvent {
            session: "00ff",
            host,
            addr: "10.0.0.5".parse().unwrap(),
            seq: Some(28),
            ts_ms: 1_000,
            kind: "net",
            detail,
        }
    }

    #[test]
    fn one_object_per_line_with_fields_in_order() {
        let line = format(&ev("pc1", "new udp a -> b"));
        assert_eq!(
            line,
            "{\"time\":\"1970-01-01T00:00:01.000Z\",\"session\":\"00ff\",\"host\":\"pc1\",\"address\":\"10.0.0.5\",\"seq\":28,\"source\":\"client\",\"kind\":\"net\",\"detail\":\"new udp a -> b\"}\n"
        );
        let mut server = ev("pc1", "connected from 10.0.0.5:4000");
        server.seq = None;
        server.kind = "server";
        assert!(
            format(&server).contains(
                "\"seq\":null,\"source\":\"server\",\"kind\":\"server\",\"detail\":\"connected from"
            ),
            "{}",
            format(&server)
        );
    }

    #[test]
    fn verdicts_become_fields() {
        let line = format(&ev("pc1", "new udp a -> b verdict=ok"));
        assert!(
            line.ends_with("\"detail\":\"new udp a -> b verdict=ok\",\"verdict\":\"ok\"}\n"),
            "{line}"
        );
        let line = format(&ev(
            "pc1",
            "new udp a -> b verdict=flagged why=\"destination b (udp) not allowed\"",
        ));
        assert!(
            line.ends_with(
                ",\"verdict\":\"flagged\",\"why\":\"destination b (udp) not allowed\"}\n"
            ),
            "{line}"
        );
    }

    #[test]
    fn json_escaping_covers_quotes_backslashes_and_controls() {
        let mut s = String::new();
        escape_json_into(&mut s, "a\"b\\c\nd\te\u{1}f\u{7f}é\u{2028}");
        assert_eq!(s, "a\\\"b\\\\c\\nd\\te\\u0001f\u{7f}é\\u2028");
        // Text escaped for the log files (`\x1b`) keeps its backslash, escaped for JSON.
        let line = format(&ev("evil\"host", "mount \\x1b[31m on /x"));
        assert!(line.contains("\"host\":\"evil\\\"host\""), "{line}");
        assert!(
            line.contains("\"detail\":\"mount \\\\x1b[31m on /x\""),
            "{line}"
        );
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("}\n"));
    }

    #[test]
    fn writes_reach_the_file_on_flush() {
        let p =
            std::env::temp_dir().join(format!("proctor-jsonl-unit-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let mut w = JsonlWriter::open(&p).unwrap();
        w.push(&ev("pc1", "x"));
        w.push(&ev("pc2", "y"));
        assert_eq!(w.flush(Instant::now()), None);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"host\":\"pc2\""));
        std::fs::remove_file(&p).unwrap();
    }
}
