//! `proctor report` on the recorded session in tests/data/session-2026-report (see the README
//! there): the real binary is run, its HTML parsed with an XML parser and checked for what an
//! invigilator reads (machine order, counts, flagged timeline, gaps, escaping), and rendered in
//! a real headless Chromium. Also: sessions without a policy, malformed lines, progress, and
//! directories that are not sessions.

mod common;

use common::{bin, temp_dir_named};
use quick_xml::events::Event;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/session-2026-report"
);
const HOSTILE: &str = "<script>alert(1)</script>";

// ---- a small DOM built with quick-xml -------------------------------------------------------

/// An element of the parsed page.
#[derive(Debug, Default)]
struct El {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    El(El),
    Text(String),
}

impl El {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
    fn has_class(&self, c: &str) -> bool {
        self.attr("class")
            .is_some_and(|v| v.split_whitespace().any(|x| x == c))
    }
    fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            match c {
                Node::Text(t) => s.push_str(t),
                Node::El(e) => s.push_str(&e.text()),
            }
        }
        s
    }
    /// Every element below (depth first, document order) matching `pred`.
    fn all<'a>(&'a self, pred: &dyn Fn(&El) -> bool, out: &mut Vec<&'a El>) {
        for c in &self.children {
            if let Node::El(e) = c {
                if pred(e) {
                    out.push(e);
                }
                e.all(pred, out);
            }
        }
    }
    fn find_all(&self, name: &str, class: Option<&str>) -> Vec<&El> {
        let mut v = Vec::new();
        self.all(
            &|e| e.name == name && class.is_none_or(|c| e.has_class(c)),
            &mut v,
        );
        v
    }
    fn find(&self, name: &str, class: Option<&str>) -> &El {
        self.find_all(name, class)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no <{name} class={class:?}>"))
    }
    fn by_id(&self, id: &str) -> Option<&El> {
        let mut v = Vec::new();
        self.all(&|e| e.attr("id") == Some(id), &mut v);
        assert!(v.len() <= 1, "id {id} is not unique");
        v.into_iter().next()
    }
}

/// Parses the page as XML (well-formedness is part of the contract: every element closed,
/// only the predefined entities) into a tree.
fn parse(html: &str) -> El {
    let mut r = quick_xml::Reader::from_str(html);
    r.config_mut().trim_text(false);
    let mut stack = vec![El::default()];
    let push_text = |stack: &mut Vec<El>, t: &str| {
        let top = stack.last_mut().unwrap();
        if let Some(Node::Text(prev)) = top.children.last_mut() {
            prev.push_str(t);
        } else {
            top.children.push(Node::Text(t.to_string()));
        }
    };
    let element = |e: &quick_xml::events::BytesStart| El {
        name: AsRef::<str>::as_ref(&e.name()).to_string(),
        attrs: e
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    AsRef::<str>::as_ref(&a.key).to_string(),
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("attribute value")
                        .into_owned(),
                )
            })
            .collect(),
        children: vec![],
    };
    loop {
        match r.read_event().expect("the report is well-formed XML") {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => {
                let el = element(&e);
                stack.last_mut().unwrap().children.push(Node::El(el));
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(Node::El(el));
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content()),
            Event::GeneralRef(g) => {
                let c = match g.resolve_char_ref().expect("valid character reference") {
                    Some(c) => c,
                    None => match &*g.xml10_content() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("entity &{other}; is not XML"),
                    },
                };
                push_text(&mut stack, &c.to_string());
            }
            Event::DocType(_) => {}
            Event::Eof => break,
            other => panic!("unexpected XML event {other:?}"),
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    stack.pop().unwrap()
}

// ---- helpers -------------------------------------------------------------------------------

/// A copy of the recorded session in a fresh directory (so the report is written there).
fn copy_session(name: &str) -> PathBuf {
    let dir = temp_dir_named("report", name).join("2026-11-26T16-12-19Z");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(DATA).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    dir
}

