//! `proctor server --headless`: starts a session at once, prints one line per note to stdout,
//! and on SIGINT/SIGTERM (or `--stop-after`) stops the session cleanly and exits.

use super::core::{Command, CoreConfig, Note, ServerCore};
use crate::error::Result;
use crate::timefmt::rfc3339_ms;
use std::io::Write;
use std::sync::atomic::Ordering;
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
        Note::Event {
            client,
            seq,
            ts_ms,
            kind,
            detail,
        } => {
            // Flagged events start with a word that stands out in a terminal and in grep.
            let mark = if crate::policy::verdict_of(detail).is_some_and(|v| v.is_flagged()) {
                "FLAGGED "
            } else {
                ""
            };
            format!(
                "{mark}{} {} seq={seq} {kind} {detail}",
                client.id,
                rfc3339_ms(*ts_ms)
            )
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
    let sink = Box::new(|note: Note| {
        if let Some(line) = note_line(&note) {
            if matches!(note, Note::PolicyFailed { .. }) {
                // Also on stderr, where a service manager's journal or a terminal shows it.
                log::warn!("{}", line.strip_prefix("warning: ").unwrap_or(&line));
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
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
    core.run()
}
