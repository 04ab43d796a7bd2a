//! The USB device worker (`proctor __device-worker`): reports every USB device on the lab PC,
//! mounted or not — a phone, a keyboard, a Wi-Fi or Bluetooth stick, a network adapter — as
//! `device` events: once as `present usb ...` for what is plugged in when monitoring starts,
//! then `plugged usb ...` and `removed usb ...`, each with the bus path, ids, the device's own
//! strings and a class word taken from its interfaces.
//!
//! It is a process of its own (like the capture and mount workers) so a fault in it blinds
//! nothing else and it is restarted on its own; the mount worker's loop is built around the
//! mount table's change notification and stays simple. On Linux it sleeps on a kernel uevent
//! netlink socket (`NETLINK_KOBJECT_UEVENT`) and rescans `<sysfs>/bus/usb/devices` shortly after
//! a `SUBSYSTEM=usb` event, so a plug is reported within about 100 ms; it also rescans every
//! [`RESCAN_EVERY`] in case notifications are lost or unavailable (containers, other systems).
//! Reading sysfs needs no privileges: the worker runs as `nobody` once the socket is open.
//!
//! Scanning ([`scan`]) and the present/plugged/removed bookkeeping ([`Tracker`]) are separate
//! from the waiting, and the sysfs root is a parameter (hidden `--sysfs`), so tests build a fake
//! tree in a temporary directory and add or remove device directories.

use super::mounts::{quote, token};
use crate::event::{Event, EventKind, escape};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Safety-net rescan interval: devices are found within this time even without notifications.
pub const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// Delay between a USB uevent and the rescan it triggers, so the device's interfaces (added
/// just after the device itself) are there to classify it. Also bounds notification-driven
/// rescans to 20 a second, however many events arrive.
pub const SETTLE: Duration = Duration::from_millis(50);
/// How long a newly plugged device without interfaces yet (not configured) is held back
/// before it is reported anyway with what is known.
pub const CONFIGURE_GRACE: Duration = Duration::from_secs(1);
/// Longest single wait, so a stop request is noticed promptly.
pub const WAIT_SLICE: Duration = Duration::from_millis(150);
/// Longest attribute read; real ones are a few bytes.
const MAX_ATTR: u64 = 4096;
/// Most devices and interfaces looked at per scan (a real bus has a few dozen).
const MAX_ENTRIES: usize = 4096;

/// One USB device as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsbDevice {
    /// Kernel name, the port path on its bus (`1-1.2`: bus 1, port 1, then port 2 of a hub).
    pub bus_path: String,
    /// Device number on its bus, new for every enumeration (tells a replug from the same device).
    pub devnum: String,
    /// `idVendor`, four hex digits.
    pub vendor_id: String,
    /// `idProduct`, four hex digits.
    pub product_id: String,
    /// The device's manufacturer string.
    pub vendor: String,
    /// The device's product string.
    pub model: String,
    /// The device's serial number string.
    pub serial: String,
    /// `bDeviceClass` and every interface's `bInterfaceClass`, as numbers.
    pub classes: Vec<u8>,
    /// Whether any interface exists yet (the device has been configured).
    pub configured: bool,
}

impl UsbDevice {
    /// The class word for this device's class codes (see [`class_word`]).
    pub fn class(&self) -> &'static str {
        class_word(&self.classes)
    }

    /// The event detail: `VERB usb BUSPATH vendor_id=.. product_id=.. vendor=".." model=".."
    /// serial=".." class=WORD`. A string the device does not have is left out (as on mount
    /// lines), so `serial=` always names a real serial number; text from the device is
    /// escaped, strings always quoted.
    pub fn describe(&self, verb: &str) -> String {
        let mut d = format!(
            "{verb} usb {} vendor_id={} product_id={}",
            token(&escape(&self.bus_path)),
            token(&escape(&self.vendor_id)),
            token(&escape(&self.product_id)),
        );
        for (key, value) in [
            ("vendor", &self.vendor),
            ("model", &self.model),
            ("serial", &self.serial),
        ] {
            if !value.is_empty() {
                d.push_str(&format!(" {key}={}", quote(&escape(value))));
            }
        }
        d.push_str(&format!(" class={}", self.class()));
        d
    }

    /// What must stay the same for this to be the same plugged device at its port.
    fn identity(&self) -> (&str, &str, &str, &str) {
        (
            &self.devnum,
            &self.vendor_id,
            &self.product_id,
            &self.serial,
        )
    }
}

