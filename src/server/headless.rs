//! `proctor server --headless`: starts a session at once, prints one line per note to stdout,
//! and on SIGINT/SIGTERM (or `--stop-after`) stops the session cleanly and exits.
//!
//! The lines are formatted and written by a printer thread, not the server loop, in one write
//! per burst of notes (see [`print_notes`]), so printing every event costs the loop a channel send.

use super::core::{Command, CoreConfig, Note, ServerCore};
use super::registry::ClientRecord;
use crate::error::Result;
use crate::timefmt::rfc3339_ms;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Formats a note as one line for a terminal or a pipe.
pub fn note_line(note: &Note) -> Option<String> {
    Some(match note {
        Note::SessionStarted {
            id,
            dir,
            started_ms,
        } => {
            format!(
                "session {id} started at {}; logs in {}",
                rfc3339_ms(*started_ms),
                dir.display()
            )
        }
        Note::SessionStopping { id } => {
            format!("session {id} stopping: waiting for clients' last events")
        }
        Note::SessionStopped { id, dir } => {
            format!("session {id} stopped; logs in {}", dir.display())
        }
        Note::ClientConnected {
            client,
            reconnect_gap_ms,
            restarted,
        } => match (restarted, reconnect_gap_ms) {
            (true, _) => format!("{} restarted and reconnected", client.id),
            (false, Some(g)) => format!(
                "{} reconnected after {:.1} s",
                client.id,
                *g as f64 / 1000.0
            ),
            _ => format!("{} connected", client.id),
        },
        Note::ClientLost { client, reason } => format!("{} LOST: {reason}", client.id),
        Note::ClientStopped { client } => format!("{} finished the session", client.id),
        Note::Event { .. } => {
            let mut b = LineBuffer::default();
            b.push(note);
            b.text.pop();
            b.text
        }
        Note::PolicyReloaded { path, summary } => {
            format!("policy reloaded from {}: {summary}", path.display())
        }
        Note::PolicyFailed { path, error } => format!(
            "warning: policy reload failed, the previous policy stays in force ({}): {error}",
            path.display()
        ),
        Note::Warning(w) => format!("warning: {w}"),
        Note::Rejected { peer, reason } => format!("rejected {peer}: {reason}"),
        Note::Exited | Note::Clients(_) => return None,
    })
}

/// Formats notes into one buffer for a burst. Event lines, the bulk, are written in place
/// without intermediate strings, and the client's `host (address)` text is formatted once per
/// batch of events (the notes of one batch share their record).
#[derive(Default)]
struct LineBuffer {
    text: String,
    /// The record the last event line named, and its `host (address) ` text.
    last_client: Option<(Arc<ClientRecord>, String)>,
}

