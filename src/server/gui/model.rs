//! What the invigilator's window shows, as plain data: the session phase, one row per machine,
//! the bounded list of event lines, the events-per-second meter and the problem message. It is
//! kept up to date from the core's [`Note`]s by [`Model::apply`] and knows nothing about
//! widgets, so every rule here (triage order, column sorting, line filtering, what the
//! Start/Stop control says) is unit-tested without a display. The widgets only render it.

use crate::error::Error;
use crate::event::{EventKind, escape};
use crate::server::core::{Command, Note};
use crate::server::registry::{ClientRecord, ClientState};
use crate::server::storage::ClientId;
use crate::timefmt::rfc3339_ms;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

/// Event lines kept in memory for the live view (the log files keep everything).
pub const MAX_LINES: usize = 5_000;

/// Where the monitoring session stands, as the Start/Stop control shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No session: the control offers Start.
    Idle,
    /// Start was pressed; waiting for the core to confirm.
    Starting,
    /// A session runs: the control offers Stop.
    Running,
    /// Stop was pressed; the clients deliver their last events.
    Stopping,
}

impl Phase {
    /// The label of the Start/Stop control in this phase.
    pub fn button_label(self) -> &'static str {
        match self {
            Phase::Idle => "Start session",
            Phase::Starting => "Starting…",
            Phase::Running => "Stop session",
            Phase::Stopping => "Stopping…",
        }
    }

    /// Whether the control can be pressed (not while a start or stop is in flight).
    pub fn button_active(self) -> bool {
        matches!(self, Phase::Idle | Phase::Running)
    }

    /// A session exists (running, or on its way in or out).
    pub fn in_session(self) -> bool {
        !matches!(self, Phase::Idle)
    }

    /// Short word for the state dump.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
        }
    }
}

/// The current or last session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Session id, lower-case hex.
    pub id: String,
    /// Start, ms since the epoch (server clock).
    pub started_ms: u64,
    /// The directory its log files go to.
    pub dir: PathBuf,
    /// When it ended, if it has.
    pub stopped_ms: Option<u64>,
}

/// Why a machine row is highlighted; the order is the triage order (most urgent first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flag {
    /// The connection was lost.
    Lost,
    /// The policy flagged at least one of its events.
    Flagged,
    /// A filesystem was mounted or unmounted.
    Mount,
    /// Nothing to look at.
    Normal,
}

/// One machine of the session, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRow {
    /// Host name (escaped) and address.
    pub id: ClientId,
    /// Connected, lost or stopped.
    pub state: ClientState,
    /// Last time the core heard from it (ms since the epoch, server clock).
    pub last_contact_ms: u64,
    /// When it went away, if it is lost.
    pub lost_since_ms: Option<u64>,
    /// Network flows seen (`new` lines, or packets with `--per-packet`).
    pub net_flows: u64,
    /// Network events of any sort (new and end lines), as counted by the core.
    pub net_events: u64,
    /// Mount and unmount events, as counted by the core.
    pub mount_events: u64,
    /// Events the policy flagged, as counted by the core.
    pub flagged: u64,
    /// The latest event's kind and detail.
    pub last_event: String,
}

impl MachineRow {
    fn new(rec: &ClientRecord) -> MachineRow {
        let mut row = MachineRow {
            id: rec.id.clone(),
            state: rec.state,
            last_contact_ms: 0,
            lost_since_ms: None,
            net_flows: 0,
            net_events: 0,
            mount_events: 0,
            flagged: 0,
            last_event: String::new(),
        };
        row.update(rec);
        row
    }

    fn update(&mut self, rec: &ClientRecord) {
        self.state = rec.state;
        self.last_contact_ms = rec.last_contact_ms;
        self.lost_since_ms = rec.lost_since_ms;
        self.net_events = rec.net_events;
        self.mount_events = rec.mount_events;
        self.flagged = rec.flagged_events;
        if !rec.last_event.is_empty() {
            self.last_event = escape(&rec.last_event);
        }
    }

    /// Why the row stands out, if it does.
    pub fn flag(&self) -> Flag {
        if self.state == ClientState::Lost {
            Flag::Lost
        } else if self.flagged > 0 {
            Flag::Flagged
        } else if self.mount_events > 0 {
            Flag::Mount
        } else {
            Flag::Normal
        }
    }

    /// Rows with a lost connection, a flagged event or a mount event are highlighted.
    pub fn highlighted(&self) -> bool {
        self.flag() != Flag::Normal
    }

    /// The text of one cell; `now_ms` gives the age of a loss.
    pub fn cell(&self, col: Column, now_ms: u64) -> String {
        match col {
            Column::Host => self.id.host.clone(),
            Column::Address => self.id.addr.to_string(),
            Column::State => self.state.as_str().to_string(),
            Column::LastContact => match (self.state, self.lost_since_ms) {
                (ClientState::Lost, Some(t)) => {
                    format!("{} ({})", clock_s(t), age(now_ms.saturating_sub(t)))
                }
                (ClientState::Connected, _) => "now".to_string(),
                _ => clock_s(self.last_contact_ms),
            },
            Column::NetFlows => self.net_flows.to_string(),
            Column::Mounts => self.mount_events.to_string(),
            Column::Flagged => self.flagged.to_string(),
            Column::LastEvent => self.last_event.clone(),
        }
    }

