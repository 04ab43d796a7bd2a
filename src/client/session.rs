//! One monitoring session on the lab PC: runs the workers, numbers their events, streams them
//! to the server, keeps every unacknowledged event queued across reconnects, and on stop
//! collects the workers' last events and says goodbye.

use super::announcements::AnnounceSocket;
use super::link::{Identity, Link};
use super::workers::{Worker, WorkerSpec};
use crate::crypto::Key;
use crate::event::{Event, EventKind};
use crate::poll::{self, PollSet};
use crate::protocol::SessionId;
use crate::protocol::announce::AnnounceKind;
use crate::protocol::message::Message;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Silence from the server after which the connection is considered dead.
const SERVER_SILENCE: Duration = Duration::from_secs(3);
/// Interval between our heartbeats.
const HEARTBEAT: Duration = Duration::from_millis(1000);
/// Interval between reconnection attempts.
const RECONNECT_EVERY: Duration = Duration::from_millis(1000);
/// Time allowed for the workers' last events and the final acknowledgement after a stop.
const STOP_GRACE: Duration = Duration::from_secs(4);
/// Most events held while the server is unreachable; the oldest go first, with a count.
const MAX_QUEUE: usize = 1_000_000;

/// Everything a session needs to know.
pub struct SessionConfig {
    /// Shared key.
    pub key: Key,
    /// Who we are.
    pub me: Identity,
    /// The two worker specs (capture may be absent when there is no interface).
    pub workers: Vec<WorkerSpec>,
    /// Extra status lines to report at start (e.g. "no interface to capture on").
    pub notes: Vec<String>,
}

/// Why the session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The server stopped it.
    Stopped,
    /// This process was asked to exit.
    Signalled,
}

struct Run<'a> {
    cfg: &'a SessionConfig,
    server: SocketAddr,
    session: SessionId,
    link: Option<Link>,
    queue: VecDeque<(u64, Event)>,
    next_seq: u64,
    dropped: u64,
    workers: Vec<Worker>,
    finished_workers: usize,
    stopping: Option<Instant>,
    last_attempt: Instant,
}

