//! USB devices seen without a mount (issue 6), end to end: the real server and client on
//! loopback, the client's device worker pointed (hidden `--sysfs-root`) at a fake sysfs in a
//! temporary directory; a device there at the start is `present`, one added while the session
//! runs is `plugged`, and its removal `removed`, each as a `device` line in the server's file,
//! judged by the server's policy (known serials and allowed classes).

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// Adds a device directory at `bus/usb/devices/<path>` with its ids, strings and one interface
/// per class code, as the kernel does when it is plugged in.
fn plug(sysfs: &Path, path: &str, ids: (&str, &str), strings: [&str; 3], ifaces: &[&str]) {
    let dir = sysfs.join("bus/usb/devices").join(path);
    std::fs::create_dir_all(&dir).unwrap();
    let attrs = [
        ("idVendor", ids.0),
        ("idProduct", ids.1),
        ("bDeviceClass", "00"),
        ("manufacturer", strings[0]),
        ("product", strings[1]),
        ("serial", strings[2]),
    ];
    for (name, value) in attrs {
        std::fs::write(dir.join(name), format!("{value}\n")).unwrap();
    }
    for (i, class) in ifaces.iter().enumerate() {
        let iface = dir.join(format!("{path}:1.{i}"));
        std::fs::create_dir_all(&iface).unwrap();
        std::fs::write(iface.join("bInterfaceClass"), format!("{class}\n")).unwrap();
    }
}

#[test]
fn present_plugged_and_removed_usb_devices_reach_the_servers_file() {
    let dir = temp_dir("devices");
    let sysfs = dir.join("sys");
    std::fs::create_dir_all(sysfs.join("bus/usb/devices/usb1")).unwrap();
    plug(
        &sysfs,
        "1-1",
        ("046d", "c52b"),
        ["Logitech", "USB Receiver", ""],
        &["03", "03"],
    );
    let (sport, cport) = ports(71);
    let key = keygen(&dir, "k.key");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[devices]\nknown = [\"4C530001\"]\nallow_classes = [\"hid\"]\n",
    )
    .unwrap();
    let policy_arg = policy.display().to_string();
    let mut srv = server(&dir, &key, sport, cport, &["--policy", &policy_arg]);
    let root = sysfs.display().to_string();
    let cl = client(&dir, &key, cport, "usb-pc", &["--sysfs-root", &root]);
    assert_joined_and_capturing(&srv, &cl, &dir, "usb-pc");

    let present = "device present usb 1-1 vendor_id=046d product_id=c52b vendor=\"Logitech\" \
                   model=\"USB Receiver\" class=hid verdict=ok";
    assert!(
        wait_until(Duration::from_secs(5), || all_logs(&dir).contains(present)),
        "present device missing:\n{}",
        all_logs(&dir)
    );

    // A Wi-Fi/Bluetooth stick appears: reported within the worker's one-second rescan (a fake
    // tree gets no kernel notification).
    plug(
        &sysfs,
        "1-4.2",
        ("0bda", "b720"),
        ["Realtek", "Bluetooth Radio", "00E04C239987"],
        &["e0", "e0"],
    );
    let stick = "usb 1-4.2 vendor_id=0bda product_id=b720 vendor=\"Realtek\" \
                 model=\"Bluetooth Radio\" serial=\"00E04C239987\" class=wireless";
    let flagged = "verdict=flagged why=\"wireless device with unknown serial 00E04C239987\"";
    let plugged = format!("device plugged {stick} {flagged}");
    assert!(
        wait_until(Duration::from_secs(4), || all_logs(&dir).contains(&plugged)),
        "plugged device missing:\n{}",
        all_logs(&dir)
    );
    std::fs::remove_dir_all(sysfs.join("bus/usb/devices/1-4.2")).unwrap();
    let removed = format!("device removed {stick} {flagged}");
    assert!(
        wait_until(Duration::from_secs(4), || all_logs(&dir).contains(&removed)),
        "removed device missing:\n{}",
        all_logs(&dir)
    );

    // A stick whose serial the policy knows is fine.
    plug(
        &sysfs,
        "2-1",
        ("0781", "5581"),
        ["SanDisk", "Ultra", "4C530001"],
        &["08"],
    );
    let known = "device plugged usb 2-1 vendor_id=0781 product_id=5581 vendor=\"SanDisk\" \
                 model=\"Ultra\" serial=\"4C530001\" class=mass-storage verdict=ok";
    assert!(
        wait_until(Duration::from_secs(4), || all_logs(&dir).contains(known)),
        "known stick missing:\n{}",
        all_logs(&dir)
    );

    srv.signal(libc::SIGINT);
    assert_eq!(srv.wait_exit(Duration::from_secs(10)), Some(0));
    let text = all_logs(&dir);
    assert_eq!(text.matches("device present usb").count(), 1, "{text}");
    assert!(
        !text.contains("usb usb1"),
        "root hubs are not reported:\n{text}"
    );
}
