//! The invigilator's server: a headless core ([`core`]) that owns the network, the session and
//! the files, and front ends that only render it ([`headless`] prints to stdout).
//!
//! - [`announcer`]: sender thread for start/stop datagrams.
//! - [`conn`]: one client connection and its handshake.
//! - [`registry`]: per-client state, counts and sequence bookkeeping.
//! - [`session`]: session id and directory.
//! - [`storage`]: the per-client log files.

pub mod announcer;
pub mod conn;
pub mod core;
pub mod headless;
pub mod registry;
pub mod session;
pub mod storage;

use crate::cli::ServerArgs;
use crate::error::{Error, Result};
use std::time::Duration;

/// Runs `proctor server`.
pub fn run(args: &ServerArgs) -> Result<()> {
    let key = crate::keyfile::load(&args.key)?;
    let broadcasts = if args.broadcast.is_empty() {
        let ifs =
            crate::netif::list().map_err(|e| Error::io("cannot list network interfaces", e))?;
        let b = crate::netif::broadcast_addresses(&ifs);
        if b.is_empty() {
            return Err(Error::Usage(
                "no broadcast address found (no up IPv4 interface with broadcast); pass --broadcast ADDR".into(),
            ));
        }
        b
    } else {
        args.broadcast.clone()
    };
    let mut cfg = core::CoreConfig::new(
        key,
        args.server_port,
        args.client_port,
        broadcasts,
        args.logs.clone(),
    );
    cfg.announce_every = Duration::from_secs_f64(args.announce_every);
    if let Some(p) = &args.signing_key {
        cfg.signer = Some(std::sync::Arc::new(crate::signing::load_signer(p)?));
    }
    if !args.headless {
        return Err(Error::Usage(
            "the invigilator's window is not available in this build yet; run with --headless"
                .into(),
        ));
    }
    headless::run(cfg, args.stop_after.map(Duration::from_secs_f64))
}
