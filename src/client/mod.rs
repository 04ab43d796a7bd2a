//! The lab-PC daemon: waits for an authenticated start, connects back to the server, runs the
//! capture and mount workers as child processes and streams their events until stopped.
//!
//! - [`announcements`]: the UDP socket for start/stop.
//! - [`link`]: the authenticated connection to the server.
//! - [`session`]: one monitoring session (queue, acknowledgements, reconnects, stop).
//! - [`workers`]: starting and reading the worker processes.
//! - [`capture`], [`mounts`] (+ [`mountinfo`], [`usb`]): the workers themselves.

pub mod announcements;
pub mod capture;
pub mod link;
pub mod mountinfo;
pub mod mounts;
pub mod session;
pub mod usb;
pub mod workers;

use crate::cli::ClientArgs;
use crate::error::{Error, Result};
use crate::protocol::announce::AnnounceKind;
use crate::protocol::message::INSTANCE_LEN;
use announcements::AnnounceSocket;
use link::{Identity, Link};
use session::{Ended, SessionConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use workers::WorkerSpec;

/// Least time between two connection attempts to the same announced server, so a flood of
/// replayed starts cannot make the client hammer an address.
const ATTEMPT_INTERVAL: Duration = Duration::from_secs(2);

/// Runs `proctor client`.
pub fn run(args: &ClientArgs) -> Result<()> {
    if !crate::sys::is_root() {
        return Err(Error::Permission(
            "proctor client must run as root (sudo): it opens raw packet capture on the network interfaces \
             (libpcap) and watches every mount on the machine"
                .into(),
        ));
    }
    let key = crate::keyfile::load(&args.key)?;
    let exit = crate::sys::stop_on_signals();
    let mut udp = AnnounceSocket::bind(args.port, key.clone())?;
    let ifaces = if args.interfaces.is_empty() {
        let ifs =
            crate::netif::list().map_err(|e| Error::io("cannot list network interfaces", e))?;
        crate::netif::capture_interfaces(&ifs)
    } else {
        args.interfaces.clone()
    };
    let me = Identity {
        hostname: args.hostname.clone().unwrap_or_else(crate::sys::host_name),
        instance: crate::crypto::random::<INSTANCE_LEN>(),
    };
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find own executable", e))?;
    println!(
        "proctor client '{}' waiting for announcements on UDP port {} (key fingerprint {}, capture on {})",
        me.hostname,
        args.port,
        key.fingerprint(),
        if ifaces.is_empty() {
            "no interface".to_string()
        } else {
            ifaces.join(", ")
        }
    );
    let mut last_attempt: HashMap<SocketAddr, Instant> = HashMap::new();
    let mut reported_rejects = 0;
    let mut last_report = Instant::now();
    let mut set = crate::poll::PollSet::new();
    while !exit.load(Ordering::SeqCst) {
        set.clear();
        set.push(udp.fd(), crate::poll::IN);
        let _ = set.wait(Duration::from_millis(200));
        for (a, from) in udp.recv_all() {
            if a.kind != AnnounceKind::Start {
                continue;
            }
            let server = SocketAddr::new(from.ip(), a.tcp_port);
            let now = Instant::now();
            if last_attempt
                .get(&server)
                .is_some_and(|t| now.duration_since(*t) < ATTEMPT_INTERVAL)
            {
                continue;
            }
            last_attempt.insert(server, now);
            match Link::connect(server, &key, a.session, &me, Duration::from_secs(2)) {
                Ok((link, next_seq)) => {
                    println!("joined session {} of server {server}", a.session.short());
                    let cfg = SessionConfig {
                        key: key.clone(),
                        me: me.clone(),
                        workers: worker_specs(&exe, &ifaces, server, args),
                        notes: if ifaces.is_empty() {
                            vec!["no network interface to capture on".into()]
                        } else {
                            vec![]
                        },
                    };
                    let ended =
                        session::run(&cfg, &mut udp, server, a.session, link, next_seq, exit);
                    println!(
                        "session {} ended; waiting for announcements",
                        a.session.short()
                    );
                    if ended == Ended::Signalled {
                        return Ok(());
                    }
                }
                Err(e) => println!("ignored start from {from}: {e}"),
            }
        }
        if udp.rejected != reported_rejects && last_report.elapsed() >= Duration::from_secs(10) {
            println!(
                "ignored {} datagrams that did not open under our key",
                udp.rejected - reported_rejects
            );
            reported_rejects = udp.rejected;
            last_report = Instant::now();
        }
    }
    Ok(())
}

fn worker_specs(
    exe: &std::path::Path,
    ifaces: &[String],
    server: SocketAddr,
    args: &ClientArgs,
) -> Vec<WorkerSpec> {
    let mut specs = vec![WorkerSpec {
        name: "mounts",
        program: exe.to_path_buf(),
        args: vec!["__mount-worker".into()],
    }];
    if !ifaces.is_empty() {
        let mut a = vec!["__capture-worker".to_string()];
        for i in ifaces {
            a.push("--iface".into());
            a.push(i.clone());
        }
        a.push("--exclude-tcp".into());
        a.push(server.to_string());
        a.push("--exclude-udp-port".into());
        a.push(args.port.to_string());
        a.push("--flow-idle".into());
        a.push(args.flow_idle.to_string());
        if args.per_packet {
            a.push("--per-packet".into());
        }
        specs.push(WorkerSpec {
            name: "capture",
            program: exe.to_path_buf(),
            args: a,
        });
    }
    specs
}
