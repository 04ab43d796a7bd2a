//! The summary model of a session: per machine, the counts, the flagged events, the
//! connection gaps and missing-event ranges, built line by line from [`super::parse`] records
//! (so a big file is never held in memory), then put in report order. No I/O here.

use super::parse::{EventLine, Header, Line, Malformed, ServerLine, ServerNote, Verdict};
use std::collections::BTreeMap;

/// Most flagged events kept per machine for the timeline; the rest are counted, and still
/// marked in the embedded full log.
pub const FLAGGED_KEEP: usize = 1000;
/// Most skipped-line examples kept per machine.
pub const SKIPPED_EXAMPLES: usize = 5;

/// One flagged event.
#[derive(Debug, Clone, PartialEq)]
pub struct Flagged {
    /// Line number in the file (1-based, header lines included).
    pub line_no: u64,
    /// When (the lab PC's clock), ms since the epoch.
    pub ts_ms: u64,
    /// The kind word.
    pub kind: String,
    /// The detail without the verdict.
    pub detail: String,
    /// The policy's reason.
    pub why: String,
}

/// How a connection gap ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapEnd {
    /// The same client process reconnected.
    Back,
    /// A new client process connected (the client was restarted or the PC rebooted).
    Restarted,
    /// The client had not come back when the session (or its log) ended.
    NotBack,
}

/// A time the server had no connection to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// Line of the server's `connection lost` warning, if it wrote one.
    pub lost_line: Option<u64>,
    /// When the connection was lost (server clock), ms since the epoch.
    pub lost_ms: u64,
    /// Line of the server's reconnection note, if the client came back.
    pub back_line: Option<u64>,
    /// When the client came back (or the session ended, for [`GapEnd::NotBack`]).
    pub back_ms: Option<u64>,
    /// How it ended.
    pub end: GapEnd,
    /// The server's reason for declaring the connection lost.
    pub reason: String,
}

impl Gap {
    /// Length of the gap, ms (up to the session end if the client never came back).
    pub fn duration_ms(&self) -> Option<u64> {
        self.back_ms.map(|b| b.saturating_sub(self.lost_ms))
    }
}

/// A range of events the server never received.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    /// Line of the server's warning.
    pub line_no: u64,
    /// When the server noticed, ms since the epoch.
    pub ts_ms: u64,
    /// First missing sequence number.
    pub from: u64,
    /// Last missing sequence number.
    pub to: u64,
}

impl Missing {
    /// How many events are missing.
    pub fn count(&self) -> u64 {
        self.to - self.from + 1
    }
}

/// A policy change the server wrote into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    /// When (server clock), ms since the epoch.
    pub ts_ms: u64,
    /// Whether the new policy was loaded (else it was refused and the old one stayed).
    pub loaded: bool,
    /// The server's text.
    pub text: String,
}

/// A skipped line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Line number in the file.
    pub line_no: u64,
    /// Why it was skipped.
    pub reason: Malformed,
}

/// Everything the report says about one machine (one log file).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Machine {
    /// The log file's name in the session directory.
    pub file_name: String,
    /// Host name from the header (or the file name when the header lacks it).
    pub host: String,
    /// Address from the header (empty if unknown).
    pub addr: String,
    /// Session id from the header.
    pub session_id: Option<String>,
    /// Session start from the header.
    pub session_started_ms: Option<u64>,
    /// Events by kind word.
    pub kinds: BTreeMap<String, u64>,
    /// All event lines.
    pub events: u64,
    /// Events a policy could judge (every kind but `status`) that carry a verdict.
    pub judged: u64,
    /// Events a policy could judge that carry none.
    pub unjudged: u64,
    /// Number of flagged events.
    pub flagged_count: u64,
    /// The first [`FLAGGED_KEEP`] flagged events, in file order.
    pub flagged: Vec<Flagged>,
    /// Connection gaps, in file order.
    pub gaps: Vec<Gap>,
    /// Ranges of events that never arrived.
    pub missing: Vec<Missing>,
    /// Times a new client process joined after the first.
    pub restarts: u64,
    /// Whether the client said goodbye at the end.
    pub said_bye: bool,
    /// Whether the session was stopped while the client was connected without a goodbye.
    pub stopped_before_bye: bool,
    /// When the server wrote `session stopped` in this file.
    pub stopped_ms: Option<u64>,
    /// Policy reloads (and failed reloads) the server noted.
    pub policy_changes: Vec<PolicyChange>,
    /// Skipped (malformed or cut-off) lines.
    pub skipped: u64,
    /// The first few skipped lines.
    pub skipped_examples: Vec<Skipped>,
    /// Lines in the file.
    pub lines: u64,
    /// Bytes in the file.
    pub bytes: u64,
    /// Earliest and latest time stamp on any line.
    pub first_ms: Option<u64>,
    /// See `first_ms`.
    pub last_ms: Option<u64>,
    /// Line numbers the report links to (flagged events, gaps, missing events), ascending.
    pub anchors: Vec<u64>,
    /// Line numbers of flagged events (all of them), ascending, for highlighting in the log.
    pub flagged_lines: Vec<u64>,
}

