//! End-to-end tests of issue 2: the real `proctor` binary as a user runs it, server and client on
//! loopback (broadcast 127.255.255.255), checking files on disk, exit codes and the wire.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn keygen_writes_0600_and_refuses_to_overwrite_a_real_key() {
    let dir = temp_dir("keygen");
    let p = dir.join("k.key");
    let out = Command::new(bin())
        .args(["keygen", "-o"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&p.display().to_string()),
        "says where it wrote"
    );
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read_to_string(&p).unwrap();
    assert!(first.contains("proctor-key-v1") && !first.contains("demo"));

    let out = Command::new(bin())
        .args(["keygen", "-o"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        first,
        "existing key untouched"
    );

    let out = Command::new(bin())
        .args(["keygen", "--force", "-o"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_ne!(
        std::fs::read_to_string(&p).unwrap(),
        first,
        "--force replaces it"
    );

    // The shipped demo key is replaced without asking.
    let demo = dir.join("demo.key");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/keyfile.key"), &demo).unwrap();
    let out = Command::new(bin())
        .args(["keygen", "-o"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        !std::fs::read_to_string(&demo)
            .unwrap()
            .contains("demo: yes")
    );
}

#[test]
fn key_problems_give_a_clear_error_and_exit_2() {
    let dir = temp_dir("keyerrors");
    let (sport, cport) = ports(1);
    let real = keygen(&dir, "real.key");
    let open = dir.join("open.key");
    std::fs::copy(&real, &open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bad = dir.join("bad.key");
    std::fs::write(&bad, "hello\n").unwrap();
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/keyfile.key");
    let missing = dir.join("missing.key");
    let cases: Vec<(&std::path::Path, &str)> = vec![
        (missing.as_path(), "cannot read key file"),
        (bad.as_path(), "malformed"),
        (open.as_path(), "readable by group or others"),
        (std::path::Path::new(demo), "demo key"),
    ];
    for (key, msg) in cases {
        for sub in ["server", "client"] {
            let mut cmd = Command::new(bin());
            cmd.arg(sub).arg("-k").arg(key);
            if sub == "server" {
                cmd.args([
                    "--headless",
                    "-s",
                    &sport.to_string(),
                    "--broadcast",
                    "127.255.255.255",
                    "--stop-after",
                    "1",
                ]);
                cmd.arg("--logs").arg(dir.join("logs"));
            } else {
                cmd.args(["-p", &cport.to_string()]);
            }
            let out = cmd.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{sub} with {key:?}: {err}");
            assert!(
                err.contains(msg),
                "{sub} with {key:?}: expected '{msg}' in: {err}"
            );
        }
    }
}

#[test]
fn client_not_root_is_refused_with_the_reason() {
    let dir = temp_dir("notroot");
    let key = keygen(&dir, "k.key");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "client",
            "-k",
        ])
        .arg(&key)
        .output()
        .expect("setpriv (util-linux) is installed by install-deps.sh");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root") && err.contains("capture"), "{err}");
}

#[test]
fn server_port_in_use_exits_4() {
    let dir = temp_dir("portinuse");
    let key = keygen(&dir, "k.key");
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut s = server(&dir, &key, port, ports(2).1, &[]);
    assert_eq!(s.wait_exit(Duration::from_secs(5)), Some(4));
    assert!(
        s.output()
            .contains(&format!("cannot listen on TCP port {port}"))
    );
}

#[test]
fn traffic_and_mounts_reach_the_per_machine_log_live_and_a_second_session_gets_a_new_directory() {
    let dir = temp_dir("e2e");
    let (sport, cport) = ports(3);
    let key = keygen(&dir, "k.key");
    let mut srv = server(&dir, &key, sport, cport, &[]);
    let cl = client(&dir, &key, cport, "e2e-pc", &[]);
    assert_joined_and_capturing(&srv, &cl, &dir, "e2e-pc");

    // UDP to two local ports, one to port 53, and one TCP connection.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uport = udp.local_addr().unwrap().port();
    let (p1, p2) = (cport + 1000, cport + 1001);
    udp.send_to(b"a", ("127.0.0.1", p1)).unwrap();
    udp.send_to(b"b", ("127.0.0.1", p2)).unwrap();
    udp.send_to(b"dns?", ("127.0.0.1", 53)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = listener.local_addr().unwrap().port();
    let mut c = TcpStream::connect(("127.0.0.1", tport)).unwrap();
    let (mut a, _) = listener.accept().unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    a.read_exact(&mut buf).unwrap();
    drop(c);
    drop(a);

    let want = [
        format!("net new udp 127.0.0.1:{uport} -> 127.0.0.1:{p1}"),
        format!("net new udp 127.0.0.1:{uport} -> 127.0.0.1:{p2}"),
        format!("-> 127.0.0.1:{tport} flags=S"),
    ];
    assert!(
        wait_until(Duration::from_secs(5), || {
            let t = all_logs(&dir);
            want.iter().all(|w| t.contains(w))
        }),
        "flows missing from the log during the session:\n{}",
        all_logs(&dir)
    );

    // A tmpfs mount and unmount appear within one second each.
    let mnt = dir.join("stick");
    let mut m = TmpfsMount::mount(&mnt, "e2e-stick");
    let t0 = Instant::now();
    let needle = format!("mount e2e-stick on {}", mnt.display());
    assert!(
        wait_until(Duration::from_secs(1), || all_logs(&dir).contains(&needle)),
        "mount not logged within 1 s"
    );
    eprintln!("mount reached the log after {:?}", t0.elapsed());
    m.unmount();
    let needle = format!("unmount e2e-stick on {}", mnt.display());
    assert!(
        wait_until(Duration::from_secs(1), || all_logs(&dir).contains(&needle)),
        "unmount not logged within 1 s"
    );

    // Stop: the server exits 0, the client's last events (flow ends) are in the file, and the
    // client goes back to waiting.
    srv.signal(libc::SIGINT);
    assert_eq!(
        srv.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        srv.output()
    );
    assert!(
        cl.wait_for("ended; waiting for announcements", Duration::from_secs(5)),
        "{}",
        cl.output()
    );
    let text = all_logs(&dir);
    assert!(
        !text.contains(":53 ") && !text.contains("-> 127.0.0.1:53"),
        "port 53 must not be reported:\n{text}"
    );
    assert!(
        text.contains(&format!("net end udp 127.0.0.1:{uport} -> 127.0.0.1:{p1}")),
        "flow summary at stop"
    );
    assert!(text.contains("client finished the session"));
    assert!(text.contains("# key fingerprint: "));
    // Every event line carries time, sequence number and kind.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split(' ');
        let ts = f.next().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
            "timestamp in {line}"
        );
        assert!(f.next().unwrap().starts_with("seq="), "{line}");
    }
    assert_eq!(session_dirs(&dir).len(), 1);

    // A second session: same client, new directory.
    let srv2 = server(&dir, &key, sport, cport, &[]);
    assert!(
        srv2.wait_for("e2e-pc (127.0.0.1) connected", Duration::from_secs(10)),
        "{}",
        srv2.output()
    );
    assert_eq!(session_dirs(&dir).len(), 2);
}

#[test]
fn a_client_with_the_wrong_key_never_connects() {
    let dir = temp_dir("wrongkey");
    let (sport, cport) = ports(4);
    let key = keygen(&dir, "k.key");
    let other = keygen(&dir, "other.key");
    let srv = server(&dir, &key, sport, cport, &[]);
    let _cl = client(&dir, &other, cport, "wrong-pc", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let out = srv.output();
    assert!(
        out.contains("session") && !out.contains("connected"),
        "{out}"
    );
    assert!(!all_logs(&dir).contains("wrong-pc"));
}

/// A start datagram that authenticates (as if captured from the real server and replayed by a
/// student) but comes from another sender pointing at its own listener: the client connects,
/// but nothing beyond its hello leaves it, and it keeps waiting for the real server.
#[test]
fn a_replayed_start_from_another_sender_gets_no_events() {
    use proctor::protocol::SessionId;
    use proctor::protocol::announce::{AnnounceKind, Announcement};
    let dir = temp_dir("replay");
    let (sport, cport) = ports(5);
    let key_path = keygen(&dir, "k.key");
    let key = proctor::keyfile::parse(&std::fs::read_to_string(&key_path).unwrap())
        .unwrap()
        .key;
    let cl = client(&dir, &key_path, cport, "replay-pc", &[]);
    assert!(cl.wait_for("waiting for announcements", Duration::from_secs(5)));

    let fake = TcpListener::bind("127.0.0.2:0").unwrap();
    let fake_port = fake.local_addr().unwrap().port();
    let datagram = Announcement {
        kind: AnnounceKind::Start,
        tcp_port: fake_port,
        session: SessionId([7; 16]),
        ts_ms: 0,
    }
    .seal(&key);
    let sender = UdpSocket::bind("127.0.0.2:0").unwrap();
    sender.set_broadcast(true).unwrap();
    sender
        .send_to(&datagram, ("127.255.255.255", cport))
        .unwrap();

    fake.set_nonblocking(false).unwrap();
    let (mut conn, _) = fake.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The attacker answers with replayed-looking bytes it cannot make valid.
    let mut answered = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        if !answered && got.len() >= 4 {
            answered = true;
            let mut fake_answer = vec![0, 0, 0, 65, 2];
            fake_answer.extend_from_slice(&[0x5a; 64]);
            let _ = conn.write_all(&fake_answer);
        }
    }
    // Exactly one ClientHello frame: 4-byte length + tag + version + session + nonce.
    assert_eq!(
        got.len(),
        4 + 1 + 1 + 16 + 32,
        "client sent more than its hello: {got:?}"
    );
    assert!(
        cl.wait_for("ignored start from 127.0.0.2", Duration::from_secs(5)),
        "{}",
        cl.output()
    );

    // And it still joins the real server afterwards.
    let srv = server(&dir, &key_path, sport, cport, &[]);
    assert!(
        srv.wait_for("replay-pc (127.0.0.1) connected", Duration::from_secs(10)),
        "{}",
        srv.output()
    );
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == pid {
            out.push(p);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .map(|x| x.1.trim_start().starts_with('Z'))
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

#[test]
fn workers_do_not_outlive_a_killed_client() {
    let dir = temp_dir("orphans");
    let (sport, cport) = ports(6);
    let key = keygen(&dir, "k.key");
    let srv = server(&dir, &key, sport, cport, &[]);
    let mut cl = client(&dir, &key, cport, "orphan-pc", &[]);
    assert!(srv.wait_for("orphan-pc (127.0.0.1) connected", Duration::from_secs(10)));
    let pid = cl.child.id();
    let mut workers = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        workers = children_of(pid);
        workers.len() == 3
    }));
    cl.signal(libc::SIGKILL);
    let _ = cl.wait_exit(Duration::from_secs(2));
    assert!(
        wait_until(Duration::from_secs(3), || workers
            .iter()
            .all(|w| !alive(*w))),
        "workers left running: {workers:?}"
    );
    // The server notices the silent client.
    assert!(
        srv.wait_for("orphan-pc (127.0.0.1) LOST", Duration::from_secs(5)),
        "{}",
        srv.output()
    );
}

