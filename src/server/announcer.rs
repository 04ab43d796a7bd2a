//! The sender thread for announcements: sends the sealed start datagram to every broadcast
//! target at once and then every few seconds (so late or rebooted clients join by themselves),
//! and the stop datagram when told to stop. The GUI and the poll loop never block on it.

use crate::crypto::Key;
use crate::protocol::SessionId;
use crate::protocol::announce::{AnnounceKind, Announcement};
use crate::signing::ServerSigner;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a stop is repeated, since UDP may drop one.
const STOP_REPEATS: u32 = 3;

/// A running announcer thread.
pub struct Announcer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

/// Opens a broadcast-capable UDP socket.
fn broadcast_socket() -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_broadcast(true)?;
    s.bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into())?;
    Ok(s.into())
}

/// Sends one sealed announcement to every target; returns the first error per target.
pub fn send_once(
    sock: &std::net::UdpSocket,
    key: &Key,
    signer: Option<&ServerSigner>,
    targets: &[SocketAddrV4],
    a: &Announcement,
) -> Vec<String> {
    let mut errors = Vec::new();
    for t in targets {
        if let Err(e) = sock.send_to(&a.seal_signed(key, signer), t) {
            errors.push(format!("cannot send announcement to {t}: {e}"));
        }
    }
    errors
}

impl Announcer {
    /// Starts announcing `session`. Send errors are reported through `warn`.
    pub fn spawn(
        key: Key,
        targets: Vec<SocketAddrV4>,
        tcp_port: u16,
        session: SessionId,
        every: Duration,
        signer: Option<Arc<ServerSigner>>,
        warn: Sender<String>,
    ) -> std::io::Result<Announcer> {
        let sock = broadcast_socket()?;
        let (stop, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("announcer".into())
            .spawn(move || {
                let make = |kind| Announcement {
                    kind,
                    tcp_port,
                    session,
                    ts_ms: crate::timefmt::now_ms(),
                };
                let mut warned = false;
                loop {
                    let errs = send_once(
                        &sock,
                        &key,
                        signer.as_deref(),
                        &targets,
                        &make(AnnounceKind::Start),
                    );
                    if !errs.is_empty() && !warned {
                        warned = true;
                        for e in errs {
                            let _ = warn.send(e);
                        }
                    }
                    match stop_rx.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                for i in 0..STOP_REPEATS {
                    send_once(
                        &sock,
                        &key,
                        signer.as_deref(),
                        &targets,
                        &make(AnnounceKind::Stop),
                    );
                    if i + 1 < STOP_REPEATS {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })?;
        Ok(Announcer { stop, thread })
    }

    /// Tells the thread to send the stop announcement; returns at once. Join the returned
    /// handle to know the stop went out.
    pub fn stop(self) -> JoinHandle<()> {
        let _ = self.stop.send(());
        self.thread
    }
}