/// Builds a [`Machine`] from the lines of its file, one at a time.
#[derive(Debug)]
pub struct MachineBuilder {
    m: Machine,
    open_gap: Option<Gap>,
}

impl MachineBuilder {
    /// A builder for the file `file_name`.
    pub fn new(file_name: &str) -> Self {
        MachineBuilder {
            m: Machine {
                file_name: file_name.to_string(),
                ..Machine::default()
            },
            open_gap: None,
        }
    }

    /// Takes in line `line_no` (1-based) of `len` bytes; `complete` is false for a last line
    /// without its newline (cut off), which is skipped.
    pub fn feed(&mut self, line_no: u64, text: &str, len: u64, complete: bool) {
        self.m.lines = self.m.lines.max(line_no);
        self.m.bytes += len;
        let parsed = if complete {
            super::parse::parse_line(text)
        } else {
            Err(Malformed::Truncated)
        };
        match parsed {
            Ok(Line::Header(h)) => self.header(h),
            Ok(Line::Event(e)) => self.event(line_no, e),
            Ok(Line::Server(s)) => self.server(line_no, s),
            Err(reason) => {
                self.m.skipped += 1;
                if self.m.skipped_examples.len() < SKIPPED_EXAMPLES {
                    self.m.skipped_examples.push(Skipped { line_no, reason });
                }
            }
        }
    }

    fn saw_time(&mut self, ts: u64) {
        self.m.first_ms = Some(self.m.first_ms.map_or(ts, |f| f.min(ts)));
        self.m.last_ms = Some(self.m.last_ms.map_or(ts, |l| l.max(ts)));
    }

    fn anchor(&mut self, line_no: u64) {
        if self.m.anchors.last() != Some(&line_no) {
            self.m.anchors.push(line_no);
        }
    }

    fn header(&mut self, h: Header<'_>) {
        match h {
            Header::Session { id, started_ms } if self.m.session_id.is_none() => {
                self.m.session_id = Some(id.to_string());
                self.m.session_started_ms = started_ms;
            }
            Header::Host { host, addr } if self.m.host.is_empty() => {
                self.m.host = host.to_string();
                self.m.addr = addr.to_string();
            }
            _ => {}
        }
    }

    fn event(&mut self, line_no: u64, e: EventLine<'_>) {
        self.saw_time(e.ts_ms);
        self.m.events += 1;
        match self.m.kinds.get_mut(e.kind) {
            Some(n) => *n += 1,
            None => {
                self.m.kinds.insert(e.kind.to_string(), 1);
            }
        }
        if e.kind == "status" {
            return;
        }
        match e.verdict {
            None => self.m.unjudged += 1,
            Some(Verdict::Ok) => self.m.judged += 1,
            Some(Verdict::Flagged { why }) => {
                self.m.judged += 1;
                self.m.flagged_count += 1;
                self.m.flagged_lines.push(line_no);
                if self.m.flagged.len() < FLAGGED_KEEP {
                    self.anchor(line_no);
                    self.m.flagged.push(Flagged {
                        line_no,
                        ts_ms: e.ts_ms,
                        kind: e.kind.to_string(),
                        detail: e.detail.to_string(),
                        why: why.into_owned(),
                    });
                }
            }
        }
    }

