//! One log line in, one record out: the pure reading of the evidence-file format written by
//! [`crate::server::storage`] (`<RFC 3339 time> seq=<n> <kind> <detail>`, the server's own
//! `seq=- server|warning <text>` lines and `# ` header lines), including the policy verdict a
//! server may append to event lines and the meaning of the server's own lines (connected, lost,
//! reconnected, missing events, stopped). Nothing here touches the file system or panics on any
//! input: a line that does not have the shape the server writes is a [`Malformed`] value.

use crate::timefmt;
use std::borrow::Cow;

/// What one line of a log file is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// A `# ` header line.
    Header(Header<'a>),
    /// An event the client reported (`seq=<n>`).
    Event(EventLine<'a>),
    /// A line the server added on its own (`seq=-`).
    Server(ServerLine<'a>),
}

/// The header lines the report uses; the others are kept as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Header<'a> {
    /// `# proctor log`: the first line of every file the server writes.
    Magic,
    /// `# session: <hex> started <time>`.
    Session {
        /// Session id in hex.
        id: &'a str,
        /// Session start, if the time parses.
        started_ms: Option<u64>,
    },
    /// `# host: <name> address: <ip>`.
    Host {
        /// Host name as the client reported it (escaped by the server, but not for HTML).
        host: &'a str,
        /// The client's address as the server saw it.
        addr: &'a str,
    },
    /// Any other header line (key fingerprint, version...), without the `# `.
    Other(&'a str),
}

/// An event line, with the policy verdict split off its detail.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLine<'a> {
    /// Time stamp (the lab PC's clock), ms since the epoch.
    pub ts_ms: u64,
    /// The client's sequence number.
    pub seq: u64,
    /// The kind word (`net`, `mount`, `unmount`, `device`, `status`, or a newer one).
    pub kind: &'a str,
    /// The detail, without the verdict field.
    pub detail: &'a str,
    /// The server's policy verdict, if the session ran with a policy.
    pub verdict: Option<Verdict<'a>>,
}

/// A policy verdict (` verdict=ok` or ` verdict=flagged why="..."` at the end of a line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// The policy allowed the event.
    Ok,
    /// The policy flagged the event, with its reason (empty if the server gave none).
    Flagged {
        /// Why, with `\"` and `\\` unescaped.
        why: Cow<'a, str>,
    },
}

/// A line the server wrote on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLine<'a> {
    /// Time stamp (the server's clock), ms since the epoch.
    pub ts_ms: u64,
    /// `server` or `warning` (or a word a later version adds).
    pub kind: &'a str,
    /// The text after the kind.
    pub text: &'a str,
    /// What the text means for the report.
    pub note: ServerNote,
}

/// The meaning of a server line, as far as the report cares.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerNote {
    /// First connection of this client in the session.
    Connected,
    /// The same client process came back; the server states the gap when it knows it.
    Reconnected {
        /// The gap the server measured, ms.
        gap_ms: Option<u64>,
    },
    /// A new client process (restart or reboot) connected; its numbering starts again.
    Restarted,
    /// The connection was lost, with the server's reason.
    Lost {
        /// Why the server considers the client gone.
        reason: String,
    },
    /// Events `from..=to` never arrived from the client.
    Missing {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
    /// The client said goodbye.
    Finished,
    /// The session was stopped while the client was still connected without having said bye.
    StoppedBeforeBye,
    /// The session was stopped.
    SessionStopped,
    /// The server loaded a changed policy file (written to every connected client's file).
    PolicyReloaded,
    /// A changed policy file could not be loaded; the previous policy stayed in force.
    PolicyReloadFailed,
    /// Anything else (kept as text).
    Other,
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Nothing on the line.
    Empty,
    /// The first field is not a time stamp in the server's format.
    BadTime,
    /// The second field is not `seq=<n>` or `seq=-`.
    BadSeq,
    /// The kind word is missing or not a lower-case word.
    BadKind,
    /// The last line of the file has no newline: it was cut off.
    Truncated,
}

