//! Program attribution: which local process owns the socket of a new network flow, so a line
//! says `proc="firefox-esr" pid=2311 user=student` instead of bare addresses.
//!
//! Linux only, the way `ss -p`, bandwhich and osquery do it: the flow's addresses are matched
//! against the socket tables in `/proc/net/{tcp,tcp6,udp,udp6}` (local and remote address,
//! state, owner uid, inode), and the inode against the `socket:[INODE]` links in
//! `/proc/PID/fd/`. The capture worker runs as `nobody` and cannot read other users' `fd`
//! directories, so this runs in the client's own (root) process, on flow events as they arrive
//! from the worker and before they are queued. Elsewhere every flow says `proc=unknown`.
//!
//! The parsers are pure functions; the [`Attributor`] reads under a `/proc` root given to it
//! (a fake tree in the tests) and keeps caches so that a flow usually costs one read of the
//! socket tables. Flows whose socket is already gone (a refused connection, a one-packet UDP
//! exchange) or whose owner cannot be found within the limits below say `proc=unknown`.

use super::mounts::{quote, token};
use crate::event::{Event, EventKind, escape};
use crate::filter::Proto;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Socket table reads: at most one per batch of flow events, from a budget of [`TABLE_BURST`]
/// refilled at this rate. Usual traffic (a few batches a second) never runs out; a flood of new
/// flows costs at most 50 table reads a second, each followed by at most one cheap rescan (the
/// [`HOT_PIDS`] processes seen last, and at most [`MAX_NEW_PIDS`] processes started since the
/// last look). Batches beyond the budget are matched against the tables read last.
pub const TABLE_READS_PER_SEC: f64 = 50.0;
/// See [`TABLE_READS_PER_SEC`].
pub const TABLE_BURST: f64 = 10.0;
/// Scans of every process's descriptors (the expensive step: one `readlink` per open file on
/// the machine), needed only when a socket belongs to a process that is neither recent nor
/// new: from a budget of [`FULL_SCAN_BURST`] refilled at 4 a second, whatever the load.
pub const FULL_SCANS_PER_SEC: f64 = 4.0;
/// See [`FULL_SCANS_PER_SEC`].
pub const FULL_SCAN_BURST: f64 = 2.0;
/// Processes that recently owned a flow's socket; their descriptors are rescanned first when a
/// new socket is not yet known (a browser opening its next connection), which is cheap.
pub const HOT_PIDS: usize = 8;
/// Most processes started since the last look whose descriptors one cheap rescan reads (the
/// rest wait for the next one): a program just started is the usual owner of an unknown socket.
pub const MAX_NEW_PIDS: usize = 256;
/// Largest socket table read (a busy server's tables are a few MB).
const MAX_TABLE_BYTES: u64 = 32 << 20;
/// Most inode-to-pid entries kept; a full scan starts the cache afresh.
const MAX_CACHED_INODES: usize = 1 << 17;
/// `st` of a listening TCP socket in `/proc/net/tcp`.
pub const TCP_LISTEN: u8 = 0x0A;

/// One line of a `/proc/net/{tcp,tcp6,udp,udp6}` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEntry {
    /// Local address and port (IPv4-mapped IPv6 addresses as the kernel wrote them).
    pub local: SocketAddr,
    /// Remote address and port; all zero for a listening or unconnected socket.
    pub remote: SocketAddr,
    /// Kernel socket state (`0A` is a TCP listener).
    pub state: u8,
    /// The owner's user id.
    pub uid: u32,
    /// Socket inode, 0 for sockets no process holds (TIME_WAIT, not yet accepted).
    pub inode: u64,
}

/// Parses `AABBCCDD:PPPP` (IPv4) or 32 hex digits `:PPPP` (IPv6) as the kernel prints socket
/// addresses: each 32-bit word of the address in host byte order, the port as a number.
pub fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    if port.len() != 4 || !ip.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let port = u16::try_from(hex_u32(port)?).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(hex_u32(ip)?.to_ne_bytes())),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&hex_u32(ip.get(i * 8..i * 8 + 8)?)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Up to 8 hex digits, nothing else (no sign, unlike `from_str_radix`).
fn hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Parses one table line, e.g.
/// `0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 31337 ...`.
/// The header and anything malformed give `None`.
pub fn parse_net_line(line: &str) -> Option<SocketEntry> {
    let mut f = line.split_ascii_whitespace();
    if !f.next()?.ends_with(':') {
        return None;
    }
    let local = parse_hex_addr(f.next()?)?;
    let remote = parse_hex_addr(f.next()?)?;
    let state = u8::try_from(hex_u32(f.next()?)?).ok()?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt
    f.nth(2)?;
    let uid = f.next()?.parse().ok()?;
    let _timeout = f.next()?;
    let inode = f.next()?.parse().ok()?;
    Some(SocketEntry {
        local,
        remote,
        state,
        uid,
        inode,
    })
}

/// Parses a whole table, skipping the header and malformed lines.
pub fn parse_net_table(text: &str) -> Vec<SocketEntry> {
    text.lines().filter_map(parse_net_line).collect()
}

