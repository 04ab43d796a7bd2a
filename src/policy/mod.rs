//! The invigilator's allow-lists (issue 6): which destinations, programs, mounts and USB devices
//! are expected in this exam. The server judges every network, mount and device event against
//! them and marks its log line ` verdict=ok` or ` verdict=flagged why="..."`; flagged events are
//! counted per machine and highlighted. Everything is still written to the files: a policy only
//! says what to look at first. The format is documented in `docs/POLICY.md`.
//!
//! - [`parse`]: the TOML file to a checked [`Policy`], errors with line numbers.
//! - [`judge`]: the pure decision for one event line, and the [`Verdict`] field.
//! - [`fields`]: reads the fields of an event's detail text.
//! - [`pattern`]: addresses, networks, port ranges and wildcard names.
//! - [`watch`]: the loaded file, reloaded on request, on SIGHUP or when it changes.

pub mod fields;
pub mod judge;
pub mod parse;
pub mod pattern;
pub mod watch;

pub use judge::{Verdict, judge, verdict_of};
pub use parse::{PolicyError, parse};
pub use watch::PolicyWatch;

use pattern::{AddrPattern, Glob, PortRange};

/// One allowed destination: every part it gives must match (a missing part matches anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRule {
    /// Addresses, networks or names (any one matches); empty: any destination.
    pub to: Vec<AddrPattern>,
    /// Destination ports (any one matches); empty: any port.
    pub ports: Vec<PortRange>,
    /// `tcp` or `udp`; `None`: both.
    pub proto: Option<String>,
    /// The invigilator's note (shown nowhere but the file; for people reading it).
    pub note: Option<String>,
}

/// The program allow-list, matched against `proc="..."` on network lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRules {
    /// Program names (wildcards allowed), case-sensitive as process names are.
    pub allow: Vec<Glob>,
    /// Whether a flow whose program the client could not find (`proc=unknown`) is flagged.
    pub flag_unknown: bool,
}

/// Known USB devices and device classes that need no attention.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceRules {
    /// Serial numbers of known devices (compared ignoring case and surrounding blanks).
    pub known: Vec<String>,
    /// Device classes (`hid`, `hub`, ...) that are fine whatever the serial.
    pub allow_classes: Vec<String>,
}

/// Which mounts need no attention.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountRules {
    /// Mount classes (`virtual`, `fuse`, ...) that are fine.
    pub allow_classes: Vec<String>,
    /// Servers of network mounts that are fine (wildcard names, or addresses/networks).
    pub allow_remotes: Vec<AddrPattern>,
}

/// A checked policy. A part that is `None` (its table is missing from the file) is not judged:
/// every event of that sort is `ok`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Allowed destinations; `None` when the file has no `[[destination]]` table.
    pub destinations: Option<Vec<DestinationRule>>,
    /// Allowed programs; `None` without a `[programs]` table.
    pub programs: Option<ProgramRules>,
    /// Known devices; `None` without a `[devices]` table (serials still apply to USB mounts
    /// when the table exists).
    pub devices: Option<DeviceRules>,
    /// Allowed mounts; `None` without a `[mounts]` table.
    pub mounts: Option<MountRules>,
}

impl Policy {
    /// One line on what the policy checks, for the server's messages and the log files.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.destinations {
            parts.push(count(d.len(), "destination rule"));
        }
        if let Some(p) = &self.programs {
            parts.push(count(p.allow.len(), "program"));
        }
        if let Some(d) = &self.devices {
            parts.push(count(d.known.len(), "known device"));
        }
        if let Some(m) = &self.mounts {
            parts.push(format!(
                "mount classes {}",
                if m.allow_classes.is_empty() {
                    "none".to_string()
                } else {
                    m.allow_classes.join(",")
                }
            ));
        }
        if parts.is_empty() {
            "checks nothing".into()
        } else {
            parts.join(", ")
        }
    }

    /// Whether `serial` is one of the known devices' serials.
    pub fn known_serial(&self, serial: &str) -> bool {
        let s = serial.trim();
        !s.is_empty()
            && self
                .devices
                .as_ref()
                .is_some_and(|d| d.known.iter().any(|k| k.eq_ignore_ascii_case(s)))
    }
}

/// `1 program`, `3 programs`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Reads and checks the policy file at `path`; errors name the file and, when the problem is
/// in its text, the line.
pub fn load(path: &std::path::Path) -> Result<Policy, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read policy file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("policy file {}: {e}", path.display()))
}
