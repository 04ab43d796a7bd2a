//! `--syslog HOST:PORT`: every event as an RFC 5424 syslog message, sent over TCP with
//! octet-counted framing (RFC 6587, `LEN SP MSG`), to a collector such as rsyslog (`imtcp`),
//! syslog-ng, Fluent Bit or Vector.
//!
//! A message looks like
//! `<134>1 2026-11-26T13:08:50.325Z pc1 proctor - net [proctor@32473 session="979a…" seq="28" address="10.0.0.5" host="pc1" source="client"] new udp …`:
//!
//! - PRI: facility local0 (16); severity warning (4) for the server's `warning` lines and for an
//!   event the policy flagged (`--policy`), notice (5) for mount, unmount and device, info (6)
//!   otherwise.
//! - VERSION 1; TIMESTAMP the event time on the lab PC (RFC 3339 UTC, ms), `-` if out of range.
//! - HOSTNAME the lab PC's (escaped) host name if it is 1 to 255 printable ASCII characters,
//!   otherwise its address; APP-NAME `proctor`; PROCID `-`; MSGID the event kind.
//! - STRUCTURED-DATA one element `proctor@32473` (32473 is the enterprise number RFC 5612 reserves
//!   for examples and documentation) with `session`, `seq`, `address`, `host` and `source`
//!   (`client` for the lab PC's events, `server` for the lines the server adds, whose `seq` is
//!   `-` as in the files); with `--policy`, also `verdict` (`ok` or `flagged`) for events that
//!   carry one (never for the server's lines). `"`, `\` and `]` in values are escaped with a
//!   backslash (RFC 5424 section 6.3.3).
//! - MSG the event's detail as in the log file; UTF-8 with a BOM if it is not plain ASCII.
//!
//! Sending never blocks the server's loop: [`SyslogForwarder::push`] puts the framed message in a
//! bounded queue (dropping and counting it if the queue is full), and a thread named
//! `syslog-sender` connects, writes, and reconnects with exponential backoff (0.25 s to 30 s)
//! when the collector goes away. A message partly written when the connection broke is sent again
//! whole on the next connection. Plain TCP syslog has no acknowledgements, so a message the kernel
//! had accepted just before the collector vanished can still be lost; the log files are the
//! evidence, the export is a copy.

use super::{ExportEvent, RateLimit};
use crate::timefmt::rfc3339_ms;
use std::io::Write;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most messages waiting for the sender thread; beyond it new ones are dropped and counted.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Syslog facility local0.
pub const FACILITY: u8 = 16;
/// The SD-ID of proctor's structured data element.
pub const SD_ID: &str = "proctor@32473";

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes gathered from the queue before they are written in one go.
const BATCH_BYTES: usize = 64 * 1024;

/// The syslog severity of an event kind (the log file's word).
pub fn severity(kind: &str) -> u8 {
    match kind {
        "warning" => 4,
        "mount" | "unmount" | "device" => 5,
        _ => 6,
    }
}

/// True for a valid RFC 5424 header field: 1 to `max` printable US-ASCII characters (33..=126).
fn header_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b))
}

/// The HOSTNAME field: the host name if it is a valid field, otherwise the address, otherwise `-`.
pub fn hostname_field(host: &str, addr: IpAddr) -> String {
    if header_ok(host, 255) {
        return host.to_string();
    }
    let a = addr.to_string();
    if header_ok(&a, 255) { a } else { "-".into() }
}

/// Escapes a structured-data parameter value: `"`, `\` and `]` get a backslash.
pub fn escape_sd_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Formats one event as an RFC 5424 message (without framing).
pub fn format(ev: &ExportEvent<'_>) -> String {
    // Only the lab PC's events carry verdicts; a server line's text is never read as one.
    let verdict = ev.seq.and_then(|_| crate::policy::verdict_of(ev.detail));
    let flagged = verdict.as_ref().is_some_and(|v| v.is_flagged());
    let pri = FACILITY * 8 + if flagged { 4 } else { severity(ev.kind) };
    let verdict_param = match verdict {
        Some(v) if v.is_flagged() => " verdict=\"flagged\"",
        Some(_) => " verdict=\"ok\"",
        None => "",
    };
    let ts = rfc3339_ms(ev.ts_ms);
    // Beyond year 9999 the time has more than four year digits, which RFC 5424 does not allow.
    let ts = if ts.len() == 24 { ts } else { "-".into() };
    let bom = if ev.detail.is_ascii() { "" } else { "\u{feff}" };
    format!(
        "<{pri}>1 {ts} {} proctor - {} [{SD_ID} session=\"{}\" seq=\"{}\" address=\"{}\" host=\"{}\" source=\"{}\"{verdict_param}] {bom}{}",
        hostname_field(ev.host, ev.addr),
        msgid(ev.kind),
        escape_sd_value(ev.session),
        ev.seq.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        ev.addr,
        escape_sd_value(ev.host),
        if ev.seq.is_some() { "client" } else { "server" },
        ev.detail
    )
}