    fn server(&mut self, line_no: u64, s: ServerLine<'_>) {
        self.saw_time(s.ts_ms);
        let t = s.ts_ms;
        match s.note {
            ServerNote::Lost { reason } => {
                if self.open_gap.is_none() {
                    self.anchor(line_no);
                    self.open_gap = Some(Gap {
                        lost_line: Some(line_no),
                        lost_ms: t,
                        back_line: None,
                        back_ms: None,
                        end: GapEnd::NotBack,
                        reason,
                    });
                }
            }
            ServerNote::Reconnected { gap_ms } => match self.open_gap.take() {
                Some(g) => self.close_gap(g, line_no, t, GapEnd::Back),
                // No `lost` line (the server itself was down): the server measured the gap
                // from the last line it had written.
                None => {
                    if let Some(gap) = gap_ms.filter(|g| *g > 0) {
                        let g = Gap {
                            lost_line: None,
                            lost_ms: t.saturating_sub(gap),
                            back_line: None,
                            back_ms: None,
                            end: GapEnd::Back,
                            reason: "not recorded (the server was not running); measured by the server from the last line before".into(),
                        };
                        self.close_gap(g, line_no, t, GapEnd::Back);
                    }
                }
            },
            ServerNote::Restarted => {
                self.m.restarts += 1;
                if let Some(g) = self.open_gap.take() {
                    self.close_gap(g, line_no, t, GapEnd::Restarted);
                }
            }
            ServerNote::Connected => {
                if let Some(g) = self.open_gap.take() {
                    self.close_gap(g, line_no, t, GapEnd::Back);
                }
            }
            ServerNote::Missing { from, to } => {
                self.anchor(line_no);
                self.m.missing.push(Missing {
                    line_no,
                    ts_ms: t,
                    from,
                    to,
                });
            }
            ServerNote::Finished => self.m.said_bye = true,
            ServerNote::StoppedBeforeBye => self.m.stopped_before_bye = true,
            ServerNote::SessionStopped => {
                self.m.stopped_ms = Some(t);
                if let Some(mut g) = self.open_gap.take() {
                    g.back_ms = Some(t);
                    self.m.gaps.push(g);
                }
            }
            ServerNote::PolicyReloaded | ServerNote::PolicyReloadFailed => {
                self.m.policy_changes.push(PolicyChange {
                    ts_ms: t,
                    loaded: s.note == ServerNote::PolicyReloaded,
                    text: s.text.to_string(),
                });
            }
            ServerNote::Other => {}
        }
    }

    fn close_gap(&mut self, mut g: Gap, line_no: u64, t: u64, end: GapEnd) {
        self.anchor(line_no);
        g.back_line = Some(line_no);
        g.back_ms = Some(t.max(g.lost_ms));
        g.end = end;
        self.m.gaps.push(g);
    }

    /// The machine, with a gap still open at the end of the file left open-ended
    /// ([`GapEnd::NotBack`] without `back_ms`; [`Session::new`] ends it at the session end).
    pub fn finish(mut self) -> Machine {
        if let Some(g) = self.open_gap.take() {
            self.m.gaps.push(g);
        }
        if self.m.host.is_empty() {
            let stem = self
                .m
                .file_name
                .strip_suffix(".log")
                .unwrap_or(&self.m.file_name);
            self.m.host = stem.to_string();
        }
        self.m
    }
}

/// Whether the session ran with a policy, as far as the files show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyCoverage {
    /// No event carries a verdict: nothing was judged.
    None,
    /// Every event a policy judges carries a verdict.
    Full,
    /// Some do, some do not (policy added by a server restart, or verdict-like client text).
    Partial,
}

/// The whole session, machines in report order.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session directory's name.
    pub dir_name: String,
    /// Session id (from the files' headers).
    pub id: Option<String>,
    /// Session start (from the headers, else the earliest line).
    pub started_ms: Option<u64>,
    /// Session end (the server's `session stopped`, else the latest line).
    pub ended_ms: Option<u64>,
    /// Whether the server wrote `session stopped` (else the session may still be running or
    /// the server died).
    pub stopped: bool,
    /// Machines, most flagged events first, then by name.
    pub machines: Vec<Machine>,
    /// Files in the directory that were not read, with the reason.
    pub skipped_files: Vec<(String, String)>,
    /// Policy reloads during the session (each is written to every connected client's file;
    /// listed once), in time order.
    pub policy_changes: Vec<PolicyChange>,
}

