//! Tests of issue 3, the invigilator's window: the real `proctor server` (without `--headless`)
//! on a private Xvfb display, a real client on loopback, Start and Stop pressed with `xdotool`,
//! and the window's own state read back from `--dump-state` when the program quits by itself
//! (`--quit-after`). Announcements go to 127.255.255.255 only; traffic only to 127.0.0.1.
//! Needs root (packet capture, tmpfs mounts), Xvfb and xdotool (scripts/install-deps.sh).

mod common;
mod gui_util;

use gui_util::*;
use proctor::server::gui::layout::{
    START_STOP_CENTER, events_center, filter_center, header_center, reload_center, row_center,
};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn read_state(dir: &Path) -> Json {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("no --dump-state file {}: {e}", p.display()));
    Json::parse(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
}

/// The message the window showed, from the dumped state ("" if none).
fn message(dir: &Path) -> String {
    read_state(dir)
        .get("message")
        .str()
        .unwrap_or("")
        .to_string()
}

fn machine<'a>(state: &'a Json, host: &str) -> &'a Json {
    state
        .get("machines")
        .arr()
        .iter()
        .find(|m| m.get("host").str() == Some(host))
        .unwrap_or_else(|| panic!("no machine {host} in {state:?}"))
}

/// Presses Start and waits until the session's log directory exists. A click that arrives
/// before the freshly mapped window handles input is repeated (at most three times); a click
/// that did start the session is never repeated, so it cannot turn into Stop.
fn press_start(x: &XServer, wid: &str, dir: &Path) {
    let session_started = || {
        std::fs::read_dir(dir.join("logs"))
            .map(|rd| rd.flatten().any(|e| e.path().is_dir()))
            .unwrap_or(false)
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        x.click(wid, START_STOP_CENTER);
        if wait_until(secs(4), session_started) {
            return;
        }
    }
    panic!("pressing Start did not start a session");
}

/// Starts the window and a client, presses Start, and waits until the client monitors.
struct Lab {
    dir: std::path::PathBuf,
    x: XServer,
    server: Proc,
    client: Proc,
    wid: String,
}

impl Lab {
    fn start(name: &str, slot: u16, quit_after: &str) -> Lab {
        Lab::start_with(name, slot, quit_after, &[])
    }

    /// Like [`Lab::start`], with more arguments for the window server.
    fn start_with(name: &str, slot: u16, quit_after: &str, extra: &[&str]) -> Lab {
        let dir = temp_dir(name);
        let (sport, cport) = ports(slot);
        let key = keygen(&dir, "k.key");
        let x = XServer::start();
        let client = Proc::start_on(
            &client_args(&dir, &key, cport, "gui-pc", &[]),
            dir.join("client-gui-pc.out"),
            None,
        );
        assert!(
            client.wait_for("waiting for announcements", secs(10)),
            "client did not start: {}",
            client.output()
        );
        let mut more = vec!["--quit-after", quit_after];
        more.extend_from_slice(extra);
        let args = gui_server_args(&dir, &key, sport, cport, &more);
        let server = Proc::start_on(&args, dir.join("server.out"), Some(&x.display));
        let wid = x
            .find_window(&format!("TCP port {sport}"), secs(15))
            .unwrap_or_else(|| panic!("no window appeared: {}", server.output()));
        press_start(&x, &wid, &dir);
        assert!(
            client.wait_for("in session", secs(10)),
            "Start did not reach the client.\nclient: {}\nserver: {}",
            client.output(),
            server.output()
        );
        Lab {
            dir,
            x,
            server,
            client,
            wid,
        }
    }

    /// Sends SIGTERM to the window server, asserts it exits with 0 and returns its dumped state.
    fn terminate(&mut self) -> Json {
        self.server.signal(libc::SIGTERM);
        assert_eq!(
            self.server.wait_exit(secs(30)),
            Some(0),
            "{}",
            self.server.output()
        );
        read_state(&self.dir)
    }