impl Malformed {
    /// A few words for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Malformed::Empty => "empty line",
            Malformed::BadTime => "no valid time stamp",
            Malformed::BadSeq => "no valid seq= field",
            Malformed::BadKind => "no valid event kind",
            Malformed::Truncated => "cut off (no end of line)",
        }
    }
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<Line<'_>, Malformed> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(h) = line.strip_prefix('#') {
        return Ok(Line::Header(parse_header(h.strip_prefix(' ').unwrap_or(h))));
    }
    if line.trim().is_empty() {
        return Err(Malformed::Empty);
    }
    let mut f = line.splitn(4, ' ');
    let ts_ms = f
        .next()
        .and_then(timefmt::parse_rfc3339_ms)
        .ok_or(Malformed::BadTime)?;
    let seq = f
        .next()
        .and_then(|s| s.strip_prefix("seq="))
        .ok_or(Malformed::BadSeq)?;
    let kind = f.next().filter(|k| is_word(k)).ok_or(Malformed::BadKind)?;
    let rest = f.next().unwrap_or("");
    if seq == "-" {
        return Ok(Line::Server(ServerLine {
            ts_ms,
            kind,
            text: rest,
            note: server_note(kind, rest),
        }));
    }
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::BadSeq);
    }
    let seq: u64 = seq.parse().map_err(|_| Malformed::BadSeq)?;
    // Status lines never carry a verdict (shared contract): text resembling one is the client's.
    let (detail, verdict) = if kind == "status" {
        (rest, None)
    } else {
        split_verdict(rest)
    };
    Ok(Line::Event(EventLine {
        ts_ms,
        seq,
        kind,
        detail,
        verdict,
    }))
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_header(h: &str) -> Header<'_> {
    if h == "proctor log" {
        return Header::Magic;
    }
    if let Some(rest) = h.strip_prefix("session: ") {
        let (id, started) = rest.split_once(" started ").unwrap_or((rest, ""));
        return Header::Session {
            id,
            started_ms: timefmt::parse_rfc3339_ms(started),
        };
    }
    if let Some(rest) = h.strip_prefix("host: ") {
        // The host name is the client's text and may itself contain " address: ": the server's
        // address field is the last one.
        if let Some((host, addr)) = rest.rsplit_once(" address: ") {
            return Header::Host { host, addr };
        }
    }
    Header::Other(h)
}

/// Splits the verdict the server appended off an event's detail. The server's verdict is the
/// last field, so the last ` verdict=` that is followed by a well-formed verdict up to the end
/// of the line wins; a forged one earlier in the client's text (or inside the reason) loses.
pub fn split_verdict(rest: &str) -> (&str, Option<Verdict<'_>>) {
    const MARK: &str = "verdict=";
    let mut end = rest.len();
    while let Some(pos) = rest[..end].rfind(MARK) {
        let at_field_start = pos == 0 || rest.as_bytes()[pos - 1] == b' ';
        if at_field_start && let Some(v) = parse_verdict(&rest[pos + MARK.len()..]) {
            let detail = rest[..pos].strip_suffix(' ').unwrap_or(&rest[..pos]);
            return (detail, Some(v));
        }
        end = pos;
    }
    (rest, None)
}

/// `ok`, `flagged` or `flagged why="..."`, exactly (nothing after it).
fn parse_verdict(s: &str) -> Option<Verdict<'_>> {
    match s {
        "ok" => return Some(Verdict::Ok),
        "flagged" => return Some(Verdict::Flagged { why: "".into() }),
        _ => {}
    }
    let quoted = s.strip_prefix("flagged why=\"")?.strip_suffix('"')?;
    Some(Verdict::Flagged {
        why: unescape_quoted(quoted)?,
    })
}

