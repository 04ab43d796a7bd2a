//! The policy file: TOML read with the `toml` crate into plain structs (unknown keys are
//! errors, so a typo never silently disables a check), then every entry checked and turned into
//! a [`Policy`]. Each entry keeps its byte span, so a bad network, port or class is reported
//! with the line it is on, like a syntax error.

use super::pattern::{AddrPattern, Glob, PortRange};
use super::{DestinationRule, DeviceRules, MountRules, Policy, ProgramRules};
use serde::Deserialize;
use std::fmt;
use toml::Spanned;

/// Mount classes the client reports (`class=` on mount lines).
pub const MOUNT_CLASSES: [&str; 5] = ["network", "usb", "block", "fuse", "virtual"];
/// USB device classes the client reports (`class=` on device lines).
pub const DEVICE_CLASSES: [&str; 10] = [
    "mass-storage",
    "hid",
    "wireless",
    "network",
    "phone",
    "hub",
    "audio",
    "video",
    "printer",
    "other",
];

/// Why a policy file was refused: the line (1-based) when known, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Line of the offending text, if the problem is tied to one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTop {
    destination: Option<Vec<FileDestination>>,
    programs: Option<FilePrograms>,
    devices: Option<FileDevices>,
    mounts: Option<FileMounts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDestination {
    #[serde(default)]
    to: Vec<Spanned<String>>,
    #[serde(default)]
    ports: Vec<Spanned<toml::Value>>,
    proto: Option<Spanned<String>>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrograms {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    flag_unknown: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDevices {
    #[serde(default)]
    known: Vec<Spanned<String>>,
    #[serde(default)]
    allow_classes: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMounts {
    #[serde(default)]
    allow_classes: Vec<Spanned<String>>,
    #[serde(default)]
    allow_remotes: Vec<Spanned<String>>,
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()
        .get(..at.min(text.len()))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
        + 1
}

/// Parses and checks a policy file's text.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let top: FileTop = toml::from_str(text).map_err(|e| PolicyError {
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    let at = |s: &std::ops::Range<usize>, message: String| PolicyError {
        line: Some(line_of(text, s.start)),
        message,
    };
    let mut policy = Policy::default();
    if let Some(dests) = top.destination {
        let mut rules = Vec::new();
        for d in dests {
            let mut to = Vec::new();
            for t in &d.to {
                to.push(AddrPattern::parse(t.get_ref()).map_err(|m| at(&t.span(), m))?);
            }
            let mut ports = Vec::new();
            for p in &d.ports {
                let r = match p.get_ref() {
                    toml::Value::Integer(n) => PortRange::from_int(*n),
                    toml::Value::String(s) => PortRange::parse(s),
                    other => Err(format!(
                        "bad port (a {}): write a number (443) or a range in quotes (\"8000-8100\")",
                        other.type_str()
                    )),
                };
                ports.push(r.map_err(|m| at(&p.span(), m))?);
            }
            let proto = match &d.proto {
                Some(p) if matches!(p.get_ref().as_str(), "tcp" | "udp") => {
                    Some(p.get_ref().clone())
                }
                Some(p) => {
                    return Err(at(
                        &p.span(),
                        format!("bad proto {:?}: write \"tcp\" or \"udp\"", p.get_ref()),
                    ));
                }
                None => None,
            };
            rules.push(DestinationRule {
                to,
                ports,
                proto,
                note: d.note,
            });
        }
        policy.destinations = Some(rules);
    }
    if let Some(p) = top.programs {
        let mut allow = Vec::new();
        for g in &p.allow {
            if g.get_ref().trim().is_empty() {
                return Err(at(&g.span(), "empty program name".into()));
            }
            allow.push(Glob::new(g.get_ref().trim(), false));
        }
        policy.programs = Some(ProgramRules {
            allow,
            flag_unknown: p.flag_unknown,
        });
    }
    if let Some(d) = top.devices {
        let mut known = Vec::new();
        for s in &d.known {
            if s.get_ref().trim().is_empty() {
                return Err(at(&s.span(), "empty serial number".into()));
            }
            known.push(s.get_ref().trim().to_string());
        }
        policy.devices = Some(DeviceRules {
            known,
            allow_classes: classes(&d.allow_classes, &DEVICE_CLASSES, "device", &at)?,
        });
    }
    if let Some(m) = top.mounts {
        let mut allow_remotes = Vec::new();
        for r in &m.allow_remotes {
            allow_remotes.push(AddrPattern::parse(r.get_ref()).map_err(|e| at(&r.span(), e))?);
        }
        policy.mounts = Some(MountRules {
            allow_classes: classes(&m.allow_classes, &MOUNT_CLASSES, "mount", &at)?,
            allow_remotes,
        });
    }
    Ok(policy)
}

fn classes(
    list: &[Spanned<String>],
    known: &[&str],
    what: &str,
    at: &dyn Fn(&std::ops::Range<usize>, String) -> PolicyError,
) -> Result<Vec<String>, PolicyError> {
    list.iter()
        .map(|c| {
            let w = c.get_ref().trim();
            if known.contains(&w) {
                Ok(w.to_string())
            } else {
                Err(at(
                    &c.span(),
                    format!(
                        "unknown {what} class {w:?}: the classes are {}",
                        known.join(", ")
                    ),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "[[destination]]\nto = [\"10.0.0.0/8\",\n  \"10.1.0.0/33\"]\n",
                3,
                "prefix length",
            ),
            (
                "# c\n\n[[destination]]\nports = [443, \"9-1\"]\n",
                4,
                "above the last",
            ),
            ("[[destination]]\nports = [70000]\n", 2, "bad port 70000"),
            ("[[destination]]\nports = [4.5]\n", 2, "write a number"),
            ("[[destination]]\nproto = \"icmp\"\n", 2, "tcp"),
            (
                "[[destination]]\nto = [\"10.0.0.300\"]\n",
                2,
                "bad IPv4 address",
            ),
            (
                "[mounts]\nallow_classes = [\"virtual\", \"floppy\"]\n",
                2,
                "unknown mount class",
            ),
            (
                "[devices]\nknown = [\"a\"]\nallow_classes = [\"keyboard\"]\n",
                3,
                "unknown device class",
            ),
            ("[programs]\nallow = [\"firefox\"]\nallwo = 1\n", 3, "allwo"),
            ("[programs\nallow = []\n", 1, ""),
            ("\n\n[[destination]]\nto = \"10.0.0.1\"\n", 4, ""),
            ("[mounts]\nallow_remotes = [\"a b\"]\n", 2, "cannot appear"),
            ("[netwrok]\n", 1, "netwrok"),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(*line), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_shipped_example_loads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/policy.example.toml");
        let p = super::super::load(std::path::Path::new(path)).unwrap();
        assert!(p.destinations.as_ref().is_some_and(|d| !d.is_empty()));
        assert!(p.programs.is_some() && p.devices.is_some() && p.mounts.is_some());
    }

    #[test]
    fn empty_file_checks_nothing() {
        let p = parse("# nothing yet\n").unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.summary(), "checks nothing");
    }
}
