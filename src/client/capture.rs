//! The live capture worker (`proctor __capture-worker`), run by the client daemon as a child
//! process so that a crash or hang in libpcap cannot take the daemon down and so the daemon can
//! restart it. It captures on the given interfaces, applies the same decoder, selection rule and
//! flow tracker as `inspect`, drops proctor's own traffic, and writes one [`Event`] line per
//! report to stdout (network reports as `net`, its own health as `status`). It stops, ending
//! every open flow with `reason=stop`, when stdin closes.
//!
//! Names: reader threads also parse DNS responses (UDP from port 53, let in by the BPF filter
//! but never reported) and look for a TLS ClientHello's server name in TCP payloads (joining
//! a ClientHello's segments, see [`HelloAssembler`]); the flow thread keeps the learned names
//! and appends them to the reports (see [`crate::flows`]).
//!
//! The operating-system side (opening pcap) sits behind the [`PacketSource`] trait; everything
//! else ([`run_sources`]) is written against that trait so tests can feed it fake packets.
//!
//! Speed: readers hand packets to the flow thread in batches (one channel send per
//! [`READ_BATCH`] packets, or per burst when traffic pauses), so a flood costs no wake-up per
//! packet; at the end each reader reports pcap's counters in one
//! `capture stats received=N dropped=N if_dropped=N on IFACE` status line.

use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::filter::{self, Exclusion, LinkType, PacketInfo, Proto};
use crate::flows::{EndReason, FlowReport, FlowTable};
use crate::tls_sni::HelloAssembler;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes captured per packet: the link, IP and transport headers, and enough payload for a
/// typical TLS ClientHello (its server name) or DNS response. The 8 MiB ring buffer still holds
/// thousands of such packets.
pub const SNAPLEN: i32 = 2048;
/// Read timeout of each capture, so reader threads notice `stop` promptly.
pub const READ_TIMEOUT_MS: i32 = 100;
/// Kernel buffer per interface, to ride out bursts without drops.
pub const BUFFER_BYTES: i32 = 8 << 20;
/// Most packets a reader gathers before handing them to the flow thread. A batch is also
/// handed over as soon as the capture has nothing more to read, so a lone packet waits for
/// nobody.
pub const READ_BATCH: usize = 256;
/// Batches in flight between the reader threads and the flow thread (at most
/// `READ_BATCH` times this many packets).
pub const CHANNEL_CAPACITY: usize = 256;
/// Under load, the least time between two hand-overs of a reader: when the capture runs dry
/// sooner after the last one, the reader sleeps out the rest (packets gather in the kernel
/// ring) instead of waking for every packet and waking the flow thread for each. A packet
/// after a quiet spell is handed over at once, so a lone new flow is not delayed.
const HOLD: Duration = Duration::from_micros(250);
/// Packets read between two looks at the clock for the drop-counter check.
const CLOCK_EVERY: u32 = 1024;
/// How long the flow thread waits at the end for readers to hand over their last packets and
/// counters (they notice the stop within one read timeout).
const READERS_GONE: Duration = Duration::from_secs(2);
/// How often the flow thread ends idle flows.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// How often each reader checks pcap's drop counters.
pub const STATS_EVERY: Duration = Duration::from_secs(10);
/// Most messages handled between two flushes of stdout, so output keeps flowing under load.
const BATCH: usize = 1024;

/// One captured packet as a [`PacketSource`] hands it out (borrowed from the capture buffer).
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Capture timestamp, microseconds since the epoch.
    pub ts_us: u64,
    /// Original length on the wire (the captured bytes may be fewer).
    pub wire_len: u32,
    /// The captured bytes, starting with the link-layer header.
    pub data: &'a [u8],
}

/// The seam between the worker's logic and the operating system: something that yields
/// captured packets of one link type. Implemented by [`PcapSource`] for real interfaces and by
/// fakes in tests.
pub trait PacketSource: Send {
    /// Interface name, for status messages and thread names.
    fn name(&self) -> &str;
    /// The link-layer framing of every packet this source yields.
    fn link(&self) -> LinkType;
    /// The next packet, `Ok(None)` when none is waiting, `Err` when the source is broken for
    /// good (the reader then reports it and stops).
    fn next_packet(&mut self) -> std::result::Result<Option<RawPacket<'_>>, String>;
    /// Waits, at most about the read timeout, for packets after [`PacketSource::next_packet`]
    /// found none (the reader hands over what it gathered first). Sources whose
    /// `next_packet` already waits need not.
    fn wait(&mut self) {}
    /// Cumulative counters, if the source can tell.
    fn stats(&mut self) -> Option<CaptureStats>;
}

