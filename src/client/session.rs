//! One monitoring session on the lab PC: runs the workers, numbers their events, streams them
//! to the server, keeps every unacknowledged event queued across reconnects, and on stop
//! collects the workers' last events and says goodbye.

use super::announcements::AnnounceSocket;
use super::attribution::Attributor;
use super::connector::Connector;
use super::link::{Identity, Link, Trust};
use super::spool::Spool;
use super::workers::{Worker, WorkerSpec};
use crate::event::{Event, EventKind};
use crate::poll::{self, PollSet};
use crate::protocol::SessionId;
use crate::protocol::announce::AnnounceKind;
use crate::protocol::message::{BatchEncoder, INSTANCE_LEN, Message};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Silence from the server after which the connection is considered dead.
const SERVER_SILENCE: Duration = Duration::from_secs(3);
/// Interval between our heartbeats.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Interval between reconnection attempts.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);
/// Time allowed for the workers' last events and the final acknowledgement after a stop.
const STOP_GRACE: Duration = Duration::from_secs(4);
/// Sealed bytes waiting for the socket above which no further batch is added this round: a
/// long backlog (after a reconnect) goes out as the server reads it, not into memory at once.
const MAX_BACKLOG: usize = 1024 * 1024;

/// Everything a session needs to know.
pub struct SessionConfig {
    /// Shared key and, in stronger mode, the server's public key.
    pub trust: Trust,
    /// The host name we report.
    pub hostname: String,
    /// The worker specs: mounts, USB devices and capture (absent without an interface).
    pub workers: Vec<WorkerSpec>,
    /// Extra status lines to report at start (e.g. "no interface to capture on").
    pub notes: Vec<String>,
    /// The spool file.
    pub spool: PathBuf,
    /// Most unacknowledged events kept; beyond it the oldest are dropped, with a logged count.
    pub spool_limit: usize,
}

/// How a session begins: freshly joined, or resumed from the spool after a client restart.
pub struct Start {
    /// The server's stream endpoint.
    pub server: SocketAddr,
    /// The session.
    pub session: SessionId,
    /// The client process run that numbers this session's events.
    pub instance: [u8; INSTANCE_LEN],
    /// An authenticated link and the server's next expected sequence number, if connected.
    pub link: Option<(Link, u64)>,
    /// Events of this session not yet acknowledged (from the spool).
    pub queue: VecDeque<(u64, Event)>,
    /// The next sequence number.
    pub next_seq: u64,
    /// Events of an earlier session that its server never acknowledged, delivered here.
    pub carried: Vec<(SessionId, Event)>,
}

impl Start {
    /// A freshly joined session.
    pub fn joined(
        server: SocketAddr,
        session: SessionId,
        instance: [u8; INSTANCE_LEN],
        link: Link,
        next_seq: u64,
    ) -> Start {
        Start {
            server,
            session,
            instance,
            link: Some((link, next_seq)),
            queue: VecDeque::new(),
            next_seq: 1,
            carried: Vec::new(),
        }
    }
}

/// Why the session ended.
pub enum Ended {
    /// The server stopped it (or it ended while we were away). `leftover` holds events the
    /// server never acknowledged, to be carried into the next session.
    Stopped {
        session: SessionId,
        leftover: Vec<Event>,
    },
    /// This process was asked to exit.
    Signalled,
    /// While our server was unreachable, another server proved the key and announced a new
    /// session: continue there (with our unacknowledged events carried over).
    Switch(Box<Start>),
}

struct Run<'a> {
    cfg: &'a SessionConfig,
    me: Identity,
    server: SocketAddr,
    session: SessionId,
    link: Option<Link>,
    queue: VecDeque<(u64, Event)>,
    /// Highest sequence number handed to the current link (the queue above it is unsent).
    sent_upto: u64,
    next_seq: u64,
    dropped: u64,
    workers: Vec<Worker>,
    finished_workers: usize,
    stopping: Option<Instant>,
    last_attempt: Instant,
    spool: Option<Spool>,
    connector: Connector,
    own_attempt: bool,
    /// Names the program behind each new flow (needs this process's root).
    procs: Attributor,
}

