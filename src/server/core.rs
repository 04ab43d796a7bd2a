//! The headless server core: one nonblocking poll(2) loop over the listening socket, every
//! client connection and a wake-up socket. It runs sessions, checks handshakes, writes events to
//! the log files, acknowledges them, and tells its front end (headless printer or GUI) what
//! happened through [`Note`]s. Front ends drive it only through [`CoreHandle`] commands.

use super::announcer::Announcer;
use super::conn::{self, Conn, Input};
use super::export::{ExportConfig, ExportEvent, Exporter};
use super::registry::{ClientRecord, Registry, SeqVerdict};
use super::session::Session;
use super::storage::{self, ClientId, HeaderInfo, LogStore};
use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::event::{EventKind, escape, escape_bytes};
use crate::policy::{self, PolicyWatch};
use crate::poll::{self, PollSet};
use crate::protocol::SessionId;
use crate::protocol::message::Message;
use crate::timefmt::now_ms;
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

/// Settings of the core, derived from the command line.
#[derive(Clone)]
pub struct CoreConfig {
    /// The shared key.
    pub key: Key,
    /// TCP port clients connect back to.
    pub server_port: u16,
    /// UDP port clients listen on for announcements.
    pub client_port: u16,
    /// Where announcements are sent.
    pub broadcasts: Vec<Ipv4Addr>,
    /// Root of the log directories.
    pub logs: PathBuf,
    /// Interval between re-announcements.
    pub announce_every: Duration,
    /// Silence after which a client is marked lost.
    pub lost_after: Duration,
    /// Interval between heartbeats to each client.
    pub heartbeat_every: Duration,
    /// Time a connection has to complete its handshake (slow or silent peers are dropped).
    pub handshake_timeout: Duration,
    /// How long a stop waits for clients to deliver their last events and say bye.
    pub stop_grace: Duration,
    /// Most simultaneous connections; beyond it new ones are closed at once.
    pub max_conns: usize,
    /// Stronger mode: the server's signing key for announcements and handshakes.
    pub signer: Option<std::sync::Arc<crate::signing::ServerSigner>>,
    /// Copies of every committed event for other pipelines (`--jsonl`, `--syslog`).
    pub export: ExportConfig,
    /// `--policy`: the allow-lists events are judged by, and their file (reloaded on change).
    pub policy: Option<PolicyWatch>,
}

impl CoreConfig {
    /// Defaults for everything but key, ports, targets and log root.
    pub fn new(
        key: Key,
        server_port: u16,
        client_port: u16,
        broadcasts: Vec<Ipv4Addr>,
        logs: PathBuf,
    ) -> Self {
        CoreConfig {
            key,
            server_port,
            client_port,
            broadcasts,
            logs,
            announce_every: Duration::from_secs(2),
            lost_after: Duration::from_millis(2500),
            heartbeat_every: Duration::from_millis(500),
            handshake_timeout: Duration::from_secs(5),
            stop_grace: Duration::from_secs(5),
            max_conns: 4096,
            signer: None,
            export: ExportConfig::default(),
            policy: None,
        }
    }
}

/// What the front end asks the core to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start a new monitoring session (ignored if one is running).
    StartSession,
    /// Stop the running session: announce stop, collect last events, close files.
    StopSession,
    /// Stop the session if one runs, then leave the loop.
    Shutdown,
    /// Read the policy file again now (the window's "Reload policy").
    ReloadPolicy,
}