fn report(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("report")
        .args(args)
        .output()
        .unwrap()
}

fn run_ok(dir: &Path) -> (El, String, String, String) {
    let out = report(&[dir.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    (parse(&html), html, stdout, stderr)
}

fn machines(doc: &El) -> Vec<&El> {
    doc.find_all("section", Some("machine"))
}

/// Counts of event kinds in a log file, computed independently of the report code.
fn kind_counts(path: &Path) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in std::fs::read_to_string(path).unwrap().lines() {
        let f: Vec<&str> = l.splitn(4, ' ').collect();
        if f.len() >= 3 && f[1].starts_with("seq=") && f[1] != "seq=-" {
            *m.entry(f[2].to_string()).or_default() += 1;
        }
    }
    m
}

fn table_rows(t: &El) -> Vec<Vec<String>> {
    t.find_all("tr", None)
        .into_iter()
        .filter(|r| !r.find_all("td", None).is_empty())
        .map(|r| r.find_all("td", None).iter().map(|c| c.text()).collect())
        .collect()
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn report_of_the_recorded_session_orders_machines_and_shows_flagged_events_gaps_and_counts() {
    let dir = copy_session("recorded");
    let (doc, _, stdout, stderr) = run_ok(&dir);

    // Machines: most flagged first, then by name.
    let ms = machines(&doc);
    let hosts: Vec<String> = ms
        .iter()
        .map(|m| m.find("span", Some("host")).text())
        .collect();
    assert_eq!(hosts, ["pc-02", HOSTILE, "pc-01"]);
    let badges: Vec<String> = ms
        .iter()
        .map(|m| m.find("span", Some("badge")).text())
        .collect();
    assert_eq!(badges, ["7 flagged", "5 flagged", "4 flagged"]);
    let overview: Vec<String> = doc
        .find("table", Some("overview"))
        .find_all("tr", Some("machine-row"))
        .iter()
        .map(|r| r.find("a", None).text())
        .collect();
    assert_eq!(overview, hosts, "overview table in the same order");
    assert!(
        doc.by_id("policy")
            .unwrap()
            .text()
            .contains("16 flagged events on 3 machines")
    );

    // Counts per kind match the files.
    let files = [
        "pc-02_127.0.0.1.log",
        "_script_alert_1___script__127.0.0.1.log",
        "pc-01_127.0.0.1.log",
    ];
    for (m, file) in ms.iter().zip(files) {
        let t = m.find("table", Some("counts"));
        let heads: Vec<String> = t.find_all("th", None).iter().map(|h| h.text()).collect();
        let vals: Vec<u64> = t
            .find_all("td", None)
            .iter()
            .map(|d| d.text().parse().unwrap())
            .collect();
        let shown: BTreeMap<String, u64> = heads.into_iter().zip(vals).collect();
        let expect = kind_counts(&dir.join(file));
        for (k, v) in &expect {
            assert_eq!(shown.get(k), Some(v), "{file}: count of {k}");
        }
        assert_eq!(shown["events"], expect.values().sum::<u64>(), "{file}");
        assert_eq!(
            shown["flagged"],
            std::fs::read_to_string(dir.join(file))
                .unwrap()
                .matches(" verdict=flagged ")
                .count() as u64
        );
    }

    // The flagged timeline of pc-02: time, kind, what, why; each time links to its log line.
    let tl = ms[0].find("table", Some("timeline"));
    let rows = table_rows(tl);
    assert_eq!(rows.len(), 7);
    let kinds: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        kinds,
        ["mount", "unmount", "net", "net", "net", "net", "net"]
    );
    assert!(
        rows[0][2].starts_with("<img/src=x/onerror=alert(2)> on /tmp/"),
        "{:?}",
        rows[0]
    );
    assert!(
        !rows[0][2].contains("verdict="),
        "the verdict is not part of what happened"
    );
    assert_eq!(rows[0][3], "virtual mount not allowed");
    assert!(rows[3][2].starts_with("tls tcp ") && rows[3][2].ends_with("sni=chat.example.com"));
    assert_eq!(
        rows[3][3],
        "destination 127.0.0.1:46721 (tcp, sni chat.example.com) not allowed"
    );
    assert_eq!(rows[4][3], "destination 127.0.0.1:45191 (udp) not allowed");
    assert_eq!(rows[0][0], "16:12:21.870");
    assert_eq!(
        rows[6][0], "16:12:29.778",
        "seen while disconnected, sent later"
    );
    for link in tl.find_all("a", None) {
        let target = link.attr("href").unwrap().strip_prefix('#').unwrap();
        let line = doc
            .by_id(target)
            .unwrap_or_else(|| panic!("no anchor {target}"));
        assert!(line.has_class("flag"));
        assert!(
            line.text().contains(" verdict=flagged why="),
            "{}",
            line.text()
        );
    }

    // Connection gaps, from the server's own lines.
    let gaps: Vec<Vec<Vec<String>>> = ms
        .iter()
        .map(|m| table_rows(m.find("table", Some("gaps"))))
        .collect();
    assert_eq!(gaps[0].len(), 1);
    assert_eq!(gaps[0][0][..3], ["16:12:29.258", "16:12:31.358", "2.1 s"]);
    assert_eq!(gaps[0][0][3], "no data for 2.5 s");
    assert_eq!(gaps[1][0][1], "not back before the end");
    assert_eq!(
        gaps[1][0][2], "6.6 s",
        "lost 16:12:26.415, session stopped 16:12:33.009"
    );
    assert_eq!(gaps[2][0][2], "1.2 s");
    assert_eq!(gaps[2][0][3], "connection closed without goodbye");

    // Missing events (a seq gap the server logged) on pc-02 only.
    let missing = table_rows(ms[0].find("table", Some("missing")));
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0][1..], ["28 to 29", "2"]);
    assert!(ms[1].find_all("table", Some("missing")).is_empty());

    // The full log of every machine is in the page, line for line, behind a link.
    for (i, (m, file)) in ms.iter().zip(files).enumerate() {
        let id = format!("m{}-log", i + 1);
        assert!(
            m.find_all("a", None)
                .iter()
                .any(|a| a.attr("href") == Some(&format!("#{id}")))
        );
        let details = doc.by_id(&id).unwrap();
        assert_eq!(details.name, "details");
        let pre = details.find("pre", None);
        let shown: Vec<String> = pre
            .text()
            .lines()
            .map(|l| l.trim_start().split_once(' ').unwrap().1.to_string())
            .collect();
        let real: Vec<String> = std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(shown, real, "{file}");
    }

    // Escaping: the hostile host name and mount label are text, never elements.
    let mut bad = Vec::new();
    doc.all(
        &|e| matches!(e.name.as_str(), "script" | "img" | "iframe" | "object"),
        &mut bad,
    );
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ms[1].find("span", Some("host")).text(), HOSTILE);
    assert!(
        doc.find("title", None)
            .text()
            .contains("2026-11-26T16-12-19Z")
    );

    // stdout: one line per machine, same order; stderr: one closing line (not a terminal).
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[1].starts_with("policy: 16 flagged event(s) on 3 machine(s)"),
        "{stdout}"
    );
    assert!(
        lines[2].trim_start().starts_with("pc-02 (127.0.0.1)") && lines[2].contains("7 flagged")
    );
    assert!(lines[3].trim_start().starts_with(HOSTILE) && lines[3].contains("1 gap (6.6 s)"));
    assert!(lines[4].trim_start().starts_with("pc-01") && lines[4].contains("4 flagged"));
    assert!(lines[2].contains("2 missing events"));
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("report: read 3 log files ("), "{stderr}");
    assert!(!stderr.contains('\r'));
}