impl Session {
    /// Orders the machines (flagged count descending, then host, address, file name) and ends
    /// open gaps at the session end.
    pub fn new(
        dir_name: &str,
        mut machines: Vec<Machine>,
        skipped_files: Vec<(String, String)>,
    ) -> Self {
        machines.sort_by(|a, b| {
            b.flagged_count
                .cmp(&a.flagged_count)
                .then_with(|| a.host.cmp(&b.host))
                .then_with(|| a.addr.cmp(&b.addr))
                .then_with(|| a.file_name.cmp(&b.file_name))
        });
        let id = machines.iter().find_map(|m| m.session_id.clone());
        let started_ms = machines
            .iter()
            .filter_map(|m| m.session_started_ms)
            .min()
            .or_else(|| machines.iter().filter_map(|m| m.first_ms).min());
        let stopped_at = machines.iter().filter_map(|m| m.stopped_ms).max();
        let ended_ms = stopped_at.or_else(|| machines.iter().filter_map(|m| m.last_ms).max());
        for m in &mut machines {
            for g in &mut m.gaps {
                if g.back_ms.is_none() {
                    g.back_ms = ended_ms.map(|e| e.max(g.lost_ms));
                }
            }
        }
        let mut policy_changes: Vec<PolicyChange> = machines
            .iter()
            .flat_map(|m| m.policy_changes.iter().cloned())
            .collect();
        policy_changes.sort_by(|a, b| (a.ts_ms, &a.text).cmp(&(b.ts_ms, &b.text)));
        policy_changes.dedup();
        Session {
            policy_changes,
            dir_name: dir_name.to_string(),
            id,
            started_ms,
            ended_ms,
            stopped: stopped_at.is_some(),
            machines,
            skipped_files,
        }
    }

    /// Whether verdicts are present.
    pub fn policy(&self) -> PolicyCoverage {
        let judged: u64 = self.machines.iter().map(|m| m.judged).sum();
        let unjudged: u64 = self.machines.iter().map(|m| m.unjudged).sum();
        match (judged, unjudged) {
            (0, _) => PolicyCoverage::None,
            (_, 0) => PolicyCoverage::Full,
            _ => PolicyCoverage::Partial,
        }
    }

    /// Flagged events in the whole session.
    pub fn flagged_total(&self) -> u64 {
        self.machines.iter().map(|m| m.flagged_count).sum()
    }

    /// Skipped lines in the whole session.
    pub fn skipped_total(&self) -> u64 {
        self.machines.iter().map(|m| m.skipped).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, lines: &[&str]) -> Machine {
        let mut b = MachineBuilder::new(name);
        for (i, l) in lines.iter().enumerate() {
            b.feed(i as u64 + 1, l, l.len() as u64 + 1, true);
        }
        b.finish()
    }

    const HEAD: [&str; 3] = [
        "# proctor log",
        "# session: abcd started 2026-01-01T10:00:00.000Z",
        "# host: pc-1 address: 10.0.0.1",
    ];

