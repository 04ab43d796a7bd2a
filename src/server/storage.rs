//! The evidence files: one append-only log per client per session, written in batches and
//! flushed to the operating system before the client's events are acknowledged, so a file can
//! be followed with `tail -f` during the session and an acknowledged event is never lost when
//! the server process dies.
//!
//! Lines are `<RFC 3339 time> seq=<n> <kind> <detail>`; lines the server itself adds (connect,
//! lost, gaps) have `seq=-` and kind `server` or `warning`.

use crate::event::EventKind;
use crate::fxhash::FxHashMap;
pub use crate::protocol::message::instance_hex;
use crate::protocol::message::{INSTANCE_LEN, parse_instance_hex};
use crate::timefmt;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Identity of a client within a session: host name (as it reported it, escaped) and address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    /// Escaped host name reported by the client.
    pub host: String,
    /// The client's address as seen by the server.
    pub addr: IpAddr,
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.host, self.addr)
    }
}

/// What goes in every file's header besides the client's identity.
#[derive(Debug, Clone)]
pub struct HeaderInfo {
    /// Session id in hex.
    pub session: String,
    /// Session start, milliseconds since the epoch.
    pub started_ms: u64,
    /// Fingerprint of the shared key.
    pub key_fingerprint: String,
}

/// Turns a host name into a safe file-name component: ASCII letters, digits, `.`, `-`, `_`
/// kept, everything else `_`, at most 64 characters, never empty or a dot name.
pub fn file_stem(host: &str) -> String {
    let mut s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        s = format!("host{}", s.len());
    }
    s
}

/// Formats an event line.
pub fn event_line(ts_ms: u64, seq: u64, kind: EventKind, detail: &str) -> String {
    let mut line = String::with_capacity(40 + detail.len());
    timefmt::push_rfc3339_ms(&mut line, ts_ms);
    line.push_str(" seq=");
    push_decimal(&mut line, seq);
    line.push(' ');
    line.push_str(kind.as_str());
    line.push(' ');
    line.push_str(detail);
    line.push('\n');
    line
}

/// Appends `n` in decimal (what `{n}` prints, without the formatting machinery: this runs for
/// every event line).
pub fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only.
    out.push_str(std::str::from_utf8(&digits[i..]).unwrap_or("0"));
}

/// Formats a line the server adds on its own (`kind` is `server` or `warning`).
pub fn server_line(now_ms: u64, kind: &str, text: &str) -> String {
    format!("{} seq=- {} {}\n", timefmt::rfc3339_ms(now_ms), kind, text)
}

/// Splits a line written by [`server_line`] into its time (ms), kind and text; `None` for any
/// other line (event lines, headers).
pub fn parse_server_line(line: &str) -> Option<(u64, &str, &str)> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let (ts, rest) = line.split_once(' ')?;
    let rest = rest.strip_prefix("seq=- ")?;
    let (kind, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((timefmt::parse_rfc3339_ms(ts)?, kind, text))
}

/// What a log file written by an earlier server process says about its client: the process run
/// (instance) it last heard from and the last sequence number written for that run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Instance id from the last `instance=` server line.
    pub instance: [u8; INSTANCE_LEN],
    /// Highest event sequence number written since that instance appeared.
    pub written_seq: u64,
    /// Time of the last line, ms since the epoch (the client is treated as lost since then).
    pub last_ms: u64,
}

/// Reads a log file back (server restart): finds the current instance and its last sequence.
pub fn recover_file(text: &str) -> Option<Recovered> {
    let mut instance: Option<[u8; INSTANCE_LEN]> = None;
    let mut written_seq = 0;
    let mut last_ms = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.splitn(4, ' ');
        let (Some(ts), Some(seq), Some(kind)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if let Some(ms) = timefmt::parse_rfc3339_ms(ts) {
            last_ms = ms;
        }
        let rest = f.next().unwrap_or("");
        if seq == "seq=-" && kind == "server" {
            let inst = rest
                .split("instance=")
                .nth(1)
                .and_then(|h| parse_instance_hex(h.get(..INSTANCE_LEN * 2)?));
            if let Some(inst) = inst
                && instance != Some(inst)
            {
                instance = Some(inst);
                written_seq = 0;
            }
        } else if let Some(n) = seq.strip_prefix("seq=").and_then(|n| n.parse::<u64>().ok()) {
            written_seq = written_seq.max(n);
        }
    }
    Some(Recovered {
        instance: instance?,
        written_seq,
        last_ms,
    })
}