    /// The time the "last contact" column sorts by: when it went away, or last heard of.
    fn contact_key(&self, now_ms: u64) -> u64 {
        match (self.state, self.lost_since_ms) {
            (ClientState::Lost, Some(t)) => t,
            (ClientState::Connected, _) => now_ms.max(self.last_contact_ms),
            _ => self.last_contact_ms,
        }
    }
}

/// The columns of the machine table, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Host name.
    Host,
    /// IP address.
    Address,
    /// Connected / lost / stopped.
    State,
    /// Last contact, or when it went away.
    LastContact,
    /// Network flows.
    NetFlows,
    /// Mount events.
    Mounts,
    /// Events the policy flagged.
    Flagged,
    /// Latest event.
    LastEvent,
}

impl Column {
    /// Every column in display order.
    pub const ALL: [Column; 8] = [
        Column::Host,
        Column::Address,
        Column::State,
        Column::LastContact,
        Column::NetFlows,
        Column::Mounts,
        Column::Flagged,
        Column::LastEvent,
    ];

    /// The column at a table index, if any.
    pub fn from_index(i: i32) -> Option<Column> {
        usize::try_from(i)
            .ok()
            .and_then(|i| Column::ALL.get(i).copied())
    }

    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            Column::Host => "Host",
            Column::Address => "Address",
            Column::State => "State",
            Column::LastContact => "Last contact (UTC)",
            Column::NetFlows => "Net flows",
            Column::Mounts => "Mounts",
            Column::Flagged => "Flagged",
            Column::LastEvent => "Last event",
        }
    }

    /// Numbers read best right-aligned.
    pub fn numeric(self) -> bool {
        matches!(self, Column::NetFlows | Column::Mounts | Column::Flagged)
    }
}

/// How the machine table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Lost machines first, then machines with flagged events, then machines with mount
    /// events, then the rest; by name within.
    Triage,
    /// By one column (ties by name).
    By {
        /// The column.
        column: Column,
        /// Largest / latest / last in the alphabet first.
        descending: bool,
    },
}

impl SortOrder {
    /// The order after a click on `col`'s title: ascending, then descending, then back to
    /// triage. Counts and times start descending (the most interesting first).
    pub fn clicked(self, col: Column) -> SortOrder {
        let first_desc = matches!(
            col,
            Column::NetFlows | Column::Mounts | Column::Flagged | Column::LastContact
        );
        match self {
            SortOrder::By { column, descending } if column == col => {
                if descending == first_desc {
                    SortOrder::By {
                        column,
                        descending: !descending,
                    }
                } else {
                    SortOrder::Triage
                }
            }
            _ => SortOrder::By {
                column: col,
                descending: first_desc,
            },
        }
    }

    /// The title of `col` with an arrow when the table is sorted by it.
    pub fn title(self, col: Column) -> String {
        match self {
            SortOrder::By { column, descending } if column == col => {
                format!("{} {}", col.title(), if descending { "▼" } else { "▲" })
            }
            _ => col.title().to_string(),
        }
    }

    /// Word for the state dump.
    pub fn describe(self) -> String {
        match self {
            SortOrder::Triage => "triage".into(),
            SortOrder::By { column, descending } => format!(
                "{} {}",
                column.title(),
                if descending {
                    "descending"
                } else {
                    "ascending"
                }
            ),
        }
    }
}

/// Sorts rows in place.
pub fn sort_rows(rows: &mut [&MachineRow], order: SortOrder, now_ms: u64) {
    let by_name = |a: &MachineRow, b: &MachineRow| a.id.cmp(&b.id);
    rows.sort_by(|a, b| {
        let primary = match order {
            SortOrder::Triage => a.flag().cmp(&b.flag()),
            SortOrder::By { column, descending } => {
                let o = match column {
                    Column::Host => a.id.host.cmp(&b.id.host),
                    Column::Address => a.id.addr.cmp(&b.id.addr),
                    Column::State => state_rank(a.state).cmp(&state_rank(b.state)),
                    Column::LastContact => a.contact_key(now_ms).cmp(&b.contact_key(now_ms)),
                    Column::NetFlows => a.net_flows.cmp(&b.net_flows),
                    Column::Mounts => a.mount_events.cmp(&b.mount_events),
                    Column::Flagged => a.flagged.cmp(&b.flagged),
                    Column::LastEvent => a.last_event.cmp(&b.last_event),
                };
                if descending { o.reverse() } else { o }
            }
        };
        primary.then_with(|| by_name(a, b))
    });
}

fn state_rank(s: ClientState) -> u8 {
    match s {
        ClientState::Lost => 0,
        ClientState::Connected => 1,
        ClientState::Stopped => 2,
    }
}

