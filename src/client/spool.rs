//! The client's on-disk spool: every event is written here before it is sent, and stays until
//! the server acknowledges it, so a killed or rebooted client resends what the server never
//! wrote. One append-only text file per client port; acknowledgements are appended too, and the
//! file is compacted to the unacknowledged tail when it grows.
//!
//! ```text
//! H proctor-spool-v1 <session hex> <server addr> <instance hex>
//! E <seq> <ts_ms> <kind> <detail (escaped, one line)>
//! A <seq>
//! ```
//! Writes go to the operating system once per loop round (they survive the process being
//! killed) and are synced to disk about once a second (they survive most power losses).

use crate::event::{Event, EventKind, escape};
use crate::protocol::SessionId;
use crate::protocol::message::{INSTANCE_LEN, instance_hex, parse_instance_hex};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const HEADER: &str = "proctor-spool-v1";
/// Acknowledgement records after which the file is rewritten with only the unacknowledged tail.
const COMPACT_AFTER: usize = 50_000;
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// What a spool file held when the client started: a session it was in, and the events the
/// server had not acknowledged.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The session the events belong to.
    pub session: SessionId,
    /// Its server's stream endpoint.
    pub server: SocketAddr,
    /// The client process run that numbered them (reused so the server continues its count).
    pub instance: [u8; INSTANCE_LEN],
    /// Unacknowledged events in order.
    pub events: VecDeque<(u64, Event)>,
    /// The next sequence number to use.
    pub next_seq: u64,
}

/// Parses a spool file's text; `None` if it has no valid header. Malformed lines are skipped.
pub fn parse(text: &str) -> Option<Recovered> {
    let mut lines = text.lines();
    let mut h = lines.next()?.split(' ');
    if h.next()? != "H" || h.next()? != HEADER {
        return None;
    }
    let session = SessionId::from_hex(h.next()?)?;
    let server: SocketAddr = h.next()?.parse().ok()?;
    let instance = parse_instance_hex(h.next()?)?;
    let mut events: VecDeque<(u64, Event)> = VecDeque::new();
    let mut acked = 0u64;
    let mut next_seq = 1;
    for line in lines {
        let mut f = line.splitn(5, ' ');
        match f.next() {
            Some("E") => {
                let parsed = (|| {
                    let seq: u64 = f.next()?.parse().ok()?;
                    let ts_ms: u64 = f.next()?.parse().ok()?;
                    let kind = EventKind::parse(f.next()?)?;
                    Some((
                        seq,
                        Event {
                            ts_ms,
                            kind,
                            detail: f.next().unwrap_or("").to_string(),
                        },
                    ))
                })();
                if let Some((seq, e)) = parsed
                    && seq >= next_seq
                {
                    next_seq = seq + 1;
                    events.push_back((seq, e));
                }
            }
            Some("A") => {
                if let Some(seq) = f.next().and_then(|s| s.parse::<u64>().ok()) {
                    acked = acked.max(seq);
                }
            }
            _ => {}
        }
    }
    events.retain(|(s, _)| *s > acked);
    Some(Recovered {
        session,
        server,
        instance,
        events,
        next_seq: next_seq.max(acked + 1),
    })
}

fn event_record(seq: u64, e: &Event) -> String {
    format!("E {seq} {} {} {}\n", e.ts_ms, e.kind, escape(&e.detail))
}

/// An open spool file.
pub struct Spool {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    header: String,
    acks_written: usize,
    last_sync: Instant,
    /// The last write error, reported once by the session as a status event.
    pub error: Option<String>,
}

impl Spool {
    /// The spool file for the client listening on `port` in `dir` (created if needed, mode 0700).
    pub fn path_for(dir: &Path, port: u16) -> PathBuf {
        dir.join(format!("client-{port}.spool"))
    }