/// What the core tells its front end. Sent in order from the poll thread.
#[derive(Debug, Clone)]
pub enum Note {
    /// A session began; its files go to `dir`.
    SessionStarted {
        id: SessionId,
        dir: PathBuf,
        started_ms: u64,
    },
    /// Stop was requested; waiting for clients' last events.
    SessionStopping { id: SessionId },
    /// The session is over and its files are closed.
    SessionStopped { id: SessionId, dir: PathBuf },
    /// A client completed the handshake (again, if `reconnect_gap_ms` is set).
    ClientConnected {
        client: ClientRecord,
        reconnect_gap_ms: Option<u64>,
        restarted: bool,
    },
    /// A client went silent or its connection broke.
    ClientLost {
        client: ClientRecord,
        reason: String,
    },
    /// A client finished the session cleanly.
    ClientStopped { client: ClientRecord },
    /// An event was written to a client's file. `client` is the record as of the end of the
    /// batch the event came in, shared by that batch's notes (not copied per event).
    Event {
        client: std::sync::Arc<ClientRecord>,
        seq: u64,
        ts_ms: u64,
        kind: EventKind,
        detail: String,
    },
    /// Something the invigilator should know (write failures, gaps, send errors).
    Warning(String),
    /// A connection or frame was refused (bad key, wrong session, garbage, timeout).
    Rejected { peer: SocketAddr, reason: String },
    /// Every client's record, about once a second while a session runs, so a front end can show
    /// fresh "last contact" times (heartbeats update the registry but send no note of their own).
    Clients(Vec<ClientRecord>),
    /// The policy file was read again and is now in force (`summary` says what it checks).
    PolicyReloaded { path: PathBuf, summary: String },
    /// Reading the policy file again failed; the previous policy stays in force.
    PolicyFailed { path: PathBuf, error: String },
    /// The loop has ended; nothing more will follow.
    Exited,
}

/// The front end's side: sends commands and wakes the loop.
#[derive(Clone)]
pub struct CoreHandle {
    tx: Sender<Command>,
    wake: std::sync::Arc<UnixStream>,
}

impl CoreHandle {
    /// Queues a command and wakes the poll loop.
    pub fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok() {
            let _ = (&*self.wake).write_wake();
        }
    }
}

trait WriteWake {
    fn write_wake(self) -> std::io::Result<usize>;
}

impl WriteWake for &UnixStream {
    fn write_wake(self) -> std::io::Result<usize> {
        use std::io::Write;
        let mut s = self;
        s.write(&[1])
    }
}

struct Active {
    session: Session,
    store: LogStore,
    registry: Registry,
    announcer: Option<Announcer>,
    announcer_stopping: Option<std::thread::JoinHandle<()>>,
    stopping_until: Option<Instant>,
}

/// The server core. Build it with [`ServerCore::bind`], then call [`ServerCore::run`] on the
/// thread that should own the loop.
pub struct ServerCore {
    cfg: CoreConfig,
    listener: TcpListener,
    wake_rx: UnixStream,
    cmds: Receiver<Command>,
    warn_tx: Sender<String>,
    warn_rx: Receiver<String>,
    conns: Vec<Conn>,
    active: Option<Active>,
    sink: Box<dyn FnMut(Note) + Send>,
    shutdown: bool,
    /// When the last [`Note::Clients`] went out.
    last_snapshot: Instant,
    /// Connection limit in force: the configured one, lowered to what the open-files limit allows.
    max_conns: usize,
    /// A descriptor held in reserve so a connection can still be accepted and closed when the
    /// process has run out of descriptors.
    spare_fd: Option<std::fs::File>,
    overload: Overload,
    /// The `--jsonl` / `--syslog` outputs, fed in [`ServerCore::commit_writes`].
    exporter: Exporter,
}

/// Connections refused because the server is full are reported at most once a second, with a
/// count, so a flood cannot flood the invigilator's screen or log too.
#[derive(Default)]
struct Overload {
    last_report: Option<Instant>,
    unreported: u64,
}

impl Overload {
    fn refused(
        &mut self,
        peer: SocketAddr,
        why: &str,
        now: Instant,
        sink: &mut Box<dyn FnMut(Note) + Send>,
    ) {
        self.unreported += 1;
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        let n = std::mem::take(&mut self.unreported);
        self.last_report = Some(now);
        let reason = if n > 1 {
            format!("{why} ({n} connections refused in the last second)")
        } else {
            why.to_string()
        };
        sink(Note::Rejected { peer, reason });
    }
}