/// Runs the session until the server stops it, another session takes over, or `exit` is set.
pub fn run(
    cfg: &SessionConfig,
    udp: &mut AnnounceSocket,
    start: Start,
    exit: &AtomicBool,
) -> Ended {
    let recovered = start.queue.len();
    let mut run = Run {
        cfg,
        me: Identity {
            hostname: cfg.hostname.clone(),
            instance: start.instance,
        },
        server: start.server,
        session: start.session,
        link: None,
        queue: start.queue,
        sent_upto: 0,
        next_seq: start.next_seq.max(1),
        dropped: 0,
        workers: Vec::new(),
        finished_workers: 0,
        stopping: None,
        last_attempt: Instant::now(),
        spool: None,
        connector: Connector::new(),
        own_attempt: false,
        procs: Attributor::system(),
    };
    let limit = cfg.spool_limit.max(1);
    while run.queue.len() > limit {
        run.queue.pop_front();
        run.dropped += 1;
    }
    match Spool::begin(
        &cfg.spool,
        run.session,
        run.server,
        &start.instance,
        &run.queue,
    ) {
        Ok(s) => run.spool = Some(s),
        Err(e) => run.push(Event::now(
            EventKind::Status,
            format!(
                "spool {} unavailable ({e}); unacknowledged events are kept in memory only",
                cfg.spool.display()
            ),
        )),
    }
    let what = if recovered > 0 || start.link.is_none() {
        "resumed after a client restart"
    } else {
        "started"
    };
    run.push(Event::now(
        EventKind::Status,
        format!(
            "monitoring {what} (proctor {}, session {}{})",
            env!("CARGO_PKG_VERSION"),
            run.session.short(),
            if recovered > 0 {
                format!(", {recovered} unacknowledged events from the spool")
            } else {
                String::new()
            }
        ),
    ));
    if !start.carried.is_empty() {
        run.push(Event::now(
            EventKind::Status,
            format!(
                "{} events of an earlier session, never acknowledged by its server, follow",
                start.carried.len()
            ),
        ));
        for (sid, e) in start.carried {
            run.push(Event {
                ts_ms: e.ts_ms,
                kind: e.kind,
                detail: format!("[session {}] {}", sid.short(), e.detail),
            });
        }
    }
    for n in &cfg.notes {
        run.push(Event::now(EventKind::Status, n.clone()));
    }
    if let Some((link, next_seq)) = start.link {
        run.adopt(link, next_seq);
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
            log::warn!("poll failed: {e}");
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
            for (a, from) in udp.recv_all() {
                if a.kind == AnnounceKind::Stop && a.session == run.session {
                    run.begin_stop(now);
                } else if a.kind == AnnounceKind::Start && a.session != run.session {
                    run.request_switch(SocketAddr::new(from.ip(), a.tcp_port), a.session, now);
                }
            }
        }
        if let Some(next) = run.connections_done() {
            return next;
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
        run.send_queued();
        if let Some(l) = run.link.as_mut()
            && let Err(e) = l.flush()
        {
            run.drop_link(&e);
        }
        run.flush_spool();
        if let Some(deadline) = run.stopping {
            let workers_done = run.workers.iter().all(|w| w.is_eof());
            let delivered = workers_done && run.queue.is_empty() && run.link.is_some();
            if delivered || now >= deadline {
                return run.finish(signalled);
            }
        }
    }
}

