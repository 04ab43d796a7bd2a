//! The client's UDP socket for start/stop announcements: bound to 0.0.0.0 with SO_REUSEADDR
//! (so broadcasts arrive and several clients can share a test machine), read without blocking.
//! Datagrams that do not open under our key are counted, never answered.

use crate::crypto::Key;
use crate::error::{Error, Result};
use crate::protocol::announce::Announcement;
use crate::signing::ServerPublic;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// The announcement listener.
pub struct AnnounceSocket {
    sock: UdpSocket,
    key: Key,
    server_public: Option<ServerPublic>,
    /// Datagrams dropped because they did not open (forged, corrupted, other key, garbage).
    pub rejected: u64,
}

impl AnnounceSocket {
    /// Binds UDP `port` on every address.
    pub fn bind(
        port: u16,
        key: Key,
        server_public: Option<ServerPublic>,
    ) -> Result<AnnounceSocket> {
        let ctx = |e| {
            Error::io(
                format!("cannot listen for announcements on UDP port {port}"),
                e,
            )
        };
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(ctx)?;
        s.set_reuse_address(true).map_err(ctx)?;
        s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())
            .map_err(ctx)?;
        s.set_nonblocking(true).map_err(ctx)?;
        Ok(AnnounceSocket {
            sock: s.into(),
            key,
            server_public,
            rejected: 0,
        })
    }

    /// The socket, for poll.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Every valid announcement waiting now, with its sender.
    pub fn recv_all(&mut self) -> Vec<(Announcement, SocketAddr)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..10_000 {
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => match Announcement::open_verified(
                    &self.key,
                    self.server_public.as_ref(),
                    &buf[..n],
                ) {
                    Ok(a) => out.push((a, from)),
                    Err(_) => self.rejected += 1,
                },
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    }
}