impl ServerCore {
    /// Binds the listening socket (a port in use is reported here, before any session).
    pub fn bind(
        cfg: CoreConfig,
        sink: Box<dyn FnMut(Note) + Send>,
    ) -> Result<(ServerCore, CoreHandle)> {
        // Each client holds a socket and a log file; keep some descriptors for everything else.
        let fd_limit = crate::sys::raise_open_files_limit();
        let max_conns = cfg
            .max_conns
            .min((fd_limit.saturating_sub(32) / 2).max(1) as usize);
        let addr = SocketAddr::from(([0, 0, 0, 0], cfg.server_port));
        let listener = TcpListener::bind(addr)
            .map_err(|e| Error::io(format!("cannot listen on TCP port {}", cfg.server_port), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("listener", e))?;
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(|e| Error::io("wake-up socket", e))?;
        wake_rx
            .set_nonblocking(true)
            .map_err(|e| Error::io("wake-up socket", e))?;
        wake_tx
            .set_nonblocking(true)
            .map_err(|e| Error::io("wake-up socket", e))?;
        let (tx, cmds) = mpsc::channel();
        let (warn_tx, warn_rx) = mpsc::channel();
        let exporter = Exporter::start(&cfg.export)?;
        if cfg.policy.is_some() {
            crate::sys::reload_on_sighup();
        }
        let core = ServerCore {
            cfg,
            listener,
            wake_rx,
            cmds,
            warn_tx,
            warn_rx,
            conns: Vec::new(),
            active: None,
            sink,
            shutdown: false,
            max_conns,
            last_snapshot: Instant::now(),
            spare_fd: std::fs::File::open("/dev/null").ok(),
            overload: Overload::default(),
            exporter,
        };
        Ok((
            core,
            CoreHandle {
                tx,
                wake: std::sync::Arc::new(wake_tx),
            },
        ))
    }

    /// Runs the loop until a [`Command::Shutdown`] has been carried out.
    pub fn run(mut self) -> Result<()> {
        let result = self.run_loop();
        if let Err(e) = &result {
            (self.sink)(Note::Warning(format!("server loop failed: {e}")));
        }
        // Export hook: deliver what the outputs still hold before the front end quits.
        for w in self.exporter.close() {
            (self.sink)(Note::Warning(w));
        }
        // The front end waits for this note before it quits, whatever happened.
        (self.sink)(Note::Exited);
        result
    }

    fn run_loop(&mut self) -> Result<()> {
        let mut set = PollSet::new();
        loop {
            set.clear();
            let wake_i = set.push(self.wake_rx.as_raw_fd(), poll::IN);
            let listen_i = set.push(self.listener.as_raw_fd(), poll::IN);
            let first_conn = listen_i + 1;
            for c in &self.conns {
                set.push(
                    c.fd(),
                    if c.wants_write() {
                        poll::IN | poll::OUT
                    } else {
                        poll::IN
                    },
                );
            }
            set.wait(Duration::from_millis(100))
                .map_err(|e| Error::io("poll", e))?;
            let now = Instant::now();
            if set.revents(wake_i) != 0 {
                let mut buf = [0u8; 64];
                while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
            }
            while let Ok(cmd) = self.cmds.try_recv() {
                self.command(cmd, now);
            }
            if set.revents(listen_i) != 0 {
                self.accept_all(now);
            }
            let ready = (0..self.conns.len())
                .filter(|&i| set.revents(first_conn + i) & (poll::IN | poll::ERR_OR_HUP) != 0)
                .count();
            let budget = conn::read_budget(ready);
            for i in 0..self.conns.len() {
                let rev = set.revents(first_conn + i);
                if rev != 0 {
                    self.service(i, rev, now, budget);
                }
            }
            self.commit_writes();
            self.timers(now);
            self.check_policy(now, crate::sys::take_reload_signal());
            for c in self.conns.iter_mut() {
                c.write_out();
            }
            self.reap(now);
            while let Ok(w) = self.warn_rx.try_recv() {
                (self.sink)(Note::Warning(w));
            }
            if self.maybe_finish_stop(now) && self.shutdown {
                break;
            }
            if self.shutdown && self.active.is_none() {
                break;
            }
        }
        Ok(())
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::ReloadPolicy => self.check_policy(now, true),
            Command::StartSession => {
                if self.active.is_none()
                    && let Err(e) = self.start_session()
                {
                    (self.sink)(Note::Warning(format!("cannot start session: {e}")));
                }
            }
            Command::StopSession => self.begin_stop(now),
            Command::Shutdown => {
                self.shutdown = true;
                self.begin_stop(now);
            }
        }
    }