/// What sort of line the event view shows; each has its own colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A network flow began or ended.
    Net,
    /// A filesystem was mounted or unmounted.
    Mount,
    /// Client health and connection changes.
    Status,
    /// Losses, gaps, refused connections, write failures.
    Warning,
    /// Session start and stop.
    Session,
    /// An event the policy flagged (whatever its kind).
    Flagged,
}

/// One line of the event view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// Running number (never reused), so the view can tell which lines are new.
    pub no: u64,
    /// Colour class.
    pub kind: LineKind,
    /// The machine it belongs to, if any.
    pub machine: Option<ClientId>,
    /// The whole line as shown (escaped: one line, no control characters).
    pub text: String,
}

/// Which event lines the view shows: one machine's (or all), containing a text (or any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFilter {
    /// Only this machine's lines.
    pub machine: Option<ClientId>,
    /// Only lines containing this, ignoring case (empty: no text filter).
    pub text: String,
}

impl LineFilter {
    /// A filter for a machine and a typed text.
    pub fn new(machine: Option<ClientId>, text: &str) -> LineFilter {
        LineFilter {
            machine,
            text: text.trim().to_lowercase(),
        }
    }

    /// Whether `line` passes.
    pub fn matches(&self, line: &EventLine) -> bool {
        if let Some(m) = &self.machine
            && line.machine.as_ref() != Some(m)
        {
            return false;
        }
        self.text.is_empty() || line.text.to_lowercase().contains(&self.text)
    }
}

/// Events per second, from the counts of whole seconds (time passed in, for tests).
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    buckets: VecDeque<(u64, u64)>,
}

impl RateMeter {
    /// Counts `n` events at `now_ms`.
    pub fn record(&mut self, now_ms: u64, n: u64) {
        let sec = now_ms / 1000;
        match self.buckets.back_mut() {
            Some((s, c)) if *s == sec => *c += n,
            _ => self.buckets.push_back((sec, n)),
        }
        while self.buckets.len() > 4 {
            self.buckets.pop_front();
        }
    }

    /// Events in the last complete second before `now_ms`.
    pub fn per_second(&self, now_ms: u64) -> u64 {
        let prev = (now_ms / 1000).saturating_sub(1);
        self.buckets
            .iter()
            .find(|(s, _)| *s == prev)
            .map(|(_, c)| *c)
            .unwrap_or(0)
    }
}

/// A problem the window shows in its message bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What to show.
    pub text: String,
    /// The server cannot work at all (no key, no port): Start stays disabled.
    pub fatal: bool,
}

/// What changed in one [`Model::apply`], so the window redraws only that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// The machine table.
    pub table: bool,
    /// The event lines.
    pub lines: bool,
    /// Session, phase, problem or counters.
    pub status: bool,
}

impl Changes {
    /// Combines two sets of changes.
    pub fn merge(&mut self, o: Changes) {
        self.table |= o.table;
        self.lines |= o.lines;
        self.status |= o.status;
    }

    /// Anything changed.
    pub fn any(&self) -> bool {
        self.table || self.lines || self.status
    }
}

/// Everything the window shows, fed by [`Note`]s.
#[derive(Debug, Clone)]
pub struct Model {
    /// Where the session stands.
    pub phase: Phase,
    /// The current or last session.
    pub session: Option<SessionInfo>,
    /// The message bar's content.
    pub problem: Option<Problem>,
    /// What the policy in force checks (`None` without `--policy`), for the status bar.
    pub policy: Option<String>,
    /// The last policy reload failed: its error (also in the message bar until the next
    /// good reload).
    pub policy_error: Option<String>,
    /// Events flagged by the policy in this program run.
    pub flagged_total: u64,
    /// Successful policy reloads in this program run.
    pub policy_reloads: u64,
    /// The machines of the current (or last) session.
    pub machines: BTreeMap<ClientId, MachineRow>,
    lines: VecDeque<EventLine>,
    max_lines: usize,
    next_no: u64,
    /// Client events received in this program run.
    pub events_total: u64,
    /// Connections or frames the core refused (bad key, garbage, timeouts).
    pub refused: u64,
    rate: RateMeter,
    /// The core has ended its loop; nothing more will come.
    pub exited: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model::new(MAX_LINES)
    }
}

impl Model {
    /// An empty model keeping at most `max_lines` event lines.
    pub fn new(max_lines: usize) -> Model {
        Model {
            phase: Phase::Idle,
            session: None,
            problem: None,
            policy: None,
            policy_error: None,
            flagged_total: 0,
            policy_reloads: 0,
            machines: BTreeMap::new(),
            lines: VecDeque::new(),
            max_lines: max_lines.max(1),
            next_no: 1,
            events_total: 0,
            refused: 0,
            rate: RateMeter::default(),
            exited: false,
        }
    }

    /// A problem that keeps the server from working (shown in the window; Start disabled).
    pub fn set_fatal(&mut self, e: &Error) {
        self.problem = Some(Problem {
            text: describe_setup_error(e),
            fatal: true,
        });
    }