/// pcap's cumulative counters of one capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets that passed the filter.
    pub received: u32,
    /// Dropped because the buffer was full (the reader fell behind).
    pub dropped: u32,
    /// Dropped by the interface or its driver.
    pub if_dropped: u32,
}

/// A live libpcap capture on one interface.
///
/// The capture is non-blocking and waits with `poll(2)` on its descriptor: libpcap 1.10's
/// read timeout does not make a blocking read return when no packet arrives (libpcap issue
/// #1001), which would keep the reader from ever noticing `stop` on a quiet interface.
pub struct PcapSource {
    name: String,
    link: LinkType,
    cap: pcap::Capture<pcap::Active>,
    fd: std::os::fd::RawFd,
}

impl PcapSource {
    /// Opens `iface` (not promiscuous, [`SNAPLEN`]-byte snaplen, 100 ms timeout, immediate
    /// delivery, 8 MiB buffer) and installs `bpf`. Returns the source and, when the filter was rejected,
    /// why (the caller reports it and relies on user-space selection).
    pub fn open(
        iface: &str,
        bpf: &str,
    ) -> std::result::Result<(PcapSource, Option<String>), String> {
        let mut cap = pcap::Capture::from_device(iface)
            .map_err(|e| e.to_string())?
            .promisc(false)
            .snaplen(SNAPLEN)
            .timeout(READ_TIMEOUT_MS)
            .immediate_mode(true)
            .buffer_size(BUFFER_BYTES)
            .open()
            .and_then(|c| c.setnonblock())
            .map_err(|e| e.to_string())?;
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| {
            let name = dlt.get_name().unwrap_or_else(|_| "unknown".into());
            format!("unsupported link type {name} (DLT {})", dlt.0)
        })?;
        let filter_error = cap.filter(bpf, true).err().map(|e| e.to_string());
        let fd = std::os::fd::AsRawFd::as_raw_fd(&cap);
        Ok((
            PcapSource {
                name: iface.to_string(),
                link,
                cap,
                fd,
            },
            filter_error,
        ))
    }
}

impl PacketSource for PcapSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn link(&self) -> LinkType {
        self.link
    }

    fn next_packet(&mut self) -> std::result::Result<Option<RawPacket<'_>>, String> {
        match self.cap.next_packet() {
            Ok(p) => Ok(Some(RawPacket {
                ts_us: crate::inspect::timeval_us(&p.header.ts),
                wire_len: p.header.len,
                data: p.data,
            })),
            Err(pcap::Error::TimeoutExpired) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn wait(&mut self) {
        wait_readable(self.fd, READ_TIMEOUT_MS);
    }

    fn stats(&mut self) -> Option<CaptureStats> {
        self.cap.stats().ok().map(|s| CaptureStats {
            received: s.received,
            dropped: s.dropped,
            if_dropped: s.if_dropped,
        })
    }
}

/// Waits until `fd` is readable or `timeout_ms` passed. On an error condition (interface gone)
/// it still sleeps for the timeout, so the caller's next read reports the error instead of
/// the reader spinning.
fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1; `fd` belongs
    // to the capture owned by the caller, which outlives the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n < 0 || pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        thread::sleep(Duration::from_millis(u64::from(timeout_ms.unsigned_abs())));
    }
}

/// How the worker reports, independent of where packets come from.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Proctor's own traffic, never reported.
    pub exclusions: Vec<Exclusion>,
    /// One report per packet instead of per flow.
    pub per_packet: bool,
    /// Flow idle timeout.
    pub idle: Duration,
    /// How often readers check the drop counters.
    pub stats_every: Duration,
}

