//! Connection attempts run on short-lived helper threads, so the client's loop never blocks on
//! a peer: a student replaying captured start announcements from many silent addresses cannot
//! stall a waiting client or delay a disconnected one's return to its own server.
//!
//! Limits: one attempt per address every 2 s, at most 16 new attempts per second and 32 in
//! flight, each with a 1 s connect-and-handshake timeout. Attempts to the client's own server are
//! exempt from the per-second limit.

use super::link::{Identity, Link, Trust};
use crate::protocol::SessionId;
use crate::protocol::message::INSTANCE_LEN;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

const PER_ADDRESS: Duration = Duration::from_secs(2);
const MAX_PER_SECOND: usize = 16;
const MAX_IN_FLIGHT: usize = 32;
/// Time a peer has to accept and complete the handshake.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// A finished attempt.
pub struct Attempt {
    /// Where it connected.
    pub server: SocketAddr,
    /// The session it asked for.
    pub session: SessionId,
    /// The instance id it introduced itself with.
    pub instance: [u8; INSTANCE_LEN],
    /// The authenticated link and the server's next expected sequence number, or why not.
    pub result: Result<(Link, u64), String>,
}

/// Starts attempts in the background and collects their results.
pub struct Connector {
    tx: Sender<Attempt>,
    rx: Receiver<Attempt>,
    in_flight: usize,
    by_address: HashMap<SocketAddr, Instant>,
    recent: VecDeque<Instant>,
}

impl Default for Connector {
    fn default() -> Self {
        Self::new()
    }
}

impl Connector {
    /// No attempts yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Connector {
            tx,
            rx,
            in_flight: 0,
            by_address: HashMap::new(),
            recent: VecDeque::new(),
        }
    }

    /// Attempts in progress.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Starts an attempt answering an announcement, unless a limit says no (then `false`).
    pub fn try_start(
        &mut self,
        trust: &Trust,
        me: Identity,
        server: SocketAddr,
        session: SessionId,
        now: Instant,
    ) -> bool {
        self.by_address
            .retain(|_, t| now.duration_since(*t) < PER_ADDRESS);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        if self.by_address.contains_key(&server)
            || self.recent.len() >= MAX_PER_SECOND
            || self.in_flight >= MAX_IN_FLIGHT
        {
            return false;
        }
        self.by_address.insert(server, now);
        self.recent.push_back(now);
        self.start_own(trust, me, server, session)
    }

    /// Starts an attempt to the client's own server (no rate limits; the caller keeps to one at
    /// a time).
    pub fn start_own(
        &mut self,
        trust: &Trust,
        me: Identity,
        server: SocketAddr,
        session: SessionId,
    ) -> bool {
        let tx = self.tx.clone();
        let trust = trust.clone();
        let spawned = std::thread::Builder::new()
            .name("connect".into())
            .spawn(move || {
                let result = Link::connect(server, &trust, session, &me, ATTEMPT_TIMEOUT);
                let _ = tx.send(Attempt {
                    server,
                    session,
                    instance: me.instance,
                    result,
                });
            });
        if spawned.is_ok() {
            self.in_flight += 1;
        }
        spawned.is_ok()
    }

    /// The attempts that finished since the last call.
    pub fn finished(&mut self) -> Vec<Attempt> {
        let done: Vec<Attempt> = self.rx.try_iter().collect();
        self.in_flight = self.in_flight.saturating_sub(done.len());
        done
    }
}
