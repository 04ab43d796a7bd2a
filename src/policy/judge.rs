//! The decision for one event: [`judge`] is a pure function of the policy, the event's kind word
//! and its detail text, so the server, tests and any later reader of the files agree on it.
//!
//! Rules (docs/POLICY.md says the same for invigilators):
//! - `net` lines `new`, `pkt` and `tls`: flagged when the destination matches no
//!   `[[destination]]` rule, or when the program is not allowed. `end` lines only summarise a
//!   flow judged when it began and are always `ok`, so a flow is flagged and counted once.
//! - `mount` / `unmount`: ok when the class is allowed, the USB serial is known, or a network
//!   mount's server is allowed.
//! - `device` (plugged, present, removed): ok when the serial is known or the class allowed.
//! - Anything else (`status`) gets no verdict.

use super::Policy;
use super::fields::{self, NetLine};

/// The server's opinion of one event, written as the last field of its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing in the policy speaks against it.
    Ok,
    /// Something the invigilator should look at, and why.
    Flagged(String),
}

impl Verdict {
    /// The field appended to the log line: ` verdict=ok` or ` verdict=flagged why="..."`.
    /// The reason (which may quote text from the lab PC) never contains a double quote
    /// (written `'`) or an `=` (written `:`), so it cannot end the field early or hold a
    /// `verdict=` of its own: the field is the last `verdict=` of the line.
    pub fn field(&self) -> String {
        match self {
            Verdict::Ok => " verdict=ok".into(),
            Verdict::Flagged(why) => format!(
                " verdict=flagged why=\"{}\"",
                why.replace('"', "'").replace('=', ":")
            ),
        }
    }

    /// True for [`Verdict::Flagged`].
    pub fn is_flagged(&self) -> bool {
        matches!(self, Verdict::Flagged(_))
    }
}

/// Reads the verdict a line carries: the LAST ` verdict=` field, so text from a lab PC that
/// contains a forged `verdict=ok` earlier in the line cannot win.
pub fn verdict_of(line: &str) -> Option<Verdict> {
    let line = line.trim_end();
    let at = line.rfind(" verdict=")?;
    let v = &line[at + " verdict=".len()..];
    if v == "ok" || v.starts_with("ok ") {
        return Some(Verdict::Ok);
    }
    let rest = v.strip_prefix("flagged")?;
    let why = rest
        .trim_start()
        .strip_prefix("why=")
        .map(|w| fields::unquote(w.trim_end()).to_string())
        .unwrap_or_default();
    Some(Verdict::Flagged(why))
}

/// Judges one event. `kind` is the log word (`net`, `mount`, `unmount`, `device`, `status`);
/// `None` means the line gets no verdict at all.
pub fn judge(policy: &Policy, kind: &str, detail: &str) -> Option<Verdict> {
    Some(match kind {
        "net" => judge_net(policy, detail),
        "mount" | "unmount" => judge_mount(policy, detail),
        "device" => judge_device(policy, detail),
        _ => return None,
    })
}

fn verdict(reasons: Vec<String>) -> Verdict {
    if reasons.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Flagged(reasons.join("; "))
    }
}

fn judge_net(policy: &Policy, detail: &str) -> Verdict {
    let Some(n) = fields::net_line(detail) else {
        // A line we cannot read is worth a look rather than a silent pass.
        return if policy.destinations.is_some() || policy.programs.is_some() {
            Verdict::Flagged("network line not understood".into())
        } else {
            Verdict::Ok
        };
    };
    if n.word == "end" {
        return Verdict::Ok;
    }
    let mut reasons = Vec::new();
    if let Some(rules) = &policy.destinations
        && !rules.iter().any(|r| destination_allowed(r, &n))
    {
        let mut d = format!("destination {} ({}", n.dst, n.proto);
        if let Some(name) = n.name {
            d.push_str(&format!(", name {name}"));
        }
        if let Some(sni) = n.sni {
            d.push_str(&format!(", sni {sni}"));
        }
        d.push_str(") not allowed");
        reasons.push(d);
    }
    if let (Some(p), Some(prog)) = (&policy.programs, n.proc_name) {
        if prog == "unknown" {
            if p.flag_unknown {
                reasons.push("program unknown".into());
            }
        } else if !p.allow.iter().any(|g| g.matches(prog)) {
            reasons.push(format!("program {prog} not allowed"));
        }
    }
    verdict(reasons)
}

fn destination_allowed(r: &super::DestinationRule, n: &NetLine) -> bool {
    if r.proto.as_deref().is_some_and(|p| p != n.proto) {
        return false;
    }
    if !r.ports.is_empty() && !r.ports.iter().any(|p| p.contains(n.dst.port())) {
        return false;
    }
    r.to.is_empty()
        || r.to.iter().any(|t| {
            t.matches_addr(n.dst.ip())
                || n.name.is_some_and(|x| t.matches_name(x))
                || n.sni.is_some_and(|x| t.matches_name(x))
        })
}

