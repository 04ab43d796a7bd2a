//! Issue 4, stronger mode: with the server's public key, a client accepts start/stop and a
//! server only when signed by the server's signing key, so a lab PC that holds the shared key
//! can neither stop monitoring nor pose as the server.

mod common;

use common::*;
use proctor::crypto::Key;
use proctor::protocol::SessionId;
use proctor::protocol::announce::{AnnounceKind, Announcement};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

fn signing_pair(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let secret = dir.join("server-signing.key");
    let out = Command::new(bin())
        .args(["keygen", "--signing", "-o"])
        .arg(&secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = dir.join("server-signing.pub");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .contains("proctor-signing-pub-v1")
    );
    let again = Command::new(bin())
        .args(["keygen", "--signing", "-o"])
        .arg(&secret)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "refuses to overwrite");
    (secret, public)
}

/// Broadcasts (to 127.255.255.255 only) a stop of `session` sealed with the shared `key`, as a
/// lab PC holding that key could. Sent a few times: one that arrives while the client is still
/// finishing its join is read by the waiting loop, which ignores stops.
fn send_forged_stop(key: &Key, sport: u16, cport: u16, session: SessionId) {
    let forged = Announcement {
        kind: AnnounceKind::Stop,
        tcp_port: sport,
        session,
        ts_ms: 0,
    }
    .seal(key);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.set_broadcast(true).unwrap();
    for _ in 0..5 {
        sender.send_to(&forged, ("127.255.255.255", cport)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_lab_pc_with_the_shared_key_cannot_stop_or_impersonate_a_signing_server() {
    let dir = temp_dir("strong");
    let (sport, cport) = ports(30);
    let (key_path, key) = keygen_with_key(&dir, "k.key");
    let (secret, public) = signing_pair(&dir);
    let pubarg = public.display().to_string();

    // An impostor server: it has the shared key, not the signing key. The client ignores it.
    let impostor = server(&dir, &key_path, sport + 40, cport, &[]);
    let cl = client(
        &dir,
        &key_path,
        cport,
        "strong-pc",
        &["--server-pubkey", &pubarg],
    );
    assert!(
        cl.wait_for("stronger mode", Duration::from_secs(5)),
        "{}",
        cl.output()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !impostor.output().contains("connected"),
        "joined an unsigned server: {}",
        impostor.output()
    );
    drop(impostor);

    // The real server signs; the client joins it.
    let secret_arg = secret.display().to_string();
    let srv = server(
        &dir,
        &key_path,
        sport,
        cport,
        &["--signing-key", &secret_arg],
    );
    assert!(
        srv.wait_for("strong-pc (127.0.0.1) connected", Duration::from_secs(10)),
        "{}\n{}",
        srv.output(),
        cl.output()
    );
    let session = session_id(&srv).unwrap();

    // The student forges a stop of the running session, sealed correctly with the shared key.
    send_forged_stop(&key, sport, cport, session);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !cl.output().contains("ended"),
        "a forged stop ended monitoring: {}",
        cl.output()
    );
    // Monitoring goes on: new traffic still reaches the file.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"x", ("127.0.0.1", cport + 1700)).unwrap();
    let want = format!("-> 127.0.0.1:{}", cport + 1700);
    assert!(
        wait_until(Duration::from_secs(5), || all_logs(&dir).contains(&want)),
        "{}",
        all_logs(&dir)
    );
    assert!(!srv.output().contains("finished the session"));
}

#[test]
fn without_the_public_key_the_same_forged_stop_does_end_monitoring() {
    // The contrast that shows what the stronger mode buys (and that the test above can fail).
    let dir = temp_dir("weak");
    let (sport, cport) = ports(31);
    let (key_path, key) = keygen_with_key(&dir, "k.key");
    let srv = server(&dir, &key_path, sport, cport, &[]);
    let cl = client(&dir, &key_path, cport, "weak-pc", &[]);
    assert!(srv.wait_for("weak-pc (127.0.0.1) connected", Duration::from_secs(10)));
    let session = session_id(&srv).unwrap();
    send_forged_stop(&key, sport, cport, session);
    assert!(
        cl.wait_for("ended", Duration::from_secs(8)),
        "{}",
        cl.output()
    );
}