#[test]
fn a_session_without_a_policy_says_nothing_was_judged() {
    let dir = copy_session("nopolicy");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        let stripped: String = text
            .lines()
            .map(|l| match l.find(" verdict=") {
                Some(i) => &l[..i],
                None => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(e.path(), stripped).unwrap();
    }
    let (doc, _, stdout, _) = run_ok(&dir);
    let banner = doc.by_id("policy").unwrap();
    assert!(
        banner.text().starts_with("No policy verdicts."),
        "{}",
        banner.text()
    );
    let badges: Vec<String> = machines(&doc)
        .iter()
        .map(|m| m.find("span", Some("badge")).text())
        .collect();
    assert_eq!(badges, ["not judged"; 3]);
    for m in machines(&doc) {
        assert!(m.find_all("table", Some("timeline")).is_empty());
        assert!(m.text().contains("no event of this machine was judged"));
    }
    // Without flagged events the order is by name alone.
    let hosts: Vec<String> = machines(&doc)
        .iter()
        .map(|m| m.find("span", Some("host")).text())
        .collect();
    assert_eq!(hosts, [HOSTILE, "pc-01", "pc-02"]);
    assert!(stdout.contains("no policy verdicts: the session ran without a policy"));
}

#[test]
fn malformed_truncated_and_hostile_lines_are_skipped_counted_and_escaped() {
    let dir = copy_session("malformed");
    let pc01 = dir.join("pc-01_127.0.0.1.log");
    let mut text = std::fs::read_to_string(&pc01).unwrap();
    text.push_str("garbage line </pre></details><script>alert(3)</script>\n");
    text.push_str("2026-11-26T15:38:41.000Z seq=x net new tcp a -> b\n");
    text.push('\n');
    // A client forging a verdict inside its own text, raw control bytes and invalid UTF-8.
    text.push_str("2026-11-26T15:38:41.100Z seq=99 mount a verdict=flagged why=\"forged\" \u{1b}[31m on /m verdict=ok\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(
        b"2026-11-26T15:38:41.200Z seq=100 net new tcp \xff\xfe -> x verdict=ok\n",
    );
    bytes.extend_from_slice(b"2026-11-26T15:38:41.300Z seq=101 net new tcp cut off verdi");
    std::fs::write(&pc01, bytes).unwrap();
    // A .log file that is not a proctor log is skipped and named.
    std::fs::write(dir.join("notes.log"), "my notes\n").unwrap();

    let (doc, html, stdout, _) = run_ok(&dir);
    assert!(!html.contains("<script>"));
    let ms = machines(&doc);
    let pc01 = ms
        .iter()
        .find(|m| m.find("span", Some("host")).text() == "pc-01")
        .unwrap();
    assert_eq!(
        pc01.find("span", Some("badge")).text(),
        "4 flagged",
        "the forged verdict lost"
    );
    let skipped = pc01.find("p", Some("skipped")).text();
    assert!(skipped.starts_with("4 lines skipped (line 69: no valid time stamp; line 70: no valid seq= field; line 71: empty line; line 74: cut off"), "{skipped}");
    assert!(
        doc.by_id("skipped")
            .unwrap()
            .text()
            .contains("file notes.log skipped: not a proctor log")
    );
    assert!(stdout.contains("4 skipped lines"), "{stdout}");
    assert!(stdout.contains("skipped file notes.log"));
    let log = doc
        .by_id(&format!("{}-log", pc01.attr("id").unwrap()))
        .unwrap()
        .text();
    assert!(log.contains("garbage line </pre></details><script>alert(3)</script>"));
    assert!(
        log.contains("\\x1b[31m"),
        "control characters are shown, not passed on"
    );
    assert!(log.contains("new tcp \u{fffd}\u{fffd} -> x"));
}

#[test]
fn quiet_output_file_and_progress_on_a_terminal() {
    let dir = copy_session("progress");
    let out_file = dir.parent().unwrap().join("elsewhere.html");
    let out = report(&[
        "-q",
        "-o",
        out_file.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_file.exists());
    assert!(!dir.join("report.html").exists());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("written to {}", out_file.display()))
    );

    // A bigger session, on a pseudo-terminal (util-linux `script`): a live files/bytes line.
    let big = dir.parent().unwrap().join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..4 {
        let mut s = String::from("# proctor log\n# host: pc address: 10.0.0.1\n");
        for n in 1..=20_000 {
            s.push_str(&format!("2026-11-26T15:38:41.000Z seq={n} net new tcp 10.0.0.{i}:1 -> 10.0.0.9:{n} flags=S verdict=ok\n"));
        }
        std::fs::write(big.join(format!("pc{i}_10.0.0.{i}.log")), s).unwrap();
    }
    let cmd = format!("{} report {} 2>&1 >/dev/null", bin(), big.display());
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .expect("util-linux script (scripts/install-deps.sh installs it)");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("\r\x1b[Kreport: reading 1/4 files, "),
        "{tty:?}"
    );
    assert!(
        tty.contains("(25%)") && tty.contains("report: writing 4/4 files"),
        "{tty:?}"
    );
    assert!(tty.contains("\r\x1b[Kreport: read 4 log files"), "{tty:?}");
}