struct LogFile {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
}

impl LogFile {
    /// Writes the queued lines with one write; on failure cuts the file back (see
    /// [`LogStore::flush`]).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let before = self.file.seek(std::io::SeekFrom::End(0))?;
        let result = self
            .file
            .write_all(&self.pending)
            .and_then(|_| self.file.flush());
        // The buffer keeps its capacity for the next batch.
        self.pending.clear();
        if result.is_err() {
            let _ = self.file.set_len(before);
        }
        result
    }
}

/// All open log files of one session.
pub struct LogStore {
    dir: PathBuf,
    header: HeaderInfo,
    /// Looked up for every event: keyed with the fast [`crate::fxhash`] (its keys belong to
    /// clients that proved the key).
    files: FxHashMap<ClientId, LogFile>,
    /// The server's own lines appended since [`LogStore::take_server_lines`], for the exports.
    server_lines: Vec<(ClientId, String)>,
}

impl LogStore {
    /// A store writing into the session directory `dir`.
    pub fn new(dir: &Path, header: HeaderInfo) -> Self {
        LogStore {
            dir: dir.to_path_buf(),
            header,
            files: FxHashMap::default(),
            server_lines: Vec::new(),
        }
    }

    /// The session directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file name of a client's log in this session.
    fn path_of(&self, id: &ClientId) -> PathBuf {
        self.dir
            .join(format!("{}_{}.log", file_stem(&id.host), id.addr))
    }

    /// For a client this store has not opened yet: what an earlier server process wrote about it
    /// in this session's file (after a server restart), if anything.
    pub fn recover(&self, id: &ClientId) -> Option<Recovered> {
        if self.files.contains_key(id) {
            return None;
        }
        recover_file(&std::fs::read_to_string(self.path_of(id)).ok()?)
    }

    /// Path of the client's file (created with its header on first use).
    pub fn open(&mut self, id: &ClientId) -> std::io::Result<PathBuf> {
        if let Some(f) = self.files.get(id) {
            return Ok(f.path.clone());
        }
        let path = self.path_of(id);
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() == 0 {
            let h = &self.header;
            let text = format!(
                "# proctor log\n# session: {} started {}\n# host: {} address: {}\n# key fingerprint: {}\n# proctor version: {}\n",
                h.session,
                timefmt::rfc3339_ms(h.started_ms),
                id.host,
                id.addr,
                h.key_fingerprint,
                env!("CARGO_PKG_VERSION")
            );
            file.write_all(text.as_bytes())?;
        }
        self.files.insert(
            id.clone(),
            LogFile {
                path: path.clone(),
                file,
                pending: Vec::new(),
            },
        );
        Ok(path)
    }

    /// Queues a line for the client's file; it reaches the file at the next [`LogStore::flush`].
    pub fn append(&mut self, id: &ClientId, line: &str) -> std::io::Result<()> {
        // One lookup for a file already open (every event but a client's first).
        match self.files.get_mut(id) {
            Some(f) => f.pending.extend_from_slice(line.as_bytes()),
            None => {
                self.open(id)?;
                if let Some(f) = self.files.get_mut(id) {
                    f.pending.extend_from_slice(line.as_bytes());
                }
            }
        }
        if parse_server_line(line).is_some() {
            self.server_lines.push((id.clone(), line.to_string()));
        }
        Ok(())
    }

    /// The server's own lines (`seq=-`) appended since the last call, in order, with whose file
    /// they went to (the core hands them to the exports once per loop round).
    pub fn take_server_lines(&mut self) -> Vec<(ClientId, String)> {
        std::mem::take(&mut self.server_lines)
    }