fn judge_mount(policy: &Policy, detail: &str) -> Verdict {
    let Some(rules) = &policy.mounts else {
        return Verdict::Ok;
    };
    let Some(f) = fields::mount_fields(detail) else {
        return Verdict::Flagged("mount line not understood".into());
    };
    let class = fields::field(&f, "class").unwrap_or("unknown");
    if rules.allow_classes.iter().any(|c| c == class) {
        return Verdict::Ok;
    }
    let serial = fields::field(&f, "serial");
    if serial.is_some_and(|s| policy.known_serial(s)) {
        return Verdict::Ok;
    }
    if class == "network"
        && let Some(remote) = fields::field(&f, "remote")
    {
        let ok = rules
            .allow_remotes
            .iter()
            .any(|p| p.matches_name(remote) || remote.parse().is_ok_and(|ip| p.matches_addr(ip)));
        if ok {
            return Verdict::Ok;
        }
        return Verdict::Flagged(format!("network mount from {remote} not allowed"));
    }
    Verdict::Flagged(match (class, serial) {
        ("usb", Some(s)) => format!("usb storage with unknown serial {s}"),
        ("usb", None) => "usb storage without a serial number".into(),
        (c, _) => format!("{c} mount not allowed"),
    })
}

fn judge_device(policy: &Policy, detail: &str) -> Verdict {
    let Some(rules) = &policy.devices else {
        return Verdict::Ok;
    };
    let Some((_, f)) = fields::device_fields(detail) else {
        return Verdict::Flagged("device line not understood".into());
    };
    let class = fields::field(&f, "class").unwrap_or("other");
    let serial = fields::field(&f, "serial");
    if serial.is_some_and(|s| policy.known_serial(s))
        || rules.allow_classes.iter().any(|c| c == class)
    {
        return Verdict::Ok;
    }
    Verdict::Flagged(match serial {
        Some(s) => format!("{class} device with unknown serial {s}"),
        None => format!("{class} device without a serial number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[destination]]
to = ["10.20.0.0/16", "*.exam.example.org", "2001:db8::/32"]
ports = [443, "8000-8100"]
proto = "tcp"

[[destination]]
to = ["192.0.2.53"]
note = "the lab's DNS-over-TCP and anything else on it"

[programs]
allow = ["firefox", "exam-*"]

[devices]
known = ["4C530001231115109142"]
allow_classes = ["hid", "hub"]

[mounts]
allow_classes = ["virtual"]
allow_remotes = ["files.exam.example.org", "10.30.0.0/24"]
"#;

    #[test]
    fn table_of_events() {
        let p = super::super::parse(POLICY).unwrap();
        let ok = |_: &str| Some(Verdict::Ok);
        let flagged = |why: &str| Some(Verdict::Flagged(why.to_string()));
        let cases: &[(&str, &str, Option<Verdict>)] = &[
            // Destinations: address, network, name, sni, port, proto.
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.20.1.1:443 flags=S",
                ok(""),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.20.1.1:8080 flags=S",
                ok(""),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.20.1.1:22 flags=S",
                flagged("destination 10.20.1.1:22 (tcp) not allowed"),
            ),
            (
                "net",
                "new udp 10.0.0.5:5000 -> 10.20.1.1:443",
                flagged("destination 10.20.1.1:443 (udp) not allowed"),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 203.0.113.7:443 flags=S name=www.exam.example.org (dns)",
                ok(""),
            ),
            (
                "net",
                "tls tcp 10.0.0.5:5000 -> 203.0.113.7:443 sni=cdn.exam.example.org",
                ok(""),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 203.0.113.7:443 flags=S name=chat.example.com (dns)",
                flagged("destination 203.0.113.7:443 (tcp, name chat.example.com) not allowed"),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 203.0.113.7:443 flags=S",
                flagged("destination 203.0.113.7:443 (tcp) not allowed"),
            ),
            (
                "net",
                "new tcp [2001:db8::5]:5000 -> [2001:db8::1]:443 flags=S",
                ok(""),
            ),
            ("net", "new udp 10.0.0.5:5000 -> 192.0.2.53:9999", ok("")),
            // Per-packet lines are judged too; end lines never flag.
            (
                "net",
                "pkt udp 10.0.0.5:5000 -> 198.51.100.1:53 len=40",
                flagged("destination 198.51.100.1:53 (udp) not allowed"),
            ),
            (
                "net",
                "end udp 10.0.0.5:5000 -> 198.51.100.1:9 packets=1 bytes=1 duration=0.000s reason=idle",
                ok(""),
            ),
            // Programs: allowed, wildcard, not allowed, unknown (not flagged by default), absent.
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.20.1.1:443 flags=S proc=\"firefox\" pid=1 user=s",
                ok(""),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.20.1.1:443 flags=S proc=\"exam-browser\" pid=1 user=s",
                ok(""),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.20.1.1:443 flags=S proc=\"curl\" pid=1 user=s",
                flagged("program curl not allowed"),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.20.1.1:443 flags=S proc=unknown",
                ok(""),
            ),
            (
                "net",
                "new tcp 10.0.0.5:5000 -> 10.9.9.9:25 flags=S proc=\"nc\" pid=1 user=s",
                flagged("destination 10.9.9.9:25 (tcp) not allowed; program nc not allowed"),
            ),
            ("net", "garbage", flagged("network line not understood")),
            // Mounts.
            (
                "mount",
                "tmpfs on /tmp/x type=tmpfs source=tmpfs class=virtual",
                ok(""),
            ),
            (
                "unmount",
                "/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=usb vendor_id=0781 product_id=5581 serial=\"4C530001231115109142\"",
                ok(""),
            ),
            (
                "mount",
                "/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=usb vendor_id=0781 product_id=5581 serial=\"ABC\"",
                flagged("usb storage with unknown serial ABC"),
            ),
            (
                "mount",
                "/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=usb vendor_id=0781 product_id=5581",
                flagged("usb storage without a serial number"),
            ),
            (
                "mount",
                "/dev/sdc1 on /mnt type=ext4 source=/dev/sdc1 class=block",
                flagged("block mount not allowed"),
            ),
            (
                "mount",
                "class=virtual on /mnt type=ext4 source=class=virtual class=block",
                flagged("block mount not allowed"),
            ),
            (
                "mount",
                "//files.exam.example.org/x on /mnt type=cifs class=network remote=files.exam.example.org share=/x",
                ok(""),
            ),
            (
                "mount",
                "10.30.0.4:/x on /mnt type=nfs class=network remote=10.30.0.4 share=/x",
                ok(""),
            ),
            (
                "mount",
                "//evil/x on /mnt type=cifs class=network remote=evil share=/x",
                flagged("network mount from evil not allowed"),
            ),
            // Devices.
            (
                "device",
                "plugged usb 1-2 vendor_id=046d product_id=c31c vendor=\"Logitech\" model=\"Keyboard\" class=hid",
                ok(""),
            ),
            (
                "device",
                "present usb 1-3 vendor_id=0781 product_id=5581 serial=\"4c530001231115109142\" class=mass-storage",
                ok(""),
            ),
            (
                "device",
                "plugged usb 1-4 vendor_id=0bda product_id=8179 serial=\"00e04c\" class=wireless",
                flagged("wireless device with unknown serial 00e04c"),
            ),
            (
                "device",
                "removed usb 1-5 vendor_id=18d1 product_id=4ee1 class=phone",
                flagged("phone device without a serial number"),
            ),
            // No verdict for status lines.
            ("status", "baseline complete: 3 mounts", None),
        ];
        for (kind, detail, want) in cases {
            assert_eq!(&judge(&p, kind, detail), want, "{kind} {detail}");
        }
    }

    #[test]
    fn missing_sections_judge_nothing() {
        let p = super::super::parse("").unwrap();
        for (k, d) in [
            ("net", "new tcp 1.2.3.4:5 -> 6.7.8.9:10 flags=S proc=\"x\""),
            (
                "mount",
                "/dev/sdb1 on /m type=vfat source=/dev/sdb1 class=usb",
            ),
            ("device", "plugged usb 1-1 class=wireless"),
        ] {
            assert_eq!(judge(&p, k, d), Some(Verdict::Ok), "{d}");
        }
        // Known serials need the [devices] table but then also cover USB mounts.
        let p = super::super::parse("[devices]\nknown = [\"S1\"]\n[mounts]\n").unwrap();
        assert_eq!(
            judge(
                &p,
                "mount",
                "/dev/sdb1 on /m type=vfat source=/dev/sdb1 class=usb serial=\"S1\""
            ),
            Some(Verdict::Ok)
        );
    }

    #[test]
    fn flag_unknown_programs_when_asked() {
        let p = super::super::parse("[programs]\nallow = [\"firefox\"]\nflag_unknown = true\n")
            .unwrap();
        assert_eq!(
            judge(
                &p,
                "net",
                "new tcp 1.2.3.4:5 -> 6.7.8.9:10 flags=S proc=unknown"
            ),
            Some(Verdict::Flagged("program unknown".into()))
        );
        // A client that does not attribute programs at all: not judged on the program.
        assert_eq!(
            judge(&p, "net", "new tcp 1.2.3.4:5 -> 6.7.8.9:10 flags=S"),
            Some(Verdict::Ok)
        );
    }

    #[test]
    fn verdict_field_round_trips_and_the_last_one_wins() {
        let v = Verdict::Flagged("program \"x verdict=ok\" not allowed".into());
        let line = format!("new tcp a -> b proc=\"verdict=ok\"{}\n", v.field());
        assert_eq!(
            verdict_of(&line),
            Some(Verdict::Flagged(
                "program 'x verdict:ok' not allowed".into()
            ))
        );
        // An unbalanced quote from the client changes nothing either.
        let line = format!("x verdict=ok \"{}", v.field());
        assert!(verdict_of(&line).unwrap().is_flagged());
        let forged = format!("{} verdict=ok{}", "mount \"/x verdict=ok\" on", v.field());
        assert!(verdict_of(&forged).unwrap().is_flagged());
        assert_eq!(verdict_of("x verdict=ok"), Some(Verdict::Ok));
        assert_eq!(verdict_of("x"), None);
        assert_eq!(verdict_of("x verdict=maybe"), None);
    }
}