/// Runs the hidden `__capture-worker` subcommand: opens every interface, reports which could
/// not be opened, and streams events to stdout until stdin closes. Fails only when no interface
/// could be opened, or when every capture broke.
pub fn run_worker(args: &crate::cli::CaptureWorkerArgs) -> Result<()> {
    crate::sys::die_with_parent();
    let stop = crate::sys::stop_on_stdin_eof();
    if !(args.flow_idle.is_finite() && args.flow_idle > 0.0 && args.flow_idle < 1e9) {
        return Err(Error::Usage(format!(
            "--flow-idle must be a positive number of seconds, not {}",
            args.flow_idle
        )));
    }
    let mut exclusions: Vec<Exclusion> = args
        .exclude_tcp
        .iter()
        .map(|&a| Exclusion::Tcp(a))
        .collect();
    exclusions.extend(args.exclude_udp_port.iter().map(|&p| Exclusion::UdpPort(p)));
    let bpf = filter::bpf_filter(&exclusions);

    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut sources: Vec<Box<dyn PacketSource>> = Vec::new();
    let mut opened = Vec::new();
    for iface in &args.ifaces {
        match PcapSource::open(iface, &bpf) {
            Ok((src, filter_error)) => {
                if let Some(e) = filter_error {
                    write_event(
                        &mut out,
                        &Event::now(
                            EventKind::Status,
                            format!(
                                "capture filter rejected on {iface}: {e}; selecting in user space only"
                            ),
                        ),
                    )?;
                }
                opened.push(iface.clone());
                sources.push(Box::new(src));
            }
            Err(e) => {
                write_event(
                    &mut out,
                    &Event::now(EventKind::Status, format!("cannot capture on {iface}: {e}")),
                )?;
            }
        }
    }
    if sources.is_empty() {
        let msg = format!(
            "cannot capture on any interface ({})",
            args.ifaces.join(", ")
        );
        write_event(&mut out, &Event::now(EventKind::Status, msg.clone()))?;
        flush(&mut out)?;
        return Err(Error::Runtime(msg));
    }
    // The capture handles are open: root is no longer needed.
    if let Err(e) = crate::sys::drop_privileges() {
        write_event(
            &mut out,
            &Event::now(EventKind::Status, format!("capture worker keeps root: {e}")),
        )?;
    }
    write_event(
        &mut out,
        &Event::now(
            EventKind::Status,
            format!("capturing on {} (filter: {bpf})", opened.join(", ")),
        ),
    )?;
    flush(&mut out)?;
    let cfg = WorkerConfig {
        exclusions,
        per_packet: args.per_packet,
        idle: Duration::try_from_secs_f64(args.flow_idle).unwrap_or(Duration::from_secs(30)),
        stats_every: STATS_EVERY,
    };
    run_sources(sources, &cfg, stop, out, || crate::timefmt::now_ms() * 1000)
}

/// What reader threads send to the flow thread.
enum Msg {
    Packet {
        ts_us: u64,
        wire_len: u32,
        info: PacketInfo,
        /// Server name of a TLS ClientHello in the payload.
        sni: Option<String>,
    },
    /// What a DNS response taught.
    Names {
        ts_us: u64,
        answers: Vec<(IpAddr, String)>,
    },
    Status(Event),
}

