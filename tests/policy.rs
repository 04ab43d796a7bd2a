//! Tests of issue 6's allow-lists: the real `proctor server --policy` and a client on loopback
//! (broadcast 127.255.255.255, traffic to 127.0.0.1 only). Checks what the invigilator sees:
//! the `verdict=` field at the end of the lines in the log files, the headless output, exit
//! codes, and that rewriting the file (or a SIGHUP) changes the verdict of the next event.

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A policy allowing UDP/TCP to 127.0.0.1 on `ports` and, when `virtual_ok`, tmpfs mounts.
fn policy_text(ports: &[u16], virtual_ok: bool) -> String {
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!(
        "# test policy\n[[destination]]\nto = [\"127.0.0.1\"]\nports = [{}]\n\n[mounts]\nallow_classes = [{}]\n",
        ports.join(", "),
        if virtual_ok { "\"virtual\"" } else { "" }
    )
}

/// The log line (without its time stamp) that contains `needle`, waiting up to 10 s for it.
fn log_line(dir: &Path, needle: &str) -> String {
    let mut found = None;
    let ok = wait_until(secs(10), || {
        found = all_logs(dir)
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string);
        found.is_some()
    });
    assert!(ok, "no line with {needle:?} in the log:\n{}", all_logs(dir));
    found.unwrap()
}

/// Sends one datagram from a fresh socket to each of `ports` on 127.0.0.1 (a new flow each) and
/// returns the log line of each flow, in order.
fn flow_lines(dir: &Path, ports: &[u16]) -> Vec<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sp = sock.local_addr().unwrap().port();
    for &p in ports {
        sock.send_to(b"probe", ("127.0.0.1", p)).unwrap();
    }
    ports
        .iter()
        .map(|p| log_line(dir, &format!("new udp 127.0.0.1:{sp} -> 127.0.0.1:{p}")))
        .collect()
}

#[test]
fn a_bad_policy_stops_the_server_with_the_line_and_exit_2() {
    let dir = temp_dir("policy-bad");
    let (sport, cport) = ports(60);
    let key = keygen(&dir, "k.key");
    let pol = dir.join("bad.toml");
    std::fs::write(
        &pol,
        "# ok so far\n[[destination]]\nports = [443, \"9000-80\"]\n",
    )
    .unwrap();
    let mut srv = server(
        &dir,
        &key,
        sport,
        cport,
        &["--policy", pol.to_str().unwrap()],
    );
    assert_eq!(srv.wait_exit(secs(10)), Some(2), "{}", srv.output());
    let out = srv.output();
    assert!(
        out.contains(&format!(
            "policy file {}: line 3: bad port range \"9000-80\"",
            pol.display()
        )),
        "{out}"
    );
    // A missing file is the same kind of error.
    let missing = dir.join("missing.toml");
    let mut srv = server(
        &dir,
        &key,
        sport,
        cport,
        &["--policy", missing.to_str().unwrap()],
    );
    assert_eq!(srv.wait_exit(secs(10)), Some(2), "{}", srv.output());
    assert!(srv.output().contains("cannot read policy file"));
}