/// The inode of a `/proc/PID/fd/N` link target `socket:[12345]`; `None` for other files.
pub fn parse_socket_link(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The addresses of a flow, as read back from its event line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// TCP or UDP.
    pub proto: Proto,
    /// Source of the flow's first packet (the initiator).
    pub src: SocketAddr,
    /// Its destination.
    pub dst: SocketAddr,
}

/// The flow of a `new` or `tls` line (`new tcp 10.0.0.5:50000 -> 10.0.0.1:443 flags=S`);
/// `None` for every other line, which gets no attribution.
pub fn parse_flow(detail: &str) -> Option<FlowKey> {
    let mut w = detail.split(' ');
    if !matches!(w.next()?, "new" | "tls") {
        return None;
    }
    let proto = match w.next()? {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    let src = w.next()?.parse().ok()?;
    if w.next()? != "->" {
        return None;
    }
    let dst = w.next()?.parse().ok()?;
    Some(FlowKey { proto, src, dst })
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 peers) as plain IPv4.
fn canon(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canon(a.ip()) == canon(b.ip())
}

fn unconnected(e: &SocketEntry) -> bool {
    e.remote.port() == 0 && canon(e.remote.ip()).is_unspecified()
}

/// Finds the socket of `flow` in `entries` (the tables of its protocol):
/// 1. a connected socket from the initiator's side (local = source, remote = destination),
///    then from the responder's (an accepted connection); on loopback both exist and the
///    initiating program wins;
/// 2. a socket bound to one side's port and address (or the wildcard address) with no peer:
///    for TCP a listener on the destination (a connection coming in, before it is accepted);
///    for UDP an unconnected socket on the source, then on the destination. A side counts only
///    if `is_local` says its address is this machine's (or, for the destination, a multicast
///    address), so a remote peer's port that happens to equal a local one does not match.
pub fn find_socket<'a>(
    entries: &'a [SocketEntry],
    flow: &FlowKey,
    is_local: impl Fn(IpAddr) -> bool,
) -> Option<&'a SocketEntry> {
    for (l, r) in [(flow.src, flow.dst), (flow.dst, flow.src)] {
        if let Some(e) = entries
            .iter()
            .find(|e| e.inode != 0 && same(e.local, l) && same(e.remote, r))
        {
            return Some(e);
        }
    }
    let sides: &[SocketAddr] = match flow.proto {
        Proto::Tcp => &[flow.dst],
        Proto::Udp => &[flow.src, flow.dst],
    };
    for &side in sides {
        let ip = canon(side.ip());
        let receiving = side == flow.dst && ip.is_multicast();
        if !is_local(ip) && !receiving {
            continue;
        }
        let bound = |e: &&SocketEntry| {
            e.inode != 0
                && e.local.port() == side.port()
                && unconnected(e)
                && (flow.proto == Proto::Udp || e.state == TCP_LISTEN)
        };
        let found = entries
            .iter()
            .filter(bound)
            .find(|e| canon(e.local.ip()) == ip)
            .or_else(|| {
                entries
                    .iter()
                    .filter(bound)
                    .find(|e| canon(e.local.ip()).is_unspecified())
            });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Who owns a flow's socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Program name: the executable's file name, or the process's `comm` if that is unreadable.
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// User name of the socket's owner, or the numeric uid if it has no name.
    pub user: String,
}

/// The text appended to a flow line: ` proc="NAME" pid=PID user=USER` or ` proc=unknown`.
/// Name and user come from the lab PC and are escaped; the name is always quoted.
pub fn format_owner(owner: Option<&Owner>) -> String {
    match owner {
        Some(o) => format!(
            " proc={} pid={} user={}",
            quote(&escape(&o.name)),
            o.pid,
            token(&escape(&o.user))
        ),
        None => " proc=unknown".to_string(),
    }
}

/// Reads a file of at most `limit` bytes, lossily as text.
fn read_limited(path: &Path, limit: u64) -> Option<String> {
    let mut buf = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(limit)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The program name of `pid` under `proc_root`: the base name of `exe` (the file really run; a
/// process cannot rename it as it can its `comm`), else `comm`. `None` if the process is gone.
pub fn program_name(proc_root: &Path, pid: u32) -> Option<String> {
    let dir = proc_root.join(pid.to_string());
    if let Ok(target) = fs::read_link(dir.join("exe"))
        && let Some(name) = target.file_name()
    {
        let name = name.to_string_lossy().into_owned();
        if !name.is_empty() {
            return Some(name);
        }
    }
    let comm = read_limited(&dir.join("comm"), 256)?;
    let comm = comm.trim_end_matches('\n');
    (!comm.is_empty()).then(|| comm.to_string())
}

/// The user name of `uid` from the system's user database (`getpwuid_r`), if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    for _ in 0..4 {
        // SAFETY: `pwd` and `buf` outlive the call; getpwuid_r writes only into them and sets
        // `result` to null or to `&pwd`, whose string pointers point into `buf`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                uid as libc::uid_t,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name is a NUL-terminated string inside `buf`, alive here.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
    None
}

/// How reading one process's descriptors went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PidScan {
    /// Every descriptor was read.
    Read,
    /// The process is gone.
    Gone,
    /// Some or all could not be read (without CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, root
    /// cannot read other users' `/proc/PID/fd`), for this reason.
    Denied(std::io::ErrorKind),
}