impl LineBuffer {
    /// Appends a note's line and its newline (nothing for notes that print nothing).
    fn push(&mut self, note: &Note) {
        let out = &mut self.text;
        match note {
            Note::Event {
                client,
                seq,
                ts_ms,
                kind,
                detail,
            } => {
                let same = self
                    .last_client
                    .as_ref()
                    .is_some_and(|(c, _)| Arc::ptr_eq(c, client));
                if !same {
                    self.last_client = Some((client.clone(), format!("{} ", client.id)));
                }
                // Flagged events start with a word that stands out in a terminal and in grep.
                if crate::policy::verdict_of(detail).is_some_and(|v| v.is_flagged()) {
                    out.push_str("FLAGGED ");
                }
                if let Some((_, id)) = &self.last_client {
                    out.push_str(id);
                }
                crate::timefmt::push_rfc3339_ms(out, *ts_ms);
                out.push_str(" seq=");
                crate::server::storage::push_decimal(out, *seq);
                out.push(' ');
                out.push_str(kind.as_str());
                out.push(' ');
                out.push_str(detail);
                out.push('\n');
            }
            other => {
                if let Some(line) = note_line(other) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
    }
}

/// Notes waiting for the printer at most (see [`run`]).
const PRINT_QUEUE: usize = 256 * 1024;

/// Bytes gathered before they are written even if more notes are waiting.
const PRINT_CHUNK: usize = 64 * 1024;

/// Prints notes until the server loop drops its end of the channel: everything waiting is
/// formatted into one buffer and written (and flushed) at once, so a burst of events costs one
/// write, and a line is never held back once the burst is over.
fn print_notes(rx: Receiver<Note>) {
    let mut buf = LineBuffer::default();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(note) = next {
            buf.push(&note);
            if buf.text.len() >= PRINT_CHUNK {
                write_out(&mut buf.text);
            }
            next = rx.try_recv().ok();
        }
        write_out(&mut buf.text);
    }
}

fn write_out(buf: &mut String) {
    if buf.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(buf.as_bytes());
    let _ = out.flush();
    buf.clear();
}

/// Runs the headless server until a signal or the optional time limit.
pub fn run(cfg: CoreConfig, stop_after: Option<Duration>) -> Result<()> {
    let stop_flag = crate::sys::stop_on_signals();
    let fingerprint = cfg.key.fingerprint();
    let targets: Vec<String> = cfg
        .broadcasts
        .iter()
        .map(|b| format!("{b}:{}", cfg.client_port))
        .collect();
    let (port, targets_text) = (cfg.server_port, targets.join(", "));
    let policy = cfg
        .policy
        .as_ref()
        .map(|p| format!("policy {}: {}", p.path().display(), p.policy().summary()));
    // Bounded: when the terminal (or whatever reads stdout) is slower than the clients, the
    // loop waits for the printer instead of queueing every event in memory; clients keep their
    // events in their spools until the server catches up and acknowledges them.
    let (tx, rx) = std::sync::mpsc::sync_channel(PRINT_QUEUE);
    let sink = Box::new(move |note: Note| {
        if let Note::PolicyFailed { .. } = note
            && let Some(line) = note_line(&note)
        {
            // Also on stderr, where a service manager's journal or a terminal shows it.
            log::warn!("{}", line.strip_prefix("warning: ").unwrap_or(&line));
        }
        let _ = tx.send(note);
    });
    let signing = cfg.signer.as_ref().map(|s| s.public().fingerprint());
    let (core, handle) = ServerCore::bind(cfg, sink)?;
    println!(
        "proctor server listening on TCP port {port}, announcing to {targets_text}, key fingerprint {fingerprint}"
    );
    if let Some(p) = policy {
        println!("{p}");
    }
    if let Some(f) = signing {
        println!("stronger mode: announcements and handshakes signed with key {f}");
    }
    let printer = std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || print_notes(rx))
        .map_err(|e| crate::error::Error::io("thread", e))?;
    handle.send(Command::StartSession);
    let deadline = stop_after.map(|d| Instant::now() + d);
    let watcher = handle.clone();
    std::thread::Builder::new()
        .name("stop-watch".into())
        .spawn(move || {
            loop {
                let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                if stop_flag.load(Ordering::SeqCst) || timed_out {
                    watcher.send(Command::Shutdown);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .map_err(|e| crate::error::Error::io("thread", e))?;
    // The loop drops the sink (the channel's sender) when it returns; the printer then writes
    // what is left and ends.
    let result = core.run();
    let _ = printer.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::server::registry::Registry;
    use crate::server::storage::ClientId;

    fn record(host: &str, addr: &str) -> Arc<ClientRecord> {
        let id = ClientId {
            host: host.into(),
            addr: addr.parse().unwrap(),
        };
        let mut r = Registry::new();
        r.join(&id, [1; 16], 0);
        Arc::new(r.get(&id).cloned().unwrap())
    }

    fn event(client: &Arc<ClientRecord>, seq: u64, detail: &str) -> Note {
        Note::Event {
            client: client.clone(),
            seq,
            ts_ms: 1_795_000_000_123,
            kind: EventKind::Net,
            detail: detail.into(),
        }
    }

    #[test]
    fn event_lines_name_their_own_client_when_batches_alternate() {
        let (a, b) = (record("pc-a", "10.0.0.1"), record("pc-b", "10.0.0.2"));
        // A later batch of the same client comes with a new record (same text, new Arc).
        let a2 = Arc::new((*a).clone());
        let mut buf = LineBuffer::default();
        for n in [
            event(&a, 1, "x"),
            event(&a, 2, "y"),
            event(&b, 1, "z"),
            event(&a2, 3, "w"),
            Note::Warning("careful".into()),
        ] {
            buf.push(&n);
        }
        assert_eq!(
            buf.text,
            "pc-a (10.0.0.1) 2026-11-18T11:06:40.123Z seq=1 net x\n\
             pc-a (10.0.0.1) 2026-11-18T11:06:40.123Z seq=2 net y\n\
             pc-b (10.0.0.2) 2026-11-18T11:06:40.123Z seq=1 net z\n\
             pc-a (10.0.0.1) 2026-11-18T11:06:40.123Z seq=3 net w\n\
             warning: careful\n"
        );
        assert_eq!(
            note_line(&event(&b, 9, "q")).unwrap(),
            "pc-b (10.0.0.2) 2026-11-18T11:06:40.123Z seq=9 net q"
        );
    }
}
