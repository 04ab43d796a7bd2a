//! What a client reports: one [`Event`] per network flow change, mount change, USB device
//! change or health note.
//!
//! The same type travels from the worker processes to the client (as a tab-separated line on a
//! pipe), from the client to the server (inside an encrypted frame) and into the log files (as a
//! text line). All text that came from outside is escaped before it reaches a file or a terminal.

use std::fmt;

/// The kind of an event, as it appears in the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A network flow began or ended (`new ...` / `end ...`).
    Net,
    /// A filesystem was mounted.
    Mount,
    /// A filesystem was unmounted.
    Unmount,
    /// Health of the client itself: baseline, worker restarts, drops, connection changes.
    Status,
    /// A USB device present at start, plugged in or removed, whether or not anything of it is
    /// mounted (`plugged usb 1-2 vendor_id=.. class=wireless`): a Wi-Fi stick or a phone
    /// matters even when it never shows up as a file system.
    Device,
}

impl EventKind {
    /// The word used in log lines and on the worker pipe.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Net => "net",
            EventKind::Mount => "mount",
            EventKind::Unmount => "unmount",
            EventKind::Status => "status",
            EventKind::Device => "device",
        }
    }

    /// Parses the word written by [`EventKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "net" => EventKind::Net,
            "mount" => EventKind::Mount,
            "unmount" => EventKind::Unmount,
            "status" => EventKind::Status,
            "device" => EventKind::Device,
            _ => return None,
        })
    }

    /// Wire code inside event frames.
    pub fn code(self) -> u8 {
        match self {
            EventKind::Net => 1,
            EventKind::Mount => 2,
            EventKind::Unmount => 3,
            EventKind::Status => 4,
            EventKind::Device => 5,
        }
    }

    /// Inverse of [`EventKind::code`]; unknown codes are rejected, not guessed.
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => EventKind::Net,
            2 => EventKind::Mount,
            3 => EventKind::Unmount,
            4 => EventKind::Status,
            5 => EventKind::Device,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation made on a lab PC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened, milliseconds since the Unix epoch (the lab PC's clock).
    pub ts_ms: u64,
    /// What sort of observation.
    pub kind: EventKind,
    /// Human-readable details, e.g. `new tcp 10.0.0.5:50000 -> 10.0.0.1:443 flags=S`.
    pub detail: String,
}

impl Event {
    /// Builds an event stamped with the current wall-clock time.
    pub fn now(kind: EventKind, detail: impl Into<String>) -> Self {
        Event {
            ts_ms: crate::timefmt::now_ms(),
            kind,
            detail: detail.into(),
        }
    }

    /// Encodes the event as one line for the worker -> client pipe (`kind\tts_ms\tdetail\n`).
    /// The detail is escaped so the line can never contain a tab or newline of its own.
    pub fn to_worker_line(&self) -> String {
        format!("{}\t{}\t{}\n", self.kind, self.ts_ms, escape(&self.detail))
    }

    /// Writes `batch` to a worker's pipe as worker lines in one write, then flushes, so the
    /// client reads a burst (a mount's baseline, a rescan's devices) in one go.
    pub fn write_worker_lines(
        out: &mut dyn std::io::Write,
        batch: &[Event],
    ) -> std::io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let text: String = batch.iter().map(Event::to_worker_line).collect();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// Parses a line written by [`Event::to_worker_line`] (with or without its newline).
    /// Anything malformed gives `None`: a broken worker must not break the client.
    pub fn parse_worker_line(line: &str) -> Option<Event> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let mut parts = line.splitn(3, '\t');
        let kind = EventKind::parse(parts.next()?)?;
        let ts_ms = parts.next()?.parse().ok()?;
        let detail = parts.next()?.to_string();
        Some(Event {
            ts_ms,
            kind,
            detail,
        })
    }
}

/// Escapes control characters and bidirectional/non-printing characters as `\xNN` / `\u{..}` so
/// that text from a lab PC (host names, mount points, anything) is one safe line in a log file
/// or a terminal. Printable Unicode is kept as it is.
pub fn escape(s: &str) -> String {
    if is_printable_ascii(s.as_bytes()) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Turns bytes of unknown encoding into safe text: invalid UTF-8 becomes `\xNN`, the rest is
/// escaped as by [`escape`].
pub fn escape_bytes(b: &[u8]) -> String {
    if is_printable_ascii(b)
        && let Ok(s) = std::str::from_utf8(b)
    {
        return s.to_owned();
    }
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Printable ASCII only (nearly every real detail): nothing to escape, a plain copy will do.
fn is_printable_ascii(b: &[u8]) -> bool {
    b.iter().all(|c| (0x20..0x7f).contains(c))
}

/// True when `s` is already in the form [`escape`] produces (no raw control characters).
/// Escaping is idempotent on such text, so text escaped on the lab PC and again on the server
/// reads the same.
pub fn is_clean(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_line_round_trips_and_escapes() {
        let e = Event {
            ts_ms: 42,
            kind: EventKind::Mount,
            detail: "a\tb\nc".into(),
        };
        let line = e.to_worker_line();
        assert_eq!(line.matches('\n').count(), 1);
        let back = Event::parse_worker_line(&line).unwrap();
        assert_eq!(back.kind, EventKind::Mount);
        assert_eq!(back.ts_ms, 42);
        assert_eq!(back.detail, "a\\x09b\\x0ac");
    }

    #[test]
    fn malformed_worker_lines_are_rejected() {
        for l in ["", "net", "net\tx\ty", "bogus\t1\tz", "net\t-1\tz"] {
            assert!(Event::parse_worker_line(l).is_none(), "{l:?}");
        }
    }

    #[test]
    fn escape_bytes_handles_invalid_utf8_and_controls() {
        assert_eq!(escape_bytes(b"ok\xff\x1b[31m"), "ok\\xff\\x1b[31m");
        assert_eq!(escape("a\u{202e}b"), "a\\u{202e}b");
        assert!(is_clean(&escape("x\ny\u{202e}")));
        // The printable-ASCII fast path stops at the edges of that range.
        assert_eq!(escape_bytes(b" ~ok"), " ~ok");
        assert_eq!(escape_bytes(b"a\x7fb\x1f"), "a\\x7fb\\x1f");
        assert_eq!(escape("tab\there"), "tab\\x09here");
    }

    #[test]
    fn kind_codes_round_trip() {
        for k in [
            EventKind::Net,
            EventKind::Mount,
            EventKind::Unmount,
            EventKind::Status,
            EventKind::Device,
        ] {
            assert_eq!(EventKind::from_code(k.code()), Some(k));
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::from_code(0), None);
        assert_eq!(EventKind::from_code(6), None);
        assert_eq!(EventKind::Device.code(), 5);
        assert_eq!(EventKind::Device.as_str(), "device");
    }
}
