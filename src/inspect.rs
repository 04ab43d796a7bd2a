//! `proctor inspect FILE`: replays a capture file (pcap or pcapng) through exactly the decoder,
//! selection rule and flow tracker the live capture worker uses, and prints what a client would
//! have reported. It lets an invigilator check the rule on recorded traffic, and lets the tests
//! exercise the whole network path without a live interface.
//!
//! Packet timestamps are the clock: idle flows are ended as later packets arrive, and whatever
//! is still open at the end of the file is ended with `reason=eof`. DNS responses in the file
//! teach names and TLS ClientHellos give server names, as in the live worker.

use crate::error::{Error, Result};
use crate::filter::{self, LinkType};
use crate::flows::{EndReason, FlowReport, FlowTable};
use std::io::{self, BufWriter, Write};
use std::time::Duration;

/// Runs `proctor inspect`: one text line (`<RFC 3339 time> <detail>`) or JSON object per
/// report on stdout. A missing or unreadable file or an unsupported link type is a usage error;
/// a closed stdout (e.g. `| head`) ends the run quietly.
pub fn run(args: &crate::cli::InspectArgs) -> Result<()> {
    let shown = args.file.display();
    let mut cap = pcap::Capture::from_file(&args.file)
        .map_err(|e| Error::Usage(format!("cannot read capture {shown}: {e}")))?;
    let dlt = cap.get_datalink();
    let link = LinkType::from_dlt(dlt.0).ok_or_else(|| {
        let name = dlt.get_name().unwrap_or_else(|_| "unknown".to_string());
        Error::Usage(format!(
            "cannot read capture {shown}: unsupported link type {name} (DLT {}); \
             supported: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD loopback (NULL, LOOP)",
            dlt.0
        ))
    })?;

    let mut table = FlowTable::new(
        Duration::try_from_secs_f64(args.flow_idle).unwrap_or(Duration::from_secs(30)),
    )
    .per_packet(args.per_packet);
    let stdout = io::stdout();
    let mut out = Printer {
        w: BufWriter::new(stdout.lock()),
        json: args.json,
    };
    let mut hellos = crate::tls_sni::HelloAssembler::new();
    let mut last_ts = 0u64;
    let mut packets = 0u64;
    let read_error = loop {
        match cap.next_packet() {
            Ok(pkt) => {
                packets += 1;
                let ts = timeval_us(&pkt.header.ts);
                last_ts = last_ts.max(ts);
                let expired = table.expire(ts);
                if !out.print(&expired)? {
                    return Ok(());
                }
                if let Some(d) = filter::decode_payload(link, pkt.data) {
                    let info = d.info;
                    if filter::dns_response(&info) {
                        table.learn_names(ts, &crate::dns_names::parse_response(d.payload));
                    } else if filter::selected(&info) {
                        let sni = match info.proto {
                            filter::Proto::Tcp => {
                                hellos.push(info.src_addr(), info.dst_addr(), d.tcp_seq, d.payload)
                            }
                            filter::Proto::Udp => None,
                        };
                        let reports = table.observe_sni(ts, pkt.header.len, &info, sni.as_deref());
                        if !out.print(&reports)? {
                            return Ok(());
                        }
                    }
                }
            }
            Err(pcap::Error::NoMorePackets) => break None,
            Err(e) => break Some(e),
        }
    };
    let rest = table.drain(last_ts, EndReason::Eof);
    if !out.print(&rest)? || !out.flush()? {
        return Ok(());
    }
    match read_error {
        None => Ok(()),
        Some(e) => Err(Error::Usage(format!(
            "cannot read capture {shown} after {packets} packets: {e}"
        ))),
    }
}

/// Microseconds since the epoch from a pcap `timeval` (shared with the live capture worker);
/// times before 1970 clamp to 0.
pub(crate) fn timeval_us(tv: &libc::timeval) -> u64 {
    let Ok(sec) = u64::try_from(tv.tv_sec) else {
        return 0;
    };
    let usec = u64::try_from(tv.tv_usec).unwrap_or(0);
    sec.saturating_mul(1_000_000).saturating_add(usec)
}

struct Printer<W: Write> {
    w: W,
    json: bool,
}

impl<W: Write> Printer<W> {
    /// Writes the reports; `Ok(false)` when the reader went away (EPIPE), so the caller stops.
    fn print(&mut self, reports: &[FlowReport]) -> Result<bool> {
        for r in reports {
            let res = if self.json {
                writeln!(self.w, "{}", r.to_json())
            } else {
                writeln!(
                    self.w,
                    "{} {}",
                    crate::timefmt::rfc3339_ms(r.ts_ms()),
                    r.detail()
                )
            };
            if !Self::ok(res)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn flush(&mut self) -> Result<bool> {
        let res = self.w.flush();
        Self::ok(res)
    }

    fn ok(res: io::Result<()>) -> Result<bool> {
        match res {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(Error::io("writing to stdout", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeval_conversion_clamps() {
        let tv = |tv_sec, tv_usec| libc::timeval { tv_sec, tv_usec };
        assert_eq!(timeval_us(&tv(1, 5)), 1_000_005);
        assert_eq!(timeval_us(&tv(-1, 0)), 0);
        assert_eq!(timeval_us(&tv(libc::time_t::MAX, 999_999)), u64::MAX);
    }

    #[test]
    fn printer_stops_quietly_on_broken_pipe() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
        }
        let info = filter::PacketInfo {
            proto: filter::Proto::Udp,
            src: "10.0.0.1".parse().unwrap(),
            sport: 1,
            dst: "10.0.0.2".parse().unwrap(),
            dport: 2,
            tcp_flags: 0,
        };
        let mut p = Printer {
            w: Closed,
            json: false,
        };
        assert!(!p.print(&[FlowReport::packet(0, 1, &info)]).unwrap());
        assert!(!p.flush().unwrap());
    }
}