    /// Waits until the client's log shows capture and mount watching running.
    fn wait_monitoring(&self) {
        assert!(
            wait_until(secs(10), || {
                let l = all_logs(&self.dir);
                l.contains("capturing on lo") && l.contains("baseline complete")
            }),
            "client never started monitoring: {}",
            all_logs(&self.dir)
        );
    }
}

#[test]
fn window_shows_the_machine_its_counts_and_the_highlight() {
    let mut lab = Lab::start("table", 0, "16");
    lab.wait_monitoring();

    // Three UDP flows to loopback ports nobody listens on, then a tmpfs mount.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let (sport, _) = ports(0);
    let targets: Vec<u16> = (0..3).map(|i| sport + 300 + i).collect();
    for p in &targets {
        sock.send_to(b"gui test", ("127.0.0.1", *p)).expect("send");
    }
    let mut mnt = TmpfsMount::mount(&lab.dir.join("mnt"), "guitestfs");
    assert!(
        wait_until(secs(10), || {
            let l = all_logs(&lab.dir);
            l.contains("mount guitestfs on")
                && targets
                    .iter()
                    .all(|p| l.contains(&format!("-> 127.0.0.1:{p}")))
        }),
        "events not in the log: {}",
        all_logs(&lab.dir)
    );
    mnt.unmount();

    // --quit-after ends the program by itself: stop announced, files closed, state dumped.
    let code = lab.server.wait_exit(secs(40));
    assert_eq!(code, Some(0), "server output: {}", lab.server.output());
    let state = read_state(&lab.dir);
    let m = machine(&state, "gui-pc");
    assert_eq!(m.get("address").str(), Some("127.0.0.1"));
    assert_eq!(m.get("state").str(), Some("stopped"), "{m:?}");
    assert!(m.get("net_flows").num().unwrap_or(0.0) >= 2.0, "{m:?}");
    assert!(m.get("mount_events").num().unwrap_or(0.0) >= 1.0, "{m:?}");
    assert_eq!(m.get("highlighted").bool(), Some(true), "{m:?}");
    assert_eq!(state.get("phase").str(), Some("idle"));
    assert_eq!(state.get("core_exited").bool(), Some(true));
    assert_eq!(state.get("message"), &Json::Null);
    assert_eq!(
        state.get("following").bool(),
        Some(true),
        "the event view follows new events"
    );
    assert!(state.get("events_total").num().unwrap_or(0.0) >= 4.0);
    assert!(state.get("lines_shown").num().unwrap_or(0.0) >= 4.0);
    let log_dir = state.get("log_dir").str().unwrap_or("");
    assert!(
        Path::new(log_dir).is_absolute() && Path::new(log_dir).is_dir(),
        "log dir shown: {log_dir:?}"
    );
    assert!(
        lab.client
            .wait_for("ended; waiting for announcements", secs(5)),
        "closing the window stops the client's session: {}",
        lab.client.output()
    );
}

