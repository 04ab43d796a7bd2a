//! Wall-clock time as the log files show it: RFC 3339, UTC, millisecond precision.
//!
//! Hand-written (days-to-civil conversion) so that the format is fixed by this file and not by a
//! dependency's defaults; every timestamp in the logs and on stdout goes through here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now. The single place that reads the wall clock for events.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_ms(ms: u64) -> String {
    let mut s = String::with_capacity(24);
    push_rfc3339_ms(&mut s, ms);
    s
}

/// Length of `YYYY-MM-DDTHH:MM:SS`, the part [`push_rfc3339_ms`] caches.
const HEAD_LEN: usize = 19;

/// Appends [`rfc3339_ms`]'s text to `out` without allocating. Events come in bursts within the
/// same second, so the date-and-time part of the last second formatted is cached (per thread)
/// and only the milliseconds are formatted again.
pub fn push_rfc3339_ms(out: &mut String, ms: u64) {
    thread_local! {
        static LAST: std::cell::Cell<(u64, [u8; HEAD_LEN])> =
            const { std::cell::Cell::new((u64::MAX, [0; HEAD_LEN])) };
    }
    let secs = ms / 1000;
    let (cached, mut head) = LAST.with(|c| c.get());
    if cached != secs {
        let text = head_text(secs);
        if text.len() != HEAD_LEN {
            // Years beyond 9999 (hostile timestamps) are not cached; format them in full.
            out.push_str(&text);
            push_millis(out, ms);
            return;
        }
        head.copy_from_slice(text.as_bytes());
        LAST.with(|c| c.set((secs, head)));
    }
    // The head is ASCII digits and separators, as formatted above.
    out.push_str(std::str::from_utf8(&head).unwrap_or("0000-00-00T00:00:00"));
    push_millis(out, ms);
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch (longer for years beyond 9999).
fn head_text(secs: u64) -> String {
    let (date, s) = split(secs);
    format!(
        "{}T{:02}:{:02}:{:02}",
        date,
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Appends `.mmmZ`.
fn push_millis(out: &mut String, ms: u64) {
    let m = ms % 1000;
    out.push('.');
    for d in [m / 100, m / 10 % 10, m % 10] {
        out.push(char::from(b'0' + d as u8));
    }
    out.push('Z');
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH-MM-SSZ`, safe as a directory name.
pub fn dir_stamp(secs: u64) -> String {
    let (date, s) = split(secs);
    format!(
        "{}T{:02}-{:02}-{:02}Z",
        date,
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Parses what [`rfc3339_ms`] writes (exactly that form); used when reading logs back.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs * 1000 + ms).ok()
}

/// Howard Hinnant's `days_from_civil`: inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split(secs: u64) -> (String, u64) {
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), secs % 86_400)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (leap day) 12:34:56.789
        assert_eq!(rfc3339_ms(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(dir_stamp(951_827_696), "2000-02-29T12-34-56Z");
        for ms in [0, 951_827_696_789, 1_795_000_000_123, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339_ms("2026-13-01T00:00:00.000Z"), None);
        assert_eq!(parse_rfc3339_ms("not a time"), None);
    }

    #[test]
    fn cached_formatting_agrees_with_the_calendar_across_seconds_days_and_huge_years() {
        // Consecutive calls within a second, across a second, a day and a year boundary, back
        // in time, and a year beyond 9999 (not cached) in between.
        let cases = [
            1_795_000_000_123,
            1_795_000_000_999,
            1_795_000_001_000,
            951_868_799_999,
            951_868_800_000,
            u64::MAX,
            1_795_000_000_124,
            946_684_799_999,
            946_684_800_000,
            0,
        ];
        for ms in cases {
            let (date, secs) = split(ms / 1000);
            let want = format!(
                "{}T{:02}:{:02}:{:02}.{:03}Z",
                date,
                secs / 3600,
                (secs / 60) % 60,
                secs % 60,
                ms % 1000
            );
            assert_eq!(rfc3339_ms(ms), want, "{ms}");
        }
        assert_eq!(rfc3339_ms(951_868_800_000), "2000-03-01T00:00:00.000Z");
        let mut s = String::from("x ");
        push_rfc3339_ms(&mut s, 1_795_000_000_007);
        assert_eq!(s, "x 2026-11-18T11:06:40.007Z");
    }
}