/// The class word for a device's class codes, most telling first: a stick that is also a
/// keyboard is `mass-storage`, a headset with buttons is `audio`. Codes are USB-IF base
/// classes: 08 mass storage, 06 still image (phones and cameras speaking MTP/PTP), e0 wireless
/// controller (Bluetooth, RNDIS), 02/0a communications (network adapters, modems), 0e video,
/// 01 audio, 07 printer, 03 HID, 09 hub. Vendor-specific devices (ff, many Wi-Fi sticks) are
/// `other`: their vendor and product ids say what they are.
pub fn class_word(codes: &[u8]) -> &'static str {
    const ORDER: [(&[u8], &str); 9] = [
        (&[0x08], "mass-storage"),
        (&[0x06], "phone"),
        (&[0xe0], "wireless"),
        (&[0x02, 0x0a], "network"),
        (&[0x0e], "video"),
        (&[0x01], "audio"),
        (&[0x07], "printer"),
        (&[0x03], "hid"),
        (&[0x09], "hub"),
    ];
    ORDER
        .iter()
        .find(|(set, _)| codes.iter().any(|c| set.contains(c)))
        .map_or("other", |(_, word)| word)
}

/// Reads a small attribute, trimmed; empty if missing or unreadable.
fn attr(dir: &Path, name: &str) -> String {
    let mut buf = Vec::new();
    if let Ok(f) = fs::File::open(dir.join(name)) {
        let _ = f.take(MAX_ATTR).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).trim().to_string()
}

/// A class code attribute (`08`), if present and valid.
fn class_attr(dir: &Path, name: &str) -> Option<u8> {
    let s = attr(dir, name);
    if s.len() != 2 {
        return None;
    }
    u8::from_str_radix(&s, 16).ok()
}

/// True for a USB device's kernel name (`1-1`, `3-2.4.1`); false for root hubs (`usb1`),
/// interfaces (`1-1:1.0`) and anything else.
pub fn is_device_name(name: &str) -> bool {
    let Some((bus, ports)) = name.split_once('-') else {
        return false;
    };
    !bus.is_empty()
        && bus.bytes().all(|b| b.is_ascii_digit())
        && !ports.is_empty()
        && ports
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Lists the USB devices under `<sysfs_root>/bus/usb/devices`, sorted by bus path. Root hubs
/// and interfaces are skipped; a device whose attributes vanish while it is read (unplugged)
/// comes back with what could be read. A missing directory (no USB bus) is `NotFound`.
pub fn scan(sysfs_root: &Path) -> io::Result<Vec<UsbDevice>> {
    let dir = sysfs_root.join("bus/usb/devices");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir)?.flatten().take(MAX_ENTRIES) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_device_name(&name) {
            continue;
        }
        let path = dir.join(&name);
        if !path.join("idVendor").exists() {
            continue;
        }
        let mut classes = Vec::new();
        if let Some(c) = class_attr(&path, "bDeviceClass")
            && c != 0
        {
            classes.push(c);
        }
        let mut configured = false;
        let prefix = format!("{name}:");
        if let Ok(children) = fs::read_dir(&path) {
            for child in children.flatten().take(MAX_ENTRIES) {
                if !child.file_name().to_string_lossy().starts_with(&prefix) {
                    continue;
                }
                configured = true;
                if let Some(c) = class_attr(&child.path(), "bInterfaceClass")
                    && !classes.contains(&c)
                {
                    classes.push(c);
                }
            }
        }
        out.push(UsbDevice {
            devnum: attr(&path, "devnum"),
            vendor_id: attr(&path, "idVendor"),
            product_id: attr(&path, "idProduct"),
            vendor: attr(&path, "manufacturer"),
            model: attr(&path, "product"),
            serial: attr(&path, "serial"),
            classes,
            configured,
            bus_path: name,
        });
    }
    out.sort_by(|a, b| a.bus_path.cmp(&b.bus_path));
    Ok(out)
}