    fn with_head(rest: &[&'static str]) -> Vec<&'static str> {
        HEAD.iter().copied().chain(rest.iter().copied()).collect()
    }

    #[test]
    fn counts_kinds_verdicts_and_keeps_flagged_events_in_order() {
        let m = machine(
            "pc-1_10.0.0.1.log",
            &with_head(&[
                "2026-01-01T10:00:00.100Z seq=- server connected from 10.0.0.1:5, proctor 0.1.0, instance=aa",
                "2026-01-01T10:00:00.200Z seq=1 status monitoring started",
                "2026-01-01T10:00:01.000Z seq=2 net new tcp a -> b verdict=ok",
                "2026-01-01T10:00:02.000Z seq=3 mount S on /media/s verdict=flagged why=\"unknown device\"",
                "2026-01-01T10:00:03.000Z seq=4 net new tcp a -> c sni=chat.example verdict=flagged why=\"name not allowed\"",
                "2026-01-01T10:00:04.000Z seq=5 device plugged usb 1-2 class=phone verdict=ok",
                "2026-01-01T10:00:05.000Z seq=6 unmount S on /media/s",
            ]),
        );
        assert_eq!((m.host.as_str(), m.addr.as_str()), ("pc-1", "10.0.0.1"));
        assert_eq!(m.session_id.as_deref(), Some("abcd"));
        assert_eq!(m.events, 6);
        let kinds: Vec<(&str, u64)> = m.kinds.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            kinds,
            [
                ("device", 1),
                ("mount", 1),
                ("net", 2),
                ("status", 1),
                ("unmount", 1)
            ]
        );
        assert_eq!((m.judged, m.unjudged, m.flagged_count), (4, 1, 2));
        assert_eq!(m.flagged.len(), 2);
        assert_eq!(m.flagged[0].line_no, 7);
        assert_eq!(m.flagged[0].kind, "mount");
        assert_eq!(m.flagged[0].detail, "S on /media/s");
        assert_eq!(m.flagged[0].why, "unknown device");
        assert_eq!(m.flagged[1].why, "name not allowed");
        assert_eq!(m.anchors, [7, 8]);
        assert_eq!(m.flagged_lines, [7, 8]);
        assert_eq!(m.lines, 10);
        assert_eq!(m.skipped, 0);
    }

    #[test]
    fn gaps_run_from_lost_to_back_and_open_ones_end_with_the_session() {
        let a = machine(
            "a.log",
            &with_head(&[
                "2026-01-01T10:00:00.000Z seq=- server connected from 10.0.0.1:5, proctor 0.1.0, instance=aa",
                "2026-01-01T10:00:10.000Z seq=- warning connection lost: no data for 6.0 s",
                "2026-01-01T10:00:22.500Z seq=- server reconnected from 10.0.0.1:6 after a gap of 12.5 s, instance=aa",
                "2026-01-01T10:00:23.000Z seq=- warning events 5 to 7 never arrived from this client",
                "2026-01-01T10:01:00.000Z seq=- warning connection lost: connection closed without goodbye",
                "2026-01-01T10:01:30.000Z seq=- server client restarted (new process) and reconnected from 10.0.0.1:7; its numbering starts again at 1, instance=bb",
                "2026-01-01T10:02:00.000Z seq=- warning connection lost: no data for 6.0 s",
            ]),
        );
        assert_eq!(a.gaps.len(), 3);
        assert_eq!(a.gaps[0].duration_ms(), Some(12_500));
        assert_eq!(a.gaps[0].end, GapEnd::Back);
        assert_eq!(
            (a.gaps[0].lost_line, a.gaps[0].back_line),
            (Some(5), Some(6))
        );
        assert_eq!(a.gaps[0].reason, "no data for 6.0 s");
        assert_eq!(a.gaps[1].end, GapEnd::Restarted);
        assert_eq!(a.gaps[1].duration_ms(), Some(30_000));
        assert_eq!(a.restarts, 1);
        assert_eq!(a.gaps[2].end, GapEnd::NotBack);
        assert_eq!(a.gaps[2].back_ms, None);
        assert_eq!(a.missing.len(), 1);
        assert_eq!(a.missing[0].count(), 3);
        assert_eq!(a.anchors, [5, 6, 7, 8, 9, 10]);

        // Another machine's file carries the server's `session stopped`: the open gap ends there.
        let b = machine(
            "b.log",
            &[
                "2026-01-01T10:00:00.000Z seq=- server connected from 10.0.0.2:5, proctor 0.1.0, instance=cc",
                "2026-01-01T10:03:00.000Z seq=- server client finished the session (last event 0)",
                "2026-01-01T10:03:00.000Z seq=- server session stopped",
            ],
        );
        assert!(b.said_bye);
        let s = Session::new("d", vec![a, b], vec![]);
        assert!(s.stopped);
        let a = s.machines.iter().find(|m| m.file_name == "a.log").unwrap();
        assert_eq!(a.gaps[2].duration_ms(), Some(60_000));
        assert_eq!(a.gaps[2].end, GapEnd::NotBack);
    }

    #[test]
    fn policy_reloads_are_listed_once_for_the_session() {
        let lines = [
            "2026-01-01T10:00:05.000Z seq=- server policy reloaded from p.toml: 2 destinations",
            "2026-01-01T10:00:09.000Z seq=- warning policy reload failed, the previous policy stays in force: line 4: bad",
        ];
        let a = machine("a.log", &lines);
        let b = machine("b.log", &lines[..1]);
        assert_eq!(a.policy_changes.len(), 2);
        let s = Session::new("d", vec![a, b], vec![]);
        assert_eq!(s.policy_changes.len(), 2);
        assert!(s.policy_changes[0].loaded);
        assert!(!s.policy_changes[1].loaded);
        assert!(s.policy_changes[1].text.ends_with("line 4: bad"));
    }

    #[test]
    fn a_gap_while_the_server_was_down_comes_from_the_servers_measure() {
        let m = machine(
            "a.log",
            &[
                "2026-01-01T10:00:00.000Z seq=- server connected from 10.0.0.1:5, proctor 0.1.0, instance=aa",
                "2026-01-01T10:00:20.000Z seq=- server reconnected from 10.0.0.1:6 after a gap of 8.0 s, instance=aa",
                "2026-01-01T10:00:30.000Z seq=- server reconnected from 10.0.0.1:7, instance=aa",
            ],
        );
        assert_eq!(m.gaps.len(), 1);
        assert_eq!(m.gaps[0].lost_ms + 8_000, m.gaps[0].back_ms.unwrap());
        assert_eq!(m.gaps[0].lost_line, None);
    }

    #[test]
    fn skipped_lines_are_counted_with_examples_and_a_cut_off_line() {
        let mut b = MachineBuilder::new("x.log");
        b.feed(1, "# proctor log", 14, true);
        for i in 2..10 {
            b.feed(i, "garbage", 8, true);
        }
        b.feed(
            10,
            "2026-01-01T10:00:00.000Z seq=1 net new tcp a -> b",
            48,
            false,
        );
        let m = b.finish();
        assert_eq!(m.skipped, 9);
        assert_eq!(m.events, 0);
        assert_eq!(m.skipped_examples.len(), SKIPPED_EXAMPLES);
        assert_eq!(m.skipped_examples[0].line_no, 2);
        assert_eq!(m.host, "x", "no host header: named after the file");
        assert_eq!(m.lines, 10);
    }

    #[test]
    fn the_flagged_timeline_is_capped_but_everything_is_counted() {
        let mut b = MachineBuilder::new("x.log");
        let n = FLAGGED_KEEP as u64 + 10;
        for i in 1..=n {
            b.feed(
                i,
                &format!("2026-01-01T10:00:00.000Z seq={i} net x verdict=flagged why=\"w\""),
                10,
                true,
            );
        }
        let m = b.finish();
        assert_eq!(m.flagged_count, n);
        assert_eq!(m.flagged.len(), FLAGGED_KEEP);
        assert_eq!(m.flagged_lines.len() as u64, n);
    }

    #[test]
    fn machines_sort_by_flagged_then_name_and_policy_coverage_is_reported() {
        let mk = |host: &str, flagged: u64, judged: u64, unjudged: u64| Machine {
            host: host.into(),
            flagged_count: flagged,
            judged,
            unjudged,
            ..Machine::default()
        };
        let s = Session::new(
            "d",
            vec![
                mk("b", 1, 5, 0),
                mk("c", 0, 5, 0),
                mk("a", 1, 5, 0),
                mk("z", 7, 5, 0),
            ],
            vec![],
        );
        let order: Vec<&str> = s.machines.iter().map(|m| m.host.as_str()).collect();
        assert_eq!(order, ["z", "a", "b", "c"]);
        assert_eq!(s.policy(), PolicyCoverage::Full);
        assert_eq!(s.flagged_total(), 9);
        let s = Session::new("d", vec![mk("a", 0, 0, 4)], vec![]);
        assert_eq!(s.policy(), PolicyCoverage::None);
        let s = Session::new("d", vec![mk("a", 0, 0, 4), mk("b", 0, 3, 0)], vec![]);
        assert_eq!(s.policy(), PolicyCoverage::Partial);
    }
}
