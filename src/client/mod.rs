//! The lab-PC daemon: waits for an authenticated start, connects back to the server, runs the
//! capture, mount and USB device workers as child processes and streams their events until stopped.
//!
//! - [`announcements`]: the UDP socket for start/stop.
//! - [`link`]: the authenticated connection to the server.
//! - [`session`]: one monitoring session (queue, acknowledgements, reconnects, stop).
//! - [`workers`]: starting and reading the worker processes.
//! - [`capture`], [`mounts`] (+ [`mountinfo`], [`usb`]), [`devices`]: the workers themselves.
//! - [`attribution`]: names the program behind each new flow (in this process, as root).

pub mod announcements;
pub mod attribution;
pub mod capture;
pub mod connector;
pub mod devices;
pub mod link;
pub mod mountinfo;
pub mod mounts;
pub mod session;
pub mod spool;
pub mod usb;
pub mod workers;

use crate::cli::ClientArgs;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::protocol::SessionId;
use crate::protocol::announce::AnnounceKind;
use crate::protocol::message::INSTANCE_LEN;
use announcements::AnnounceSocket;
use connector::Connector;
use link::{Identity, Link, Trust};
use session::{Ended, SessionConfig, Start};
use spool::Spool;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use workers::WorkerSpec;

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
    let server_public = args
        .server_pubkey
        .as_deref()
        .map(crate::signing::load_public)
        .transpose()?;
    let trust = Trust {
        key: key.clone(),
        server_public,
    };
    let exit = crate::sys::stop_on_signals();
    let mut udp = AnnounceSocket::bind(args.port, key.clone(), server_public)?;
    let ifaces = if args.interfaces.is_empty() {
        let ifs =
            crate::netif::list().map_err(|e| Error::io("cannot list network interfaces", e))?;
        crate::netif::capture_interfaces(&ifs)
    } else {
        args.interfaces.clone()
    };
    let hostname = args.hostname.clone().unwrap_or_else(crate::sys::host_name);
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find own executable", e))?;
    let spool = Spool::path_for(&args.spool, args.port);
    println!(
        "proctor client '{}' waiting for announcements on UDP port {} (key fingerprint {}, capture on {}, spool {})",
        hostname,
        args.port,
        key.fingerprint(),
        if ifaces.is_empty() {
            "no interface".to_string()
        } else {
            ifaces.join(", ")
        },
        spool.display()
    );
    if let Some(p) = &trust.server_public {
        println!(
            "stronger mode: only servers signing with key {} are accepted",
            p.fingerprint()
        );
    }
    let cfg_for = |server: SocketAddr| SessionConfig {
        trust: trust.clone(),
        hostname: hostname.clone(),
        workers: worker_specs(&exe, &ifaces, server, args),
        notes: if ifaces.is_empty() {
            vec!["no network interface to capture on".into()]
        } else {
            vec![]
        },
        spool: spool.clone(),
        spool_limit: usize::try_from(args.spool_limit).unwrap_or(usize::MAX),
    };
    let mut carried: Vec<(SessionId, Event)> = Vec::new();
    let mut next = resume_from_spool(&spool, &trust, &hostname, &mut carried);
    let mut connector = Connector::new();
    let mut reported_rejects = 0;
    let mut last_report = Instant::now();
    let mut set = crate::poll::PollSet::new();
    while !exit.load(Ordering::SeqCst) {
        if let Some(start) = next.take() {
            let session = start.session;
            println!("in session {} of server {}", session.short(), start.server);
            match session::run(&cfg_for(start.server), &mut udp, start, exit) {
                Ended::Signalled => return Ok(()),
                Ended::Switch(s) => next = Some(*s),
                Ended::Stopped { session, leftover } => {
                    carried.extend(leftover.into_iter().map(|e| (session, e)));
                    println!(
                        "session {} ended; waiting for announcements",
                        session.short()
                    );
                }
            }
            continue;
        }
        set.clear();
        set.push(udp.fd(), crate::poll::IN);
        let _ = set.wait(Duration::from_millis(if connector.in_flight() > 0 {
            20
        } else {
            200
        }));
        let now = Instant::now();
        for (a, from) in udp.recv_all() {
            if a.kind == AnnounceKind::Start {
                let me = Identity {
                    hostname: hostname.clone(),
                    instance: crate::crypto::random::<INSTANCE_LEN>(),
                };
                connector.try_start(
                    &trust,
                    me,
                    SocketAddr::new(from.ip(), a.tcp_port),
                    a.session,
                    now,
                );
            }
        }
        for attempt in connector.finished() {
            match attempt.result {
                Ok((link, next_seq)) if next.is_none() => {
                    println!(
                        "joined session {} of server {}",
                        attempt.session.short(),
                        attempt.server
                    );
                    let mut start = Start::joined(
                        attempt.server,
                        attempt.session,
                        attempt.instance,
                        link,
                        next_seq,
                    );
                    start.carried = std::mem::take(&mut carried);
                    next = Some(start);
                }
                Ok(_) => {}
                Err(e) => println!("ignored start from {}: {e}", attempt.server),
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

/// After a client restart: continue the session the spool belongs to (reconnecting until its
/// server answers), or, if that server says the session is over, carry its unacknowledged
/// events into the next session.
fn resume_from_spool(
    path: &std::path::Path,
    trust: &Trust,
    hostname: &str,
    carried: &mut Vec<(SessionId, Event)>,
) -> Option<Start> {
    let r = Spool::recover(path)?;
    println!(
        "spool {} holds session {} with {} unacknowledged events; resuming it",
        path.display(),
        r.session.short(),
        r.events.len()
    );
    let me = Identity {
        hostname: hostname.to_string(),
        instance: r.instance,
    };
    let link = match Link::connect(r.server, trust, r.session, &me, Duration::from_secs(2)) {
        Ok(l) => Some(l),
        Err(e) if e.contains("refused:") => {
            println!(
                "session {} is over ({e}); its events go to the next session",
                r.session.short()
            );
            carried.extend(r.events.into_iter().map(|(_, e)| (r.session, e)));
            return None;
        }
        Err(e) => {
            println!(
                "server {} not reachable yet ({e}); monitoring resumes and keeps trying",
                r.server
            );
            None
        }
    };
    Some(Start {
        server: r.server,
        session: r.session,
        instance: r.instance,
        link,
        queue: r.events,
        next_seq: r.next_seq,
        carried: Vec::new(),
    })
}

fn worker_specs(
    exe: &std::path::Path,
    ifaces: &[String],
    server: SocketAddr,
    args: &ClientArgs,
) -> Vec<WorkerSpec> {
    let mut specs = vec![
        WorkerSpec {
            name: "mounts",
            program: exe.to_path_buf(),
            args: vec!["__mount-worker".into()],
        },
        WorkerSpec {
            name: "devices",
            program: exe.to_path_buf(),
            args: vec![
                "__device-worker".into(),
                "--sysfs".into(),
                args.sysfs_root.display().to_string(),
            ],
        },
    ];
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