/// Turns successive scans into `present`, `plugged` and `removed` events. The first scan
/// reports everything as `present`; later, a device at a new port (or a different device at a
/// known port) is `plugged`, a vanished one `removed` with the text it was reported with.
/// A plugged device with no interfaces yet is held back up to [`CONFIGURE_GRACE`], so its class
/// is known when it is reported.
#[derive(Debug, Default)]
pub struct Tracker {
    started: bool,
    known: BTreeMap<String, UsbDevice>,
    waiting: HashMap<String, Instant>,
}

impl Tracker {
    /// A tracker that has seen nothing yet.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Number of devices currently reported as plugged in.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// True when no device is reported as plugged in.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The events for a new scan taken at `now`.
    pub fn update(&mut self, scan: Vec<UsbDevice>, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let first = !self.started;
        self.started = true;
        let mut current: BTreeMap<String, UsbDevice> = BTreeMap::new();
        for d in scan {
            current.insert(d.bus_path.clone(), d);
        }
        let gone: Vec<String> = self
            .known
            .iter()
            .filter(|(path, old)| {
                current
                    .get(*path)
                    .is_none_or(|new| new.identity() != old.identity())
            })
            .map(|(path, _)| path.clone())
            .collect();
        for path in gone {
            if let Some(old) = self.known.remove(&path) {
                events.push(Event::now(EventKind::Device, old.describe("removed")));
            }
        }
        self.waiting.retain(|path, _| current.contains_key(path));
        for (path, d) in current {
            if self.known.contains_key(&path) {
                continue;
            }
            if !first && !d.configured {
                let since = *self.waiting.entry(path.clone()).or_insert(now);
                if now.saturating_duration_since(since) < CONFIGURE_GRACE {
                    continue;
                }
            }
            self.waiting.remove(&path);
            let verb = if first { "present" } else { "plugged" };
            events.push(Event::now(EventKind::Device, d.describe(verb)));
            self.known.insert(path, d);
        }
        events
    }

    /// True when a device is held back and a rescan is needed to report it.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }
}

/// True when a kernel uevent message (`ACTION@DEVPATH\0KEY=VALUE\0...`) is about the `usb`
/// subsystem (a device or an interface coming or going).
pub fn is_usb_uevent(msg: &[u8]) -> bool {
    msg.split(|&b| b == 0)
        .any(|field| field == b"SUBSYSTEM=usb")
}

/// Something that wakes the worker: `Ok(true)` when USB devices may have changed.
pub trait Wakeups {
    /// Waits up to `timeout`.
    fn wait(&mut self, timeout: Duration) -> io::Result<bool>;
    /// Whether kernel notifications are in use (said once in the worker's status line).
    fn notifying(&self) -> bool;
}

/// No notifications: the worker relies on its periodic rescan.
pub struct TimerOnly;

impl Wakeups for TimerOnly {
    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        std::thread::sleep(timeout);
        Ok(false)
    }
    fn notifying(&self) -> bool {
        false
    }
}

