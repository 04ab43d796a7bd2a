//! Who is in the session and how each client is doing: state, last contact, counts, and the
//! per-client sequence bookkeeping that makes every event appear in the file exactly once and
//! in order. Pure bookkeeping (time is passed in); the GUI renders snapshots of it.

use super::storage::ClientId;
use crate::event::EventKind;
use crate::protocol::message::INSTANCE_LEN;
use std::collections::BTreeMap;

/// Connection state of a client as the invigilator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Streaming now.
    Connected,
    /// Went silent or disconnected without saying goodbye.
    Lost,
    /// Finished the session cleanly.
    Stopped,
}

impl ClientState {
    /// Word shown in tables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Connected => "connected",
            ClientState::Lost => "lost",
            ClientState::Stopped => "stopped",
        }
    }
}

/// Everything known about one client in the current session.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// Host name and address.
    pub id: ClientId,
    /// Current state.
    pub state: ClientState,
    /// Random id of the client process run that is streaming (a new one means a restart).
    pub instance: [u8; INSTANCE_LEN],
    /// Highest sequence number written to the file.
    pub written_seq: u64,
    /// Highest sequence number queued for writing (>= written_seq).
    pub queued_seq: u64,
    /// Last time anything arrived from it, ms since the epoch.
    pub last_contact_ms: u64,
    /// When it was marked lost, if it is.
    pub lost_since_ms: Option<u64>,
    /// Network flow events so far.
    pub net_events: u64,
    /// Mount, unmount and USB device events so far.
    pub mount_events: u64,
    /// Events the policy flagged so far (always 0 without `--policy`).
    pub flagged_events: u64,
    /// The latest event's kind and detail.
    pub last_event: String,
}

/// What happened when a client (re)joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The sequence number the client should continue from.
    pub next_seq: u64,
    /// It was here before in this session with the same process run.
    pub reconnect: bool,
    /// It was here before but is a new process run (its numbering restarts at 1).
    pub restarted: bool,
    /// How long it had been lost, if it was.
    pub gap_ms: Option<u64>,
}

/// Where an arriving event's sequence number stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Already written or queued: drop it (a resend after reconnect).
    Duplicate,
    /// The next one expected.
    InOrder,
    /// Some events before it never arrived: `from..=to` are missing.
    Gap { from: u64, to: u64 },
}

/// All clients of the current session, ordered by identity.
#[derive(Default)]
pub struct Registry {
    clients: BTreeMap<ClientId, ClientRecord>,
}

impl Registry {
    /// An empty registry (a new session).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a client's hello and decides where its numbering continues.
    pub fn join(&mut self, id: &ClientId, instance: [u8; INSTANCE_LEN], now_ms: u64) -> Join {
        match self.clients.get_mut(id) {
            Some(r) => {
                let gap_ms = r.lost_since_ms.map(|t| now_ms.saturating_sub(t));
                let restarted = r.instance != instance;
                if restarted {
                    r.instance = instance;
                    r.written_seq = 0;
                    r.queued_seq = 0;
                }
                r.state = ClientState::Connected;
                r.lost_since_ms = None;
                r.last_contact_ms = now_ms;
                Join {
                    next_seq: r.written_seq + 1,
                    reconnect: !restarted,
                    restarted,
                    gap_ms,
                }
            }
            None => {
                self.clients.insert(
                    id.clone(),
                    ClientRecord {
                        id: id.clone(),
                        state: ClientState::Connected,
                        instance,
                        written_seq: 0,
                        queued_seq: 0,
                        last_contact_ms: now_ms,
                        lost_since_ms: None,
                        net_events: 0,
                        mount_events: 0,
                        flagged_events: 0,
                        last_event: String::new(),
                    },
                );
                Join {
                    next_seq: 1,
                    reconnect: false,
                    restarted: false,
                    gap_ms: None,
                }
            }
        }
    }

    /// Re-creates a client's record from its log file after a server restart, as lost since the
    /// file's last line, so its reconnection continues the numbering and reports the gap.
    pub fn restore(
        &mut self,
        id: &ClientId,
        instance: [u8; INSTANCE_LEN],
        written_seq: u64,
        lost_since_ms: u64,
    ) {
        self.clients
            .entry(id.clone())
            .or_insert_with(|| ClientRecord {
                id: id.clone(),
                state: ClientState::Lost,
                instance,
                written_seq,
                queued_seq: written_seq,
                last_contact_ms: lost_since_ms,
                lost_since_ms: Some(lost_since_ms),
                net_events: 0,
                mount_events: 0,
                flagged_events: 0,
                last_event: String::new(),
            });
    }