    /// Reads what a previous run left, without opening for writing.
    pub fn recover(path: &Path) -> Option<Recovered> {
        parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Starts a spool for a session, holding `queue` (events carried over or recovered).
    pub fn begin(
        path: &Path,
        session: SessionId,
        server: SocketAddr,
        instance: &[u8; INSTANCE_LEN],
        queue: &VecDeque<(u64, Event)>,
    ) -> std::io::Result<Spool> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let header = format!(
            "H {HEADER} {} {server} {}\n",
            session.hex(),
            instance_hex(instance)
        );
        let mut s = Spool {
            path: path.to_path_buf(),
            file: OpenOptions::new().create(true).append(true).open(path)?,
            buf: Vec::new(),
            header,
            acks_written: 0,
            last_sync: Instant::now(),
            error: None,
        };
        s.rewrite(queue)?;
        Ok(s)
    }

    /// Replaces the file with the header and `queue` (atomically: temporary file + rename).
    fn rewrite(&mut self, queue: &VecDeque<(u64, Event)>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("spool.tmp");
        let mut text = self.header.clone();
        for (seq, e) in queue {
            text.push_str(&event_record(*seq, e));
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.buf.clear();
        self.acks_written = 0;
        Ok(())
    }

    /// Records an event (reaches the file at the next [`Spool::flush`]).
    pub fn record(&mut self, seq: u64, e: &Event) {
        self.buf.extend_from_slice(event_record(seq, e).as_bytes());
    }

    /// Records that everything up to `seq` is acknowledged; compacts when worthwhile.
    pub fn ack(&mut self, seq: u64, queue: &VecDeque<(u64, Event)>) {
        self.buf.extend_from_slice(format!("A {seq}\n").as_bytes());
        self.acks_written += 1;
        if self.acks_written >= COMPACT_AFTER {
            self.compact(queue);
        }
    }

    /// Rewrites the file to hold only `queue` (after acknowledgements, or after the oldest
    /// events were dropped because the spool was full), so the file stays bounded too.
    pub fn compact(&mut self, queue: &VecDeque<(u64, Event)>) {
        let _ = self.flush();
        if let Err(e) = self.rewrite(queue) {
            self.error = Some(format!("cannot compact spool {}: {e}", self.path.display()));
        }
    }

    /// Hands buffered records to the operating system; syncs to disk about once a second.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            if let Err(e) = self.file.write_all(&self.buf) {
                self.error = Some(format!("cannot write spool {}: {e}", self.path.display()));
                return Err(e);
            }
            self.buf.clear();
        }
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.last_sync = Instant::now();
            let _ = self.file.sync_data();
        }
        Ok(())
    }

    /// The session ended with nothing left to deliver: remove the file.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(d: &str) -> Event {
        Event {
            ts_ms: 7,
            kind: EventKind::Net,
            detail: d.into(),
        }
    }

    #[test]
    fn survives_a_restart_with_only_unacknowledged_events() {
        let dir = std::env::temp_dir().join(format!("proctor-spool-test-{}", std::process::id()));
        let path = Spool::path_for(&dir, 1);
        let sid = SessionId([4; 16]);
        let server: SocketAddr = "127.0.0.1:45000".parse().unwrap();
        let mut q = VecDeque::new();
        let mut s = Spool::begin(&path, sid, server, &[9; 16], &q).unwrap();
        for i in 1..=5u64 {
            s.record(i, &ev(&format!("new udp a -> b:{i}")));
            q.push_back((i, ev(&format!("new udp a -> b:{i}"))));
        }
        q.retain(|(i, _)| *i > 3);
        s.ack(3, &q);
        s.record(6, &ev("multi word detail\nwith newline"));
        s.flush().unwrap();
        drop(s); // as if killed
        let r = Spool::recover(&path).unwrap();
        assert_eq!(r.session, sid);
        assert_eq!(r.server, server);
        assert_eq!(r.instance, [9; 16]);
        let seqs: Vec<u64> = r.events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![4, 5, 6]);
        assert_eq!(r.next_seq, 7);
        assert_eq!(r.events[2].1.detail, "multi word detail\\x0awith newline");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_is_not_a_spool_and_bad_lines_are_skipped() {
        assert!(parse("").is_none());
        assert!(parse("hello\n").is_none());
        let sid = SessionId([1; 16]).hex();
        let text = format!(
            "H {HEADER} {sid} 127.0.0.1:1 {}\nE x y\nE 2 5 net ok\nZ\nA zz\n",
            "00".repeat(16)
        );
        let r = parse(&text).unwrap();
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.next_seq, 3);
    }
}