/// The worker's core: one reader thread per source, one flow loop (on the calling thread) that
/// owns the flow table, ends idle flows about once a second and writes event lines to `out`,
/// flushing whenever its input goes idle. Returns `Ok` once `stop` is set (after ending every
/// flow with `reason=stop`) or when `out` is closed; `Err` when every source broke. `clock`
/// gives the current time in microseconds since the epoch (idle expiry and stop).
pub fn run_sources<W: Write>(
    sources: Vec<Box<dyn PacketSource>>,
    cfg: &WorkerConfig,
    stop: Arc<AtomicBool>,
    mut out: W,
    clock: fn() -> u64,
) -> Result<()> {
    let (tx, rx) = mpsc::sync_channel::<Vec<Msg>>(CHANNEL_CAPACITY);
    let mut handles = Vec::new();
    for src in sources {
        let name = src.name().to_string();
        let tx = tx.clone();
        let stop = stop.clone();
        let cfg = cfg.clone();
        let thread_name = format!("capture-{}", name.replace('\0', "?"));
        match thread::Builder::new()
            .name(thread_name)
            .spawn(move || reader(src, &cfg, &stop, &tx))
        {
            Ok(h) => handles.push(h),
            Err(e) => {
                let ev = Event::now(
                    EventKind::Status,
                    format!("cannot capture on {name}: cannot start thread: {e}"),
                );
                if !write_event(&mut out, &ev)? {
                    return Ok(());
                }
            }
        }
    }
    drop(tx);

    let mut table = FlowTable::new(cfg.idle).per_packet(cfg.per_packet);
    let mut last_expire = Instant::now();
    let mut all_broke = false;
    'main: while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(u64::from(
            READ_TIMEOUT_MS.unsigned_abs(),
        ))) {
            Ok(batch) => {
                if !handle_all(batch, &mut table, &mut out)? {
                    break 'main;
                }
                for _ in 0..BATCH {
                    match rx.try_recv() {
                        Ok(batch) => {
                            if !handle_all(batch, &mut table, &mut out)? {
                                break 'main;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            all_broke = true;
                            break;
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => all_broke = true,
        }
        if last_expire.elapsed() >= EXPIRE_EVERY {
            last_expire = Instant::now();
            if !write_reports(&mut out, &table.expire(clock()))? {
                break;
            }
        }
        if !flush(&mut out)? {
            break;
        }
        if all_broke {
            break;
        }
    }
    let requested = stop.load(Ordering::SeqCst);
    // Readers must end whatever made this loop end (stop, broken stdout, error below).
    let _stop_readers = StopOnDrop(stop);
    // Readers stop now and hand over their last packets and counters (see `finish`).
    _stop_readers.0.store(true, Ordering::SeqCst);
    // Whatever was captured before the stop is still reported, then every flow ends.
    let ok = finish(&rx, &mut table, &mut out, clock)?;
    drop(_stop_readers);
    drop(rx);
    for h in handles {
        let _ = h.join();
    }
    if all_broke && !requested && ok {
        let msg = "every capture ended; capture worker exiting".to_string();
        write_event(&mut out, &Event::now(EventKind::Status, msg.clone()))?;
        flush(&mut out)?;
        return Err(Error::Runtime(msg));
    }
    Ok(())
}

/// Sets the stop flag when dropped, so reader threads end on every way out of the flow loop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Handles what the readers still hand over until they are gone (their last packets and their
/// counters), ends all flows with `reason=stop` and flushes.
fn finish<W: Write>(
    rx: &Receiver<Vec<Msg>>,
    table: &mut FlowTable,
    out: &mut W,
    clock: fn() -> u64,
) -> Result<bool> {
    let deadline = Instant::now() + READERS_GONE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(batch) => {
                if !handle_all(batch, table, out)? {
                    return Ok(false);
                }
            }
            Err(_) => break,
        }
    }
    if !write_reports(out, &table.drain(clock(), EndReason::Stop))? {
        return Ok(false);
    }
    flush(out)
}

fn handle_all<W: Write>(batch: Vec<Msg>, table: &mut FlowTable, out: &mut W) -> Result<bool> {
    for m in batch {
        if !handle(m, table, out)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn handle<W: Write>(m: Msg, table: &mut FlowTable, out: &mut W) -> Result<bool> {
    match m {
        Msg::Packet {
            ts_us,
            wire_len,
            info,
            sni,
        } => write_reports(
            out,
            &table.observe_sni(ts_us, wire_len, &info, sni.as_deref()),
        ),
        Msg::Names { ts_us, answers } => {
            table.learn_names(ts_us, &answers);
            Ok(true)
        }
        Msg::Status(ev) => write_event(out, &ev),
    }
}

/// One capture thread: read, decode, select, exclude, pass on in batches; check drop counters
/// now and then. Ends on `stop` (reporting the final counters), when the flow thread is gone,
/// or when the source breaks.
fn reader(
    mut src: Box<dyn PacketSource>,
    cfg: &WorkerConfig,
    stop: &AtomicBool,
    tx: &SyncSender<Vec<Msg>>,
) {
    let link = src.link();
    let mut last_stats = Instant::now();
    let mut drops = src.stats().map_or((0, 0), |s| (s.dropped, s.if_dropped));
    let mut hellos = HelloAssembler::new();
    let mut batch: Vec<Msg> = Vec::with_capacity(READ_BATCH);
    // Hands the batch over; false when the flow thread is gone.
    let send = |batch: &mut Vec<Msg>| {
        batch.is_empty()
            || tx
                .send(std::mem::replace(batch, Vec::with_capacity(READ_BATCH)))
                .is_ok()
    };
    let mut last_send = Instant::now();
    let mut read: u32 = 0;
    while !stop.load(Ordering::SeqCst) {
        match src.next_packet() {
            Ok(Some(pkt)) => {
                if let Some(m) = packet_msg(link, &pkt, &cfg.exclusions, &mut hellos) {
                    batch.push(m);
                }
                if batch.len() >= READ_BATCH {
                    if !send(&mut batch) {
                        return;
                    }
                    last_send = Instant::now();
                }
                read = read.wrapping_add(1);
                if !read.is_multiple_of(CLOCK_EVERY) {
                    continue;
                }
            }
            Ok(None) if batch.is_empty() => src.wait(),
            Ok(None) => {
                // The capture ran dry: hand over what was gathered, unless the last hand-over
                // was under HOLD ago (a flood); then let packets gather for the rest of it.
                let since = last_send.elapsed();
                if since < HOLD {
                    thread::sleep(HOLD - since);
                    continue;
                }
                if !send(&mut batch) {
                    return;
                }
                last_send = Instant::now();
            }
            Err(e) => {
                let text = format!("capture on {} failed: {e}", src.name());
                batch.push(Msg::Status(Event::now(EventKind::Status, text)));
                let _ = send(&mut batch);
                return;
            }
        }
        if last_stats.elapsed() >= cfg.stats_every {
            last_stats = Instant::now();
            if let Some(st) = src.stats()
                && (st.dropped > drops.0 || st.if_dropped > drops.1)
            {
                drops = (st.dropped, st.if_dropped);
                let text = format!(
                    "pcap drops on {}: kernel={} iface={}",
                    src.name(),
                    st.dropped,
                    st.if_dropped
                );
                batch.push(Msg::Status(Event::now(EventKind::Status, text)));
                if !send(&mut batch) {
                    return;
                }
            }
        }
    }
    // Stopped: what was read still counts, and the counters show whether anything was lost.
    if let Some(st) = src.stats() {
        batch.push(Msg::Status(Event::now(
            EventKind::Status,
            stats_line(src.name(), &st),
        )));
    }
    let _ = send(&mut batch);
}

/// The status line a reader writes when it stops.
fn stats_line(iface: &str, st: &CaptureStats) -> String {
    format!(
        "capture stats received={} dropped={} if_dropped={} on {iface}",
        st.received, st.dropped, st.if_dropped
    )
}

/// What one captured packet means for the flow thread: a selected packet (with the server name
/// of a ClientHello it carries), the names a DNS response teaches, or nothing.
fn packet_msg(
    link: LinkType,
    pkt: &RawPacket<'_>,
    exclusions: &[Exclusion],
    hellos: &mut HelloAssembler,
) -> Option<Msg> {
    let filter::Decoded {
        info,
        payload,
        tcp_seq,
    } = filter::decode_payload(link, pkt.data)?;
    if filter::excluded(&info, exclusions) {
        return None;
    }
    if filter::dns_response(&info) {
        let answers = crate::dns_names::parse_response(payload);
        return (!answers.is_empty()).then_some(Msg::Names {
            ts_us: pkt.ts_us,
            answers,
        });
    }
    if !filter::selected(&info) {
        return None;
    }
    let sni = match info.proto {
        Proto::Tcp => hellos.push(info.src_addr(), info.dst_addr(), tcp_seq, payload),
        Proto::Udp => None,
    };
    Some(Msg::Packet {
        ts_us: pkt.ts_us,
        wire_len: pkt.wire_len,
        info,
        sni,
    })
}

fn write_reports<W: Write>(out: &mut W, reports: &[FlowReport]) -> Result<bool> {
    for r in reports {
        if !write_event(out, &r.to_event())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes one worker line; `Ok(false)` when the parent closed the pipe (then the worker just
/// stops).
fn write_event<W: Write>(out: &mut W, ev: &Event) -> Result<bool> {
    io_ok(out.write_all(ev.to_worker_line().as_bytes()))
}

fn flush<W: Write>(out: &mut W) -> Result<bool> {
    io_ok(out.flush())
}

fn io_ok(res: io::Result<()>) -> Result<bool> {
    match res {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::io("writing events to stdout", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::testpkt::*;
    use crate::filter::{TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN};
    use std::collections::VecDeque;

    const T0: u64 = 1_700_000_000_000_000;

    /// Yields its packets, then timeouts; sets `stop` after `stop_after` timeouts, or fails
    /// with an error when `fail` is set.
    struct Fake {
        packets: VecDeque<(u64, Vec<u8>)>,
        current: Vec<u8>,
        idle_reads: usize,
        stop_after: usize,
        stop: Arc<AtomicBool>,
        fail: bool,
        drops: u32,
        received: u32,
    }

    impl PacketSource for Fake {
        fn name(&self) -> &str {
            "fake0"
        }
        fn link(&self) -> LinkType {
            LinkType::Ethernet
        }
        fn next_packet(&mut self) -> std::result::Result<Option<RawPacket<'_>>, String> {
            if let Some((ts, data)) = self.packets.pop_front() {
                self.received += 1;
                self.current = data;
                return Ok(Some(RawPacket {
                    ts_us: ts,
                    wire_len: self.current.len() as u32,
                    data: &self.current,
                }));
            }
            if self.fail {
                return Err("device went away".into());
            }
            thread::sleep(Duration::from_millis(5));
            self.idle_reads += 1;
            self.drops += 1;
            if self.idle_reads >= self.stop_after {
                self.stop.store(true, Ordering::SeqCst);
            }
            Ok(None)
        }
        fn stats(&mut self) -> Option<CaptureStats> {
            Some(CaptureStats {
                received: self.received,
                dropped: self.drops,
                if_dropped: 0,
            })
        }
    }

    fn udp_frame(sport: u16, dport: u16) -> Vec<u8> {
        eth(
            0x0800,
            &ipv4([127, 0, 0, 1], [127, 0, 0, 1], 17, &udp(sport, dport, b"x")),
        )
    }

    fn packets() -> VecDeque<(u64, Vec<u8>)> {
        let lo = [127, 0, 0, 1];
        let srv = [10, 0, 0, 9];
        VecDeque::from(vec![
            (T0, udp_frame(40000, 5556)),
            (T0 + 1, udp_frame(5556, 40000)),
            (T0 + 2, udp_frame(40001, 53)),
            (T0 + 3, udp_frame(40002, 45001)),
            (T0 + 4, eth_tcp4(lo, 40003, lo, 5555, TCP_SYN)),
            (T0 + 5, eth_tcp4(lo, 5555, lo, 40003, TCP_SYN | TCP_ACK)),
            (T0 + 6, eth_tcp4(lo, 40003, lo, 5555, TCP_FIN | TCP_ACK)),
            (T0 + 7, eth_tcp4(lo, 5555, lo, 40003, TCP_FIN | TCP_ACK)),
            (T0 + 8, eth_tcp4(lo, 40003, lo, 5555, TCP_ACK)),
            (T0 + 9, eth_tcp4(lo, 40004, srv, 45000, TCP_SYN)),
            (T0 + 10, eth_tcp4(lo, 40005, lo, 5555, 0)),
            (T0 + 11, vec![0xde, 0xad]),
            (T0 + 12, eth(0x0806, &[0u8; 28])),
        ])
    }

    fn cfg(per_packet: bool) -> WorkerConfig {
        WorkerConfig {
            exclusions: vec![
                Exclusion::Tcp("10.0.0.9:45000".parse().unwrap()),
                Exclusion::UdpPort(45001),
            ],
            per_packet,
            idle: Duration::from_secs(30),
            stats_every: Duration::from_millis(1),
        }
    }

    fn run_fake(per_packet: bool, fail: bool) -> (Result<()>, Vec<Event>) {
        let stop = Arc::new(AtomicBool::new(false));
        let fake = Fake {
            packets: packets(),
            current: Vec::new(),
            idle_reads: 0,
            stop_after: 20,
            stop: stop.clone(),
            fail,
            drops: 0,
            received: 0,
        };
        let mut buf = Vec::new();
        let res = run_sources(
            vec![Box::new(fake)],
            &cfg(per_packet),
            stop,
            &mut buf,
            || T0 + 60_000_000,
        );
        let text = String::from_utf8(buf).unwrap();
        let events = text
            .lines()
            .map(|l| Event::parse_worker_line(l).expect("worker line"))
            .collect();
        (res, events)
    }

    fn net(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter(|e| e.kind == EventKind::Net)
            .map(|e| e.detail.clone())
            .collect()
    }

    #[test]
    fn flows_from_fake_packets() {
        let (res, events) = run_fake(false, false);
        res.unwrap();
        assert_eq!(
            net(&events),
            vec![
                "new udp 127.0.0.1:40000 -> 127.0.0.1:5556",
                "new tcp 127.0.0.1:40003 -> 127.0.0.1:5555 flags=S",
                "end tcp 127.0.0.1:40003 -> 127.0.0.1:5555 packets=4 bytes=216 duration=0.000s reason=fin",
                "end udp 127.0.0.1:40000 -> 127.0.0.1:5556 packets=2 bytes=86 duration=0.000s reason=stop",
            ]
        );
        let new = events.iter().find(|e| e.kind == EventKind::Net).unwrap();
        assert_eq!(new.ts_ms, T0 / 1000);
        let stop_end = events.iter().rfind(|e| e.kind == EventKind::Net).unwrap();
        assert_eq!(stop_end.ts_ms, T0 / 1000 + 60_000);
        assert!(
            events.iter().any(|e| e.kind == EventKind::Status
                && e.detail.starts_with("pcap drops on fake0: kernel="))
        );
        // On stop: the counters of the whole run (13 packets read, 20 idle reads counted as
        // drops by the fake), before the flows still open are ended.
        let stats = events
            .iter()
            .position(|e| {
                e.kind == EventKind::Status
                    && e.detail == "capture stats received=13 dropped=20 if_dropped=0 on fake0"
            })
            .unwrap_or_else(|| panic!("no final stats line: {events:?}"));
        let stop_end = events
            .iter()
            .rposition(|e| e.kind == EventKind::Net)
            .unwrap();
        assert!(stats < stop_end, "{events:?}");
    }

    #[test]
    fn names_from_dns_responses_and_client_hellos() {
        use crate::dns_names::testdns::{response, rr, wire_name};
        let lo = [127, 0, 0, 1];
        let named = [127, 0, 0, 77];
        let dns = response(
            "exam.example.org",
            &[rr(&wire_name("exam.example.org"), 1, &named)],
        );
        let hello = crate::tls_sni::build_client_hello(b"Secret.Example.NET");
        let tcp_data =
            |flags, data: &[u8]| eth(0x0800, &ipv4(lo, named, 6, &tcp(40010, 443, flags, data)));
        let stop = Arc::new(AtomicBool::new(false));
        let fake = Fake {
            packets: VecDeque::from(vec![
                (T0, eth(0x0800, &ipv4(lo, lo, 17, &udp(53, 40001, &dns)))),
                (
                    T0 + 1,
                    eth(0x0800, &ipv4(lo, named, 17, &udp(40000, 9, b"x"))),
                ),
                (T0 + 2, tcp_data(TCP_SYN, b"")),
                (T0 + 3, tcp_data(TCP_ACK | TCP_PSH, &hello)),
                (T0 + 4, tcp_data(TCP_ACK | TCP_PSH, &hello)),
            ]),
            current: Vec::new(),
            idle_reads: 0,
            stop_after: 20,
            stop: stop.clone(),
            fail: false,
            drops: 0,
            received: 0,
        };
        let mut buf = Vec::new();
        run_sources(vec![Box::new(fake)], &cfg(false), stop, &mut buf, || {
            T0 + 1_000_000
        })
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let events: Vec<Event> = text.lines().filter_map(Event::parse_worker_line).collect();
        let lines = net(&events);
        assert_eq!(
            &lines[..3],
            &[
                "new udp 127.0.0.1:40000 -> 127.0.0.77:9 name=exam.example.org (dns)",
                "new tcp 127.0.0.1:40010 -> 127.0.0.77:443 flags=S name=exam.example.org (dns)",
                "tls tcp 127.0.0.1:40010 -> 127.0.0.77:443 sni=secret.example.net",
            ],
            "{lines:?}"
        );
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains(":53 ")));
    }

    #[test]
    fn per_packet_from_fake_packets() {
        let (res, events) = run_fake(true, false);
        res.unwrap();
        let lines = net(&events);
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert!(lines.iter().all(|l| l.starts_with("pkt ")));
        assert_eq!(lines[0], "pkt udp 127.0.0.1:40000 -> 127.0.0.1:5556 len=43");
    }

    #[test]
    fn closed_stdout_ends_the_worker_quietly() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let fake = Fake {
            packets: packets(),
            current: Vec::new(),
            idle_reads: 0,
            stop_after: usize::MAX,
            stop: stop.clone(),
            fail: false,
            drops: 0,
            received: 0,
        };
        let started = Instant::now();
        run_sources(vec![Box::new(fake)], &cfg(false), stop, Closed, || T0).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn broken_source_is_reported_and_fails() {
        let (res, events) = run_fake(false, true);
        assert!(matches!(res, Err(Error::Runtime(_))));
        let status: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == EventKind::Status)
            .map(|e| e.detail.as_str())
            .collect();
        assert!(
            status.contains(&"capture on fake0 failed: device went away"),
            "{status:?}"
        );
        // Open flows were still ended.
        assert!(net(&events).iter().any(|l| l.ends_with("reason=stop")));
    }
}