#[test]
fn garbage_on_the_server_port_is_rejected_and_the_server_keeps_serving() {
    let dir = temp_dir("garbage");
    let (sport, cport) = ports(7);
    let key = keygen(&dir, "k.key");
    let srv = server(&dir, &key, sport, cport, &[]);
    assert!(srv.wait_for("session", Duration::from_secs(5)));
    let mut g = TcpStream::connect(("127.0.0.1", sport)).unwrap();
    g.write_all(&[0xff; 64]).unwrap();
    let mut g2 = TcpStream::connect(("127.0.0.1", sport)).unwrap();
    g2.write_all(&[0, 0, 0, 5, 99, 1, 2, 3, 4]).unwrap();
    assert!(
        srv.wait_for("rejected 127.0.0.1", Duration::from_secs(3)),
        "{}",
        srv.output()
    );
    let _cl = client(&dir, &key, cport, "after-garbage", &[]);
    assert!(
        srv.wait_for(
            "after-garbage (127.0.0.1) connected",
            Duration::from_secs(10)
        ),
        "{}",
        srv.output()
    );
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn workers_drop_root_and_a_killed_worker_is_logged_and_restarted() {
    let dir = temp_dir("workerkill");
    let (sport, cport) = ports(8);
    let key = keygen(&dir, "k.key");
    let srv = server(&dir, &key, sport, cport, &[]);
    let cl = client(&dir, &key, cport, "wk-pc", &[]);
    assert_joined_and_capturing(&srv, &cl, &dir, "wk-pc");
    let mut workers = Vec::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            workers = children_of(cl.child.id());
            workers.len() == 3 && workers.iter().all(|w| uid_of(*w) == Some(65534))
        }),
        "workers {workers:?} should run as uid 65534: {:?}",
        workers.iter().map(|w| uid_of(*w)).collect::<Vec<_>>()
    );
    // A student with root kills a worker: it is evidence, and monitoring goes on.
    for w in &workers {
        unsafe { libc::kill(*w as i32, libc::SIGKILL) };
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            let t = all_logs(&dir);
            t.contains("capture worker exited unexpectedly")
                && t.contains("capture worker restarted")
                && t.contains("mounts worker exited unexpectedly")
                && t.contains("mounts worker restarted")
                && t.contains("devices worker exited unexpectedly")
                && t.contains("devices worker restarted")
        }),
        "{}",
        all_logs(&dir)
    );
    assert!(wait_until(Duration::from_secs(5), || all_logs(&dir)
        .matches("capturing on lo")
        .count()
        == 2));
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"x", ("127.0.0.1", cport + 1500)).unwrap();
    let want = format!("-> 127.0.0.1:{}", cport + 1500);
    assert!(
        wait_until(Duration::from_secs(5), || all_logs(&dir).contains(&want)),
        "restarted capture works"
    );
}