/// The kernel's uevent broadcast (netlink group 1: events as the kernel sends them, before
/// udev), nonblocking.
#[cfg(target_os = "linux")]
pub struct UeventSocket {
    fd: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl UeventSocket {
    /// Opens and binds the socket.
    pub fn open() -> io::Result<UeventSocket> {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: plain socket(2); the result is checked before it is wrapped.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_KOBJECT_UEVENT,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid; the fields set below make it ours.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = 1;
        // SAFETY: `sa` is a valid sockaddr_nl and the length is its size.
        let rc = unsafe {
            libc::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UeventSocket { fd })
    }

    /// Reads every queued message: how many, and whether one was about USB. A full receive
    /// queue (ENOBUFS: events were lost) also counts as a USB change.
    fn drain(&mut self) -> io::Result<(usize, bool)> {
        use std::os::fd::AsRawFd;
        let mut usb = false;
        let mut count = 0;
        let mut buf = [0u8; 8192];
        for _ in 0..1024 {
            // SAFETY: `buf` is valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok((count, usb)),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        usb = true;
                        continue;
                    }
                    _ => Err(e),
                };
            }
            let n = usize::try_from(n).unwrap_or(0).min(buf.len());
            count += 1;
            usb |= is_usb_uevent(&buf[..n]);
        }
        Ok((count, usb))
    }
}

#[cfg(target_os = "linux")]
impl Wakeups for UeventSocket {
    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if rc == 0 {
            return Ok(false);
        }
        self.drain().map(|(_, usb)| usb)
    }
    fn notifying(&self) -> bool {
        true
    }
}

/// The worker loop: scans at once (reporting `present` devices and one status line), then
/// after every USB notification (with [`SETTLE`]) and every [`RESCAN_EVERY`], writing `device`
/// events to `out`, until `stop` is set. An unreadable device list is reported once as a
/// status event (and its recovery too) and retried; it never ends the worker. Only a failed
/// write to `out` does.
pub fn run_loop(
    sysfs_root: &Path,
    wake: &mut dyn Wakeups,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut tracker = Tracker::new();
    let mut failing: Option<String> = None;
    let mut announced = false;
    let mut notifications = true;
    let mut broken: Option<String> = None;
    let mut next_scan = Instant::now();
    let list = sysfs_root.join("bus/usb/devices");
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + RESCAN_EVERY;
            let mut batch = Vec::new();
            match scan(sysfs_root) {
                Ok(devices) => {
                    if failing.take().is_some() {
                        batch.push(Event::now(
                            EventKind::Status,
                            format!("USB device list {} readable again", list.display()),
                        ));
                    }
                    batch.extend(tracker.update(devices, now));
                    if tracker.has_waiting() {
                        next_scan = next_scan.min(now + SETTLE * 2);
                    }
                }
                Err(e) => {
                    let msg = if e.kind() == io::ErrorKind::NotFound {
                        format!(
                            "no USB bus in sysfs ({} missing); USB devices appear if one comes up",
                            list.display()
                        )
                    } else {
                        format!(
                            "cannot read the USB device list {}: {e}; retrying every {}s",
                            list.display(),
                            RESCAN_EVERY.as_secs()
                        )
                    };
                    if failing.as_deref() != Some(msg.as_str()) {
                        batch.push(Event::now(EventKind::Status, msg.clone()));
                        failing = Some(msg);
                    }
                    if e.kind() == io::ErrorKind::NotFound {
                        // No bus: nothing is plugged in any more.
                        batch.extend(tracker.update(Vec::new(), now));
                    }
                }
            }
            if !announced {
                announced = true;
                batch.push(Event::now(
                    EventKind::Status,
                    format!(
                        "watching USB devices in {} ({} present; {})",
                        list.display(),
                        tracker.len(),
                        if wake.notifying() {
                            "kernel notifications and a rescan every second"
                        } else {
                            "a rescan every second"
                        }
                    ),
                ));
            }
            Event::write_worker_lines(out, &batch)?;
        }
        let timeout = next_scan
            .saturating_duration_since(Instant::now())
            .min(WAIT_SLICE);
        let woke = if notifications {
            wake.wait(timeout).unwrap_or_else(|e| {
                broken = Some(format!(
                    "USB notifications failed ({e}); rescanning every second"
                ));
                false
            })
        } else {
            TimerOnly.wait(timeout)?
        };
        if let Some(msg) = broken.take() {
            notifications = false;
            Event::write_worker_lines(out, &[Event::now(EventKind::Status, msg)])?;
        }
        if woke {
            next_scan = next_scan.min(Instant::now() + SETTLE);
        }
    }
    Ok(())
}