    fn start_session(&mut self) -> std::io::Result<()> {
        let (session, resumed) = match Session::resume(&self.cfg.logs) {
            Some(s) => (s, true),
            None => (
                Session::create(&self.cfg.logs, SessionId::random(), now_ms())?,
                false,
            ),
        };
        session.mark_running(&self.cfg.logs)?;
        let (id, started_ms) = (session.id, session.started_ms);
        if resumed {
            (self.sink)(Note::Warning(format!(
                "resuming session {} in {}: the previous server stopped without ending it",
                id,
                session.dir.display()
            )));
        }
        let header = HeaderInfo {
            session: id.hex(),
            started_ms,
            key_fingerprint: self.cfg.key.fingerprint(),
        };
        let targets: Vec<SocketAddrV4> = self
            .cfg
            .broadcasts
            .iter()
            .map(|b| SocketAddrV4::new(*b, self.cfg.client_port))
            .collect();
        let announcer = Announcer::spawn(
            self.cfg.key.clone(),
            targets,
            self.cfg.server_port,
            id,
            self.cfg.announce_every,
            self.cfg.signer.clone(),
            self.warn_tx.clone(),
        )?;
        let dir = session.dir.clone();
        self.active = Some(Active {
            store: LogStore::new(&dir, header),
            session,
            registry: Registry::new(),
            announcer: Some(announcer),
            announcer_stopping: None,
            stopping_until: None,
        });
        (self.sink)(Note::SessionStarted {
            id,
            dir,
            started_ms,
        });
        Ok(())
    }

    /// Reloads the policy when asked (`force`) or when its file changed, tells the front end,
    /// and notes the change in every log file of the session so verdicts can be read in the
    /// light of the policy that gave them.
    fn check_policy(&mut self, now: Instant, force: bool) {
        let Some(w) = self.cfg.policy.as_mut() else {
            return;
        };
        let Some(result) = w.poll(now, force) else {
            return;
        };
        let path = w.path().to_path_buf();
        let (kind, text, note) = match result {
            Ok(summary) => (
                "server",
                format!("policy reloaded from {}: {summary}", path.display()),
                Note::PolicyReloaded { path, summary },
            ),
            Err(error) => (
                "warning",
                format!("policy reload failed, the previous policy stays in force: {error}"),
                Note::PolicyFailed { path, error },
            ),
        };
        if let Some(a) = self.active.as_mut() {
            let t = now_ms();
            for rec in a.registry.snapshot() {
                let _ = a
                    .store
                    .append(&rec.id, &storage::server_line(t, kind, &escape(&text)));
            }
        }
        (self.sink)(note);
    }

