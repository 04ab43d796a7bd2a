//! Reads an event's detail text back into its parts. Details are built by the client from
//! space-separated tokens; any value that could hold a space or a quote is double-quoted with
//! inner quotes written `\x22`, so splitting at spaces outside quotes gives exactly the tokens
//! the client wrote. Positional tokens (addresses, mount source and point, bus path) come first
//! and are skipped before `key=value` fields are looked up, so a mount source named
//! `class=virtual` cannot pose as the class field.

use std::net::SocketAddr;

/// Splits `s` at spaces outside double quotes. Never fails: an unterminated quote runs to the end.
pub fn tokens(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            ' ' if !quoted => {
                if let Some(st) = start.take() {
                    out.push(&s[st..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(st) = start {
        out.push(&s[st..]);
    }
    out
}

/// The value of the first `key=` field among `fields`, without its quotes.
pub fn field<'a>(fields: &[&'a str], key: &str) -> Option<&'a str> {
    fields.iter().find_map(|t| {
        let v = t.strip_prefix(key)?.strip_prefix('=')?;
        Some(unquote(v))
    })
}

/// `"x"` to `x`; anything else unchanged.
pub fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// A network line: `new tcp 10.0.0.5:50000 -> 10.0.0.1:443 flags=S name=x (dns) proc="firefox" ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLine<'a> {
    /// `new`, `end`, `pkt` or `tls`.
    pub word: &'a str,
    /// `tcp` or `udp`.
    pub proto: &'a str,
    /// Where the first packet went.
    pub dst: SocketAddr,
    /// The destination's name learned from DNS answers.
    pub name: Option<&'a str>,
    /// The TLS server name.
    pub sni: Option<&'a str>,
    /// The program that owns the socket, `unknown` when the client could not tell, `None`
    /// when the client did not say (an older client, or a system without attribution).
    pub proc_name: Option<&'a str>,
}

/// Reads a network detail; `None` if it is not in the expected shape.
pub fn net_line(detail: &str) -> Option<NetLine<'_>> {
    let t = tokens(detail);
    let (word, proto, arrow, dst) = (*t.first()?, *t.get(1)?, *t.get(3)?, *t.get(4)?);
    if arrow != "->" {
        return None;
    }
    let dst: SocketAddr = dst.parse().ok()?;
    let rest = t.get(5..).unwrap_or(&[]);
    Some(NetLine {
        word,
        proto,
        dst,
        name: field(rest, "name"),
        sni: field(rest, "sni"),
        proc_name: field(rest, "proc"),
    })
}

/// The `key=value` fields of a mount or unmount detail
/// (`SOURCE on MOUNTPOINT type=... class=... serial="..."`), after the positional tokens.
pub fn mount_fields(detail: &str) -> Option<Vec<&str>> {
    let t = tokens(detail);
    if t.get(1) != Some(&"on") || t.len() < 3 {
        return None;
    }
    Some(t[3..].to_vec())
}

/// The action word (`plugged`, `removed`, `present`) and the `key=value` fields of a device
/// detail (`plugged usb BUSPATH vendor_id=... serial="..." class=WORD`).
pub fn device_fields(detail: &str) -> Option<(&str, Vec<&str>)> {
    let t = tokens(detail);
    if t.len() < 3 {
        return None;
    }
    Some((t[0], t[3..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_respect_quotes() {
        assert_eq!(
            tokens(r#"a "b c" d="e f" g"#),
            vec!["a", "\"b c\"", "d=\"e f\"", "g"]
        );
        assert_eq!(tokens("  x  y "), vec!["x", "y"]);
        assert_eq!(tokens("\"open"), vec!["\"open"]);
        assert!(tokens("").is_empty());
    }

    #[test]
    fn net_lines() {
        let n = net_line(
            r#"new tcp 10.0.0.5:50000 -> 10.0.0.1:443 flags=S name=exam.example.org (dns) proc="fire fox" pid=7 user=s"#,
        )
        .unwrap();
        assert_eq!(n.word, "new");
        assert_eq!(n.dst, "10.0.0.1:443".parse().unwrap());
        assert_eq!(n.name, Some("exam.example.org"));
        assert_eq!(n.proc_name, Some("fire fox"));
        assert_eq!(n.sni, None);
        let t = net_line("tls tcp [fe80::1]:5 -> [2001:db8::1]:443 sni=a.b").unwrap();
        assert_eq!(t.sni, Some("a.b"));
        assert_eq!(t.dst.port(), 443);
        assert!(net_line("new tcp a -> b").is_none());
        assert!(net_line("new tcp 1.2.3.4:5 <- 1.2.3.4:6").is_none());
        assert!(net_line("").is_none());
    }

    #[test]
    fn mount_fields_skip_the_positional_tokens() {
        let f = mount_fields(
            "class=virtual on /tmp/x type=tmpfs source=class=virtual class=usb serial=\"A B\"",
        )
        .unwrap();
        assert_eq!(field(&f, "class"), Some("usb"));
        assert_eq!(field(&f, "serial"), Some("A B"));
        assert!(mount_fields("just text").is_none());
        let (w, f) = device_fields("plugged usb 1-2 serial=\"X\" class=hid").unwrap();
        assert_eq!((w, field(&f, "class")), ("plugged", Some("hid")));
    }
}