/// Adds every `socket:[INODE]` held by `pid` to `into`.
fn scan_pid(proc_root: &Path, pid: u32, into: &mut HashMap<u64, u32>) -> PidScan {
    let fds = match fs::read_dir(proc_root.join(pid.to_string()).join("fd")) {
        Ok(fds) => fds,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return PidScan::Gone,
        Err(e) => return PidScan::Denied(e.kind()),
    };
    let mut result = PidScan::Read;
    for fd in fds.flatten() {
        match fs::read_link(fd.path()) {
            Ok(target) => {
                if let Some(inode) = parse_socket_link(target.as_os_str().as_encoded_bytes()) {
                    into.entry(inode).or_insert(pid);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                result = PidScan::Denied(e.kind());
            }
            Err(_) => {}
        }
    }
    result
}

/// Attributes flow events to programs, with caches (socket tables, inode to pid, user names)
/// and the rate limits above. One per client session, used from its event loop.
pub struct Attributor {
    proc_root: PathBuf,
    enabled: bool,
    local_addresses: fn() -> Vec<IpAddr>,
    locals: HashSet<IpAddr>,
    tcp: Vec<SocketEntry>,
    udp: Vec<SocketEntry>,
    table_budget: Budget,
    owners: HashMap<u64, u32>,
    scan_budget: Budget,
    scanned_once: bool,
    /// Every pid seen at the last look at `/proc`, to tell which processes are new.
    known_pids: HashSet<u32>,
    hot: VecDeque<u32>,
    users: HashMap<u32, String>,
    /// A status line to report once: descriptors could not be read.
    note: Option<String>,
    noted: bool,
}

/// This machine's addresses, for [`find_socket`]'s notion of the local side.
fn system_local_addresses() -> Vec<IpAddr> {
    crate::netif::list()
        .map(|ifs| crate::netif::local_addresses(&ifs))
        .unwrap_or_default()
}

impl Attributor {
    /// The real system: `/proc` on Linux; elsewhere an attributor that answers `unknown`.
    pub fn system() -> Attributor {
        let mut a = Attributor::new("/proc", system_local_addresses);
        a.enabled = cfg!(target_os = "linux");
        a
    }

    /// An attributor reading under `proc_root`, learning the machine's addresses from
    /// `local_addresses` (an empty answer means "treat every address as possibly local").
    pub fn new(proc_root: impl Into<PathBuf>, local_addresses: fn() -> Vec<IpAddr>) -> Attributor {
        Attributor {
            proc_root: proc_root.into(),
            enabled: true,
            local_addresses,
            locals: HashSet::new(),
            tcp: Vec::new(),
            udp: Vec::new(),
            table_budget: Budget::new(TABLE_BURST, TABLE_READS_PER_SEC),
            owners: HashMap::new(),
            scan_budget: Budget::new(FULL_SCAN_BURST, FULL_SCANS_PER_SEC),
            scanned_once: false,
            known_pids: HashSet::new(),
            hot: VecDeque::new(),
            users: HashMap::new(),
            note: None,
            noted: false,
        }
    }

    /// Appends ` proc=...` to every `new` and `tls` net event of a batch just read from the
    /// capture worker; other events are left alone. `now` drives the rate limits. The first
    /// time some process's descriptors cannot be read, a `status` event saying so (and why) is
    /// added at the end of the batch.
    pub fn annotate(&mut self, events: &mut Vec<Event>, now: Instant) {
        let mut batch = Batch::default();
        for e in events.iter_mut() {
            if e.kind != EventKind::Net {
                continue;
            }
            let Some(flow) = parse_flow(&e.detail) else {
                continue;
            };
            let owner = if self.enabled {
                self.owner_of(&flow, now, &mut batch)
            } else {
                None
            };
            e.detail.push_str(&format_owner(owner.as_ref()));
        }
        if let Some(note) = self.note.take() {
            events.push(Event::now(EventKind::Status, note));
        }
    }

    fn owner_of(&mut self, flow: &FlowKey, now: Instant, batch: &mut Batch) -> Option<Owner> {
        if !batch.tables_tried {
            batch.tables_tried = true;
            if self.table_budget.take(now) {
                self.read_tables();
                batch.tables_fresh = true;
            }
        }
        if !self.scanned_once {
            // First use: learn the local addresses and every socket owner once.
            self.scan_budget.take(now);
            self.scan_all();
            batch.scanned = true;
        }
        let locals = &self.locals;
        let is_local = |ip: IpAddr| ip.is_loopback() || locals.is_empty() || locals.contains(&ip);
        let table = match flow.proto {
            Proto::Tcp => &self.tcp,
            Proto::Udp => &self.udp,
        };
        let entry = *find_socket(table, flow, is_local)?;
        let pid = self.pid_of(entry.inode, now, batch)?;
        let name = program_name(&self.proc_root, pid)?;
        self.hot.retain(|&p| p != pid);
        self.hot.push_front(pid);
        self.hot.truncate(HOT_PIDS);
        let user = self
            .users
            .entry(entry.uid)
            .or_insert_with(|| user_name(entry.uid).unwrap_or_else(|| entry.uid.to_string()))
            .clone();
        Some(Owner { name, pid, user })
    }

    /// The process holding `inode`: from the cache (if that process still exists), else from a
    /// cheap rescan of the recently seen and the newly started processes (once per batch, with
    /// fresh tables), else from a full scan (within [`FULL_SCANS_PER_SEC`]).
    fn pid_of(&mut self, inode: u64, now: Instant, batch: &mut Batch) -> Option<u32> {
        if let Some(&pid) = self.owners.get(&inode) {
            if self.proc_root.join(pid.to_string()).is_dir() {
                return Some(pid);
            }
            self.owners.remove(&inode);
        }
        if batch.tables_fresh && !batch.rescanned && !batch.scanned {
            batch.rescanned = true;
            if self.owners.len() > MAX_CACHED_INODES {
                self.owners.clear();
            }
            self.hot
                .retain(|&pid| scan_pid(&self.proc_root, pid, &mut self.owners) != PidScan::Gone);
            if let Some(&pid) = self.owners.get(&inode) {
                return Some(pid);
            }
            self.scan_new_pids();
            if let Some(&pid) = self.owners.get(&inode) {
                return Some(pid);
            }
        }
        if !batch.scanned && self.scan_budget.take(now) {
            self.scan_all();
            batch.scanned = true;
        }
        self.owners.get(&inode).copied()
    }

    /// The pids now under the `/proc` root.
    fn list_pids(&self) -> Vec<u32> {
        fs::read_dir(&self.proc_root)
            .map(|dir| {
                dir.flatten()
                    .filter_map(|d| d.file_name().to_str()?.parse::<u32>().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads the descriptors of processes started since the last look (at most
    /// [`MAX_NEW_PIDS`]; the others count as new again next time).
    fn scan_new_pids(&mut self) {
        let mut known = HashSet::new();
        let mut read = 0;
        for pid in self.list_pids() {
            if !self.known_pids.contains(&pid) {
                if read >= MAX_NEW_PIDS {
                    continue;
                }
                read += 1;
                scan_pid(&self.proc_root, pid, &mut self.owners);
            }
            known.insert(pid);
        }
        self.known_pids = known;
    }

    fn read_tables(&mut self) {
        let read = |names: [&str; 2]| {
            names
                .iter()
                .filter_map(|n| read_limited(&self.proc_root.join("net").join(n), MAX_TABLE_BYTES))
                .flat_map(|t| parse_net_table(&t))
                .collect::<Vec<_>>()
        };
        self.tcp = read(["tcp", "tcp6"]);
        self.udp = read(["udp", "udp6"]);
    }

    /// Rebuilds the inode-to-pid cache from every process's descriptors, and the local
    /// addresses.
    fn scan_all(&mut self) {
        self.scanned_once = true;
        self.locals = (self.local_addresses)().into_iter().collect();
        let mut owners = HashMap::new();
        let mut denied = 0usize;
        let mut first_denied = None;
        let pids = self.list_pids();
        for &pid in &pids {
            if owners.len() >= MAX_CACHED_INODES {
                break;
            }
            if let PidScan::Denied(why) = scan_pid(&self.proc_root, pid, &mut owners) {
                denied += 1;
                first_denied.get_or_insert((pid, why));
            }
        }
        self.known_pids = pids.into_iter().collect();
        self.owners = owners;
        if let Some((pid, why)) = first_denied
            && !self.noted
        {
            self.noted = true;
            let name = program_name(&self.proc_root, pid).unwrap_or_default();
            self.note = Some(format!(
                "program attribution incomplete: cannot read the open files of {denied} processes \
                 (first: pid {pid} {}: {why}; reading another user's /proc/PID/fd needs \
                 CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE); their flows say proc=unknown",
                quote(&escape(&name))
            ));
        }
    }
}

/// What one [`Attributor::annotate`] call has already done (each at most once per batch).
#[derive(Default)]
struct Batch {
    tables_tried: bool,
    tables_fresh: bool,
    rescanned: bool,
    scanned: bool,
}

/// A token bucket: up to `burst` operations at once, refilled at `per_sec`.
#[derive(Debug, Clone, Copy)]
struct Budget {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Option<Instant>,
}

impl Budget {
    fn new(burst: f64, per_sec: f64) -> Budget {
        Budget {
            tokens: burst,
            burst,
            per_sec,
            last: None,
        }
    }

    /// Takes one token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now.max(self.last.unwrap_or(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    /// Lines as a little-endian kernel writes them (the tests below that read them are only
    /// built for little-endian targets, where the words appear byte-swapped).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 65534        0 4002 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4003 1 0000000000000000 20 4 30 10 -1
   3: 0500000A:C350 0900000A:01BB 01 00000000:00000000 00:00000000 00000000 65534        0 4004 1 0000000000000000 20 4 30 10 -1
   4: 0500000A:1F90 0700000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   5: 0500000A:C351 0900000A:01BB 06 00000000:00000000 03:00000FF5 00000000     0        0 0 3 0000000000000000
   6: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4005 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 6001 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000500000A:C352 0000000000000000FFFF00000900000A:0050 01 00000000:00000000 00:00000000 00000000 65534        0 6002 1 0000000000000000 20 4 30 10 -1
   2: B80D0120000000000000000001000000:D000 B80D0120000000000000000009000000:01BB 01 00000000:00000000 00:00000000 00000000 65534        0 6003 1 0000000000000000 20 4 30 10 -1
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000   104        0 5001 2 0000000000000000 0
  101: 0500000A:A000 00000000:0000 07 00000000:00000000 00:00000000 00000000 65534        0 5002 2 0000000000000000 0
  102: 00000000:A001 00000000:0000 07 00000000:00000000 00:00000000 00000000 3999999        0 5003 2 0000000000000000 0
  103: 0500000A:A002 0900000A:0035 01 00000000:00000000 00:00000000 00000000 65534        0 5004 2 0000000000000000 0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_kernel_hex_addresses() {
        let ok = [
            ("0100007F:1F90", "127.0.0.1:8080"),
            ("0500000A:0016", "10.0.0.5:22"),
            ("00000000:0000", "0.0.0.0:0"),
            ("00000000000000000000000001000000:0035", "[::1]:53"),
            (
                "0000000000000000FFFF00000100007F:01BB",
                "[::ffff:127.0.0.1]:443",
            ),
            (
                "B80D0120000000000000000001000000:FFFF",
                "[2001:db8::1]:65535",
            ),
            (
                "b80d0120000000000000000001000000:ffff",
                "[2001:db8::1]:65535",
            ),
        ];
        for (hex, want) in ok {
            assert_eq!(parse_hex_addr(hex), Some(sa(want)), "{hex}");
        }
        for bad in [
            "",
            ":",
            "0100007F",
            "0100007F:50",
            "0100007F:00500",
            "+100007F:0050",
            "0100007G:0050",
            "100007F:0050",
            "0100007F:+050",
            "éé10007F:0050",
            "0000000000000000000000000100000:0035",
            "000000000000000000000000010000000:0035",
            "0000000000000000000000000100000é:0035",
        ] {
            assert_eq!(parse_hex_addr(bad), None, "{bad:?}");
        }
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_table_lines() {
        let tcp = parse_net_table(TCP);
        assert_eq!(tcp.len(), 7, "header skipped");
        assert_eq!(
            tcp[0],
            SocketEntry {
                local: sa("0.0.0.0:8080"),
                remote: sa("0.0.0.0:0"),
                state: TCP_LISTEN,
                uid: 0,
                inode: 4001,
            }
        );
        assert_eq!(tcp[1].local, sa("127.0.0.1:40000"));
        assert_eq!((tcp[1].uid, tcp[1].inode), (65534, 4002));
        assert_eq!(tcp[5].inode, 0, "TIME_WAIT holds no inode");
        let tcp6 = parse_net_table(TCP6);
        assert_eq!(tcp6[2].local, sa("[2001:db8::1]:53248"));
        assert_eq!(tcp6[0].uid, 33);
        let udp = parse_net_table(UDP);
        assert_eq!(udp.len(), 4);
        assert_eq!(udp[0].local, sa("0.0.0.0:5353"));
        assert_eq!(udp[0].state, 7);
        for bad in [
            "",
            "0: 0100007F:1F90",
            "0 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0",
            "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 x 0 1",
            "0: 0100007F:1F90 00000000:0000 100 0:0 0:0 0 0 0 1",
            "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 -1",
        ] {
            assert_eq!(parse_net_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_socket_links_and_flow_lines() {
        assert_eq!(parse_socket_link(b"socket:[31337]"), Some(31337));
        for bad in [
            &b"socket:[]"[..],
            b"socket:[12",
            b"pipe:[12]",
            b"/dev/null",
            b"socket:[-1]",
            b"socket:[1\xff]",
        ] {
            assert_eq!(parse_socket_link(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_flow("new tcp 10.0.0.5:50000 -> 10.0.0.9:443 flags=S name=x (dns)"),
            Some(FlowKey {
                proto: Proto::Tcp,
                src: sa("10.0.0.5:50000"),
                dst: sa("10.0.0.9:443"),
            })
        );
        assert_eq!(
            parse_flow("tls tcp [2001:db8::1]:53248 -> [2001:db8::9]:443 sni=a.b").map(|f| f.dst),
            Some(sa("[2001:db8::9]:443"))
        );
        assert_eq!(
            parse_flow("new udp 10.0.0.5:1 -> 10.0.0.9:2").map(|f| f.proto),
            Some(Proto::Udp)
        );
        for other in [
            "end tcp 10.0.0.5:50000 -> 10.0.0.9:443 packets=1",
            "pkt udp 10.0.0.5:1 -> 10.0.0.9:2 len=3",
            "new icmp 10.0.0.5:1 -> 10.0.0.9:2",
            "new tcp 10.0.0.5:1 => 10.0.0.9:2",
            "new tcp 10.0.0.5 -> 10.0.0.9:2",
            "new tcp",
            "",
        ] {
            assert_eq!(parse_flow(other), None, "{other:?}");
        }
    }

    fn flow(proto: Proto, src: &str, dst: &str) -> FlowKey {
        FlowKey {
            proto,
            src: sa(src),
            dst: sa(dst),
        }
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn finds_the_socket_of_a_flow() {
        let mut tcp = parse_net_table(TCP);
        tcp.extend(parse_net_table(TCP6));
        let udp = parse_net_table(UDP);
        let locals: Vec<IpAddr> = ["10.0.0.5", "127.0.0.1", "2001:db8::1"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        let local = |ip: IpAddr| locals.contains(&ip);
        let inode = |t: &[SocketEntry], f: FlowKey| find_socket(t, &f, local).map(|e| e.inode);
        // Outgoing connection.
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "10.0.0.5:50000", "10.0.0.9:443")),
            Some(4004)
        );
        // On loopback both ends are ours: the initiator wins.
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "127.0.0.1:40000", "127.0.0.1:8080")),
            Some(4002)
        );
        // Incoming connection not accepted yet (inode 0): the listener on 0.0.0.0:8080.
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "10.0.0.7:54321", "10.0.0.5:8080")),
            Some(4001)
        );
        // A listener bound to 127.0.0.1 does not take connections to another address.
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "10.0.0.7:54322", "10.0.0.5:22")),
            None
        );
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "127.0.0.1:54322", "127.0.0.1:22")),
            Some(4005)
        );
        // IPv4 flows on a dual-stack socket (mapped addresses) and its `::` listener.
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "10.0.0.5:50002", "10.0.0.9:80")),
            Some(6002)
        );
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "10.0.0.8:40000", "10.0.0.5:80")),
            Some(6001)
        );
        assert_eq!(
            inode(
                &tcp,
                flow(Proto::Tcp, "[2001:db8::1]:53248", "[2001:db8::9]:443")
            ),
            Some(6003)
        );
        // A TCP flow whose socket is gone.
        assert_eq!(
            inode(&tcp, flow(Proto::Tcp, "10.0.0.5:50001", "10.0.0.9:443")),
            None
        );
        // UDP: connected, unconnected on a specific and on the wildcard address, multicast in.
        assert_eq!(
            inode(&udp, flow(Proto::Udp, "10.0.0.5:40962", "10.0.0.9:53")),
            Some(5004)
        );
        assert_eq!(
            inode(&udp, flow(Proto::Udp, "10.0.0.5:40960", "10.0.0.9:9999")),
            Some(5002)
        );
        assert_eq!(
            inode(&udp, flow(Proto::Udp, "10.0.0.5:40961", "10.0.0.9:9999")),
            Some(5003)
        );
        assert_eq!(
            inode(&udp, flow(Proto::Udp, "10.0.0.7:5353", "224.0.0.251:5353")),
            Some(5001)
        );
        assert_eq!(
            inode(&udp, flow(Proto::Udp, "10.0.0.7:1234", "10.0.0.5:5353")),
            Some(5001)
        );
        // A remote peer whose port equals a local socket's is not taken for it.
        assert_eq!(
            inode(&udp, flow(Proto::Udp, "10.0.0.7:40961", "10.0.0.5:7777")),
            None
        );
    }

    #[test]
    fn owner_text_is_escaped_and_quoted() {
        let o = Owner {
            name: "evil\" pid=1\nx".into(),
            pid: 42,
            user: "a b".into(),
        };
        assert_eq!(
            format_owner(Some(&o)),
            " proc=\"evil\\x22 pid=1\\x0ax\" pid=42 user=\"a b\""
        );
        assert_eq!(format_owner(None), " proc=unknown");
        let plain = Owner {
            name: "firefox-esr".into(),
            pid: 7,
            user: "student".into(),
        };
        assert_eq!(
            format_owner(Some(&plain)),
            " proc=\"firefox-esr\" pid=7 user=student"
        );
    }

    #[test]
    fn user_names_come_from_the_user_database() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user_name(3_999_999_999), None);
    }

    /// A fake `/proc`, removed on drop.
    struct FakeProc(PathBuf);

    impl FakeProc {
        fn new(name: &str) -> FakeProc {
            let p = std::env::temp_dir()
                .join(format!("proctor-attribution-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(p.join("net")).expect("mkdir");
            FakeProc(p)
        }

        fn tables(&self, tcp: &str, udp: &str) {
            fs::write(self.0.join("net/tcp"), tcp).expect("write");
            fs::write(self.0.join("net/udp"), udp).expect("write");
        }

        /// A process with an executable (or only a `comm`) and socket descriptors.
        fn process(&self, pid: u32, exe: Option<&str>, comm: &str, inodes: &[u64]) {
            let dir = self.0.join(pid.to_string());
            fs::create_dir_all(dir.join("fd")).expect("mkdir");
            fs::write(dir.join("comm"), format!("{comm}\n")).expect("write");
            if let Some(exe) = exe {
                std::os::unix::fs::symlink(exe, dir.join("exe")).expect("symlink");
            }
            std::os::unix::fs::symlink("/dev/null", dir.join("fd/0")).expect("symlink");
            for (i, inode) in inodes.iter().enumerate() {
                self.fd(pid, 3 + i as u32, *inode);
            }
        }

        fn fd(&self, pid: u32, fd: u32, inode: u64) {
            std::os::unix::fs::symlink(
                format!("socket:[{inode}]"),
                self.0.join(format!("{pid}/fd/{fd}")),
            )
            .expect("symlink");
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn no_addresses() -> Vec<IpAddr> {
        Vec::new()
    }

    fn net(detail: &str) -> Event {
        Event {
            ts_ms: 1,
            kind: EventKind::Net,
            detail: detail.into(),
        }
    }

    /// An established loopback connection from `sport` to port 8080, owned by `nobody`.
    fn conn(sl: u32, sport: u16, inode: u64) -> String {
        format!(
            "   {sl}: 0100007F:{sport:04X} 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 65534        0 {inode} 1 0 20 4 30 10 -1\n"
        )
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn annotates_flow_events_from_a_fake_proc() {
        let p = FakeProc::new("annotate");
        p.tables(TCP, UDP);
        p.process(
            100,
            Some("/usr/lib/firefox-esr/firefox-esr"),
            "Web Content",
            &[4002],
        );
        p.process(200, None, "probe", &[5003]);
        p.process(300, Some("/usr/sbin/sshd"), "sshd", &[4001, 4003]);
        std::fs::create_dir_all(p.0.join("self")).expect("mkdir");
        let mut a = Attributor::new(&p.0, no_addresses);
        let mut events = vec![
            net("new tcp 127.0.0.1:40000 -> 127.0.0.1:8080 flags=S"),
            net("tls tcp 127.0.0.1:40000 -> 127.0.0.1:8080 sni=exam.example"),
            net(
                "end tcp 127.0.0.1:40000 -> 127.0.0.1:8080 packets=3 bytes=1 duration=0.1s reason=fin",
            ),
            net("new udp 10.0.0.5:40961 -> 10.0.0.9:9999"),
            net("new tcp 10.0.0.7:54321 -> 10.0.0.5:8080 flags=S"),
            net("new tcp 10.0.0.5:50001 -> 10.0.0.9:443 flags=S"),
            Event {
                ts_ms: 1,
                kind: EventKind::Status,
                detail: "new tcp 127.0.0.1:1 -> 127.0.0.1:2".into(),
            },
        ];
        a.annotate(&mut events, Instant::now());
        let lines: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(
            lines,
            [
                "new tcp 127.0.0.1:40000 -> 127.0.0.1:8080 flags=S proc=\"firefox-esr\" pid=100 user=nobody",
                "tls tcp 127.0.0.1:40000 -> 127.0.0.1:8080 sni=exam.example proc=\"firefox-esr\" pid=100 user=nobody",
                "end tcp 127.0.0.1:40000 -> 127.0.0.1:8080 packets=3 bytes=1 duration=0.1s reason=fin",
                "new udp 10.0.0.5:40961 -> 10.0.0.9:9999 proc=\"probe\" pid=200 user=3999999",
                "new tcp 10.0.0.7:54321 -> 10.0.0.5:8080 flags=S proc=\"sshd\" pid=300 user=root",
                "new tcp 10.0.0.5:50001 -> 10.0.0.9:443 flags=S proc=unknown",
                "new tcp 127.0.0.1:1 -> 127.0.0.1:2",
            ]
        );
        assert_eq!(events.len(), 7, "every process was readable: no note");
        let mut disabled = Attributor::new(&p.0, no_addresses);
        disabled.enabled = false;
        let mut one = vec![net("new tcp 127.0.0.1:40000 -> 127.0.0.1:8080 flags=S")];
        disabled.annotate(&mut one, Instant::now());
        assert!(one[0].detail.ends_with(" flags=S proc=unknown"));
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn unreadable_descriptors_are_reported_once() {
        let p = FakeProc::new("denied");
        p.tables(TCP, UDP);
        p.process(100, Some("/usr/bin/firefox"), "firefox", &[4002]);
        // A process whose descriptors cannot be listed (here: not a directory).
        fs::create_dir_all(p.0.join("300")).expect("mkdir");
        fs::write(p.0.join("300/fd"), "").expect("write");
        let mut a = Attributor::new(&p.0, no_addresses);
        let t0 = Instant::now();
        let mut first = vec![
            net("new tcp 127.0.0.1:40000 -> 127.0.0.1:8080 flags=S"),
            net("new tcp 10.0.0.7:54321 -> 10.0.0.5:8080 flags=S"),
        ];
        a.annotate(&mut first, t0);
        assert!(
            first[0]
                .detail
                .ends_with("proc=\"firefox\" pid=100 user=nobody")
        );
        assert!(first[1].detail.ends_with("proc=unknown"));
        assert_eq!(first.len(), 3);
        assert_eq!(first[2].kind, EventKind::Status);
        assert!(
            first[2].detail.starts_with(
                "program attribution incomplete: cannot read the open files of 1 processes"
            ),
            "{}",
            first[2].detail
        );
        let mut later = vec![net("new tcp 10.0.0.7:54321 -> 10.0.0.5:8080 flags=S")];
        a.annotate(&mut later, t0 + Duration::from_secs(2));
        assert_eq!(later.len(), 1, "said once");
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn new_owners_are_found_by_cheap_rescans_and_full_scans_are_budgeted() {
        let p = FakeProc::new("scans");
        let header = TCP.lines().next().expect("header").to_string() + "\n";
        p.tables(&(header.clone() + &conn(0, 40000, 7001)), "");
        p.process(100, Some("/usr/bin/firefox"), "firefox", &[7001]);
        p.process(200, Some("/usr/bin/old"), "old", &[]);
        p.process(300, Some("/usr/bin/older"), "older", &[]);
        let mut a = Attributor::new(&p.0, no_addresses);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let ask = |a: &mut Attributor, sport: u16, at: Duration| {
            let mut e = vec![net(&format!(
                "new tcp 127.0.0.1:{sport} -> 127.0.0.1:8080 flags=S"
            ))];
            a.annotate(&mut e, t0 + at);
            e.remove(0).detail
        };
        // The first flow: tables read and every process scanned (one of two full scans).
        assert!(ask(&mut a, 40000, ms(0)).ends_with("proc=\"firefox\" pid=100 user=nobody"));
        // New sockets of the recent process, of a process started since, of two old ones.
        let mut tables = header.clone();
        for (sl, (sport, inode)) in [
            (40000, 7001),
            (40001, 7002),
            (40002, 7003),
            (40003, 7004),
            (40004, 7005),
        ]
        .into_iter()
        .enumerate()
        {
            tables += &conn(sl as u32, sport, inode);
        }
        p.tables(&tables, "");
        p.fd(100, 4, 7002);
        p.process(400, Some("/tmp/exam-probe"), "exam-probe", &[7003]);
        p.fd(200, 3, 7004);
        // Found by the cheap rescans, without a full scan.
        assert!(ask(&mut a, 40001, ms(1)).ends_with("proc=\"firefox\" pid=100 user=nobody"));
        assert!(ask(&mut a, 40002, ms(2)).ends_with("proc=\"exam-probe\" pid=400 user=nobody"));
        // An old process needs a full scan: the second of the burst...
        assert!(ask(&mut a, 40003, ms(3)).ends_with("proc=\"old\" pid=200 user=nobody"));
        // Another old process's new socket, after that scan...
        p.fd(300, 3, 7005);
        // ...and then the budget refills at 4 a second.
        assert!(ask(&mut a, 40004, ms(4)).ends_with("proc=unknown"));
        assert!(
            ask(
                &mut a,
                40004,
                ms(4) + Duration::from_secs_f64(1.0 / FULL_SCANS_PER_SEC)
            )
            .ends_with("proc=\"older\" pid=300 user=nobody")
        );
        // A process that exited is not named from the cache.
        fs::remove_dir_all(p.0.join("300")).expect("rm");
        assert!(ask(&mut a, 40004, Duration::from_secs(5)).ends_with("proc=unknown"));
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn table_reads_are_budgeted() {
        let p = FakeProc::new("tables");
        let header = TCP.lines().next().expect("header").to_string() + "\n";
        p.tables(&(header.clone() + &conn(0, 40000, 7001)), "");
        p.process(100, Some("/usr/bin/firefox"), "firefox", &[7001]);
        let mut a = Attributor::new(&p.0, no_addresses);
        let t0 = Instant::now();
        let ask = |a: &mut Attributor, sport: u16, at: Instant| {
            let mut e = vec![net(&format!(
                "new tcp 127.0.0.1:{sport} -> 127.0.0.1:8080 flags=S"
            ))];
            a.annotate(&mut e, at);
            e.remove(0).detail
        };
        // A burst of batches at one instant uses up the table reads...
        for _ in 0..TABLE_BURST as usize {
            assert!(ask(&mut a, 40000, t0).ends_with("pid=100 user=nobody"));
        }
        p.tables(
            &(header + &conn(0, 40000, 7001) + &conn(1, 40001, 7002)),
            "",
        );
        p.fd(100, 4, 7002);
        // ...so a new socket is not in the tables read last,
        assert!(ask(&mut a, 40001, t0).ends_with("proc=unknown"));
        // until the budget refills (50 a second).
        let later = t0 + Duration::from_secs_f64(1.0 / TABLE_READS_PER_SEC);
        assert!(ask(&mut a, 40001, later).ends_with("proc=\"firefox\" pid=100 user=nobody"));
    }
}