/// The MSGID field: the kind if it is a valid one (1 to 32 printable ASCII), otherwise `-`.
fn msgid(kind: &str) -> &str {
    if header_ok(kind, 32) { kind } else { "-" }
}

/// Octet-counted framing (RFC 6587 section 3.4.1): the message's length in bytes, a space, the
/// message.
pub fn frame(msg: &str) -> Vec<u8> {
    let mut v = format!("{} ", msg.len()).into_bytes();
    v.extend_from_slice(msg.as_bytes());
    v
}

/// Checks a `--syslog` value: `HOST:PORT` (IPv6 addresses in brackets), port 1 to 65535.
pub fn parse_target(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not HOST:PORT"))?;
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if !host_ok || (host.contains(':') && !bracketed) {
        return Err(format!(
            "'{s}': '{host}' is not a host name or address (write IPv6 addresses in brackets)"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!("'{s}': '{port}' is not a port (1-65535)")),
    }
}

/// What the sender thread and the server's loop share.
#[derive(Default)]
struct Shared {
    dropped: AtomicU64,
    sent: AtomicU64,
    closing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, e: String) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e);
        }
    }
}

/// The queue to the sender thread, and the bookkeeping for reports.
pub struct SyslogForwarder {
    target: String,
    tx: Option<SyncSender<Vec<u8>>>,
    shared: Arc<Shared>,
    done: Receiver<()>,
    queued: u64,
    reported_drops: u64,
    limit: RateLimit,
}

impl SyslogForwarder {
    /// Starts the sender thread for `target` (`HOST:PORT`, resolved by the thread, so a slow DNS
    /// never holds up the server) with a queue of `capacity` messages.
    pub fn spawn(target: String, capacity: usize) -> std::io::Result<SyslogForwarder> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let (t, s) = (target.clone(), shared.clone());
        std::thread::Builder::new()
            .name("syslog-sender".into())
            .spawn(move || {
                sender(&t, &rx, &s);
                let _ = done_tx.send(());
            })?;
        Ok(SyslogForwarder {
            target,
            tx: Some(tx),
            shared,
            done,
            queued: 0,
            reported_drops: 0,
            limit: RateLimit::default(),
        })
    }

    /// Queues one event; if the queue is full it is dropped and counted.
    pub fn push(&mut self, ev: &ExportEvent<'_>) {
        let Some(tx) = self.tx.as_ref() else {
            return;
        };
        match tx.try_send(frame(&format(ev))) {
            Ok(()) => self.queued += 1,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Messages dropped so far (queue full, or given up at shutdown).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// A warning when messages were dropped or the collector could not be reached since the last
    /// report, at most once per [`super::REPORT_EVERY`].
    pub fn report(&mut self, now: Instant) -> Option<String> {
        let dropped = self.dropped();
        let has_error = self
            .shared
            .last_error
            .lock()
            .map(|g| g.is_some())
            .unwrap_or(false);
        if (dropped == self.reported_drops && !has_error) || !self.limit.allow(now) {
            return None;
        }
        let err = self
            .shared
            .last_error
            .lock()
            .ok()
            .and_then(|mut g| g.take());
        let new = dropped - self.reported_drops;
        self.reported_drops = dropped;
        let mut text = format!("syslog collector {}: ", self.target);
        if let Some(e) = err {
            text.push_str(&format!("{e}; retrying; "));
        }
        text.push_str(&format!(
            "{new} event(s) dropped since the last report ({dropped} in all; the log files are complete)"
        ));
        Some(text)
    }

    /// Closes the queue and waits up to `grace` for the thread to deliver what is queued.
    /// Returns a warning if events were dropped or could not be delivered in time.
    pub fn close(mut self, grace: Duration) -> Option<String> {
        self.tx = None;
        let finished = match self.done.recv_timeout(grace) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        // A thread still trying to connect gives up now.
        self.shared.closing.store(true, Ordering::SeqCst);
        let finished = finished
            || matches!(
                self.done.recv_timeout(Duration::from_millis(500)),
                Ok(()) | Err(RecvTimeoutError::Disconnected)
            );
        let sent = self.shared.sent.load(Ordering::SeqCst);
        let dropped = self.dropped();
        if finished && dropped == 0 {
            return None;
        }
        let unsent = self.queued.saturating_sub(sent);
        Some(format!(
            "syslog collector {}: {dropped} event(s) dropped and {unsent} not delivered at shutdown (the log files are complete)",
            self.target
        ))
    }
}

impl Drop for SyslogForwarder {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
    }
}