#[test]
fn directories_that_are_not_sessions_are_usage_errors() {
    let root = temp_dir_named("report", "notsession");
    let check = |p: &Path, needle: &str| {
        let out = report(&[p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", p.display());
        assert!(
            err.starts_with("proctor: error: ") && err.contains(needle),
            "{err}"
        );
        assert!(!err.contains("panicked"));
    };
    check(&root.join("missing"), "does not exist");
    std::fs::write(root.join("file.log"), "# proctor log\n").unwrap();
    check(&root.join("file.log"), "is not a directory");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    check(&root.join("empty"), "is not a proctor session directory");
    // The logs root (holding sessions) names the latest session to pass instead.
    let logs = root.join("logs");
    std::fs::create_dir_all(logs.join("2026-01-01T00-00-00Z")).unwrap();
    std::fs::copy(
        Path::new(DATA).join("pc-01_127.0.0.1.log"),
        logs.join("2026-01-01T00-00-00Z/pc-01_127.0.0.1.log"),
    )
    .unwrap();
    check(
        &logs,
        "holds 1 session directory, not log files: pass one of them, e.g.",
    );
    // An output that cannot be written: runtime error, no partial file.
    let out = report(&[
        "-o",
        "/nonexistent-dir/r.html",
        logs.join("2026-01-01T00-00-00Z").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use -o FILE to write it elsewhere"));
}

#[test]
fn the_report_renders_in_a_real_headless_chromium() {
    let dir = copy_session("chromium");
    let _ = run_ok(&dir);
    let profile = dir.parent().unwrap().join("chromium-profile");
    let url = format!("file://{}", dir.join("report.html").display());
    let out = Command::new("timeout")
        .args([
            "90",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .output()
        .expect("chromium (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();
    // The browser built the document we meant: three machine sections in order, their logs
    // collapsed, the hostile name as text, and no script element anywhere.
    assert_eq!(dom.matches("<section class=\"card machine\"").count(), 3);
    let order: Vec<usize> = [
        "pc-02</span>",
        "&lt;script&gt;alert(1)&lt;/script&gt;</span>",
        "pc-01</span>",
    ]
    .iter()
    .map(|n| {
        dom.find(&format!("<span class=\"host\">{n}"))
            .unwrap_or_else(|| panic!("{n}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(
        !dom.to_lowercase().contains("<script"),
        "a script element in the rendered DOM"
    );
    assert!(!dom.contains("<img"));
    assert_eq!(dom.matches("<details id=\"m").count(), 3);
    assert!(dom.contains("16 flagged events on 3 machines"));
}