#[test]
fn events_are_judged_and_a_changed_policy_judges_the_next_event() {
    let dir = temp_dir("policy-e2e");
    let (sport, cport) = ports(61);
    let key = keygen(&dir, "k.key");
    let (allowed, denied, later, never) = (cport + 2000, cport + 2001, cport + 2002, cport + 2003);
    let pol = dir.join("policy.toml");
    std::fs::write(&pol, policy_text(&[allowed], false)).unwrap();
    let mut srv = server(
        &dir,
        &key,
        sport,
        cport,
        &["--policy", pol.to_str().unwrap()],
    );
    assert!(
        srv.wait_for("policy ", secs(10))
            && srv
                .output()
                .contains("1 destination rule, mount classes none"),
        "{}",
        srv.output()
    );
    let cl = client(&dir, &key, cport, "policy-pc", &[]);
    assert_joined_and_capturing(&srv, &cl, &dir, "policy-pc");
    assert!(wait_until(secs(10), || all_logs(&dir).contains("baseline complete")));

    // One allowed and one disallowed flow, and a tmpfs mount the first policy does not allow.
    let [ok_line, bad_line]: [String; 2] = flow_lines(&dir, &[allowed, denied]).try_into().unwrap();
    assert!(ok_line.ends_with(" verdict=ok"), "{ok_line}");
    assert!(
        bad_line.ends_with(&format!(
            " verdict=flagged why=\"destination 127.0.0.1:{denied} (udp) not allowed\""
        )),
        "{bad_line}"
    );
    let mnt_path = dir.join("stick");
    let mut mnt = TmpfsMount::mount(&mnt_path, "policy-stick");
    let m = log_line(
        &dir,
        &format!("mount policy-stick on {}", mnt_path.display()),
    );
    assert!(
        m.ends_with(" verdict=flagged why=\"virtual mount not allowed\""),
        "{m}"
    );
    mnt.unmount();
    // The headless output marks flagged events so they stand out.
    assert!(
        srv.wait_for("FLAGGED policy-pc (127.0.0.1) ", secs(5)),
        "{}",
        srv.output()
    );
    assert!(
        srv.output()
            .lines()
            .any(|l| l.starts_with("FLAGGED ") && l.contains(&format!("-> 127.0.0.1:{denied}")))
    );

    // Rewrite the file: the server notices within about a second, says so in its output and
    // in the client's log, and judges the next events by the new policy.
    std::fs::write(&pol, policy_text(&[allowed, later], true)).unwrap();
    assert!(
        srv.wait_for("policy reloaded from", secs(5)),
        "{}",
        srv.output()
    );
    assert!(wait_until(secs(5), || all_logs(&dir)
        .contains("seq=- server policy reloaded from")));
    let l = flow_lines(&dir, &[later]).remove(0);
    assert!(l.ends_with(" verdict=ok"), "{l}");
    let mut mnt = TmpfsMount::mount(&mnt_path, "policy-stick2");
    let m = log_line(
        &dir,
        &format!("mount policy-stick2 on {}", mnt_path.display()),
    );
    assert!(m.ends_with(" verdict=ok"), "{m}");
    mnt.unmount();

    // A broken edit keeps the previous policy and is reported on stderr and in the log.
    std::fs::write(&pol, "[[destination]]\nto = [\"127.0.0.1/40\"]\n").unwrap();
    assert!(
        srv.wait_for("policy reload failed", secs(5)),
        "{}",
        srv.output()
    );
    assert!(
        srv.output()
            .contains("proctor: warning: policy reload failed"),
        "stderr copy: {}",
        srv.output()
    );
    assert!(
        srv.output()
            .contains("line 2: bad network \"127.0.0.1/40\"")
    );
    assert!(wait_until(secs(5), || all_logs(&dir)
        .contains("seq=- warning policy reload failed")));
    let [l, l_never]: [String; 2] = flow_lines(&dir, &[later, never]).try_into().unwrap();
    assert!(l.ends_with(" verdict=ok"), "still the second policy: {l}");
    assert!(l_never.contains(" verdict=flagged why="), "{l_never}");

    // Fixed again: reloaded by itself.
    std::fs::write(&pol, policy_text(&[allowed, later, never], true)).unwrap();
    let reloads = |srv: &Proc| srv.output().matches("policy reloaded from").count();
    assert!(
        wait_until(secs(5), || reloads(&srv) == 2),
        "{}",
        srv.output()
    );
    // SIGHUP: a change the file watch cannot see (same size, modification time put back) is
    // read on SIGHUP only, and the server keeps running.
    let extra = cport + 2004;
    let mtime = std::fs::metadata(&pol).unwrap().modified().unwrap();
    let text = policy_text(&[allowed, later, extra], true);
    assert_eq!(
        text.len(),
        policy_text(&[allowed, later, never], true).len()
    );
    std::fs::write(&pol, &text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&pol)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(reloads(&srv), 2, "no reload without a visible change");
    let l = flow_lines(&dir, &[extra]).remove(0);
    assert!(l.contains(" verdict=flagged why="), "not reloaded yet: {l}");
    srv.signal(libc::SIGHUP);
    assert!(
        wait_until(secs(5), || reloads(&srv) == 3),
        "{}",
        srv.output()
    );
    srv.assert_healthy("server after SIGHUP");
    let l = flow_lines(&dir, &[extra]).remove(0);
    assert!(
        l.ends_with(" verdict=ok"),
        "judged by the file read on SIGHUP: {l}"
    );

    // Status and server lines carry no verdict; every net/mount line of the client carries
    // exactly one, at the end.
    srv.signal(libc::SIGINT);
    assert_eq!(srv.wait_exit(secs(10)), Some(0), "{}", srv.output());
    let text = all_logs(&dir);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let kind = line.split(' ').nth(2).unwrap_or("");
        match kind {
            "net" | "mount" | "unmount" | "device" => {
                assert!(
                    line.ends_with(" verdict=ok") || line.contains(" verdict=flagged why=\""),
                    "{line}"
                );
                assert_eq!(line.matches(" verdict=").count(), 1, "{line}");
            }
            _ => assert!(!line.contains(" verdict="), "{line}"),
        }
    }
}