    /// The Start/Stop control was pressed: the command to send, if any, and the new phase.
    pub fn press_start_stop(&mut self) -> Option<Command> {
        if self.problem.as_ref().is_some_and(|p| p.fatal) || self.exited {
            return None;
        }
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Starting;
                Some(Command::StartSession)
            }
            Phase::Running => {
                self.phase = Phase::Stopping;
                Some(Command::StopSession)
            }
            Phase::Starting | Phase::Stopping => None,
        }
    }

    /// Takes in one note from the core. Never panics, whatever the note holds.
    pub fn apply(&mut self, note: Note, now_ms: u64) -> Changes {
        let mut ch = Changes::default();
        match note {
            Note::SessionStarted {
                id,
                dir,
                started_ms,
            } => {
                self.phase = Phase::Running;
                if self.problem.as_ref().is_some_and(|p| !p.fatal) {
                    self.problem = None;
                }
                self.machines.clear();
                let text = format!(
                    "session {} started; log files in {}",
                    id.hex(),
                    dir.display()
                );
                self.session = Some(SessionInfo {
                    id: id.hex(),
                    started_ms,
                    dir,
                    stopped_ms: None,
                });
                self.push(LineKind::Session, None, now_ms, "session", &text);
                ch = Changes {
                    table: true,
                    lines: true,
                    status: true,
                };
            }
            Note::SessionStopping { .. } => {
                self.phase = Phase::Stopping;
                self.push(
                    LineKind::Session,
                    None,
                    now_ms,
                    "session",
                    "stopping: waiting for the clients' last events",
                );
                ch.lines = true;
                ch.status = true;
            }
            Note::SessionStopped { id, dir } => {
                self.phase = Phase::Idle;
                if let Some(s) = self.session.as_mut() {
                    s.stopped_ms = Some(now_ms);
                }
                let text = format!(
                    "session {} stopped; files closed in {}",
                    id.hex(),
                    dir.display()
                );
                self.push(LineKind::Session, None, now_ms, "session", &text);
                ch = Changes {
                    table: true,
                    lines: true,
                    status: true,
                };
            }
            Note::ClientConnected {
                client,
                reconnect_gap_ms,
                restarted,
            } => {
                let text = match (restarted, reconnect_gap_ms) {
                    (true, _) => "restarted (new process) and reconnected".to_string(),
                    (false, Some(g)) => {
                        format!("reconnected after {:.1} s away", g as f64 / 1000.0)
                    }
                    _ => "connected".to_string(),
                };
                self.upsert(&client);
                self.push(LineKind::Status, Some(&client.id), now_ms, "server", &text);
                ch = Changes {
                    table: true,
                    lines: true,
                    status: true,
                };
            }
            Note::ClientLost { client, reason } => {
                self.upsert(&client);
                self.push(LineKind::Warning, Some(&client.id), now_ms, "LOST", &reason);
                ch = Changes {
                    table: true,
                    lines: true,
                    status: true,
                };
            }
            Note::ClientStopped { client } => {
                self.upsert(&client);
                self.push(
                    LineKind::Status,
                    Some(&client.id),
                    now_ms,
                    "server",
                    "finished the session",
                );
                ch = Changes {
                    table: true,
                    lines: true,
                    status: true,
                };
            }
            Note::Event {
                client,
                ts_ms,
                kind,
                detail,
                ..
            } => {
                let row = self.upsert(&client);
                // A flow is counted once, at its `new` line (or each packet in per-packet mode);
                // `end` and `tls` lines describe a flow already counted.
                if kind == EventKind::Net
                    && (detail.starts_with("new ") || detail.starts_with("pkt "))
                {
                    row.net_flows += 1;
                }
                let flagged = crate::policy::verdict_of(&detail).is_some_and(|v| v.is_flagged());
                let line_kind = match kind {
                    _ if flagged => LineKind::Flagged,
                    EventKind::Net => LineKind::Net,
                    EventKind::Mount | EventKind::Unmount | EventKind::Device => LineKind::Mount,
                    EventKind::Status => LineKind::Status,
                };
                if flagged {
                    self.flagged_total += 1;
                    ch.status = true;
                }
                self.push(line_kind, Some(&client.id), ts_ms, kind.as_str(), &detail);
                self.events_total += 1;
                self.rate.record(now_ms, 1);
                ch.table = true;
                ch.lines = true;
            }
            Note::Warning(w) => {
                if self.phase == Phase::Starting && w.starts_with("cannot start session") {
                    self.phase = Phase::Idle;
                    self.problem = Some(Problem {
                        text: format!("The session could not start: {}", escape(&w)),
                        fatal: false,
                    });
                }
                self.push(LineKind::Warning, None, now_ms, "warning", &w);
                ch.lines = true;
                ch.status = true;
            }
            Note::Rejected { peer, reason } => {
                self.refused += 1;
                let text = format!("refused {peer}: {reason}");
                self.push(LineKind::Warning, None, now_ms, "refused", &text);
                ch.lines = true;
                ch.status = true;
            }
            Note::Clients(records) => {
                for rec in &records {
                    self.upsert(rec);
                }
                ch.table = true;
            }
            Note::PolicyReloaded { path, summary } => {
                self.policy = Some(summary.clone());
                self.policy_reloads += 1;
                if self.policy_error.take().is_some()
                    && self.problem.as_ref().is_some_and(|p| !p.fatal)
                {
                    self.problem = None;
                }
                let text = format!("policy reloaded from {}: {summary}", path.display());
                self.push(LineKind::Session, None, now_ms, "policy", &text);
                ch.lines = true;
                ch.status = true;
            }
            Note::PolicyFailed { path, error } => {
                let text = format!(
                    "The policy file {} could not be reloaded; the previous policy stays in force. {error}",
                    path.display()
                );
                self.policy_error = Some(error.clone());
                if !self.problem.as_ref().is_some_and(|p| p.fatal) {
                    self.problem = Some(Problem {
                        text: escape(&text),
                        fatal: false,
                    });
                }
                self.push(LineKind::Warning, None, now_ms, "policy", &text);
                ch.lines = true;
                ch.status = true;
            }
            Note::Exited => {
                self.exited = true;
                self.phase = Phase::Idle;
                ch.status = true;
            }
        }
        ch
    }

    fn upsert(&mut self, rec: &ClientRecord) -> &mut MachineRow {
        self.machines
            .entry(rec.id.clone())
            .and_modify(|r| r.update(rec))
            .or_insert_with(|| MachineRow::new(rec))
    }

    fn push(
        &mut self,
        kind: LineKind,
        machine: Option<&ClientId>,
        at_ms: u64,
        tag: &str,
        detail: &str,
    ) {
        let who = machine.map(|m| format!("{} {}", m.host, m.addr));
        let text = escape(&format!(
            "{}  {:<24} {:<8} {}",
            clock_ms(at_ms),
            who.as_deref().unwrap_or("-"),
            tag,
            detail
        ));
        self.lines.push_back(EventLine {
            no: self.next_no,
            kind,
            machine: machine.cloned(),
            text,
        });
        self.next_no += 1;
        while self.lines.len() > self.max_lines {
            self.lines.pop_front();
        }
    }

    /// The event lines in memory, oldest first.
    pub fn lines(&self) -> impl DoubleEndedIterator<Item = &EventLine> {
        self.lines.iter()
    }

    /// The lines numbered after `no`, oldest first.
    pub fn lines_after(&self, no: u64) -> impl Iterator<Item = &EventLine> {
        let newer = self.lines.iter().rev().take_while(|l| l.no > no).count();
        self.lines.iter().skip(self.lines.len() - newer)
    }

    /// Number of the newest line (0 before the first).
    pub fn last_line_no(&self) -> u64 {
        self.next_no - 1
    }

    /// The machine rows in `order`.
    pub fn rows(&self, order: SortOrder, now_ms: u64) -> Vec<&MachineRow> {
        let mut v: Vec<&MachineRow> = self.machines.values().collect();
        sort_rows(&mut v, order, now_ms);
        v
    }

    /// Machines (connected, lost, stopped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| self.machines.values().filter(|r| r.state == s).count();
        (
            n(ClientState::Connected),
            n(ClientState::Lost),
            n(ClientState::Stopped),
        )
    }

    /// Events per second over the last complete second.
    pub fn events_per_second(&self, now_ms: u64) -> u64 {
        self.rate.per_second(now_ms)
    }

    /// The line under the Start/Stop control that says where the session stands.
    pub fn headline(&self, now_ms: u64) -> String {
        match (self.phase, &self.session) {
            (Phase::Starting, _) => "Starting a session: announcing it to the lab…".into(),
            (Phase::Running, Some(s)) => format!(
                "Session running since {} UTC ({})",
                clock_s(s.started_ms),
                duration(now_ms.saturating_sub(s.started_ms))
            ),
            (Phase::Stopping, _) => {
                "Stopping: the clients are delivering their last events…".into()
            }
            (_, Some(s)) if s.stopped_ms.is_some() => format!(
                "Session ended at {} UTC. Press Start for a new one.",
                clock_s(s.stopped_ms.unwrap_or(0))
            ),
            _ if self.problem.as_ref().is_some_and(|p| p.fatal) => {
                "The server cannot run: see the message below.".into()
            }
            _ => "No session running. Press Start to announce one to the lab.".into(),
        }
    }

    /// The status bar's session part.
    pub fn session_status(&self) -> String {
        match &self.session {
            Some(s) => format!(
                "Session {} · {} UTC",
                s.id.get(..8).unwrap_or(&s.id),
                rfc3339_ms(s.started_ms)
                    .get(..19)
                    .unwrap_or_default()
                    .replace('T', " ")
            ),
            None => "No session yet".into(),
        }
    }
}

