//! The HTML report: one self-contained page (inline CSS, no scripts, no external resources)
//! rendered from a [`Session`]. Every piece of log text is escaped (lab PCs control parts of it:
//! host names, SNI names, mount labels), and the markup is well-formed XML (every element
//! closed, only the five XML entities), so it can be checked with an XML parser.
//!
//! The full logs are streamed into the page by a callback, so a big session is never held in
//! memory: see [`write_log_lines`].

use super::model::{GapEnd, Machine, PolicyCoverage, Session};
use crate::timefmt;
use std::borrow::Cow;
use std::io::{self, BufRead, Write};

/// Most marks drawn on one machine's time strip.
const STRIP_MARKS: usize = 400;

/// Facts about the run that are not in the logs.
#[derive(Debug, Clone)]
pub struct Meta {
    /// When the report was generated, ms since the epoch.
    pub generated_ms: u64,
    /// proctor's version.
    pub version: &'static str,
}

/// Escapes text for HTML element content and attribute values. Characters XML forbids
/// (control characters other than tab, U+FFFE, U+FFFF) are shown as `\xNN` / `\u{..}`.
pub fn escape(s: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        matches!(c, '&' | '<' | '>' | '"' | '\'' | '\u{fffe}' | '\u{ffff}')
            || (c.is_control() && c != '\t')
    };
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' => out.push('\t'),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `12.5 s`, `3 min 05 s`, `2 h 04 min`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s / 60) % 60)
    }
}

/// `512 B`, `12.3 KB`, `4.5 MB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1000 => format!("{b} B"),
        b if b < 1_000_000 => format!("{:.1} KB", b as f64 / 1e3),
        b if b < 1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.2} GB", b as f64 / 1e9),
    }
}

fn clock(ms: u64) -> String {
    let full = timefmt::rfc3339_ms(ms);
    full.get(11..23).unwrap_or(&full).to_string()
}

