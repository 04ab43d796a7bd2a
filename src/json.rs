//! JSON string escaping, the one place every JSON writer in proctor (inspect --json, the
//! server's JSON Lines export, the window's state dump) goes through.

use std::fmt::Write;

/// Appends `s` to `out` as the body of a JSON string: `"` and `\` escaped, control characters as
/// `\n`, `\r`, `\t` or `\u00XX`, and U+2028/U+2029 as `\u2028`/`\u2029` (they end lines in
/// JavaScript); everything else, including other non-ASCII text, is kept as UTF-8.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// A JSON string literal for `s`, with its quotes.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    escape_into(&mut out, s);
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_requires_and_keeps_the_rest() {
        assert_eq!(
            string("a\"b\\c\n\r\t\u{1}"),
            "\"a\\\"b\\\\c\\n\\r\\t\\u0001\""
        );
        assert_eq!(string("ü ▲ \u{2028}"), "\"ü ▲ \\u2028\"");
    }
}