#[test]
fn clicks_select_a_machine_sort_the_table_and_filter_the_events() {
    let mut lab = Lab::start("clicks", 8, "60");
    lab.wait_monitoring();
    let (sport, _) = ports(8);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    for i in 0..3 {
        sock.send_to(b"x", ("127.0.0.1", sport + 300 + i))
            .expect("send");
    }
    assert!(wait_until(secs(10), || all_logs(&lab.dir)
        .matches(&format!("-> 127.0.0.1:{}", sport + 300))
        .count()
        >= 1));
    std::thread::sleep(Duration::from_millis(500));
    // Row 0 is gui-pc; the Mounts title sorts by mount count, largest first.
    lab.x.click(&lab.wid, row_center(0));
    lab.x.click(&lab.wid, header_center(5));
    // Every line of gui-pc names its address (the session lines do not, and are not shown).
    lab.x.click(&lab.wid, filter_center());
    assert!(
        lab.x
            .xdotool(&["type", "--delay", "30", "127.0.0.1"])
            .is_some()
    );
    // Scroll the event view up: new lines must not pull it back down.
    let (ex, ey) = events_center();
    lab.x.xdotool(&[
        "mousemove",
        "--window",
        &lab.wid,
        &ex.to_string(),
        &ey.to_string(),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        lab.x.xdotool(&["click", "4"]);
    }
    for i in 3..6 {
        sock.send_to(b"x", ("127.0.0.1", sport + 300 + i))
            .expect("send");
    }
    std::thread::sleep(Duration::from_secs(1));
    let state = lab.terminate();
    assert_eq!(
        state.get("selected").str(),
        Some("gui-pc 127.0.0.1"),
        "{state:?}"
    );
    assert_eq!(state.get("order").str(), Some("Mounts descending"));
    assert_eq!(state.get("filter").str(), Some("127.0.0.1"));
    let shown = state.get("lines_shown").num().unwrap_or(0.0);
    let all = state.get("lines_in_memory").num().unwrap_or(0.0);
    assert!(
        shown >= 3.0 && shown < all,
        "filtered view: {shown} of {all} lines"
    );
    assert_eq!(
        state.get("following").bool(),
        Some(false),
        "scrolled up stays up"
    );
}

#[test]
fn flagged_events_are_counted_per_machine_and_the_policy_reloads_from_the_window() {
    let (sport, _) = ports(9);
    let (allowed, denied) = (sport + 300, sport + 301);
    let pdir = temp_dir("policy-file");
    let pol = pdir.join("policy.toml");
    std::fs::write(
        &pol,
        format!("[[destination]]\nto = [\"127.0.0.1\"]\nports = [{allowed}]\n"),
    )
    .expect("write policy");
    let mut lab = Lab::start_with("policy", 9, "60", &["--policy", pol.to_str().unwrap()]);
    lab.wait_monitoring();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    sock.send_to(b"ok", ("127.0.0.1", allowed)).expect("send");
    sock.send_to(b"no", ("127.0.0.1", denied)).expect("send");
    assert!(
        wait_until(secs(10), || {
            // The verdict ends the flow's line (after ` proc=...`, where the client adds it).
            let l = all_logs(&lab.dir);
            let line = |port: u16| {
                l.lines()
                    .find(|x| x.contains(&format!("-> 127.0.0.1:{port} ")))
                    .map(str::to_string)
            };
            line(allowed).is_some_and(|x| x.ends_with(" verdict=ok"))
                && line(denied).is_some_and(|x| x.contains(" verdict=flagged why="))
        }),
        "verdicts not in the log: {}",
        all_logs(&lab.dir)
    );
    // "Reload policy" reads the unchanged file again; the log files say so.
    lab.x.click(&lab.wid, reload_center());
    assert!(
        wait_until(secs(5), || all_logs(&lab.dir)
            .contains("seq=- server policy reloaded from")),
        "the Reload policy button did not reload: {}",
        lab.server.output()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let shot = lab.dir.join("policy-window.png");
    assert!(lab.x.screenshot(&shot), "import failed");
    let state = lab.terminate();
    let m = machine(&state, "gui-pc");
    assert!(m.get("flagged").num().unwrap_or(0.0) >= 1.0, "{m:?}");
    assert_eq!(m.get("highlighted").bool(), Some(true), "{m:?}");
    assert!(state.get("flagged_total").num().unwrap_or(0.0) >= 1.0);
    assert!(state.get("policy_reloads").num().unwrap_or(0.0) >= 1.0);
    assert_eq!(
        state.get("policy").str(),
        Some("1 destination rule"),
        "{state:?}"
    );
    assert_eq!(state.get("policy_error"), &Json::Null);
}

#[test]
fn stop_button_reaches_the_client() {
    let mut lab = Lab::start("stop", 1, "60");
    lab.wait_monitoring();
    lab.x.click(&lab.wid, START_STOP_CENTER);
    assert!(
        lab.client
            .wait_for("ended; waiting for announcements", secs(10)),
        "Stop did not reach the client: {}",
        lab.client.output()
    );
    // SIGTERM closes the window cleanly (as the close button would, without the question).
    std::thread::sleep(Duration::from_millis(500));
    let state = lab.terminate();
    assert_eq!(state.get("phase").str(), Some("idle"));
    assert!(
        state.get("session").get("stopped").str().is_some(),
        "{state:?}"
    );
    let m = machine(&state, "gui-pc");
    assert_eq!(m.get("state").str(), Some("stopped"), "{m:?}");
    assert!(all_logs(&lab.dir).contains("client finished the session"));
}

#[test]
fn closing_the_window_asks_first_then_stops_the_session_cleanly() {
    let mut lab = Lab::start("close", 9, "60");
    lab.wait_monitoring();
    // Close button, then Escape: "Keep running".
    let windows = lab.x.visible_windows();
    assert!(lab.x.send_close(&lab.wid), "cannot send WM_DELETE_WINDOW");
    assert!(
        wait_until(secs(5), || lab.x.visible_windows() == windows + 1),
        "the question appears"
    );
    assert!(lab.x.xdotool(&["key", "Escape"]).is_some());
    assert!(
        wait_until(secs(5), || lab.x.visible_windows() == windows),
        "Escape closes the question"
    );
    assert_eq!(
        lab.server.wait_exit(secs(2)),
        None,
        "still running after Escape"
    );
    assert!(
        !lab.client.output().contains("ended; waiting"),
        "session kept"
    );
    // Close button, then Return: "Stop session and close" (the default button).
    assert!(lab.x.send_close(&lab.wid));
    assert!(wait_until(secs(5), || lab.x.visible_windows() == windows + 1));
    assert!(lab.x.xdotool(&["key", "Return"]).is_some());
    assert_eq!(
        lab.server.wait_exit(secs(20)),
        Some(0),
        "{}",
        lab.server.output()
    );
    assert!(
        lab.client
            .wait_for("ended; waiting for announcements", secs(5)),
        "{}",
        lab.client.output()
    );
    let state = read_state(&lab.dir);
    assert_eq!(
        machine(&state, "gui-pc").get("state").str(),
        Some("stopped")
    );
    assert_eq!(state.get("core_exited").bool(), Some(true));
    assert!(all_logs(&lab.dir).contains("client finished the session"));
}

#[test]
fn a_bad_policy_is_explained_in_the_window_with_its_line() {
    let dir = temp_dir("badpolicy");
    // The server never binds (the policy is checked first), so the slot can be shared.
    let (sport, cport) = ports(5);
    let key = keygen(&dir, "k.key");
    let pol = dir.join("exam.toml");
    std::fs::write(
        &pol,
        "[mounts]\nallow_classes = [\"virtual\", \"floppy\"]\n",
    )
    .expect("write");
    let x = XServer::start();
    let args = gui_server_args(
        &dir,
        &key,
        sport,
        cport,
        &["--quit-after", "6", "--policy", pol.to_str().unwrap()],
    );
    let mut server = Proc::start_on(&args, dir.join("server.out"), Some(&x.display));
    assert!(
        x.find_window(&format!("TCP port {sport}"), secs(15))
            .is_some(),
        "the window opens to show the problem: {}",
        server.output()
    );
    assert_eq!(
        server.wait_exit(secs(20)),
        Some(2),
        "policy problems exit 2"
    );
    let state = read_state(&dir);
    let msg = state.get("message").str().unwrap_or("");
    assert!(
        msg.starts_with("Policy problem: policy file ")
            && msg.contains("line 2: unknown mount class \"floppy\""),
        "{msg:?}"
    );
    assert_eq!(state.get("button_active").bool(), Some(false));
}

#[test]
fn demo_key_without_demo_is_explained_in_the_window() {
    let dir = temp_dir("demo");
    let (sport, cport) = ports(2);
    let x = XServer::start();
    let demo_key = Path::new(env!("CARGO_MANIFEST_DIR")).join("keyfile.key");
    let args = gui_server_args(&dir, &demo_key, sport, cport, &["--quit-after", "6"]);
    let mut server = Proc::start_on(&args, dir.join("server.out"), Some(&x.display));
    assert!(
        x.find_window(&format!("TCP port {sport}"), secs(15))
            .is_some(),
        "the window opens to show the problem: {}",
        server.output()
    );
    assert_eq!(server.wait_exit(secs(20)), Some(2), "key problems exit 2");
    let state = read_state(&dir);
    let msg = state.get("message").str().unwrap_or("");
    assert!(
        msg.starts_with("Key problem") && msg.contains("demo key") && msg.contains("--demo"),
        "{msg:?}"
    );
    assert_eq!(state.get("button_active").bool(), Some(false));
    assert!(server.output().contains("demo key"), "also on stderr");
}

#[test]
fn port_in_use_is_explained_in_the_window() {
    let dir = temp_dir("port");
    let (sport, cport) = ports(3);
    let _holder = TcpListener::bind(("0.0.0.0", sport)).expect("hold the port");
    let key = keygen(&dir, "k.key");
    let x = XServer::start();
    let args = gui_server_args(&dir, &key, sport, cport, &["--quit-after", "6"]);
    let mut server = Proc::start_on(&args, dir.join("server.out"), Some(&x.display));
    assert!(
        x.find_window(&format!("TCP port {sport}"), secs(15))
            .is_some(),
        "no window: {}",
        server.output()
    );
    assert_eq!(server.wait_exit(secs(20)), Some(4), "port in use exits 4");
    let msg = message(&dir);
    assert!(
        msg.starts_with("Port in use") && msg.contains(&sport.to_string()),
        "{msg:?}"
    );
}

#[test]
fn missing_broadcast_address_is_explained_in_the_window() {
    // A fresh network namespace has only a down loopback: no broadcast address at all.
    let dir = temp_dir("nobcast");
    let (sport, cport) = ports(4);
    let key = keygen(&dir, "k.key");
    let x = XServer::start();
    let args: Vec<String> = gui_server_args(&dir, &key, sport, cport, &["--quit-after", "6"])
        .into_iter()
        .filter(|a| a != "--broadcast" && a != "127.255.255.255")
        .collect();
    let mut server = Proc::start_with(
        "unshare",
        &["-n"],
        &args,
        dir.join("server.out"),
        Some(&x.display),
    );
    assert!(
        x.find_window(&format!("TCP port {sport}"), secs(15))
            .is_some(),
        "{}",
        server.output()
    );
    assert_eq!(server.wait_exit(secs(20)), Some(2), "{}", server.output());
    let msg = message(&dir);
    assert!(msg.starts_with("No broadcast address"), "{msg:?}");
}

#[test]
fn without_a_display_the_window_says_what_to_do() {
    let dir = temp_dir("nodisplay");
    let (sport, cport) = ports(5);
    let key = keygen(&dir, "k.key");
    let args = gui_server_args(&dir, &key, sport, cport, &["--quit-after", "6"]);
    let mut server = Proc::start_on(&args, dir.join("server.out"), None);
    assert_eq!(server.wait_exit(secs(10)), Some(2));
    assert!(
        server.output().contains("--headless"),
        "{}",
        server.output()
    );
}

#[test]
fn ten_thousand_events_per_second_do_not_make_the_window_lag() {
    let dir = temp_dir("flood");
    let (sport, cport) = ports(6);
    let key = keygen(&dir, "k.key");
    let x = XServer::start();
    // One event per packet: 30,000 datagrams in 3 s are 10,000 events per second.
    let c = Proc::start_on(
        &client_args(&dir, &key, cport, "flood-pc", &["--per-packet"]),
        dir.join("client.out"),
        None,
    );
    assert!(c.wait_for("waiting for announcements", secs(10)));
    let args = gui_server_args(&dir, &key, sport, cport, &["--start", "--quit-after", "15"]);
    let mut server = Proc::start_on(&args, dir.join("server.out"), Some(&x.display));
    assert!(
        c.wait_for("in session", secs(10)),
        "--start starts a session: {}",
        server.output()
    );
    assert!(wait_until(secs(10), || all_logs(&dir).contains("capturing on lo")));
    udp_flood(sport + 300, 30_000, 10_000);
    assert_eq!(server.wait_exit(secs(40)), Some(0), "{}", server.output());
    let state = read_state(&dir);
    let total = state.get("events_total").num().unwrap_or(0.0);
    let delay = state.get("max_note_delay_ms").num().unwrap_or(f64::MAX);
    let turn = state.get("max_turn_ms").num().unwrap_or(f64::MAX);
    eprintln!("flood: {total} events, longest delay {delay} ms, longest loop turn {turn} ms");
    assert!(total >= 25_000.0, "events reached the window: {total}");
    assert!(delay < 2_000.0, "notes waited {delay} ms for the window");
    assert!(turn < 500.0, "a loop turn took {turn} ms");
    assert_eq!(state.get("lines_in_memory").num(), Some(5_000.0), "bounded");
    assert!(state.get("lines_shown").num().unwrap_or(f64::MAX) <= 5_000.0);
    assert!(
        machine(&state, "flood-pc")
            .get("net_flows")
            .num()
            .unwrap_or(0.0)
            >= 25_000.0
    );
}

/// Regenerates docs/gui.png: a session with six lab PCs (each in its own mount namespace) under
/// a policy: one mounts a directory the policy does not allow (flagged), one a tmpfs it allows
/// (a mount event), and one is killed, so the screenshot shows every colour.
/// `cargo test --test gui -- --ignored screenshot` (needs root).
#[test]
#[ignore]
fn screenshot_for_the_readme() {
    let dir = temp_dir("shot");
    let (sport, cport) = ports(7);
    let key = keygen(&dir, "k.key");
    let x = XServer::start();
    let pol = dir.join("exam-policy.toml");
    std::fs::write(
        &pol,
        "[[destination]]\nto = [\"127.0.0.0/8\"]\n\n[mounts]\nallow_classes = [\"virtual\"]\n",
    )
    .expect("policy");
    let args = gui_server_args(
        &dir,
        &key,
        sport,
        cport,
        &["--quit-after", "40", "--policy", pol.to_str().unwrap()],
    );
    let mut server = Proc::start_on(&args, dir.join("server.out"), Some(&x.display));
    let wid = x
        .find_window(&format!("TCP port {sport}"), secs(15))
        .expect("window");
    std::thread::sleep(Duration::from_millis(500));
    let hosts = [
        "lab-pc01", "lab-pc02", "lab-pc03", "lab-pc04", "lab-pc05", "lab-pc06",
    ];
    let clients: Vec<Proc> = hosts
        .iter()
        .map(|h| {
            Proc::start_with(
                "unshare",
                &["-m", "--propagation", "private"],
                &client_args(&dir, &key, cport, h, &[]),
                dir.join(format!("client-{h}.out")),
                None,
            )
        })
        .collect();
    for c in &clients {
        assert!(c.wait_for("waiting for announcements", secs(10)));
    }
    press_start(&x, &wid, &dir);
    for c in &clients {
        assert!(c.wait_for("in session", secs(10)), "{}", c.output());
    }
    assert!(wait_until(secs(10), || all_logs(&dir)
        .matches("capturing on lo")
        .count()
        >= 6));
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for p in [443u16, 8080, 3478] {
        let _ = sock.send_to(b"exam", ("127.0.0.1", p));
    }
    // lab-pc03 bind-mounts a directory of the disk (class block: flagged by the policy) and
    // lab-pc06 mounts a tmpfs (class virtual: allowed, but still a mount event), each in its
    // own mount namespace only.
    let mnt = dir.join("usb");
    let notes = dir.join("notes");
    for d in [&mnt, &notes] {
        std::fs::create_dir_all(d).expect("mount point");
    }
    let in_ns = |pid: u32, args: &[&str], target: &Path| {
        let st = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "mount"])
            .args(args)
            .arg(target)
            .status()
            .expect("nsenter");
        assert!(st.success());
    };
    in_ns(clients[2].pid(), &["--bind", notes.to_str().unwrap()], &mnt);
    in_ns(
        clients[5].pid(),
        &["-t", "tmpfs", "-o", "size=1m", "USB-STICK"],
        &mnt,
    );
    // lab-pc05 disappears (killed; the server marks it lost within 3 s).
    let mut clients = clients;
    drop(clients.remove(4));
    std::thread::sleep(Duration::from_secs(5));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gui.png");
    assert!(x.screenshot(&out), "import failed");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(secs(30)), Some(0));
}