/// The message bar's text for a problem found before the window could start the core.
pub fn describe_setup_error(e: &Error) -> String {
    let m = e.to_string();
    match e {
        Error::Key(_) => format!("Key problem: {m}."),
        Error::AddrInUse(_) => format!(
            "Port in use: {m}. Another proctor server (or another program) holds it: close it, or choose another port with -s PORT."
        ),
        Error::Usage(_)
            if m.starts_with("policy file") || m.starts_with("cannot read policy file") =>
        {
            format!(
                "Policy problem: {m}. Correct the file (docs/POLICY.md) and start the server again."
            )
        }
        Error::Usage(_) if m.contains("broadcast") => format!(
            "No broadcast address: {m}. Connect the lab network, or name the address with --broadcast ADDR."
        ),
        Error::Permission(_) => format!("Permission problem: {m}."),
        _ => format!("The server cannot run: {m}."),
    }
}

/// `HH:MM:SS.mmm` (UTC) of a time in ms since the epoch.
pub fn clock_ms(ms: u64) -> String {
    let d = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        d / 3_600_000,
        (d / 60_000) % 60,
        (d / 1000) % 60,
        d % 1000
    )
}

/// `HH:MM:SS` (UTC) of a time in ms since the epoch.
pub fn clock_s(ms: u64) -> String {
    let mut s = clock_ms(ms);
    s.truncate(8);
    s
}

