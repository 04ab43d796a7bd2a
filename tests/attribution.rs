//! Program attribution (issue 6): a program started by the test opens a TCP connection and
//! sends a UDP datagram on loopback while the real server and client run; the `net new` lines
//! in the server's file name that program, its pid and its user, and the server's policy
//! judges them by that name.

mod common;

use common::*;
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The log line (from the server's files under `dir`) containing `needle`, once it is there.
fn log_line(dir: &std::path::Path, needle: &str) -> Option<String> {
    all_logs(dir)
        .lines()
        .find(|l| l.contains(needle))
        .map(str::to_string)
}

#[test]
fn flow_lines_name_the_program_that_opened_the_socket() {
    let dir = temp_dir("attribution");
    let (sport, cport) = ports(70);
    let key = keygen(&dir, "k.key");
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[programs]\nallow = [\"firefox*\", \"proctor\"]\n").unwrap();
    let policy_arg = policy.display().to_string();
    let _srv = server(&dir, &key, sport, cport, &["--policy", &policy_arg]);
    let cl = client(&dir, &key, cport, "attr-pc", &[]);
    assert_joined_and_capturing(&_srv, &cl, &dir, "attr-pc");

    // A copy of bash under a name of our choosing: its built-in /dev/tcp and /dev/udp open the
    // sockets in the shell process itself, which then waits two seconds holding them.
    let probe = dir.join("exam-probe");
    std::fs::copy("/bin/bash", &probe).expect("copy /bin/bash");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uport = udp.local_addr().unwrap().port();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{tport}; exec 4<>/dev/udp/127.0.0.1/{uport}; \
         echo hello >&4; read -t 2 -u 3 x; exit 0"
    );
    let mut child = Command::new(&probe)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("start the probe");
    let pid = child.id();
    let (_conn, _) = listener.accept().expect("probe connects");

    let tcp_needle = "net new tcp 127.0.0.1:";
    let tcp_dst = format!("-> 127.0.0.1:{tport} flags=S");
    let udp_needle = format!("-> 127.0.0.1:{uport}");
    let mut tcp_line = None;
    let mut udp_line = None;
    wait_until(Duration::from_secs(5), || {
        tcp_line = all_logs(&dir)
            .lines()
            .find(|l| l.contains(tcp_needle) && l.contains(&tcp_dst))
            .map(str::to_string);
        udp_line = log_line(&dir, &udp_needle).filter(|l| l.contains("net new udp"));
        tcp_line.is_some() && udp_line.is_some()
    });
    let _ = child.wait();
    let want = format!(
        " proc=\"exam-probe\" pid={pid} user=root \
         verdict=flagged why=\"program exam-probe not allowed\""
    );
    for line in [&tcp_line, &udp_line] {
        let line = line
            .as_deref()
            .unwrap_or_else(|| panic!("flow missing from the log:\n{}", all_logs(&dir)));
        assert!(
            line.ends_with(&want),
            "expected the line to end with {want:?}:\n{line}"
        );
    }
}
