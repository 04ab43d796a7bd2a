//! Exports every event the server has written to a log file into the pipelines a lab admin
//! already runs: JSON Lines ([`jsonl`], `--jsonl FILE` or `-` for stdout) and RFC 5424 syslog
//! over TCP with octet-counted framing ([`syslog`], `--syslog HOST:PORT`).
//!
//! The core calls [`Exporter::event`] for each event right after its batch reached the client's
//! log file (so an export never shows an event the evidence file lacks), then
//! [`Exporter::server_lines`] for the lines the server added itself (`seq=-`: connected, lost,
//! finished, session stopped, gaps) and [`Exporter::end_batch`] once per loop round. Both kinds
//! carry a `source` (`client` or `server`) telling them apart; server lines have no sequence
//! number. Nothing here blocks the poll loop for long: the
//! JSONL file is written through a buffer flushed per batch, and syslog messages go into a bounded
//! queue that a sender thread drains; what does not fit is counted and reported as a warning at
//! most once a minute.

pub mod jsonl;
pub mod syslog;

use crate::error::{Error, Result};
use crate::server::storage::ClientId;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often problems of an output (write errors, dropped messages) are reported at most.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Which outputs to run besides the log files (from `--jsonl` / `--syslog`).
#[derive(Debug, Clone, Default)]
pub struct ExportConfig {
    /// JSON Lines destination: a file (appended to), or `-` for standard output.
    pub jsonl: Option<PathBuf>,
    /// Syslog collector as `HOST:PORT` (TCP, RFC 5424 messages, RFC 6587 octet counting).
    pub syslog: Option<String>,
}

/// One event as the outputs see it: what the log file line says, plus whose file it is.
/// A line the server added itself (`seq=-`) has no `seq`.
#[derive(Debug, Clone, Copy)]
pub struct ExportEvent<'a> {
    /// Session id in hex.
    pub session: &'a str,
    /// The lab PC's host name as it reported it, already escaped for the log files.
    pub host: &'a str,
    /// The lab PC's address as the server saw it.
    pub addr: IpAddr,
    /// The client's sequence number; `None` for the server's own lines.
    pub seq: Option<u64>,
    /// Event time on the lab PC (for the server's own lines, on the server), ms since the epoch.
    pub ts_ms: u64,
    /// What sort of event, as the log file's word (`net`, `mount`...; `server` or `warning` for
    /// the server's own lines).
    pub kind: &'a str,
    /// The detail text, already escaped (no control characters).
    pub detail: &'a str,
}

/// The running outputs. Empty (and free) when neither option is given.
pub struct Exporter {
    jsonl: Option<jsonl::JsonlWriter>,
    syslog: Option<syslog::SyslogForwarder>,
}

impl Exporter {
    /// Opens the JSONL destination and starts the syslog sender thread, as configured.
    /// A JSONL file that cannot be opened is an error here, before any session starts.
    pub fn start(cfg: &ExportConfig) -> Result<Exporter> {
        let jsonl = match &cfg.jsonl {
            Some(p) => Some(
                jsonl::JsonlWriter::open(p)
                    .map_err(|e| Error::io(format!("cannot open --jsonl {}", p.display()), e))?,
            ),
            None => None,
        };
        let syslog = match &cfg.syslog {
            Some(t) => Some(
                syslog::SyslogForwarder::spawn(t.clone(), syslog::QUEUE_CAPACITY)
                    .map_err(|e| Error::io("cannot start the syslog sender thread", e))?,
            ),
            None => None,
        };
        Ok(Exporter { jsonl, syslog })
    }

    /// True when at least one output is configured (the core skips the export work otherwise).
    pub fn is_active(&self) -> bool {
        self.jsonl.is_some() || self.syslog.is_some()
    }

    /// Hands one committed event to every output (buffered or queued; never blocks for long).
    pub fn event(&mut self, ev: &ExportEvent<'_>) {
        if let Some(j) = self.jsonl.as_mut() {
            j.push(ev);
        }
        if let Some(s) = self.syslog.as_mut() {
            s.push(ev);
        }
    }

    /// Hands the server's own lines of a session (`(client, line)` as written to that client's
    /// file, see [`crate::server::storage::LogStore::take_server_lines`]) to every output.
    pub fn server_lines(&mut self, session: &str, lines: &[(ClientId, String)]) {
        if !self.is_active() {
            return;
        }
        for (id, line) in lines {
            let Some((ts_ms, kind, detail)) = crate::server::storage::parse_server_line(line)
            else {
                continue;
            };
            self.event(&ExportEvent {
                session,
                host: &id.host,
                addr: id.addr,
                seq: None,
                ts_ms,
                kind,
                detail,
            });
        }
    }

    /// Ends a batch: flushes the JSONL output. Returns the warnings that are due (at most one
    /// per output per [`REPORT_EVERY`]).
    pub fn end_batch(&mut self, now: Instant) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(j) = self.jsonl.as_mut() {
            warnings.extend(j.flush(now));
        }
        if let Some(s) = self.syslog.as_mut() {
            warnings.extend(s.report(now));
        }
        warnings
    }

    /// Flushes and stops the outputs, giving the syslog sender a few seconds to deliver what is
    /// queued. Returns a final warning if anything was lost.
    pub fn close(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(mut j) = self.jsonl.take() {
            warnings.extend(j.finish());
        }
        if let Some(s) = self.syslog.take() {
            warnings.extend(s.close(Duration::from_secs(5)));
        }
        warnings
    }
}

/// Rate limit for an output's problem reports: at most one report per [`REPORT_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    last: Option<Instant>,
}

impl RateLimit {
    /// True (and the clock restarts) when a report may go out now.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < REPORT_EVERY)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_limited_to_one_a_minute() {
        let mut r = RateLimit::default();
        let t = Instant::now();
        assert!(r.allow(t));
        assert!(!r.allow(t + Duration::from_secs(59)));
        assert!(r.allow(t + Duration::from_secs(60)));
        assert!(!r.allow(t + Duration::from_secs(61)));
    }
}