    /// Writes one client's queued lines. On failure (e.g. disk full) the file is cut back to
    /// its previous length, so it never holds half a batch, and the caller must not acknowledge.
    pub fn flush(&mut self, id: &ClientId) -> std::io::Result<()> {
        match self.files.get_mut(id) {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }

    /// Discards a client's queued lines without writing them (after a failed flush the caller
    /// re-queues what it still wants).
    pub fn discard(&mut self, id: &ClientId) {
        if let Some(f) = self.files.get_mut(id) {
            f.pending.clear();
        }
    }

    /// Writes every client's queued lines, returning the clients whose write failed.
    pub fn flush_all(&mut self) -> Vec<(ClientId, std::io::Error)> {
        self.files
            .iter_mut()
            .filter_map(|(id, f)| f.flush().err().map(|e| (id.clone(), e)))
            .collect()
    }

    /// Flushes and forces every file to stable storage (end of session).
    pub fn sync_all(&mut self) {
        let _ = self.flush_all();
        for f in self.files.values() {
            let _ = f.file.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines_parse_back_and_are_kept_for_the_exports() {
        let line = server_line(1_500, "warning", "connection lost: x y");
        assert_eq!(
            parse_server_line(&line),
            Some((1_500, "warning", "connection lost: x y"))
        );
        let ev = event_line(1_500, 7, EventKind::Net, "new tcp a -> b");
        assert_eq!(parse_server_line(&ev), None);
        assert_eq!(parse_server_line("# session: x"), None);
        assert_eq!(parse_server_line("garbage seq=- server x"), None);
        assert_eq!(parse_server_line(""), None);
        let dir = std::env::temp_dir().join(format!("proctor-store-tap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = LogStore::new(
            &dir,
            HeaderInfo {
                session: "00".into(),
                started_ms: 0,
                key_fingerprint: "f".into(),
            },
        );
        let id = ClientId {
            host: "pc1".into(),
            addr: "127.0.0.1".parse().unwrap(),
        };
        store
            .append(&id, &server_line(1, "server", "connected"))
            .unwrap();
        store.append(&id, &ev).unwrap();
        store
            .append(&id, &server_line(2, "warning", "lost"))
            .unwrap();
        let taken = store.take_server_lines();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[1], (id.clone(), server_line(2, "warning", "lost")));
        assert!(store.take_server_lines().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recovery_finds_the_current_instance_and_its_last_seq() {
        let a = instance_hex(&[0xaa; 16]);
        let b = instance_hex(&[0xbb; 16]);
        let text = format!(
            "# proctor log\n\
             2026-01-01T00:00:00.000Z seq=- server connected from 1.2.3.4:5, proctor 0.1.0, instance={a}\n\
             2026-01-01T00:00:00.100Z seq=1 net x\n\
             2026-01-01T00:00:00.200Z seq=2 net y\n\
             2026-01-01T00:00:01.000Z seq=- warning connection lost\n\
             2026-01-01T00:00:02.000Z seq=- server client restarted, instance={b}\n\
             2026-01-01T00:00:02.500Z seq=1 status z\n"
        );
        let r = recover_file(&text).unwrap();
        assert_eq!(r.instance, [0xbb; 16]);
        assert_eq!(r.written_seq, 1);
        assert_eq!(timefmt::rfc3339_ms(r.last_ms), "2026-01-01T00:00:02.500Z");
        assert!(recover_file("# only a header\n").is_none());
        assert!(recover_file("garbage\nmore garbage seq=- server instance=zz\n").is_none());
    }

    #[test]
    fn decimals_match_the_formatter() {
        for n in [0, 7, 10, 99, 100, 12_345, u64::MAX / 3, u64::MAX] {
            let mut s = String::from("seq=");
            push_decimal(&mut s, n);
            assert_eq!(s, format!("seq={n}"));
        }
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("pc-01.lab"), "pc-01.lab");
        assert_eq!(file_stem("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(file_stem(".."), "host2");
        assert_eq!(file_stem(""), "host0");
        assert_eq!(file_stem(&"x".repeat(300)).len(), 64);
        assert_eq!(file_stem("a b\\x1b"), "a_b_x1b");
    }

    #[test]
    fn lines_reach_the_file_only_on_flush_with_header_once() {
        let dir = std::env::temp_dir().join(format!("proctor-storage-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let h = HeaderInfo {
            session: "abcd".into(),
            started_ms: 0,
            key_fingerprint: "ff".into(),
        };
        let id = ClientId {
            host: "pc1".into(),
            addr: "127.0.0.1".parse().unwrap(),
        };
        let mut s = LogStore::new(&dir, h.clone());
        s.append(&id, &event_line(1000, 1, EventKind::Net, "new udp a -> b"))
            .unwrap();
        let path = s.open(&id).unwrap();
        assert!(!std::fs::read_to_string(&path).unwrap().contains("seq=1"));
        s.flush(&id).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# proctor log\n# session: abcd"));
        assert!(text.ends_with("1970-01-01T00:00:01.000Z seq=1 net new udp a -> b\n"));
        // A second store on the same file (server restarted) appends without a second header.
        let mut s2 = LogStore::new(&dir, h);
        s2.append(&id, &server_line(0, "server", "again")).unwrap();
        s2.flush(&id).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("# proctor log").count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