/// A `<time>` element: the clock time, with the full date in its title.
fn time_el(ms: u64) -> String {
    let full = timefmt::rfc3339_ms(ms);
    format!(
        "<time datetime=\"{full}\" title=\"{full}\">{}</time>",
        clock(ms)
    )
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The id prefix of machine `idx` (0-based) in the page.
pub fn machine_id(idx: usize) -> String {
    format!("m{}", idx + 1)
}

const CSS: &str = r#"
:root { --fg:#1d2433; --muted:#5b6475; --line:#d9dee7; --bg:#f6f7f9; --flag:#b42318; --flagbg:#fdecea;
  --ok:#1a7f37; --okbg:#e8f5ec; --gap:#b54708; --gapbg:#fff4e5; --info:#175cd3; --infobg:#eaf2ff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:20px 24px 40px; }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:18px; margin:0; display:flex; gap:10px; align-items:baseline; flex-wrap:wrap; }
h3 { font-size:13px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:18px 0 6px; }
code, pre, .mono { font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:12.5px; }
a { color:var(--info); }
.meta { color:var(--muted); margin:0 0 14px; }
.banner { border-radius:8px; padding:10px 14px; margin:0 0 16px; border:1px solid; }
.banner.none { background:var(--infobg); border-color:#b2ccff; }
.banner.full { background:var(--okbg); border-color:#abdbb9; }
.banner.changes { background:#fff; border-color:var(--line); }
.banner ul { margin:4px 0 0; padding-left:20px; }
.banner li.refused { color:var(--gap); }
.banner.partial, .banner.warn { background:var(--gapbg); border-color:#f7c98b; }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:16px 18px; margin:0 0 16px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); font-size:12px; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr:last-child td { border-bottom:none; }
.overview td.strip-cell { width:38%; }
.badge { display:inline-block; border-radius:999px; padding:1px 9px; font-size:12px; font-weight:600; }
.badge.flagged { background:var(--flagbg); color:var(--flag); }
.badge.clean { background:var(--okbg); color:var(--ok); }
.badge.unjudged { background:#eef0f3; color:var(--muted); }
.badge.gap { background:var(--gapbg); color:var(--gap); }
.addr { color:var(--muted); font-weight:400; font-size:14px; }
.facts { color:var(--muted); margin:4px 0 0; }
.strip { position:relative; height:18px; background:#eef0f3; border-radius:4px; margin:10px 0 2px; overflow:hidden; }
.strip .gapband { position:absolute; top:0; bottom:0; background:repeating-linear-gradient(45deg,#f7c98b,#f7c98b 4px,#fde7c7 4px,#fde7c7 8px); min-width:2px; }
.strip .mark { position:absolute; top:2px; bottom:2px; width:3px; margin-left:-1px; background:var(--flag); border-radius:1px; }
.strip-scale { display:flex; justify-content:space-between; color:var(--muted); font-size:11px; }
.timeline td.why { color:var(--flag); }
.timeline td.what, .gaps td.reason { word-break:break-word; }
.none { color:var(--muted); margin:4px 0; }
.counts { width:auto; border-collapse:separate; border-spacing:6px 0; margin-left:-6px; }
.counts td { font-size:20px; font-weight:600; text-align:center; padding:6px 14px 0; border:none; background:#f3f5f8; border-radius:8px 8px 0 0; min-width:64px; }
.counts th { text-align:center; padding:0 14px 6px; border:none; background:#f3f5f8; border-radius:0 0 8px 8px; }
.counts td.flagged { color:var(--flag); }
.overview .strip { margin:4px 0 0; }
.legend { color:var(--muted); font-size:12px; margin:8px 0 0; display:flex; gap:18px; }
.legend i { display:inline-block; width:10px; height:12px; vertical-align:-2px; margin-right:5px; border-radius:2px; }
.legend i.mark { width:3px; background:var(--flag); }
.legend i.gapband { background:repeating-linear-gradient(45deg,#f7c98b,#f7c98b 3px,#fde7c7 3px,#fde7c7 6px); }
details { margin-top:14px; border:1px solid var(--line); border-radius:8px; }
summary { cursor:pointer; padding:7px 12px; background:#fafbfc; border-radius:8px; }
pre { margin:0; padding:8px 12px; max-height:560px; overflow:auto; white-space:pre-wrap; word-break:break-all; }
pre .ln { color:#98a2b3; user-select:none; }
pre .flag { background:var(--flagbg); color:var(--flag); font-weight:600; }
pre .warn { color:var(--gap); }
pre :target { outline:2px solid var(--info); }
footer { color:var(--muted); font-size:12px; margin-top:24px; }
@media print { details { display:none; } body { background:#fff; } }
"#;

/// Writes the whole page. `write_log(i, out)` must write machine `i`'s full log as produced by
/// [`write_log_lines`].
pub fn render(
    s: &Session,
    meta: &Meta,
    out: &mut dyn Write,
    write_log: &mut dyn FnMut(usize, &mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let title = format!("proctor session report: {}", s.dir_name);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    )?;
    header(s, out)?;
    policy_banner(s, out)?;
    overview(s, out)?;
    for (i, m) in s.machines.iter().enumerate() {
        machine(s, i, m, out, write_log)?;
    }
    write!(
        out,
        "<footer>Generated by proctor {} at {} from the log files alone. Event times are the \
         lab PC's clock; connection times (lost, back) are the server's.</footer>\n</main>\n</body>\n</html>\n",
        escape(meta.version),
        timefmt::rfc3339_ms(meta.generated_ms)
    )
}

fn header(s: &Session, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "<h1>Session report</h1>")?;
    let mut facts = vec![format!("directory <code>{}</code>", escape(&s.dir_name))];
    if let Some(id) = &s.id {
        facts.push(format!("session <code>{}</code>", escape(id)));
    }
    if let Some(t) = s.started_ms {
        facts.push(format!(
            "started <time datetime=\"{0}\">{0}</time>",
            timefmt::rfc3339_ms(t)
        ));
    }
    match (s.started_ms, s.ended_ms) {
        (Some(a), Some(b)) if s.stopped => {
            facts.push(format!("stopped after {}", duration(b.saturating_sub(a))))
        }
        (_, Some(b)) => facts.push(format!(
            "no stop recorded (still running, or the server died); last line at {}",
            timefmt::rfc3339_ms(b)
        )),
        _ => {}
    }
    facts.push(plural(s.machines.len() as u64, "machine", "machines"));
    writeln!(out, "<p class=\"meta\">{}</p>", facts.join(" · "))
}

fn policy_banner(s: &Session, out: &mut dyn Write) -> io::Result<()> {
    let flagged = s.flagged_total();
    let with = s.machines.iter().filter(|m| m.flagged_count > 0).count() as u64;
    let judged: u64 = s.machines.iter().map(|m| m.judged).sum();
    let unjudged: u64 = s.machines.iter().map(|m| m.unjudged).sum();
    match s.policy() {
        PolicyCoverage::None => writeln!(
            out,
            "<div class=\"banner none\" id=\"policy\"><strong>No policy verdicts.</strong> This session \
             ran without a policy: no event was judged ok or flagged, so the absence of flagged \
             events below means nothing was checked, not that nothing happened. The counts, gaps \
             and full logs are complete.</div>"
        ),
        PolicyCoverage::Full => writeln!(
            out,
            "<div class=\"banner full\" id=\"policy\"><strong>{} on {}.</strong> All {} network, \
             mount and device events were judged by the server's policy.</div>",
            plural(flagged, "flagged event", "flagged events"),
            plural(with, "machine", "machines"),
            judged
        ),
        PolicyCoverage::Partial => writeln!(
            out,
            "<div class=\"banner partial\" id=\"policy\"><strong>{} on {}.</strong> Only {} of {} \
             network, mount and device events carry a policy verdict (the policy was not in force \
             for the whole session); the others were not judged.</div>",
            plural(flagged, "flagged event", "flagged events"),
            plural(with, "machine", "machines"),
            judged,
            judged + unjudged
        ),
    }?;
    if !s.policy_changes.is_empty() {
        writeln!(
            out,
            "<div class=\"banner changes\" id=\"policy-changes\"><strong>Policy changes during the session:</strong><ul>"
        )?;
        for c in &s.policy_changes {
            writeln!(
                out,
                "<li class=\"{}\">{} {}</li>",
                if c.loaded { "loaded" } else { "refused" },
                time_el(c.ts_ms),
                escape(&c.text)
            )?;
        }
        writeln!(out, "</ul></div>")?;
    }
    if !s.skipped_files.is_empty() || s.skipped_total() > 0 {
        let mut parts = Vec::new();
        if s.skipped_total() > 0 {
            parts.push(format!(
                "{} could not be read and were skipped (listed per machine)",
                plural(s.skipped_total(), "malformed line", "malformed lines")
            ));
        }
        for (name, why) in &s.skipped_files {
            parts.push(format!(
                "file <code>{}</code> skipped: {}",
                escape(name),
                escape(why)
            ));
        }
        writeln!(
            out,
            "<div class=\"banner warn\" id=\"skipped\">{}.</div>",
            parts.join("; ")
        )?;
    }
    Ok(())
}

fn flagged_badge(s: &Session, m: &Machine) -> String {
    if m.flagged_count > 0 {
        format!(
            "<span class=\"badge flagged\">{} flagged</span>",
            m.flagged_count
        )
    } else if s.policy() == PolicyCoverage::None || m.judged == 0 {
        "<span class=\"badge unjudged\">not judged</span>".to_string()
    } else {
        "<span class=\"badge clean\">0 flagged</span>".to_string()
    }
}

fn overview(s: &Session, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<section class=\"card\" id=\"overview\">\n<h2>Machines</h2>\n<table class=\"overview\">\n\
         <thead><tr><th>Machine</th><th>Flagged</th><th class=\"num\">Events</th>\
         <th class=\"num\">Connection gaps</th><th class=\"num\">Missing events</th>\
         <th>Session timeline</th></tr></thead>\n<tbody>"
    )?;
    for (i, m) in s.machines.iter().enumerate() {
        let id = machine_id(i);
        let gap_ms: u64 = m.gaps.iter().filter_map(|g| g.duration_ms()).sum();
        let gaps = if m.gaps.is_empty() {
            "0".to_string()
        } else {
            format!("{} ({})", m.gaps.len(), duration(gap_ms))
        };
        let missing: u64 = m.missing.iter().map(|x| x.count()).sum();
        writeln!(
            out,
            "<tr class=\"machine-row\"><td><a href=\"#{id}\">{}</a> <span class=\"addr\">{}</span></td>\
             <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"strip-cell\">{}</td></tr>",
            escape(&m.host),
            escape(&m.addr),
            flagged_badge(s, m),
            m.events,
            gaps,
            missing,
            strip(s, i, m)
        )?;
    }
    writeln!(out, "</tbody>\n</table>")?;
    writeln!(
        out,
        "<p class=\"legend\"><span><i class=\"mark\"></i>flagged event</span>\
         <span><i class=\"gapband\"></i>no connection to the server</span>\
         <span>timeline: the whole session, start to stop</span></p>\n</section>"
    )
}

/// A bar for the session's span with the machine's flagged events as marks and its
/// connection gaps as hatched bands.
fn strip(s: &Session, idx: usize, m: &Machine) -> String {
    let (Some(start), Some(end)) = (s.started_ms, s.ended_ms) else {
        return String::new();
    };
    let span = end.saturating_sub(start).max(1) as f64;
    let pos = |t: u64| (t.saturating_sub(start) as f64 / span * 100.0).clamp(0.0, 100.0);
    let id = machine_id(idx);
    let mut out = String::from("<div class=\"strip\">");
    for g in &m.gaps {
        let (a, b) = (pos(g.lost_ms), pos(g.back_ms.unwrap_or(end)));
        out.push_str(&format!(
            "<span class=\"gapband\" style=\"left:{a:.2}%;width:{:.2}%\" title=\"no connection for {}\"></span>",
            (b - a).max(0.0),
            g.duration_ms().map(duration).unwrap_or_default()
        ));
    }
    for f in m.flagged.iter().take(STRIP_MARKS) {
        out.push_str(&format!(
            "<a class=\"mark\" style=\"left:{:.2}%\" href=\"#{id}-L{}\" title=\"{} {} {}: {}\"></a>",
            pos(f.ts_ms),
            f.line_no,
            clock(f.ts_ms),
            escape(&f.kind),
            escape(&f.detail),
            escape(&f.why)
        ));
    }
    out.push_str("</div>");
    out
}

fn machine(
    s: &Session,
    i: usize,
    m: &Machine,
    out: &mut dyn Write,
    write_log: &mut dyn FnMut(usize, &mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let id = machine_id(i);
    writeln!(
        out,
        "<section class=\"card machine\" id=\"{id}\">\n<h2><span class=\"host\">{}</span> \
         <span class=\"addr\">{}</span> {}</h2>",
        escape(&m.host),
        escape(&m.addr),
        flagged_badge(s, m)
    )?;
    let mut facts = vec![format!(
        "<a href=\"#{id}-log\">full log</a> <code>{}</code> ({}, {})",
        escape(&m.file_name),
        plural(m.lines, "line", "lines"),
        size(m.bytes)
    )];
    if m.said_bye {
        facts.push("finished the session normally".into());
    } else if m.stopped_before_bye {
        facts.push("was still connected when the session stopped, without saying goodbye".into());
    } else {
        facts.push("never said goodbye".into());
    }
    if m.restarts > 0 {
        facts.push(format!(
            "client restarted {}",
            plural(m.restarts, "time", "times")
        ));
    }
    writeln!(out, "<p class=\"facts\">{}</p>", facts.join(" · "))?;
    if let (Some(a), Some(b)) = (s.started_ms, s.ended_ms) {
        writeln!(
            out,
            "{}<div class=\"strip-scale\"><span>{}</span><span>{}</span></div>",
            strip(s, i, m),
            time_el(a),
            time_el(b)
        )?;
    }

    // Counts as tiles: the numbers in the first row, their labels under them.
    let mut cells: Vec<(String, u64, &str)> = vec![("events".into(), m.events, "")];
    cells.extend(m.kinds.iter().map(|(k, v)| (k.clone(), *v, "")));
    cells.push(("judged".into(), m.judged, ""));
    cells.push((
        "flagged".into(),
        m.flagged_count,
        if m.flagged_count > 0 { " flagged" } else { "" },
    ));
    write!(out, "<h3>Counts</h3>\n<table class=\"counts\"><tr>")?;
    for (_, v, class) in &cells {
        write!(out, "<td class=\"num{class}\">{v}</td>")?;
    }
    write!(out, "</tr><tr>")?;
    for (k, _, _) in &cells {
        write!(out, "<th>{}</th>", escape(k))?;
    }
    writeln!(out, "</tr></table>")?;

    writeln!(out, "<h3>Flagged events</h3>")?;
    if m.flagged.is_empty() {
        let why = if m.judged == 0 {
            "None: no event of this machine was judged (no policy verdicts)."
        } else {
            "None: every judged event was allowed by the policy."
        };
        writeln!(out, "<p class=\"none\">{why}</p>")?;
    } else {
        writeln!(
            out,
            "<table class=\"timeline\"><thead><tr><th>Time</th><th>Kind</th><th>What</th><th>Why flagged</th></tr></thead><tbody>"
        )?;
        for f in &m.flagged {
            writeln!(
                out,
                "<tr class=\"flagged-event\"><td class=\"mono\"><a href=\"#{id}-L{}\">{}</a></td><td>{}</td>\
                 <td class=\"what mono\">{}</td><td class=\"why\">{}</td></tr>",
                f.line_no,
                time_el(f.ts_ms),
                escape(&f.kind),
                escape(&f.detail),
                escape(&f.why)
            )?;
        }
        writeln!(out, "</tbody></table>")?;
        let more = m.flagged_count - m.flagged.len() as u64;
        if more > 0 {
            writeln!(
                out,
                "<p class=\"none\">… and {} more, highlighted in the full log.</p>",
                plural(more, "flagged event", "flagged events")
            )?;
        }
    }

    writeln!(out, "<h3>Connection gaps</h3>")?;
    if m.gaps.is_empty() {
        writeln!(
            out,
            "<p class=\"none\">None: the connection was never lost.</p>"
        )?;
    } else {
        writeln!(
            out,
            "<table class=\"gaps\"><thead><tr><th>Lost</th><th>Back</th><th class=\"num\">Duration</th>\
             <th>Reason</th></tr></thead><tbody>"
        )?;
        for g in &m.gaps {
            let lost = match g.lost_line {
                Some(l) => format!("<a href=\"#{id}-L{l}\">{}</a>", time_el(g.lost_ms)),
                None => time_el(g.lost_ms),
            };
            let back = match (g.end, g.back_line, g.back_ms) {
                (GapEnd::NotBack, _, _) => "not back before the end".to_string(),
                (end, Some(l), Some(t)) => format!(
                    "<a href=\"#{id}-L{l}\">{}</a>{}",
                    time_el(t),
                    if end == GapEnd::Restarted {
                        " (new client process)"
                    } else {
                        ""
                    }
                ),
                (_, _, Some(t)) => time_el(t),
                _ => String::new(),
            };
            writeln!(
                out,
                "<tr class=\"gap\"><td class=\"mono\">{lost}</td><td class=\"mono\">{back}</td>\
                 <td class=\"num\">{}</td><td class=\"reason\">{}</td></tr>",
                g.duration_ms().map(duration).unwrap_or_default(),
                escape(&g.reason)
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }

    if !m.missing.is_empty() {
        writeln!(
            out,
            "<h3>Missing events</h3>\n<table class=\"missing\"><thead><tr><th>Noticed</th>\
             <th>Sequence numbers</th><th class=\"num\">Count</th></tr></thead><tbody>"
        )?;
        for x in &m.missing {
            writeln!(
                out,
                "<tr class=\"missing-range\"><td class=\"mono\"><a href=\"#{id}-L{}\">{}</a></td>\
                 <td>{} to {}</td><td class=\"num\">{}</td></tr>",
                x.line_no,
                time_el(x.ts_ms),
                x.from,
                x.to,
                x.count()
            )?;
        }
        writeln!(out, "</tbody></table>")?;
    }

    if m.skipped > 0 {
        let examples: Vec<String> = m
            .skipped_examples
            .iter()
            .map(|x| format!("line {}: {}", x.line_no, x.reason.describe()))
            .collect();
        writeln!(
            out,
            "<h3>Skipped lines</h3>\n<p class=\"none skipped\">{} skipped ({}{}).</p>",
            plural(m.skipped, "line", "lines"),
            examples.join("; "),
            if m.skipped > examples.len() as u64 {
                "; …"
            } else {
                ""
            }
        )?;
    }

    write!(
        out,
        "<details id=\"{id}-log\"><summary>Full log: <code>{}</code> ({}, {})</summary><pre>",
        escape(&m.file_name),
        plural(m.lines, "line", "lines"),
        size(m.bytes)
    )?;
    write_log(i, out)?;
    writeln!(out, "</pre></details>\n</section>")
}

/// Writes a machine's log file as the body of its `<pre>`: escaped, numbered, flagged lines
/// highlighted, and the lines the report links to given their ids.
pub fn write_log_lines(
    m: &Machine,
    idx: usize,
    reader: &mut dyn BufRead,
    out: &mut dyn Write,
) -> io::Result<()> {
    let id = machine_id(idx);
    let width = m.lines.max(1).to_string().len();
    let (mut anchors, mut flagged) = (
        m.anchors.iter().peekable(),
        m.flagged_lines.iter().peekable(),
    );
    let mut buf = Vec::new();
    let mut n: u64 = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\n', '\r']);
        while anchors.next_if(|a| **a < n).is_some() {}
        while flagged.next_if(|a| **a < n).is_some() {}
        let anchored = anchors.next_if_eq(&&n).is_some();
        let is_flagged = flagged.next_if_eq(&&n).is_some();
        let class = if is_flagged {
            " class=\"flag\""
        } else if text.contains(" seq=- warning ") {
            " class=\"warn\""
        } else {
            ""
        };
        let idattr = if anchored || is_flagged {
            format!(" id=\"{id}-L{n}\"")
        } else {
            String::new()
        };
        writeln!(
            out,
            "<span class=\"ln\">{n:>width$} </span><span{idattr}{class}>{}</span>",
            escape(text)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::model::{MachineBuilder, Session};
    use super::*;

    fn session(files: &[(&str, &str)]) -> Session {
        let machines = files
            .iter()
            .map(|(name, text)| {
                let mut b = MachineBuilder::new(name);
                for (i, l) in text.lines().enumerate() {
                    b.feed(i as u64 + 1, l, l.len() as u64 + 1, true);
                }
                b.finish()
            })
            .collect();
        Session::new("2026-01-01T10-00-00Z", machines, vec![])
    }

    fn page(s: &Session, files: &[(&str, &str)]) -> String {
        let mut out = Vec::new();
        let meta = Meta {
            generated_ms: 0,
            version: "9.9.9",
        };
        render(s, &meta, &mut out, &mut |i, w| {
            let m = &s.machines[i];
            let text = files.iter().find(|f| f.0 == m.file_name).unwrap().1;
            write_log_lines(m, i, &mut text.as_bytes(), w)
        })
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    const EVIL: &str = "# proctor log\n\
        # session: abcd started 2026-01-01T10:00:00.000Z\n\
        # host: <script>alert(1)</script> address: 127.0.0.1\n\
        2026-01-01T10:00:00.100Z seq=- server connected from 127.0.0.1:5, proctor 0.1.0, instance=aa\n\
        2026-01-01T10:00:01.000Z seq=1 mount <img src=x onerror=alert(2)> on /media/\"a\" verdict=flagged why=\"label <b>&amp;\"\n\
        2026-01-01T10:00:02.000Z seq=2 net new tcp a -> b sni=x'y verdict=ok\n\
        2026-01-01T10:00:03.000Z seq=- server policy reloaded from /p/<i>.toml: 1 destination\n\
        2026-01-01T10:00:30.000Z seq=- server session stopped\n";

    #[test]
    fn escape_covers_markup_quotes_and_xml_forbidden_characters() {
        assert_eq!(escape("plain text"), "plain text");
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            escape("a\u{1b}b\u{0}c\td\u{85}e\u{ffff}"),
            "a\\x1bb\\x00c\td\\u{85}e\\u{ffff}"
        );
    }

    #[test]
    fn hostile_text_never_reaches_the_page_as_markup() {
        let files = [("evil.log", EVIL)];
        let html = page(&session(&files), &files);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("label &lt;b&gt;&amp;amp;"));
        // Only the page's own elements: every '<' starts a known tag.
        for piece in html.split('<').skip(1) {
            let tag: String = piece
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                .collect();
            assert!(
                [
                    "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "main", "h1",
                    "h2", "h3", "p", "code", "time", "div", "strong", "section", "table", "thead",
                    "tbody", "i", "tr", "th", "td", "a", "span", "ul", "li", "details", "summary",
                    "pre", "footer"
                ]
                .contains(&tag.as_str()),
                "unexpected tag {tag:?}"
            );
        }
    }

    #[test]
    fn flagged_lines_are_linked_and_highlighted_in_the_full_log() {
        let files = [("evil.log", EVIL)];
        let html = page(&session(&files), &files);
        assert!(html.contains("href=\"#m1-L5\""));
        assert!(html.contains("<span id=\"m1-L5\" class=\"flag\">"));
        assert!(html.contains("<details id=\"m1-log\">"));
        assert!(html.contains("<span class=\"ln\">8 </span><span>2026-01-01T10:00:30.000Z seq=- server session stopped</span>"));
        assert!(html.contains("1 flagged event on 1 machine"));
        assert!(html.contains(
            "<li class=\"loaded\"><time datetime=\"2026-01-01T10:00:03.000Z\" title=\"2026-01-01T10:00:03.000Z\">10:00:03.000</time> policy reloaded from /p/&lt;i&gt;.toml: 1 destination</li>"
        ));
    }

    #[test]
    fn a_session_without_verdicts_says_so() {
        let plain = "# proctor log\n# host: pc address: 10.0.0.1\n\
            2026-01-01T10:00:01.000Z seq=1 net new tcp a -> b\n";
        let files = [("pc.log", plain)];
        let html = page(&session(&files), &files);
        assert!(html.contains("<strong>No policy verdicts.</strong>"));
        assert!(html.contains("not judged"));
        assert!(!html.contains("0 flagged"));
    }

    #[test]
    fn log_lines_keep_their_numbers_and_survive_bad_bytes() {
        let m = Machine {
            lines: 12,
            anchors: vec![2],
            ..Machine::default()
        };
        let mut out = Vec::new();
        let input: &[u8] = b"first\nbad \xff\x1b[31m\r\nthird";
        write_log_lines(&m, 0, &mut &input[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "<span class=\"ln\"> 1 </span><span>first</span>\n\
             <span class=\"ln\"> 2 </span><span id=\"m1-L2\">bad \u{fffd}\\x1b[31m</span>\n\
             <span class=\"ln\"> 3 </span><span>third</span>\n"
        );
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(duration(12_500), "12.5 s");
        assert_eq!(duration(185_000), "3 min 05 s");
        assert_eq!(duration(7_440_000), "2 h 04 min");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(12_345), "12.3 KB");
        assert_eq!(size(4_500_000), "4.5 MB");
    }
}