    fn begin_stop(&mut self, now: Instant) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if a.stopping_until.is_some() {
            return;
        }
        a.stopping_until = Some(now + self.cfg.stop_grace);
        if let Some(ann) = a.announcer.take() {
            // The thread sends the stop datagrams while we keep serving; joined at the end.
            a.announcer_stopping = Some(ann.stop());
        }
        let id = a.session.id;
        for c in self.conns.iter_mut() {
            if c.client().is_some() {
                c.send(&Message::Stop);
            }
        }
        (self.sink)(Note::SessionStopping { id });
    }

    /// Ends a stopping session once every client said bye or the grace time ran out.
    fn maybe_finish_stop(&mut self, now: Instant) -> bool {
        let Some(a) = self.active.as_ref() else {
            return false;
        };
        let Some(until) = a.stopping_until else {
            return false;
        };
        let anyone_left = self.conns.iter().any(|c| c.client().is_some());
        if anyone_left && now < until {
            return false;
        }
        let mut a = self.active.take().expect("checked above");
        let t = now_ms();
        for c in self.conns.iter_mut() {
            if let Some(id) = c.client().cloned() {
                let _ = a.store.append(
                    &id,
                    &storage::server_line(
                        t,
                        "warning",
                        "session stopped before this client said bye",
                    ),
                );
                a.registry.mark_lost(&id, t);
            }
            c.close();
        }
        for rec in a.registry.snapshot() {
            let _ = a.store.append(
                &rec.id,
                &storage::server_line(t, "server", "session stopped"),
            );
        }
        a.store.sync_all();
        // Export hook: the session's last server lines (stopped, lost before bye).
        let lines = a.store.take_server_lines();
        self.exporter.server_lines(&a.session.id.hex(), &lines);
        for w in self.exporter.end_batch(Instant::now()) {
            (self.sink)(Note::Warning(w));
        }
        Session::clear_running(&self.cfg.logs);
        if let Some(t) = a.announcer_stopping.take() {
            let _ = t.join();
        }
        (self.sink)(Note::SessionStopped {
            id: a.session.id,
            dir: a.session.dir.clone(),
        });
        true
    }

    fn accept_all(&mut self, now: Instant) {
        for _ in 0..256 {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if self.conns.len() >= self.max_conns {
                        self.overload
                            .refused(peer, "too many connections", now, &mut self.sink);
                        continue;
                    }
                    match Conn::new(stream, peer, now + self.cfg.handshake_timeout) {
                        Ok(c) => self.conns.push(c),
                        Err(e) => (self.sink)(Note::Warning(format!(
                            "cannot set up connection from {peer}: {e}"
                        ))),
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE): the pending connection would keep the
                    // listener readable and the loop spinning. Free the spare descriptor, take
                    // the connection off the queue and close it, then take the spare back.
                    self.spare_fd = None;
                    if let Ok((stream, peer)) = self.listener.accept() {
                        drop(stream);
                        let why = format!("out of file descriptors ({e})");
                        self.overload.refused(peer, &why, now, &mut self.sink);
                    }
                    self.spare_fd = std::fs::File::open("/dev/null").ok();
                    break;
                }
            }
        }
    }

    fn service(&mut self, i: usize, rev: i16, now: Instant, budget: usize) {
        if rev & poll::OUT != 0 {
            self.conns[i].write_out();
        }
        if rev & (poll::IN | poll::ERR_OR_HUP) == 0 {
            return;
        }
        let session = self.active.as_ref().map(|a| a.session.id);
        let signer = self.cfg.signer.as_deref();
        let inputs = self.conns[i].read_in(&self.cfg.key, signer, session, now, budget);
        for input in inputs {
            self.handle_input(i, input, now);
        }
    }

    fn handle_input(&mut self, i: usize, input: Input, now: Instant) {
        let t = now_ms();
        match input {
            Input::Refused(reason) => {
                let peer = self.conns[i].peer();
                (self.sink)(Note::Rejected { peer, reason });
            }
            Input::Hello {
                hostname,
                instance,
                version,
            } => self.hello(i, hostname, instance, version, now),
            Input::Message(msg) => {
                let Some(id) = self.conns[i].identity().cloned() else {
                    return;
                };
                let Some(a) = self.active.as_mut() else {
                    return;
                };
                match msg {
                    Message::Event {
                        seq,
                        ts_ms,
                        kind,
                        detail,
                    } => {
                        self.event(i, &id, seq, ts_ms, kind, &detail, t);
                    }
                    Message::Events { events } => {
                        // A batch: each event exactly as if it had come alone; the loop's one
                        // commit writes them with one write and acknowledges them with one Ack.
                        for e in events {
                            if !self.event(i, &id, e.seq, e.ts_ms, e.kind, &e.detail, t) {
                                return;
                            }
                        }
                    }
                    Message::Heartbeat => a.registry.touch(&id, t),
                    Message::Bye { last_seq } => {
                        let text = format!("client finished the session (last event {last_seq})");
                        let _ = a
                            .store
                            .append(&id, &storage::server_line(t, "server", &text));
                        self.conns[i].said_bye();
                    }
                    Message::Ack { .. } | Message::Welcome { .. } | Message::Stop => {
                        let peer = self.conns[i].peer();
                        (self.sink)(Note::Rejected {
                            peer,
                            reason: "client sent a server-only message".into(),
                        });
                        self.conns[i].close();
                    }
                    _ => {}
                }
            }
        }
    }

    /// Queues one event of connection `i` for its client's file. Returns false when the
    /// connection was closed (its file cannot be opened) and the rest of a batch must be dropped.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        i: usize,
        id: &ClientId,
        seq: u64,
        ts_ms: u64,
        kind: EventKind,
        detail: &[u8],
        t: u64,
    ) -> bool {
        let Some(a) = self.active.as_mut() else {
            return false;
        };
        let mut detail = escape_bytes(detail);
        // Policy hook: the verdict becomes the last field of the stored line.
        let verdict = self
            .cfg
            .policy
            .as_ref()
            .and_then(|p| policy::judge(p.policy(), kind.as_str(), &detail));
        if let Some(v) = &verdict {
            detail.push_str(&v.field());
        }
        match a.registry.accept(id, seq, kind, &detail, t) {
            SeqVerdict::Duplicate => return true,
            SeqVerdict::Gap { from, to } => {
                let text = format!("events {from} to {to} never arrived from this client");
                let _ = a
                    .store
                    .append(id, &storage::server_line(t, "warning", &text));
                (self.sink)(Note::Warning(format!("{id}: {text}")));
            }
            SeqVerdict::InOrder => {}
        }
        if verdict.as_ref().is_some_and(|v| v.is_flagged()) {
            a.registry.count_flagged(id);
        }
        let line = storage::event_line(ts_ms, seq, kind, &detail);
        if let Err(e) = a.store.append(id, &line) {
            a.registry.rollback(id);
            (self.sink)(Note::Warning(format!("cannot open log for {id}: {e}")));
            self.conns[i].close();
            return false;
        }
        self.conns[i].note_pending(seq, ts_ms, kind, detail);
        true
    }

    fn hello(
        &mut self,
        i: usize,
        hostname: Vec<u8>,
        instance: [u8; 16],
        version: Vec<u8>,
        now: Instant,
    ) {
        let t = now_ms();
        let peer = self.conns[i].peer();
        let Some(a) = self.active.as_mut() else {
            self.conns[i].close();
            return;
        };
        let mut host = escape_bytes(&hostname);
        if host.is_empty() {
            host = "unnamed".into();
        }
        let id = ClientId {
            host,
            addr: peer.ip(),
        };
        // A newer connection of the same client replaces an older one (e.g. after a cable pull
        // the server had not noticed yet).
        for (j, c) in self.conns.iter_mut().enumerate() {
            if j != i && c.client() == Some(&id) {
                c.supersede();
            }
        }
        if a.registry.get(&id).is_none()
            && let Some(r) = a.store.recover(&id)
        {
            a.registry
                .restore(&id, r.instance, r.written_seq, r.last_ms);
        }
        let join = a.registry.join(&id, instance, t);
        let inst = storage::instance_hex(&instance);
        let text = match (join.restarted, join.gap_ms) {
            (true, _) => format!(
                "client restarted (new process) and reconnected from {peer}; its numbering starts again at 1, instance={inst}"
            ),
            (false, Some(g)) => format!(
                "reconnected from {peer} after a gap of {:.1} s, instance={inst}",
                g as f64 / 1000.0
            ),
            (false, None) if join.reconnect => format!("reconnected from {peer}, instance={inst}"),
            _ => format!(
                "connected from {peer}, proctor {}, instance={inst}",
                escape(&String::from_utf8_lossy(&version))
            ),
        };
        if let Err(e) = a
            .store
            .append(&id, &storage::server_line(t, "server", &text))
        {
            (self.sink)(Note::Warning(format!("cannot create log for {id}: {e}")));
            self.conns[i].close();
            return;
        }
        self.conns[i].establish(id.clone(), join.next_seq, now);
        if a.stopping_until.is_some() {
            self.conns[i].send(&Message::Stop);
        }
        let rec = a.registry.get(&id).cloned().expect("just joined");
        (self.sink)(Note::ClientConnected {
            client: rec,
            reconnect_gap_ms: join.gap_ms,
            restarted: join.restarted,
        });
    }

    /// Writes every queued line, then acknowledges what reached the files.
    fn commit_writes(&mut self) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let failed = a.store.flush_all();
        for (id, e) in &failed {
            a.registry.rollback(id);
            (self.sink)(Note::Warning(format!(
                "cannot write log for {id}: {e}; its events stay unacknowledged on the client and will be resent"
            )));
        }
        for c in self.conns.iter_mut() {
            // Most connections have nothing new in a round: skip them without copying their id.
            if !c.has_pending() && failed.is_empty() {
                continue;
            }
            let Some(id) = c.client().cloned() else {
                continue;
            };
            let pending = c.take_pending();
            if let Some((_, e)) = failed.iter().find(|(f, _)| *f == id) {
                c.lose(format!(
                    "its log file could not be written ({e}); it will resend"
                ));
                continue;
            }
            if pending.is_empty() {
                continue;
            }
            let acked = a.registry.commit(&id);
            let rec = a.registry.get(&id).cloned().map(std::sync::Arc::new);
            if let Some(rec) = rec {
                // Export hook: the batch is in the client's file; copy its events out.
                if self.exporter.is_active() {
                    let session = a.session.id.hex();
                    for p in &pending {
                        self.exporter.event(&ExportEvent {
                            session: &session,
                            host: &rec.id.host,
                            addr: rec.id.addr,
                            seq: Some(p.seq),
                            ts_ms: p.ts_ms,
                            kind: p.kind.as_str(),
                            detail: &p.detail,
                        });
                    }
                }
                for p in pending {
                    (self.sink)(Note::Event {
                        client: rec.clone(),
                        seq: p.seq,
                        ts_ms: p.ts_ms,
                        kind: p.kind,
                        detail: p.detail,
                    });
                }
            }
            c.send(&Message::Ack { seq: acked });
        }
        // Export hook: the server's own lines of this round, then flush the JSONL output once
        // per batch; report output problems.
        let lines = a.store.take_server_lines();
        self.exporter.server_lines(&a.session.id.hex(), &lines);
        for w in self.exporter.end_batch(Instant::now()) {
            (self.sink)(Note::Warning(w));
        }
    }

    fn timers(&mut self, now: Instant) {
        if now.duration_since(self.last_snapshot) >= Duration::from_secs(1)
            && let Some(a) = self.active.as_ref()
        {
            self.last_snapshot = now;
            (self.sink)(Note::Clients(a.registry.snapshot()));
        }
        for c in self.conns.iter_mut() {
            if c.handshake_expired(now) {
                (self.sink)(Note::Rejected {
                    peer: c.peer(),
                    reason: "handshake not completed in time".into(),
                });
                c.close();
            } else if c.client().is_some() {
                if c.silent_for(now) >= self.cfg.lost_after {
                    c.lose(format!(
                        "no data for {:.1} s",
                        self.cfg.lost_after.as_secs_f64()
                    ));
                } else if c.idle_tx_for(now) >= self.cfg.heartbeat_every {
                    c.send(&Message::Heartbeat);
                }
            }
        }
    }

    /// Removes closed connections, marking clients lost or stopped.
    fn reap(&mut self, _now: Instant) {
        let t = now_ms();
        let mut i = 0;
        while i < self.conns.len() {
            if !self.conns[i].is_closed() {
                i += 1;
                continue;
            }
            let c = self.conns.swap_remove(i);
            let (Some(id), Some(a)) = (c.identity().cloned(), self.active.as_mut()) else {
                continue;
            };
            if c.bye() {
                a.registry.mark_stopped(&id);
                if let Some(rec) = a.registry.get(&id).cloned() {
                    (self.sink)(Note::ClientStopped { client: rec });
                }
            } else if c.superseded() {
                continue;
            } else if a.registry.mark_lost(&id, t) {
                let reason = c
                    .lost_reason()
                    .unwrap_or("connection closed without goodbye")
                    .to_string();
                let _ = a.store.append(
                    &id,
                    &storage::server_line(t, "warning", &format!("connection lost: {reason}")),
                );
                let _ = a.store.flush(&id);
                if let Some(rec) = a.registry.get(&id).cloned() {
                    (self.sink)(Note::ClientLost {
                        client: rec,
                        reason,
                    });
                }
            }
        }
    }
}
