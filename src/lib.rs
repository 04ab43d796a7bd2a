//! proctor: watch an exam lab.
//!
//! # Layout
//! - [`cli`]: the command line (clap), validated but not acted on; [`config`]: the config file
//!   that fills in options not given on it; [`logging`]: proctor's own messages on stderr.
//! - [`keyfile`]: loading, checking and writing the shared key; [`signing`]: the optional
//!   server signing key pair (stronger mode).
//! - [`crypto`]: pure sealing/opening of announcements and stream frames, handshake proofs.
//! - [`protocol`]: the wire formats: announcements, stream framing, messages, handshake.
//! - [`event`]: what a client reports, and how text from outside is escaped.
//! - [`filter`]: pure packet decoding and the selection rule; [`flows`]: per-flow reporting;
//!   [`fxhash`]: the fast hasher of its flow table.
//! - [`inspect`]: offline replay of a capture through the same decoder.
//! - [`report`]: the after-the-fact HTML report of a session's log directory.
//! - [`loadgen`]: simulated lab PCs for benchmarks.
//! - [`policy`]: the invigilator's allow-lists and the ok/flagged verdict of each event.
//! - [`server`]: the headless core (poll loop, sessions, storage, registry) and its front ends.
//! - [`client`]: the lab-PC daemon and its worker processes.
//! - [`service`]: `install-service`, the systemd units with this machine's paths.
//! - [`netif`], [`poll`], [`sys`], [`timefmt`]: small OS seams; [`hex`]: hex text.
//! - `testkit` (hidden): test packets and a seeded generator shared by unit and integration tests.

pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod dns_names;
pub mod error;
pub mod event;
pub mod filter;
pub mod flows;
pub mod fxhash;
pub mod hex;
pub mod inspect;
pub mod json;
pub mod keyfile;
pub mod loadgen;
pub mod logging;
pub mod netif;
pub mod policy;
pub mod poll;
pub mod protocol;
pub mod report;
pub mod server;
pub mod service;
pub mod signing;
pub mod sys;
#[doc(hidden)]
pub mod testkit;
pub mod timefmt;
pub mod tls_sni;