impl Run<'_> {
    fn push(&mut self, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let limit = self.cfg.spool_limit.max(1);
        let mut compact = false;
        if self.queue.len() >= limit {
            self.queue.pop_front();
            self.dropped += 1;
            compact = self.dropped.is_multiple_of(limit as u64 / 2 + 1);
        }
        if let Some(sp) = self.spool.as_mut() {
            if compact {
                sp.compact(&self.queue);
            }
            sp.record(seq, &event);
        }
        // Sent with whatever else arrives this loop round, in batches ([`Run::send_queued`]).
        self.queue.push_back((seq, event));
    }

    /// Sends the queued events the current link has not carried yet, as batches of as many
    /// events as fit one frame; stops adding while [`MAX_BACKLOG`] bytes wait for the socket.
    fn send_queued(&mut self) {
        let Some(l) = self.link.as_mut() else {
            return;
        };
        let unsent = self.queue.back().is_some_and(|(s, _)| *s > self.sent_upto);
        if !unsent || l.backlog() >= MAX_BACKLOG {
            return;
        }
        let first = self.queue.partition_point(|(s, _)| *s <= self.sent_upto);
        let mut batch = BatchEncoder::new();
        // Sequence number of the last event in `batch`.
        let mut in_batch = self.sent_upto;
        let mut result = Ok(());
        for (seq, e) in self.queue.range(first..) {
            if !batch.push(*seq, e.ts_ms, e.kind, e.detail.as_bytes()) {
                result = l.send_body(&batch.take());
                if result.is_err() {
                    break;
                }
                self.sent_upto = in_batch;
                if l.backlog() >= MAX_BACKLOG {
                    break;
                }
                batch.push(*seq, e.ts_ms, e.kind, e.detail.as_bytes());
            }
            in_batch = *seq;
        }
        if result.is_ok() && !batch.is_empty() {
            result = l.send_body(&batch.take());
            if result.is_ok() {
                self.sent_upto = in_batch;
            }
        }
        if let Err(e) = result {
            self.drop_link(&e);
        }
    }

    /// Takes over a freshly authenticated link: drops what the server already has, resends the rest.
    fn adopt(&mut self, link: Link, next_seq: u64) {
        while self.queue.front().is_some_and(|(s, _)| *s < next_seq) {
            self.queue.pop_front();
        }
        self.link = Some(link);
        // Everything still queued is above what the server has: send it all again.
        self.sent_upto = next_seq.saturating_sub(1);
        self.send_queued();
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            self.push(Event::now(
                EventKind::Status,
                format!("{n} oldest events dropped: queue full while the server was unreachable"),
            ));
        }
    }

    fn flush_spool(&mut self) {
        let Some(sp) = self.spool.as_mut() else {
            return;
        };
        let _ = sp.flush();
        if let Some(err) = sp.error.take() {
            self.push(Event::now(EventKind::Status, err));
        }
    }

    /// While our server is unreachable, a start for another session may take over: try its
    /// server in the background (a start whose sender cannot complete the handshake changes
    /// nothing).
    fn request_switch(&mut self, server: SocketAddr, session: SessionId, now: Instant) {
        if self.link.is_some() || self.stopping.is_some() {
            return;
        }
        let me = Identity {
            hostname: self.cfg.hostname.clone(),
            instance: crate::crypto::random::<INSTANCE_LEN>(),
        };
        self.connector
            .try_start(&self.cfg.trust, me, server, session, now);
    }

    /// Acts on finished connection attempts: our own server back, or another session to switch to.
    fn connections_done(&mut self) -> Option<Ended> {
        for a in self.connector.finished() {
            if a.session == self.session && a.server == self.server {
                self.own_attempt = false;
                match a.result {
                    Ok((link, next_seq)) if self.link.is_none() => {
                        log::info!("reconnected to {}", self.server);
                        self.adopt(link, next_seq);
                    }
                    Ok(_) => {}
                    Err(e) if e.contains("refused:") => {
                        // The server is up but no longer runs our session: it ended while we were away.
                        log::warn!("{e}; ending session {}", self.session.short());
                        self.stopping = Some(Instant::now());
                        for w in self.workers.iter_mut() {
                            w.kill();
                        }
                    }
                    Err(_) => {}
                }
                continue;
            }
            let Ok((link, next_seq)) = a.result else {
                continue;
            };
            if self.link.is_some() || self.stopping.is_some() {
                continue;
            }
            log::warn!(
                "session {} unreachable; switching to session {} of {}",
                self.session.short(),
                a.session.short(),
                a.server
            );
            let old = self.session;
            let carried = self.leftover().into_iter().map(|e| (old, e)).collect();
            for w in self.workers.iter_mut() {
                w.request_stop();
            }
            let mut start = Start::joined(a.server, a.session, a.instance, link, next_seq);
            start.carried = carried;
            return Some(Ended::Switch(Box::new(start)));
        }
        None
    }

    /// Events still unacknowledged, including what the workers printed last.
    fn leftover(&mut self) -> Vec<Event> {
        for i in 0..self.workers.len() {
            self.service_worker(i);
        }
        self.queue.drain(..).map(|(_, e)| e).collect()
    }

    /// Ends the session: kills workers that did not finish, says bye if connected, and hands
    /// back what was never acknowledged (the spool keeps it until the next session rewrites it).
    fn finish(mut self, signalled: bool) -> Ended {
        for w in self.workers.iter_mut() {
            w.kill();
        }
        if self.link.is_some() {
            self.say_bye();
        }
        self.flush_spool();
        if !self.queue.is_empty() {
            log::warn!(
                "session {} ended with {} events the server never acknowledged; \
                 they are kept and delivered in the next session",
                self.session.short(),
                self.queue.len()
            );
        } else if let Some(sp) = self.spool.take() {
            sp.finish();
        }
        if signalled {
            return Ended::Signalled;
        }
        let session = self.session;
        Ended::Stopped {
            session,
            leftover: self.leftover(),
        }
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
        let mut events = self.workers[i].read_events();
        self.procs.annotate(&mut events, Instant::now());
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
                            if let Some(sp) = self.spool.as_mut() {
                                sp.ack(seq, &self.queue);
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
            log::warn!(
                "connection to {} lost ({why}); events are kept and resent",
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
        if self.own_attempt || now.saturating_duration_since(self.last_attempt) < RECONNECT_EVERY {
            return;
        }
        self.last_attempt = now;
        self.own_attempt =
            self.connector
                .start_own(&self.cfg.trust, self.me.clone(), self.server, self.session);
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
        self.send_queued();
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