/// Runs the session until the server stops it or `exit` is set.
pub fn run(
    cfg: &SessionConfig,
    udp: &mut AnnounceSocket,
    server: SocketAddr,
    session: SessionId,
    link: Link,
    welcome_seq: u64,
    exit: &AtomicBool,
) -> Ended {
    let mut run = Run {
        cfg,
        server,
        session,
        link: Some(link),
        queue: VecDeque::new(),
        next_seq: welcome_seq.max(1),
        dropped: 0,
        workers: Vec::new(),
        finished_workers: 0,
        stopping: None,
        last_attempt: Instant::now(),
    };
    run.push(Event::now(
        EventKind::Status,
        format!(
            "monitoring started (proctor {}, session {})",
            env!("CARGO_PKG_VERSION"),
            session.short()
        ),
    ));
    for n in &cfg.notes {
        run.push(Event::now(EventKind::Status, n.clone()));
    }
    for spec in &cfg.workers {
        run.start_worker(spec, false);
    }
    let mut set = PollSet::new();
    let mut signalled = false;
    loop {
        set.clear();
        let udp_i = set.push(udp.fd(), poll::IN);
        let link_i = run.link.as_ref().map(|l| {
            set.push(
                l.fd(),
                if l.wants_write() {
                    poll::IN | poll::OUT
                } else {
                    poll::IN
                },
            )
        });
        let first_worker = udp_i + 1 + usize::from(link_i.is_some());
        for w in &run.workers {
            set.push(w.fd(), poll::IN);
        }
        if let Err(e) = set.wait(Duration::from_millis(100)) {
            eprintln!("proctor client: poll failed: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let now = Instant::now();
        if exit.load(Ordering::SeqCst) && !signalled {
            signalled = true;
            run.push(Event::now(
                EventKind::Status,
                "client asked to exit (signal); stopping monitoring",
            ));
            run.begin_stop(now);
        }
        if set.revents(udp_i) != 0 {
            for (a, _from) in udp.recv_all() {
                if a.kind == AnnounceKind::Stop && a.session == run.session {
                    run.begin_stop(now);
                }
            }
        }
        if let Some(i) = link_i
            && set.revents(i) != 0
        {
            run.service_link(now);
        }
        for i in 0..run.workers.len() {
            if set.revents(first_worker + i) != 0 {
                run.service_worker(i);
            }
        }
        run.restart_dead_workers();
        run.keepalive(now);
        if let Some(l) = run.link.as_mut()
            && let Err(e) = l.flush()
        {
            run.drop_link(&e);
        }
        if let Some(deadline) = run.stopping {
            let workers_done = run.workers.iter().all(|w| w.is_eof());
            if workers_done && run.queue.is_empty() && run.link.is_some() {
                run.say_bye();
                return if signalled {
                    Ended::Signalled
                } else {
                    Ended::Stopped
                };
            }
            if now >= deadline {
                for w in run.workers.iter_mut() {
                    w.kill();
                }
                if !run.queue.is_empty() {
                    eprintln!(
                        "proctor client: session {} ended with {} events the server never acknowledged",
                        run.session.short(),
                        run.queue.len()
                    );
                }
                if run.link.is_some() {
                    run.say_bye();
                }
                return if signalled {
                    Ended::Signalled
                } else {
                    Ended::Stopped
                };
            }
        }
    }
}

impl Run<'_> {
    fn push(&mut self, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
            self.dropped += 1;
        }
        if let Some(l) = self.link.as_mut() {
            let msg = Message::Event {
                seq,
                ts_ms: event.ts_ms,
                kind: event.kind,
                detail: event.detail.as_bytes().to_vec(),
            };
            if let Err(e) = l.send(&msg) {
                self.queue.push_back((seq, event));
                self.drop_link(&e);
                return;
            }
        }
        self.queue.push_back((seq, event));
    }

    fn start_worker(&mut self, spec: &WorkerSpec, restart: bool) {
        match Worker::spawn(spec) {
            Ok(w) => {
                if restart {
                    self.push(Event::now(
                        EventKind::Status,
                        format!("{} worker restarted (pid {})", spec.name, w.pid()),
                    ));
                }
                self.workers.push(w);
            }
            Err(e) => self.push(Event::now(
                EventKind::Status,
                format!("cannot start {} worker: {e}", spec.name),
            )),
        }
    }

    fn service_worker(&mut self, i: usize) {
        let events = self.workers[i].read_events();
        for e in events {
            self.push(e);
        }
    }

    fn restart_dead_workers(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let mut i = 0;
        while i < self.workers.len() {
            if !self.workers[i].is_eof() {
                i += 1;
                continue;
            }
            let mut w = self.workers.remove(i);
            let status = w
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown status".into());
            let spec = w.spec().clone();
            drop(w);
            self.finished_workers += 1;
            self.push(Event::now(
                EventKind::Status,
                format!("{} worker exited unexpectedly ({status})", spec.name),
            ));
            if self.finished_workers > 20 {
                // A worker that keeps dying must not spin the CPU; slow the restarts.
                std::thread::sleep(Duration::from_millis(500));
            }
            self.start_worker(&spec, true);
        }
    }

    fn service_link(&mut self, now: Instant) {
        let Some(l) = self.link.as_mut() else { return };
        match l.receive(now) {
            Ok(msgs) => {
                for m in msgs {
                    match m {
                        Message::Ack { seq } => {
                            while self.queue.front().is_some_and(|(s, _)| *s <= seq) {
                                self.queue.pop_front();
                            }
                        }
                        Message::Stop => self.begin_stop(now),
                        _ => {}
                    }
                }
            }
            Err(e) => self.drop_link(&e),
        }
    }

    fn drop_link(&mut self, why: &str) {
        if self.link.take().is_some() {
            eprintln!(
                "proctor client: connection to {} lost ({why}); events are kept and resent",
                self.server
            );
            self.last_attempt = Instant::now();
        }
    }

    fn keepalive(&mut self, now: Instant) {
        if let Some(l) = self.link.as_mut() {
            if l.silent_for(now) >= SERVER_SILENCE {
                self.drop_link("server silent");
            } else if l.idle_tx_for(now) >= HEARTBEAT
                && let Err(e) = l.send(&Message::Heartbeat)
            {
                self.drop_link(&e);
            }
            return;
        }
        if now.saturating_duration_since(self.last_attempt) < RECONNECT_EVERY {
            return;
        }
        self.last_attempt = now;
        match Link::connect(
            self.server,
            &self.cfg.key,
            self.session,
            &self.cfg.me,
            Duration::from_millis(800),
        ) {
            Ok((link, next_seq)) => {
                eprintln!("proctor client: reconnected to {}", self.server);
                while self.queue.front().is_some_and(|(s, _)| *s < next_seq) {
                    self.queue.pop_front();
                }
                self.link = Some(link);
                let resend: Vec<Message> = self
                    .queue
                    .iter()
                    .map(|(seq, e)| Message::Event {
                        seq: *seq,
                        ts_ms: e.ts_ms,
                        kind: e.kind,
                        detail: e.detail.as_bytes().to_vec(),
                    })
                    .collect();
                for m in resend {
                    if let Some(l) = self.link.as_mut()
                        && let Err(e) = l.send(&m)
                    {
                        self.drop_link(&e);
                        return;
                    }
                }
                if self.dropped > 0 {
                    let n = std::mem::take(&mut self.dropped);
                    self.push(Event::now(
                        EventKind::Status,
                        format!(
                            "{n} oldest events dropped: queue full while the server was unreachable"
                        ),
                    ));
                }
            }
            Err(e) => {
                if e.contains("refused:") {
                    // The server is up but no longer runs our session: it ended while we were away.
                    eprintln!(
                        "proctor client: {e}; ending session {}",
                        self.session.short()
                    );
                    self.stopping = Some(Instant::now());
                    for w in self.workers.iter_mut() {
                        w.kill();
                    }
                }
            }
        }
    }

    fn begin_stop(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(now + STOP_GRACE);
        for w in self.workers.iter_mut() {
            w.request_stop();
        }
    }

    fn say_bye(&mut self) {
        let last_seq = self.next_seq - 1;
        if let Some(l) = self.link.as_mut() {
            let _ = l.send(&Message::Bye { last_seq });
            let deadline = Instant::now() + Duration::from_millis(500);
            while l.wants_write() && Instant::now() < deadline {
                if l.flush().is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
