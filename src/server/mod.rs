//! The invigilator's server: a headless core ([`core`]) that owns the network, the session and
//! the files, and front ends that only render it ([`headless`] prints to stdout, [`gui`] is the
//! invigilator's window).
//!
//! - [`announcer`]: sender thread for start/stop datagrams.
//! - [`conn`]: one client connection and its handshake.
//! - [`export`]: copies of the events as JSON Lines and RFC 5424 syslog.
//! - [`registry`]: per-client state, counts and sequence bookkeeping.
//! - [`session`]: session id and directory.
//! - [`storage`]: the per-client log files.

pub mod announcer;
pub mod conn;
pub mod core;
pub mod export;
pub mod gui;
pub mod headless;
pub mod registry;
pub mod session;
pub mod storage;

use crate::cli::ServerArgs;
use crate::error::{Error, Result};
use std::time::Duration;

/// Runs `proctor server`: the window, or with `--headless` the terminal front end. Without
/// `--headless`, problems found before the core starts (key, broadcast address, port) are shown
/// in the window as well as returned.
pub fn run(args: &ServerArgs) -> Result<()> {
    let cfg = config(args);
    if !args.headless {
        return gui::run(args, cfg);
    }
    headless::run(cfg?, args.stop_after.map(Duration::from_secs_f64))
}

/// Loads the key and finds the broadcast addresses: the core's configuration.
fn config(args: &ServerArgs) -> Result<core::CoreConfig> {
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
    cfg.export = export::ExportConfig {
        jsonl: args.jsonl.clone(),
        syslog: args.syslog.clone(),
    };
    if let Some(p) = &args.policy {
        cfg.policy = Some(crate::policy::PolicyWatch::load(p).map_err(Error::Usage)?);
    }
    if let Some(p) = &args.signing_key {
        cfg.signer = Some(std::sync::Arc::new(crate::signing::load_signer(p)?));
    }
    Ok(cfg)
}