    /// Classifies an arriving event and, unless it is a duplicate, queues it (updating counts).
    pub fn accept(
        &mut self,
        id: &ClientId,
        seq: u64,
        kind: EventKind,
        detail: &str,
        now_ms: u64,
    ) -> SeqVerdict {
        let Some(r) = self.clients.get_mut(id) else {
            return SeqVerdict::Duplicate;
        };
        r.last_contact_ms = now_ms;
        if seq <= r.queued_seq {
            return SeqVerdict::Duplicate;
        }
        let verdict = if seq == r.queued_seq + 1 {
            SeqVerdict::InOrder
        } else {
            SeqVerdict::Gap {
                from: r.queued_seq + 1,
                to: seq - 1,
            }
        };
        r.queued_seq = seq;
        match kind {
            EventKind::Net => r.net_events += 1,
            EventKind::Mount | EventKind::Unmount | EventKind::Device => r.mount_events += 1,
            EventKind::Status => {}
        }
        // Reuses the string's room: this runs for every event.
        r.last_event.clear();
        r.last_event.push_str(kind.as_str());
        r.last_event.push(' ');
        r.last_event.push_str(detail);
        verdict
    }

    /// Counts an accepted event that the policy flagged.
    pub fn count_flagged(&mut self, id: &ClientId) {
        if let Some(r) = self.clients.get_mut(id) {
            r.flagged_events += 1;
        }
    }

    /// The queued events reached the file: they may be acknowledged. Returns the seq to ack.
    pub fn commit(&mut self, id: &ClientId) -> u64 {
        match self.clients.get_mut(id) {
            Some(r) => {
                r.written_seq = r.queued_seq;
                r.written_seq
            }
            None => 0,
        }
    }

    /// Writing failed: forget what was queued so the client's resend is accepted.
    pub fn rollback(&mut self, id: &ClientId) {
        if let Some(r) = self.clients.get_mut(id) {
            r.queued_seq = r.written_seq;
        }
    }

    /// Notes that something arrived (a heartbeat), for the "last contact" column.
    pub fn touch(&mut self, id: &ClientId, now_ms: u64) {
        if let Some(r) = self.clients.get_mut(id) {
            r.last_contact_ms = now_ms;
        }
    }

    /// Marks a client lost (no-op if already lost or stopped).
    pub fn mark_lost(&mut self, id: &ClientId, now_ms: u64) -> bool {
        match self.clients.get_mut(id) {
            Some(r) if r.state == ClientState::Connected => {
                r.state = ClientState::Lost;
                r.lost_since_ms = Some(now_ms);
                true
            }
            _ => false,
        }
    }

    /// Marks a client as having finished the session cleanly.
    pub fn mark_stopped(&mut self, id: &ClientId) {
        if let Some(r) = self.clients.get_mut(id) {
            r.state = ClientState::Stopped;
        }
    }

    /// A client's record.
    pub fn get(&self, id: &ClientId) -> Option<&ClientRecord> {
        self.clients.get(id)
    }

    /// Copies of all records, for display.
    pub fn snapshot(&self) -> Vec<ClientRecord> {
        self.clients.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ClientId {
        ClientId {
            host: "pc".into(),
            addr: "10.0.0.1".parse().unwrap(),
        }
    }

    #[test]
    fn duplicates_and_gaps() {
        let mut r = Registry::new();
        assert_eq!(r.join(&id(), [1; 16], 0).next_seq, 1);
        assert_eq!(
            r.accept(&id(), 1, EventKind::Net, "a", 0),
            SeqVerdict::InOrder
        );
        assert_eq!(
            r.accept(&id(), 1, EventKind::Net, "a", 0),
            SeqVerdict::Duplicate
        );
        assert_eq!(
            r.accept(&id(), 4, EventKind::Mount, "b", 0),
            SeqVerdict::Gap { from: 2, to: 3 }
        );
        assert_eq!(r.commit(&id()), 4);
        r.count_flagged(&id());
        let rec = r.get(&id()).unwrap();
        assert_eq!((rec.net_events, rec.mount_events), (1, 1));
        assert_eq!(rec.flagged_events, 1);
    }

    #[test]
    fn reconnect_continues_and_restart_resets() {
        let mut r = Registry::new();
        r.join(&id(), [1; 16], 0);
        r.accept(&id(), 1, EventKind::Net, "a", 0);
        r.accept(&id(), 2, EventKind::Net, "a", 0);
        r.commit(&id());
        r.accept(&id(), 3, EventKind::Net, "a", 0);
        r.rollback(&id()); // write of 3 failed
        assert!(r.mark_lost(&id(), 1000));
        let j = r.join(&id(), [1; 16], 21_000);
        assert_eq!(
            j,
            Join {
                next_seq: 3,
                reconnect: true,
                restarted: false,
                gap_ms: Some(20_000)
            }
        );
        assert_eq!(
            r.accept(&id(), 3, EventKind::Net, "a", 0),
            SeqVerdict::InOrder
        );
        let j = r.join(&id(), [2; 16], 22_000);
        assert!(j.restarted);
        assert_eq!(j.next_seq, 1);
    }
}