fn connect(target: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address found");
    for addr in target.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Writes `batch` (whole frames, their ends in `ends`). On error, drops the frames that were
/// written completely and keeps the rest, starting with the frame that was cut, for the next
/// connection.
fn write_batch(
    stream: &mut TcpStream,
    batch: &mut Vec<u8>,
    ends: &mut Vec<usize>,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut off = 0;
    let result = loop {
        if off == batch.len() {
            break Ok(());
        }
        match stream.write(&batch[off..]) {
            Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let done = ends.iter().take_while(|&&e| e <= off).count();
    let cut = if done == 0 { 0 } else { ends[done - 1] };
    shared.sent.fetch_add(done as u64, Ordering::SeqCst);
    batch.drain(..cut);
    ends.drain(..done);
    for e in ends.iter_mut() {
        *e -= cut;
    }
    result
}

/// The sender thread: gather queued frames into a batch, (re)connect, write; until the queue is
/// closed and empty, or closing is requested while the collector is unreachable.
fn sender(target: &str, rx: &Receiver<Vec<u8>>, shared: &Shared) {
    let mut stream: Option<TcpStream> = None;
    let mut batch: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    let mut backoff = BACKOFF_MIN;
    let mut open = true;
    loop {
        // Gather: wait for the first frame only when nothing is pending.
        while open && batch.len() < BATCH_BYTES {
            let next = if batch.is_empty() {
                rx.recv().map_err(|_| TryRecvError::Disconnected)
            } else {
                rx.try_recv()
            };
            match next {
                Ok(f) => {
                    batch.extend_from_slice(&f);
                    ends.push(batch.len());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if batch.is_empty() {
            return;
        }
        if stream.is_none() {
            match connect(target) {
                Ok(s) => {
                    stream = Some(s);
                    backoff = BACKOFF_MIN;
                }
                Err(e) => {
                    shared.error(format!("cannot connect: {e}"));
                    if !sleep_unless_closing(backoff, shared) {
                        let left = ends.len() as u64 + rx.try_iter().count() as u64;
                        shared.dropped.fetch_add(left, Ordering::SeqCst);
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        if let Some(s) = stream.as_mut()
            && let Err(e) = write_batch(s, &mut batch, &mut ends, shared)
        {
            shared.error(format!("connection lost: {e}"));
            stream = None;
        }
    }
}

/// Sleeps for `d` in short steps; false as soon as closing is requested.
fn sleep_unless_closing(d: Duration, shared: &Shared) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shared.closing.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !shared.closing.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use std::io::Read;
    use std::net::TcpListener;

    fn ev<'a>(host: &'a str, kind: EventKind, detail: &'a str) -> ExportEvent<'a> {
        ExportEvent {
            session: "00ff",
            host,
            addr: "10.0.0.5".parse().unwrap(),
            seq: Some(28),
            ts_ms: 1_000,
            kind: kind.as_str(),
            detail,
        }
    }

    #[test]
    fn header_fields_follow_rfc_5424() {
        let m = format(&ev("pc1", EventKind::Net, "new udp a -> b"));
        assert_eq!(
            m,
            "<134>1 1970-01-01T00:00:01.000Z pc1 proctor - net [proctor@32473 session=\"00ff\" seq=\"28\" address=\"10.0.0.5\" host=\"pc1\" source=\"client\"] new udp a -> b"
        );
        // Mounts are notices: 16 * 8 + 5.
        assert!(format(&ev("pc1", EventKind::Mount, "x")).starts_with("<133>1 "));
        assert!(format(&ev("pc1", EventKind::Unmount, "x")).contains(" proctor - unmount ["));
        // Non-ASCII text is UTF-8 with a BOM.
        assert!(format(&ev("pc1", EventKind::Status, "café")).ends_with("] \u{feff}café"));
        // A time beyond year 9999 cannot be written in RFC 5424: NILVALUE.
        let mut e = ev("pc1", EventKind::Net, "x");
        e.ts_ms = u64::MAX;
        assert!(format(&e).starts_with("<134>1 - pc1 proctor"));
        // The server's own lines: seq "-", source "server"; its warnings are warnings.
        let mut s = ev("pc1", EventKind::Net, "connection lost: timeout");
        (s.seq, s.kind) = (None, "warning");
        assert_eq!(
            format(&s),
            "<132>1 1970-01-01T00:00:01.000Z pc1 proctor - warning [proctor@32473 session=\"00ff\" seq=\"-\" address=\"10.0.0.5\" host=\"pc1\" source=\"server\"] connection lost: timeout"
        );
    }

    #[test]
    fn flagged_events_are_warnings_with_a_verdict_parameter() {
        let m = format(&ev(
            "pc1",
            EventKind::Net,
            "new udp a -> b verdict=flagged why=\"x\"",
        ));
        assert!(m.starts_with("<132>1 "), "{m}");
        assert!(
            m.contains(" host=\"pc1\" source=\"client\" verdict=\"flagged\"] new udp"),
            "{m}"
        );
        let m = format(&ev("pc1", EventKind::Mount, "t on /x verdict=ok"));
        assert!(
            m.starts_with("<133>1 ") && m.contains(" verdict=\"ok\"]"),
            "{m}"
        );
    }

    #[test]
    fn hostname_falls_back_to_the_address() {
        let a: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(hostname_field("lab-pc05.example", a), "lab-pc05.example");
        assert_eq!(hostname_field("pc 5", a), "10.0.0.5");
        assert_eq!(hostname_field("pcé", a), "10.0.0.5");
        assert_eq!(hostname_field("", a), "10.0.0.5");
        assert_eq!(hostname_field(&"x".repeat(256), a), "10.0.0.5");
        assert_eq!(hostname_field(&"x".repeat(255), a), "x".repeat(255));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(hostname_field("a\\x1bb c", v6), "fe80::1");
    }

    #[test]
    fn structured_data_values_are_escaped() {
        assert_eq!(escape_sd_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        let m = format(&ev("x\"]", EventKind::Net, "d"));
        assert!(m.contains(r#" x"] proctor"#), "{m}");
        assert!(m.contains(r#"host="x\"\]" source="client"]"#), "{m}");
    }

    #[test]
    fn frames_are_octet_counted() {
        assert_eq!(frame("abc"), b"3 abc");
        assert_eq!(frame("é"), "2 é".as_bytes());
    }

    #[test]
    fn targets_are_checked() {
        assert!(parse_target("127.0.0.1:514").is_ok());
        assert!(parse_target("logs.example.org:6514").is_ok());
        assert!(parse_target("[::1]:514").is_ok());
        assert!(parse_target("127.0.0.1").is_err());
        assert!(parse_target("host:0").is_err());
        assert!(parse_target("host:99999").is_err());
        assert!(parse_target(":514").is_err());
        assert!(parse_target("a b:514").is_err());
        assert!(parse_target("::1:514").is_err());
    }

    /// Reads octet-counted frames from `r` until `n` arrived.
    fn read_frames(r: &mut impl Read, n: usize) -> Vec<String> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        while out.len() < n {
            let k = r.read(&mut chunk).unwrap();
            assert!(k > 0, "connection closed after {} frames", out.len());
            buf.extend_from_slice(&chunk[..k]);
            while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                if buf.len() < sp + 1 + len {
                    break;
                }
                out.push(String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap());
                buf.drain(..sp + 1 + len);
            }
        }
        out
    }

    #[test]
    fn forwards_frames_and_reconnects_after_the_collector_restarts() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap().to_string();
        let mut f = SyslogForwarder::spawn(target, 16).unwrap();
        for d in ["one", "two", "three"] {
            f.push(&ev("pc1", EventKind::Net, d));
        }
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let got = read_frames(&mut c, 3);
        assert!(
            got[0].ends_with("] one") && got[2].ends_with("] three"),
            "{got:?}"
        );
        drop(c);
        // Events pushed after the collector went away arrive on a new connection.
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut c = loop {
            f.push(&ev("pc1", EventKind::Net, "again"));
            if let Ok((c, _)) = l.accept() {
                break c;
            }
            assert!(Instant::now() < deadline, "no reconnection");
            std::thread::sleep(Duration::from_millis(50));
        };
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(read_frames(&mut c, 1)[0].ends_with("] again"));
        assert!(
            f.report(Instant::now())
                .is_some_and(|w| w.contains("connection lost") || w.contains("cannot connect"))
        );
        drop(c);
        drop(l);
        let _ = f.close(Duration::from_secs(1));
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_close_never_hangs() {
        // Nothing listens on this port: the thread keeps retrying while the queue fills.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap().to_string();
        drop(l);
        let mut f = SyslogForwarder::spawn(target, 4).unwrap();
        // The thread holds at most the queue plus one batch (64 KiB: under 66 of these).
        let detail = "x".repeat(1000);
        for _ in 0..200 {
            f.push(&ev("pc1", EventKind::Net, &detail));
        }
        assert!(f.dropped() >= 130, "dropped {}", f.dropped());
        let w = f.report(Instant::now()).expect("a report is due");
        assert!(w.contains("dropped"), "{w}");
        assert!(f.report(Instant::now()).is_none(), "one report a minute");
        let t = Instant::now();
        let w = f
            .close(Duration::from_millis(300))
            .expect("loss reported at close");
        assert!(w.contains("dropped"), "{w}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
