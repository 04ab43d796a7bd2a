//! The plain-text summary printed on standard output: one paragraph for the session, one line
//! per machine in report order. Text from the files is escaped for the terminal.

use super::html::{duration, size};
use super::model::{PolicyCoverage, Session};
use crate::event::escape;
use crate::timefmt;

/// The summary, ending with where the HTML report went.
pub fn summary(s: &Session, html_path: &str) -> String {
    let mut out = String::new();
    let id = s.id.as_deref().map(escape).unwrap_or_else(|| "?".into());
    let started = s
        .started_ms
        .map(timefmt::rfc3339_ms)
        .unwrap_or_else(|| "?".into());
    out.push_str(&format!(
        "session {id} ({}), started {started}, {} machine{}\n",
        escape(&s.dir_name),
        s.machines.len(),
        if s.machines.len() == 1 { "" } else { "s" }
    ));
    let flagged = s.flagged_total();
    let with = s.machines.iter().filter(|m| m.flagged_count > 0).count();
    out.push_str(&match s.policy() {
        PolicyCoverage::None => {
            "no policy verdicts: the session ran without a policy, nothing was judged ok or flagged\n"
                .to_string()
        }
        PolicyCoverage::Full => format!("policy: {flagged} flagged event(s) on {with} machine(s)\n"),
        PolicyCoverage::Partial => format!(
            "policy: {flagged} flagged event(s) on {with} machine(s); some events carry no verdict (policy not in force throughout)\n"
        ),
    });
    for c in &s.policy_changes {
        out.push_str(&format!(
            "policy change at {}: {}\n",
            timefmt::rfc3339_ms(c.ts_ms),
            escape(&c.text)
        ));
    }
    let name_w = s
        .machines
        .iter()
        .map(|m| escape(&m.host).chars().count() + m.addr.len() + 3)
        .max()
        .unwrap_or(0)
        .min(48);
    for m in &s.machines {
        let name = format!("{} ({})", escape(&m.host), escape(&m.addr));
        let flag = if m.judged == 0 {
            "not judged".to_string()
        } else {
            format!("{} flagged", m.flagged_count)
        };
        let gap_ms: u64 = m.gaps.iter().filter_map(|g| g.duration_ms()).sum();
        let gaps = match m.gaps.len() {
            0 => "no gaps".to_string(),
            n => format!(
                "{n} gap{} ({})",
                if n == 1 { "" } else { "s" },
                duration(gap_ms)
            ),
        };
        let mut line = format!(
            "  {name:<name_w$}  {flag:>10}  {:>6} events  {gaps}",
            m.events
        );
        let missing: u64 = m.missing.iter().map(|x| x.count()).sum();
        if missing > 0 {
            line.push_str(&format!(", {missing} missing events"));
        }
        if m.skipped > 0 {
            line.push_str(&format!(", {} skipped lines", m.skipped));
        }
        out.push_str(&line);
        out.push('\n');
    }
    for (name, why) in &s.skipped_files {
        out.push_str(&format!("skipped file {}: {}\n", escape(name), escape(why)));
    }
    let bytes: u64 = s.machines.iter().map(|m| m.bytes).sum();
    out.push_str(&format!(
        "report ({} of logs) written to {}\n",
        size(bytes),
        escape(html_path)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::{Gap, GapEnd, Machine, Session};
    use super::*;

    #[test]
    fn one_line_per_machine_in_report_order() {
        let m = |host: &str, flagged: u64, judged: u64| Machine {
            host: host.into(),
            addr: "10.0.0.1".into(),
            flagged_count: flagged,
            judged,
            events: 10,
            ..Machine::default()
        };
        let mut b = m("b\u{1b}[31m", 2, 5);
        b.gaps.push(Gap {
            lost_line: Some(1),
            lost_ms: 0,
            back_line: Some(2),
            back_ms: Some(12_500),
            end: GapEnd::Back,
            reason: "x".into(),
        });
        let s = Session::new("dir", vec![m("a", 0, 5), b], vec![]);
        let text = summary(&s, "dir/report.html");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("policy: 2 flagged event(s) on 1 machine(s)"));
        assert!(lines[2].contains("b\\x1b[31m (10.0.0.1)"), "{text}");
        assert!(lines[2].contains("2 flagged"));
        assert!(lines[2].contains("1 gap (12.5 s)"));
        assert!(lines[3].contains("0 flagged") && lines[3].contains("no gaps"));
        assert!(
            lines
                .last()
                .unwrap()
                .ends_with("written to dir/report.html")
        );
        let s = Session::new("dir", vec![m("a", 0, 0)], vec![]);
        let text = summary(&s, "r.html");
        assert!(text.contains("no policy verdicts"));
        assert!(text.contains("not judged"));
    }
}