/// "12 s ago", "4 min ago", "2 h ago".
pub fn age(ms: u64) -> String {
    format!("{} ago", duration(ms))
}

/// "12 s", "4 min", "2 h 5 min".
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {} min", s / 3600, (s / 60) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SessionId;

    fn rec(host: &str, state: ClientState, mounts: u64) -> ClientRecord {
        ClientRecord {
            id: ClientId {
                host: host.into(),
                addr: "10.0.0.1".parse().unwrap(),
            },
            state,
            instance: [0; 16],
            written_seq: 0,
            queued_seq: 0,
            last_contact_ms: 1000,
            lost_since_ms: (state == ClientState::Lost).then_some(2000),
            net_events: 0,
            mount_events: mounts,
            flagged_events: 0,
            last_event: String::new(),
        }
    }

    fn event(client: ClientRecord, kind: EventKind, detail: &str) -> Note {
        Note::Event {
            client: client.into(),
            seq: 1,
            ts_ms: 5000,
            kind,
            detail: detail.into(),
        }
    }

    fn started(m: &mut Model) {
        m.apply(
            Note::SessionStarted {
                id: SessionId::random(),
                dir: "/tmp/logs/s".into(),
                started_ms: 1000,
            },
            1000,
        );
    }

    #[test]
    fn start_stop_control_follows_the_core() {
        let mut m = Model::default();
        assert_eq!(m.phase.button_label(), "Start session");
        assert_eq!(m.press_start_stop(), Some(Command::StartSession));
        assert_eq!(m.phase.button_label(), "Starting…");
        assert!(!m.phase.button_active());
        assert_eq!(
            m.press_start_stop(),
            None,
            "no second start while in flight"
        );
        started(&mut m);
        assert_eq!(m.phase, Phase::Running);
        assert_eq!(m.press_start_stop(), Some(Command::StopSession));
        assert_eq!(m.phase.button_label(), "Stopping…");
        let id = SessionId::random();
        m.apply(
            Note::SessionStopped {
                id,
                dir: "/x".into(),
            },
            9000,
        );
        assert_eq!(m.phase, Phase::Idle);
        assert!(m.headline(9000).contains("ended"));
    }

    #[test]
    fn a_client_snapshot_shows_machines_known_only_from_the_files() {
        // After a server restart the registry knows clients from their log files (lost until
        // they return); the periodic snapshot is how the window learns of them.
        let mut m = Model::default();
        started(&mut m);
        m.apply(
            Note::Clients(vec![rec("pc-back-later", ClientState::Lost, 0)]),
            3000,
        );
        let rows = m.rows(SortOrder::Triage, 3000);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cell(Column::State, 3000), "lost");
    }

    #[test]
    fn failed_start_returns_to_idle_with_a_message() {
        let mut m = Model::default();
        m.press_start_stop();
        m.apply(
            Note::Warning("cannot start session: permission denied".into()),
            0,
        );
        assert_eq!(m.phase, Phase::Idle);
        assert!(m.problem.as_ref().is_some_and(|p| !p.fatal));
        started(&mut m);
        assert!(m.problem.is_none(), "a successful start clears it");
    }

    #[test]
    fn fatal_problem_disables_start() {
        let mut m = Model::default();
        m.set_fatal(&Error::Key("keyfile.key is the public demo key".into()));
        assert!(m.problem.as_ref().unwrap().text.starts_with("Key problem"));
        assert_eq!(m.press_start_stop(), None);
        let e = Error::io(
            "cannot listen on TCP port 1",
            std::io::Error::from(std::io::ErrorKind::AddrInUse),
        );
        assert!(describe_setup_error(&e).starts_with("Port in use"));
        let e = Error::Usage("no broadcast address found".into());
        assert!(describe_setup_error(&e).starts_with("No broadcast address"));
    }

    #[test]
    fn counts_flows_and_mounts_and_highlights() {
        let mut m = Model::default();
        started(&mut m);
        let r = rec("pc1", ClientState::Connected, 0);
        m.apply(event(r.clone(), EventKind::Net, "new udp a -> b"), 0);
        m.apply(event(r.clone(), EventKind::Net, "new udp a -> c"), 0);
        m.apply(
            event(r.clone(), EventKind::Net, "end udp a -> b packets=1"),
            0,
        );
        let row = &m.machines[&r.id];
        assert_eq!(row.net_flows, 2);
        assert!(!row.highlighted());
        let r2 = rec("pc1", ClientState::Connected, 1);
        m.apply(event(r2, EventKind::Mount, "t on /mnt type=tmpfs"), 0);
        let row = &m.machines[&r.id];
        assert_eq!((row.net_flows, row.mount_events), (2, 1));
        assert_eq!(row.flag(), Flag::Mount);
        assert!(row.last_event.is_empty(), "record had no last event");
        assert_eq!(m.events_total, 4);
    }

    #[test]
    fn triage_puts_lost_then_mounts_on_top_and_columns_sort() {
        let mut m = Model::default();
        started(&mut m);
        for (h, s, mounts) in [
            ("a-quiet", ClientState::Connected, 0),
            ("b-mount", ClientState::Connected, 2),
            ("c-lost", ClientState::Lost, 0),
            ("d-done", ClientState::Stopped, 0),
        ] {
            m.apply(
                Note::ClientConnected {
                    client: rec(h, s, mounts),
                    reconnect_gap_ms: None,
                    restarted: false,
                },
                0,
            );
        }
        let names = |o| -> Vec<String> {
            m.rows(o, 10_000)
                .iter()
                .map(|r| r.id.host.clone())
                .collect()
        };
        assert_eq!(
            names(SortOrder::Triage),
            ["c-lost", "b-mount", "a-quiet", "d-done"]
        );
        let by_host = SortOrder::Triage.clicked(Column::Host);
        assert_eq!(names(by_host), ["a-quiet", "b-mount", "c-lost", "d-done"]);
        let by_host_desc = by_host.clicked(Column::Host);
        assert_eq!(
            names(by_host_desc),
            ["d-done", "c-lost", "b-mount", "a-quiet"]
        );
        assert_eq!(by_host_desc.clicked(Column::Host), SortOrder::Triage);
        let mounts = SortOrder::Triage.clicked(Column::Mounts);
        assert_eq!(names(mounts)[0], "b-mount");
        assert!(mounts.title(Column::Mounts).ends_with('▼'));
        assert_eq!(mounts.title(Column::Host), "Host");
        assert_eq!(m.counts(), (2, 1, 1));
        let lost = &m.machines.values().find(|r| r.id.host == "c-lost").unwrap();
        assert_eq!(
            lost.cell(Column::LastContact, 14_000),
            "00:00:02 (12 s ago)"
        );
        assert_eq!(lost.cell(Column::State, 0), "lost");
    }

    #[test]
    fn lost_client_stays_with_the_time_it_went_away() {
        let mut m = Model::default();
        started(&mut m);
        let r = rec("pc", ClientState::Connected, 0);
        m.apply(
            Note::ClientConnected {
                client: r.clone(),
                reconnect_gap_ms: None,
                restarted: false,
            },
            0,
        );
        let lost = rec("pc", ClientState::Lost, 0);
        m.apply(
            Note::ClientLost {
                client: lost,
                reason: "no data for 3.0 s".into(),
            },
            2500,
        );
        let row = &m.machines[&r.id];
        assert_eq!(row.state, ClientState::Lost);
        assert_eq!(row.lost_since_ms, Some(2000));
        assert!(row.highlighted());
        let last = m.lines().last().unwrap();
        assert_eq!(last.kind, LineKind::Warning);
        assert!(last.text.contains("LOST") && last.text.contains("no data"));
    }

    #[test]
    fn lines_are_bounded_numbered_and_filtered() {
        let mut m = Model::new(3);
        started(&mut m);
        let a = rec("alpha", ClientState::Connected, 0);
        let mut b = rec("beta", ClientState::Connected, 0);
        b.id.addr = "10.0.0.2".parse().unwrap();
        m.apply(
            event(
                a.clone(),
                EventKind::Net,
                "new udp 1.1.1.1:5 -> 2.2.2.2:443",
            ),
            0,
        );
        m.apply(event(b.clone(), EventKind::Mount, "usb on /media/x"), 0);
        m.apply(event(a.clone(), EventKind::Status, "baseline"), 0);
        m.apply(
            event(b.clone(), EventKind::Net, "new tcp 3.3.3.3:1 -> 4.4.4.4:22"),
            0,
        );
        assert_eq!(m.lines().count(), 3, "bounded");
        assert_eq!(m.last_line_no(), 5);
        assert_eq!(m.lines_after(3).map(|l| l.no).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(m.lines_after(0).count(), 3);
        let only_b = LineFilter::new(Some(b.id.clone()), "");
        assert_eq!(m.lines().filter(|l| only_b.matches(l)).count(), 2);
        let port = LineFilter::new(None, " :443 ");
        assert_eq!(m.lines().filter(|l| port.matches(l)).count(), 0, "evicted");
        let word = LineFilter::new(None, "USB");
        let hits: Vec<_> = m.lines().filter(|l| word.matches(l)).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, LineKind::Mount);
        let both = LineFilter::new(Some(a.id.clone()), "tcp");
        assert_eq!(m.lines().filter(|l| both.matches(l)).count(), 0);
        assert!(hits[0].text.contains("beta 10.0.0.2"));
    }

    #[test]
    fn hostile_text_stays_one_line_and_nothing_panics() {
        let mut m = Model::default();
        let mut r = rec("evil\nhost\u{202e}", ClientState::Connected, 0);
        r.last_event = "net a\rb".into();
        m.apply(
            Note::Event {
                client: r.clone().into(),
                seq: u64::MAX,
                ts_ms: u64::MAX,
                kind: EventKind::Net,
                detail: "x\ny\u{0}".into(),
            },
            u64::MAX,
        );
        m.apply(
            Note::Rejected {
                peer: "1.2.3.4:5".parse().unwrap(),
                reason: "bad\nframe".into(),
            },
            0,
        );
        m.apply(Note::Warning(String::new()), 0);
        m.apply(
            Note::SessionStopping {
                id: SessionId::random(),
            },
            0,
        );
        m.apply(Note::Exited, 0);
        for l in m.lines() {
            assert!(!l.text.contains('\n') && !l.text.contains('\r'), "{l:?}");
        }
        assert!(!m.machines[&r.id].last_event.contains('\r'));
        assert_eq!(m.refused, 1);
        assert!(m.exited);
        let _ = m.rows(SortOrder::Triage, 0)[0].cell(Column::LastContact, 0);
        let _ = m.headline(0);
    }

    #[test]
    fn rate_meter_counts_the_last_whole_second() {
        let mut r = RateMeter::default();
        for i in 0..10_000u64 {
            r.record(5000 + i / 10, 1);
        }
        assert_eq!(r.per_second(6000), 10_000);
        assert_eq!(r.per_second(6999), 10_000);
        assert_eq!(r.per_second(8000), 0);
        r.record(8100, 3);
        assert_eq!(r.per_second(9000), 3);
    }

    #[test]
    fn flagged_events_colour_their_line_and_sort_their_machine_up() {
        let mut m = Model::default();
        started(&mut m);
        let mut flagged = rec("pc-b", ClientState::Connected, 1);
        flagged.flagged_events = 1;
        m.apply(
            event(
                flagged,
                EventKind::Net,
                "new udp 1.2.3.4:5 -> 6.7.8.9:10 verdict=flagged why=\"destination 6.7.8.9:10 (udp) not allowed\"",
            ),
            5000,
        );
        m.apply(
            event(
                rec("pc-a", ClientState::Connected, 2),
                EventKind::Mount,
                "tmpfs on /x type=tmpfs source=tmpfs class=virtual verdict=ok",
            ),
            5000,
        );
        // A forged verdict inside the detail does not count: the last one does.
        m.apply(
            event(
                rec("pc-c", ClientState::Connected, 0),
                EventKind::Net,
                "new udp 1.2.3.4:5 -> 6.7.8.9:11 verdict=flagged why=\"x\" verdict=ok",
            ),
            5000,
        );
        let kinds: Vec<LineKind> = m.lines().skip(1).map(|l| l.kind).collect();
        assert_eq!(kinds, [LineKind::Flagged, LineKind::Mount, LineKind::Net]);
        assert_eq!(m.flagged_total, 1);
        let rows = m.rows(SortOrder::Triage, 5000);
        assert_eq!(rows[0].id.host, "pc-b");
        assert_eq!(rows[0].flag(), Flag::Flagged);
        assert_eq!(rows[0].cell(Column::Flagged, 5000), "1");
        assert_eq!(rows[1].flag(), Flag::Mount);
        let by = SortOrder::Triage.clicked(Column::Flagged);
        assert_eq!(m.rows(by, 5000)[0].id.host, "pc-b");
    }

    #[test]
    fn a_failed_policy_reload_shows_a_message_until_a_good_one() {
        let mut m = Model::default();
        m.apply(
            Note::PolicyFailed {
                path: "/etc/p.toml".into(),
                error: "line 3: bad port".into(),
            },
            0,
        );
        let p = m.problem.clone().unwrap();
        assert!(!p.fatal && p.text.contains("line 3: bad port"), "{p:?}");
        assert!(p.text.contains("previous policy stays in force"));
        m.apply(
            Note::PolicyReloaded {
                path: "/etc/p.toml".into(),
                summary: "2 programs".into(),
            },
            0,
        );
        assert_eq!(m.problem, None);
        assert_eq!(m.policy.as_deref(), Some("2 programs"));
        assert_eq!((m.policy_error.as_deref(), m.policy_reloads), (None, 1));
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(clock_ms(951_827_696_789), "12:34:56.789");
        assert_eq!(clock_s(951_827_696_789), "12:34:56");
        assert_eq!(clock_ms(u64::MAX).len(), 12);
        assert_eq!(duration(59_999), "59 s");
        assert_eq!(duration(61_000), "1 min");
        assert_eq!(duration(3_720_000), "1 h 2 min");
    }
}