/// Runs the hidden `__device-worker` subcommand: watches `<sysfs>/bus/usb/devices` and writes
/// events to stdout until stdin closes, a stop signal arrives or the parent dies.
pub fn run_worker(args: &crate::cli::DeviceWorkerArgs) -> crate::error::Result<()> {
    crate::sys::die_with_parent();
    let stop = crate::sys::stop_on_stdin_eof();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut notes = Vec::new();
    #[cfg(target_os = "linux")]
    let mut wake: Box<dyn Wakeups> = match UeventSocket::open() {
        Ok(s) => Box::new(s),
        Err(e) => {
            notes.push(format!(
                "cannot listen for USB notifications ({e}); rescanning every second"
            ));
            Box::new(TimerOnly)
        }
    };
    #[cfg(not(target_os = "linux"))]
    let mut wake: Box<dyn Wakeups> = Box::new(TimerOnly);
    // The socket is open; sysfs is world-readable: root is no longer needed.
    if let Err(e) = crate::sys::drop_privileges() {
        notes.push(format!("device worker keeps root: {e}"));
    }
    let notes: Vec<Event> = notes
        .into_iter()
        .map(|n| Event::now(EventKind::Status, n))
        .collect();
    let sysfs: PathBuf = args.sysfs.clone();
    let result = Event::write_worker_lines(&mut out, &notes)
        .and_then(|()| run_loop(&sysfs, &mut *wake, &mut out, &stop));
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(crate::error::Error::io("writing device events", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A fake sysfs, laid out like the real one: devices under `devices/`, linked from
    /// `bus/usb/devices/` together with their interfaces and the root hub. Removed on drop.
    struct FakeSys(PathBuf);

    const HUB: &str = "devices/pci0000:00/0000:00:14.0/usb1";

    impl FakeSys {
        fn new(name: &str) -> FakeSys {
            let p =
                std::env::temp_dir().join(format!("proctor-devices-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(p.join("bus/usb/devices")).expect("mkdir");
            let f = FakeSys(p);
            f.write(&format!("{HUB}/idVendor"), "1d6b");
            f.write(&format!("{HUB}/bDeviceClass"), "09");
            f.link("usb1", HUB);
            f
        }

        fn write(&self, rel: &str, content: &str) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, format!("{content}\n")).expect("write");
        }

        fn link(&self, name: &str, target_rel: &str) {
            std::os::unix::fs::symlink(
                format!("../../../{target_rel}"),
                self.0.join("bus/usb/devices").join(name),
            )
            .expect("symlink");
        }

        /// Plugs a device at `path` (`1-2`) with the given strings and interface classes.
        fn plug(&self, path: &str, ids: (&str, &str), strings: [Option<&str>; 3], ifaces: &[&str]) {
            let dir = format!("{HUB}/{path}");
            self.write(&format!("{dir}/idVendor"), ids.0);
            self.write(&format!("{dir}/idProduct"), ids.1);
            self.write(&format!("{dir}/bDeviceClass"), "00");
            self.write(&format!("{dir}/devnum"), "7");
            for (name, value) in ["manufacturer", "product", "serial"].iter().zip(strings) {
                if let Some(v) = value {
                    self.write(&format!("{dir}/{name}"), v);
                }
            }
            for (i, class) in ifaces.iter().enumerate() {
                let iface = format!("{dir}/{path}:1.{i}");
                self.write(&format!("{iface}/bInterfaceClass"), class);
                self.link(&format!("{path}:1.{i}"), &iface);
            }
            self.link(path, &dir);
        }

        /// Unplugs it: the kernel removes the links and the directory.
        fn unplug(&self, path: &str) {
            let devices = self.0.join("bus/usb/devices");
            for e in fs::read_dir(&devices).expect("list").flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n == path || n.starts_with(&format!("{path}:")) {
                    fs::remove_file(e.path()).expect("unlink");
                }
            }
            fs::remove_dir_all(self.0.join(format!("{HUB}/{path}"))).expect("rmdir");
        }
    }

    impl Drop for FakeSys {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn class_words_follow_the_most_telling_interface() {
        let cases: [(&[u8], &str); 14] = [
            (&[0x08], "mass-storage"),
            (&[0x03, 0x08], "mass-storage"),
            (&[0xe0], "wireless"),
            (&[0x02, 0x0a], "network"),
            (&[0x0a], "network"),
            (&[0x06, 0xff], "phone"),
            (&[0x09], "hub"),
            (&[0x01, 0x03], "audio"),
            (&[0x0e, 0x01], "video"),
            (&[0x07], "printer"),
            (&[0x03], "hid"),
            (&[0xff], "other"),
            (&[], "other"),
            (&[0x09, 0x03], "hid"),
        ];
        for (codes, word) in cases {
            assert_eq!(class_word(codes), word, "{codes:02x?}");
        }
    }

    #[test]
    fn device_names_exclude_hubs_and_interfaces() {
        for ok in ["1-1", "3-2.4.1", "10-12"] {
            assert!(is_device_name(ok), "{ok}");
        }
        for bad in [
            "usb1", "1-1:1.0", "1-", "-1", "1-1.", "1-.1", "a-1", "1", "", "1-1 x",
        ] {
            assert!(!is_device_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn usb_uevents_are_recognised() {
        assert!(is_usb_uevent(
            b"add@/devices/pci0000:00/usb1/1-2\0ACTION=add\0DEVPATH=/devices/pci0000:00/usb1/1-2\0SUBSYSTEM=usb\0DEVTYPE=usb_device\0"
        ));
        assert!(!is_usb_uevent(
            b"add@/devices/virtual/net/veth0\0ACTION=add\0SUBSYSTEM=net\0"
        ));
        assert!(!is_usb_uevent(b"SUBSYSTEM=usbmisc\0"));
        assert!(!is_usb_uevent(b""));
    }

    #[test]
    fn scans_a_fake_sysfs() {
        let f = FakeSys::new("scan");
        f.plug(
            "1-2",
            ("0781", "5581"),
            [Some(" SanDisk"), Some("Ultra"), Some("4C53000123")],
            &["08"],
        );
        f.plug(
            "1-3.1",
            ("0bda", "8812"),
            [Some("Realtek"), None, None],
            &["ff"],
        );
        f.plug(
            "1-4",
            ("046d", "c52b"),
            [None, None, None],
            &["03", "03", "03"],
        );
        let got = scan(&f.0).expect("scan");
        let paths: Vec<&str> = got.iter().map(|d| d.bus_path.as_str()).collect();
        assert_eq!(paths, ["1-2", "1-3.1", "1-4"]);
        assert_eq!(
            got[0],
            UsbDevice {
                bus_path: "1-2".into(),
                devnum: "7".into(),
                vendor_id: "0781".into(),
                product_id: "5581".into(),
                vendor: "SanDisk".into(),
                model: "Ultra".into(),
                serial: "4C53000123".into(),
                classes: vec![0x08],
                configured: true,
            }
        );
        assert_eq!(
            got[0].describe("plugged"),
            "plugged usb 1-2 vendor_id=0781 product_id=5581 vendor=\"SanDisk\" model=\"Ultra\" \
             serial=\"4C53000123\" class=mass-storage"
        );
        assert_eq!(
            got[1].describe("present"),
            "present usb 1-3.1 vendor_id=0bda product_id=8812 vendor=\"Realtek\" class=other"
        );
        assert_eq!(got[2].class(), "hid");
        assert_eq!(got[2].classes, [0x03]);
        let none = FakeSys::new("nobus");
        fs::remove_dir_all(none.0.join("bus")).expect("rm");
        assert_eq!(
            scan(&none.0).map_err(|e| e.kind()),
            Err(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn hostile_device_strings_are_escaped() {
        let d = UsbDevice {
            bus_path: "1-2".into(),
            vendor: "Evil\" class=hid".into(),
            model: "a\nb\u{202e}".into(),
            serial: "x y".into(),
            ..UsbDevice::default()
        };
        assert_eq!(
            d.describe("plugged"),
            "plugged usb 1-2 vendor_id=\"\" product_id=\"\" vendor=\"Evil\\x22 class=hid\" \
             model=\"a\\x0ab\\u{202e}\" serial=\"x y\" class=other"
        );
    }

    fn details(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                assert_eq!(e.kind, EventKind::Device);
                e.detail.clone()
            })
            .collect()
    }

    fn dev(path: &str, configured: bool, classes: &[u8]) -> UsbDevice {
        UsbDevice {
            bus_path: path.into(),
            devnum: "3".into(),
            vendor_id: "abcd".into(),
            product_id: "0001".into(),
            classes: classes.to_vec(),
            configured,
            ..UsbDevice::default()
        }
    }

    fn short(line: &str) -> String {
        let mut w = line.split(' ');
        let verb = w.next().unwrap_or_default();
        let path = w.nth(1).unwrap_or_default();
        let class = line.rsplit("class=").next().unwrap_or_default();
        format!("{verb} {path} {class}")
    }

    #[test]
    fn tracker_reports_present_plugged_removed_and_replugs() {
        let t0 = Instant::now();
        let mut t = Tracker::new();
        // The baseline reports even unconfigured devices at once.
        let ev = t.update(vec![dev("1-1", true, &[0x03]), dev("1-2", false, &[])], t0);
        assert_eq!(
            details(&ev).iter().map(|d| short(d)).collect::<Vec<_>>(),
            ["present 1-1 hid", "present 1-2 other"]
        );
        assert!(
            t.update(vec![dev("1-1", true, &[3]), dev("1-2", false, &[])], t0)
                .is_empty()
        );
        // A new device without interfaces waits for them...
        let ms = Duration::from_millis;
        let scan2 = || {
            vec![
                dev("1-1", true, &[3]),
                dev("1-2", false, &[]),
                dev("2-1", false, &[]),
            ]
        };
        assert!(t.update(scan2(), t0 + ms(10)).is_empty());
        assert!(t.has_waiting());
        let mut configured = scan2();
        configured[2] = dev("2-1", true, &[0xe0]);
        let ev = t.update(configured.clone(), t0 + ms(60));
        assert_eq!(short(&details(&ev)[0]), "plugged 2-1 wireless");
        assert!(!t.has_waiting());
        // ...or is reported after the grace period as it is.
        let mut slow = configured.clone();
        slow.push(dev("2-2", false, &[]));
        assert!(t.update(slow.clone(), t0 + ms(100)).is_empty());
        let ev = t.update(slow.clone(), t0 + ms(100) + CONFIGURE_GRACE);
        assert_eq!(short(&details(&ev)[0]), "plugged 2-2 other");
        // Another device at a known port (new device number): removed, then plugged.
        let mut swapped = slow.clone();
        swapped[0].devnum = "9".into();
        swapped[0].classes = vec![0x08];
        let ev = t.update(swapped.clone(), t0 + ms(2000));
        assert_eq!(
            details(&ev).iter().map(|d| short(d)).collect::<Vec<_>>(),
            ["removed 1-1 hid", "plugged 1-1 mass-storage"]
        );
        // Unplugged: removed with the text it was reported with.
        let ev = t.update(swapped[1..].to_vec(), t0 + ms(2100));
        assert_eq!(
            details(&ev),
            ["removed usb 1-1 vendor_id=abcd product_id=0001 class=mass-storage"]
        );
        assert_eq!(t.len(), 3);
        // A device held back and unplugged before it was reported leaves no trace.
        let mut brief = swapped[1..].to_vec();
        brief.push(dev("3-1", false, &[]));
        assert!(t.update(brief, t0 + ms(2200)).is_empty());
        assert!(t.update(swapped[1..].to_vec(), t0 + ms(2300)).is_empty());
        assert!(!t.has_waiting());
    }

    /// The kernel's uevents reach the socket: a synthetic `change` event (root writes to a
    /// device's `uevent` file) arrives, and is not taken for a USB one.
    #[cfg(target_os = "linux")]
    #[test]
    fn uevent_socket_receives_kernel_events() {
        let mut sock = UeventSocket::open().expect("open the uevent socket");
        let trigger = Path::new("/sys/devices/virtual/mem/null/uevent");
        fs::write(trigger, "change\n").expect("the tests run as root with a writable /sys");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = (0, false);
        while got.0 == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            got = sock.drain().expect("drain");
        }
        assert!(got.0 > 0, "no uevent arrived");
        assert!(!got.1, "a mem device event is not a USB event");
    }

    /// Wake-ups that change the fake tree step by step, then stop the loop.
    struct Script {
        steps: Vec<Box<dyn FnMut() -> bool>>,
        at: usize,
        stop: Arc<AtomicBool>,
    }

    impl Wakeups for Script {
        fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
            std::thread::sleep(timeout.min(Duration::from_millis(20)));
            let Some(step) = self.steps.get_mut(self.at) else {
                self.stop.store(true, Ordering::SeqCst);
                return Ok(false);
            };
            self.at += 1;
            Ok(step())
        }
        fn notifying(&self) -> bool {
            true
        }
    }

    #[test]
    fn worker_loop_reports_a_plug_and_an_unplug_from_the_fake_tree() {
        let f = Arc::new(FakeSys::new("loop"));
        f.plug(
            "1-1",
            ("046d", "c52b"),
            [Some("Logitech"), None, None],
            &["03"],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (a, b) = (f.clone(), f.clone());
        let idle = || Box::new(|| false) as Box<dyn FnMut() -> bool>;
        let mut script = Script {
            steps: vec![
                idle(),
                Box::new(move || {
                    a.plug(
                        "1-4",
                        ("0e8d", "2000"),
                        [Some("MediaTek"), Some("Phone"), Some("0123")],
                        &["06", "ff"],
                    );
                    true
                }),
                idle(),
                idle(),
                idle(),
                Box::new(move || {
                    b.unplug("1-4");
                    true
                }),
                idle(),
                idle(),
                idle(),
            ],
            at: 0,
            stop: stop.clone(),
        };
        let mut out = Vec::new();
        let started = Instant::now();
        run_loop(&f.0, &mut script, &mut out, &stop).expect("loop");
        // Notifications, not the one-second rescan, found both changes.
        assert!(started.elapsed() < RESCAN_EVERY, "{:?}", started.elapsed());
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let e = Event::parse_worker_line(l).expect("worker line");
                format!("{} {}", e.kind, e.detail)
            })
            .collect();
        let phone = "usb 1-4 vendor_id=0e8d product_id=2000 vendor=\"MediaTek\" model=\"Phone\" serial=\"0123\" class=phone";
        assert_eq!(
            lines,
            [
                "device present usb 1-1 vendor_id=046d product_id=c52b vendor=\"Logitech\" class=hid".to_string(),
                format!(
                    "status watching USB devices in {} (1 present; kernel notifications and a rescan every second)",
                    f.0.join("bus/usb/devices").display()
                ),
                format!("device plugged {phone}"),
                format!("device removed {phone}"),
            ]
        );
    }
}