/// Undoes `\"` and `\\` inside a quoted value; an unescaped `"` means the value ended earlier,
/// so the candidate is not the server's field.
fn unescape_quoted(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains(['\\', '"']) {
        return Some(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

/// What a server line means (see `src/server/core.rs` for the texts).
fn server_note(kind: &str, text: &str) -> ServerNote {
    match kind {
        "server" => {
            if text.starts_with("connected from ") {
                ServerNote::Connected
            } else if let Some(rest) = text.strip_prefix("reconnected from ") {
                let gap_ms = rest
                    .split_once(" after a gap of ")
                    .and_then(|(_, g)| g.split_once(" s"))
                    .and_then(|(secs, _)| secs.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e10)
                    .map(|s| (s * 1000.0).round() as u64);
                ServerNote::Reconnected { gap_ms }
            } else if text.starts_with("client restarted") {
                ServerNote::Restarted
            } else if text.starts_with("client finished the session") {
                ServerNote::Finished
            } else if text == "session stopped" {
                ServerNote::SessionStopped
            } else if text.starts_with("policy reloaded from ") {
                ServerNote::PolicyReloaded
            } else {
                ServerNote::Other
            }
        }
        "warning" => {
            if let Some(reason) = text.strip_prefix("connection lost: ") {
                ServerNote::Lost {
                    reason: reason.to_string(),
                }
            } else if let Some((from, to)) = text
                .strip_prefix("events ")
                .and_then(|r| r.strip_suffix(" never arrived from this client"))
                .and_then(|r| r.split_once(" to "))
            {
                match (from.parse(), to.parse()) {
                    (Ok(from), Ok(to)) if from <= to => ServerNote::Missing { from, to },
                    _ => ServerNote::Other,
                }
            } else if text.starts_with("session stopped before this client said bye") {
                ServerNote::StoppedBeforeBye
            } else if text.starts_with("policy reload failed") {
                ServerNote::PolicyReloadFailed
            } else {
                ServerNote::Other
            }
        }
        _ => ServerNote::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Rng;

    const T: &str = "2026-11-26T14:09:43.707Z";

    /// An [`EventLine`] that owns its text, so tests can parse `format!` results.
    #[derive(Debug)]
    struct Owned {
        ts_ms: u64,
        seq: u64,
        kind: String,
        detail: String,
        verdict: Option<Verdict<'static>>,
    }

    fn event(line: &str) -> Owned {
        match parse_line(line) {
            Ok(Line::Event(e)) => Owned {
                ts_ms: e.ts_ms,
                seq: e.seq,
                kind: e.kind.to_string(),
                detail: e.detail.to_string(),
                verdict: e.verdict.map(|v| match v {
                    Verdict::Ok => Verdict::Ok,
                    Verdict::Flagged { why } => Verdict::Flagged {
                        why: Cow::Owned(why.into_owned()),
                    },
                }),
            },
            other => panic!("not an event: {other:?}"),
        }
    }

    fn note(line: &str) -> ServerNote {
        match parse_line(line) {
            Ok(Line::Server(s)) => s.note,
            other => panic!("not a server line: {other:?}"),
        }
    }

    #[test]
    fn event_lines_split_into_fields() {
        let e = event(&format!(
            "{T} seq=25 net new tcp 127.0.0.1:35500 -> 127.0.0.1:40405 flags=S"
        ));
        assert_eq!(timefmt::rfc3339_ms(e.ts_ms), T);
        assert_eq!(e.seq, 25);
        assert_eq!(e.kind, "net");
        assert_eq!(
            e.detail,
            "new tcp 127.0.0.1:35500 -> 127.0.0.1:40405 flags=S"
        );
        assert_eq!(e.verdict, None);
        let e = event(&format!("{T} seq=3 status"));
        assert_eq!((e.kind.as_str(), e.detail.as_str()), ("status", ""));
    }

    #[test]
    fn verdicts_are_split_off_and_the_last_well_formed_one_wins() {
        let e = event(&format!("{T} seq=1 net new tcp a -> b verdict=ok"));
        assert_eq!(e.detail, "new tcp a -> b");
        assert_eq!(e.verdict, Some(Verdict::Ok));
        let e = event(&format!(
            "{T} seq=2 mount X on /media/x verdict=flagged why=\"unknown device\""
        ));
        assert_eq!(e.detail, "X on /media/x");
        assert_eq!(
            e.verdict,
            Some(Verdict::Flagged {
                why: "unknown device".into()
            })
        );
        // A client forging a verdict in its own text: the server's field at the end wins.
        let e = event(&format!(
            "{T} seq=3 mount a verdict=ok b on /m verdict=flagged why=\"not allowed\""
        ));
        assert_eq!(e.detail, "a verdict=ok b on /m");
        assert!(matches!(e.verdict, Some(Verdict::Flagged { .. })));
        let e = event(&format!(
            "{T} seq=4 mount x verdict=flagged why=\"forged\" verdict=ok"
        ));
        assert_eq!(e.verdict, Some(Verdict::Ok));
        // The reason quotes client text that looks like a verdict: it is not the field.
        let e = event(&format!(
            "{T} seq=5 net new tcp a -> b sni=x verdict=flagged why=\"name x verdict=ok\""
        ));
        assert_eq!(e.detail, "new tcp a -> b sni=x");
        assert_eq!(
            e.verdict,
            Some(Verdict::Flagged {
                why: "name x verdict=ok".into()
            })
        );
        // Escaped quotes inside the reason.
        let e = event(&format!(
            "{T} seq=6 device plugged usb 1-1 verdict=flagged why=\"model \\\"X\\\" \\\\ y\""
        ));
        assert_eq!(
            e.verdict,
            Some(Verdict::Flagged {
                why: "model \"X\" \\ y".into()
            })
        );
        // Not a field: glued to other text, or with more after it.
        for rest in [
            "mount xverdict=ok",
            "mount x verdict=ok extra",
            "mount x verdict=flagged why=\"a\" b",
            "mount x verdict=maybe",
        ] {
            let e = event(&format!("{T} seq=7 {rest}"));
            assert_eq!(e.verdict, None, "{rest}");
            assert_eq!(Some(e.detail.as_str()), rest.strip_prefix("mount "));
        }
        // Status lines never carry one.
        let e = event(&format!("{T} seq=8 status worker restarted verdict=ok"));
        assert_eq!(e.verdict, None);
    }

    #[test]
    fn headers_are_recognised() {
        assert_eq!(parse_line("# proctor log"), Ok(Line::Header(Header::Magic)));
        assert_eq!(
            parse_line(&format!("# session: abcd started {T}")),
            Ok(Line::Header(Header::Session {
                id: "abcd",
                started_ms: timefmt::parse_rfc3339_ms(T)
            }))
        );
        assert_eq!(
            parse_line("# host: evil address: 1.2.3.4 address: 127.0.0.1"),
            Ok(Line::Header(Header::Host {
                host: "evil address: 1.2.3.4",
                addr: "127.0.0.1"
            }))
        );
        assert_eq!(
            parse_line("# key fingerprint: ab:cd"),
            Ok(Line::Header(Header::Other("key fingerprint: ab:cd")))
        );
    }

    #[test]
    fn server_lines_are_understood() {
        let l = |s: &str| format!("{T} seq=- {s}");
        assert_eq!(
            note(&l(
                "server connected from 127.0.0.1:57492, proctor 0.1.0, instance=6c8a"
            )),
            ServerNote::Connected
        );
        assert_eq!(
            note(&l(
                "server reconnected from 127.0.0.1:5 after a gap of 12.5 s, instance=aa"
            )),
            ServerNote::Reconnected {
                gap_ms: Some(12_500)
            }
        );
        assert_eq!(
            note(&l("server reconnected from 127.0.0.1:5, instance=aa")),
            ServerNote::Reconnected { gap_ms: None }
        );
        assert_eq!(
            note(&l(
                "server client restarted (new process) and reconnected from 1.2.3.4:5; its numbering starts again at 1, instance=bb"
            )),
            ServerNote::Restarted
        );
        assert_eq!(
            note(&l("warning connection lost: no data for 6.0 s")),
            ServerNote::Lost {
                reason: "no data for 6.0 s".into()
            }
        );
        assert_eq!(
            note(&l("warning events 12 to 15 never arrived from this client")),
            ServerNote::Missing { from: 12, to: 15 }
        );
        assert_eq!(
            note(&l("warning events 15 to 12 never arrived from this client")),
            ServerNote::Other
        );
        assert_eq!(
            note(&l("server client finished the session (last event 32)")),
            ServerNote::Finished
        );
        assert_eq!(
            note(&l("server session stopped")),
            ServerNote::SessionStopped
        );
        assert_eq!(
            note(&l("warning session stopped before this client said bye")),
            ServerNote::StoppedBeforeBye
        );
        assert_eq!(
            note(&l(
                "server policy reloaded from /etc/proctor/policy.toml: 3 destinations, 1 program"
            )),
            ServerNote::PolicyReloaded
        );
        assert_eq!(
            note(&l(
                "warning policy reload failed, the previous policy stays in force: line 3: x"
            )),
            ServerNote::PolicyReloadFailed
        );
        assert_eq!(note(&l("server something new")), ServerNote::Other);
    }

    #[test]
    fn malformed_lines_say_why() {
        assert_eq!(parse_line(""), Err(Malformed::Empty));
        assert_eq!(parse_line("   "), Err(Malformed::Empty));
        assert_eq!(parse_line("garbage"), Err(Malformed::BadTime));
        assert_eq!(parse_line("2026-11-26T14:09"), Err(Malformed::BadTime));
        assert_eq!(parse_line(T), Err(Malformed::BadSeq));
        assert_eq!(
            parse_line(&format!("{T} seq=x net a")),
            Err(Malformed::BadSeq)
        );
        assert_eq!(
            parse_line(&format!("{T} seq= net a")),
            Err(Malformed::BadSeq)
        );
        assert_eq!(
            parse_line(&format!("{T} seq=99999999999999999999999 net a")),
            Err(Malformed::BadSeq)
        );
        assert_eq!(parse_line(&format!("{T} seq=1")), Err(Malformed::BadKind));
        assert_eq!(
            parse_line(&format!("{T} seq=1 <b> x")),
            Err(Malformed::BadKind)
        );
    }

    #[test]
    fn no_input_panics() {
        let mut rng = Rng::new(0x5e55_1011);
        let alphabet: Vec<char> = "0123456789-:TZ.seq= -#\"\\verdictflagedwhy=ok\u{e9}\u{202e}\r"
            .chars()
            .collect();
        for _ in 0..20_000 {
            let len = rng.below(60);
            let mut s = String::from(if rng.below(2) == 0 { T } else { "" });
            for _ in 0..len {
                s.push(alphabet[rng.below(alphabet.len())]);
            }
            let _ = parse_line(&s);
        }
    }
}
