//! The mount watcher worker (`proctor __mount-worker`): a child process of the client daemon
//! that reports every file system mounted or unmounted on the lab PC, one event per line on
//! stdout, so a memory stick or a network share appearing during an exam is seen at once.
//!
//! The OS is behind [`MountSource`]: on Linux [`ProcMountinfo`] keeps `/proc/self/mountinfo`
//! open and sleeps in `poll(2)` until the kernel flags a change of the mount table, so a mount
//! is reported within milliseconds without busy polling; elsewhere [`PollingSource`] lists
//! disks through sysinfo every 500 ms. The loop in [`run_loop`] (baseline, diff, formatting)
//! only sees the trait, so the tests drive it with scripted tables. If the mount table cannot
//! be read the worker says so in a status event and keeps retrying instead of dying: a worker
//! that exits is a blind spot.

use super::mountinfo::{
    MountChange, MountClass, MountEntry, classify, diff, network_options, parse_remote,
};
use super::usb::{self, UsbInfo};
use crate::event::{Event, EventKind, escape, escape_bytes};
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest single wait for a change, so a stop request is noticed within this time.
pub const WAIT_SLICE: Duration = Duration::from_millis(150);
/// How often an unreadable mount table is retried.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Listing interval of [`PollingSource`] on systems without a change notification.
pub const POLLING_INTERVAL: Duration = Duration::from_millis(500);

/// Where mount tables come from. The worker loop is written against this seam so that it can be
/// tested with scripted tables instead of real mounts.
pub trait MountSource {
    /// The current mount table.
    fn snapshot(&mut self) -> io::Result<Vec<MountEntry>>;
    /// Waits up to `timeout` for a sign that the table may have changed. `Ok(false)` means no
    /// change yet (the caller checks whether to stop and waits again); `Ok(true)` means take a
    /// new snapshot. Spurious `true` is harmless: an unchanged table produces no events.
    fn wait_change(&mut self, timeout: Duration) -> io::Result<bool>;
}

/// The Linux source: `/proc/self/mountinfo`, kept open. The kernel marks the open file with
/// `POLLPRI | POLLERR` whenever the mount namespace's table changes, so waiting is a `poll(2)`
/// on it and reading is a seek to 0 and a reread.
#[cfg(target_os = "linux")]
pub struct ProcMountinfo {
    path: PathBuf,
    file: Option<std::fs::File>,
}

#[cfg(target_os = "linux")]
impl ProcMountinfo {
    /// A source reading the given mountinfo file (opened lazily and reopened after errors).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ProcMountinfo {
            path: path.into(),
            file: None,
        }
    }

    /// The process's own mount namespace: `/proc/self/mountinfo`.
    pub fn system() -> Self {
        Self::new("/proc/self/mountinfo")
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        if self.file.is_none() {
            self.file = Some(std::fs::File::open(&self.path)?);
        }
        let result = match self.file.as_mut() {
            Some(f) => f.seek(SeekFrom::Start(0)).and_then(|_| {
                // One large buffer keeps the number of read calls (and the chance of a torn
                // read while mounts change) small.
                let mut buf = Vec::with_capacity(64 * 1024);
                f.read_to_end(&mut buf).map(|_| buf)
            }),
            None => Err(io::Error::other("mountinfo not open")),
        };
        if result.is_err() {
            self.file = None;
        }
        result
    }

    /// `poll(2)` for the change flag. Consumes the flag when it is set.
    fn poll_changed(&mut self, timeout: Duration) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let Some(f) = self.file.as_ref() else {
            std::thread::sleep(timeout);
            return Ok(true);
        };
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLPRI | libc::POLLERR,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            self.file = None;
            return Err(e);
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            self.file = None;
            return Err(io::Error::other("mountinfo descriptor became invalid"));
        }
        Ok(rc > 0 && pfd.revents & (libc::POLLPRI | libc::POLLERR) != 0)
    }
}

#[cfg(target_os = "linux")]
impl MountSource for ProcMountinfo {
    fn snapshot(&mut self) -> io::Result<Vec<MountEntry>> {
        // If the table changed while we were reading it the text may be torn: read again.
        let mut text = self.read_all()?;
        for _ in 0..4 {
            if !self.poll_changed(Duration::ZERO)? {
                break;
            }
            text = self.read_all()?;
        }
        Ok(super::mountinfo::parse_mountinfo(&text))
    }

    fn wait_change(&mut self, timeout: Duration) -> io::Result<bool> {
        self.poll_changed(timeout)
    }
}

/// The portable source: lists disks with sysinfo every [`POLLING_INTERVAL`]. Used where there is
/// no mountinfo change notification (macOS); compiled everywhere so it stays buildable.
/// Mount ids are synthesised from device, mount point and type, so a mount that disappears and
/// comes back identical between two listings is not seen.
pub struct PollingSource {
    disks: Option<sysinfo::Disks>,
    interval: Duration,
    next_due: Instant,
}

impl PollingSource {
    /// A source that lists the disks every `interval`.
    pub fn new(interval: Duration) -> Self {
        PollingSource {
            disks: None,
            interval,
            next_due: Instant::now(),
        }
    }
}

impl MountSource for PollingSource {
    fn snapshot(&mut self) -> io::Result<Vec<MountEntry>> {
        use std::hash::{Hash, Hasher};
        use sysinfo::{DiskRefreshKind, Disks};
        self.next_due = Instant::now() + self.interval;
        // Nothing but the list: sizes would mean statfs on every mount, which hangs on a dead
        // hard-mounted NFS server.
        let disks = match self.disks.as_mut() {
            Some(d) => {
                d.refresh_specifics(true, DiskRefreshKind::nothing());
                d
            }
            None => self.disks.insert(
                Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing())
                    .map_err(io::Error::other)?,
            ),
        };
        Ok(disks
            .iter()
            .map(|d| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (d.name(), d.mount_point(), d.file_system()).hash(&mut h);
                MountEntry {
                    mount_id: h.finish(),
                    parent_id: 0,
                    dev: Default::default(),
                    root: PathBuf::from("/"),
                    mount_point: d.mount_point().to_path_buf(),
                    options: if d.is_read_only() { "ro" } else { "rw" }.to_string(),
                    fstype: d.file_system().to_string_lossy().into_owned(),
                    source: d.name().to_string_lossy().into_owned(),
                    super_options: String::new(),
                }
            })
            .collect())
    }

    fn wait_change(&mut self, timeout: Duration) -> io::Result<bool> {
        let now = Instant::now();
        if now < self.next_due {
            std::thread::sleep(timeout.min(self.next_due - now));
        }
        Ok(Instant::now() >= self.next_due)
    }
}

/// Turns mount entries into event text, looking up USB details in sysfs for block devices.
/// The roots are fields so tests can point them at a fake tree.
#[derive(Debug, Clone)]
pub struct Describer {
    /// Where sysfs is mounted (`/sys`).
    pub sysfs_root: PathBuf,
    /// Where device nodes live (`/dev`), for resolving `/dev/mapper/..` and `/dev/disk/..`.
    pub dev_root: PathBuf,
}

impl Describer {
    /// The real system's `/sys` and `/dev`.
    pub fn system() -> Self {
        Describer {
            sysfs_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
        }
    }

    /// The detail text for a mount or unmount event of `e` (see [`describe_entry`]).
    pub fn describe(&self, e: &MountEntry) -> String {
        let usb = if classify(e) == MountClass::Block {
            usb::lookup(&self.sysfs_root, &self.dev_root, &e.source, e.dev)
        } else {
            None
        };
        describe_entry(e, usb.as_ref())
    }
}

/// Formats the detail of a mount event, e.g.
/// `/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=usb vendor_id=0781 ...` or
/// `//fileserver/exams on /mnt/share type=cifs class=network remote=fileserver share=/exams`.
///
/// Every piece of text from the lab PC is escaped with [`escape`]; values containing
/// whitespace or quotes are double-quoted (inner `"` as `\x22`), so `on "/tmp/a b"` cannot be
/// confused with another field. USB strings are always quoted. `usb` upgrades a block device to
/// `class=usb`. Network mounts show `remote=` (and `user=`, `share=`) instead of `source=`
/// when the source names a server, and `addr=` when the kernel's options give the server's
/// address and the source named it otherwise (`remote=fs.lab ... addr=10.0.0.2`); `user=`
/// comes from the source or from a CIFS `username=` option.
pub fn describe_entry(e: &MountEntry, usb: Option<&UsbInfo>) -> String {
    let mut class = classify(e);
    if class == MountClass::Block && usb.is_some() {
        class = MountClass::Usb;
    }
    let source = token(&escape(&e.source));
    let mount_point = token(&escape_bytes(e.mount_point.as_os_str().as_encoded_bytes()));
    let mut d = format!(
        "{source} on {mount_point} type={}",
        token(&escape(&e.fstype))
    );
    let remote = if class == MountClass::Network {
        parse_remote(&e.source)
    } else {
        None
    };
    if remote.is_none() {
        d.push_str(&format!(" source={source}"));
    }
    d.push_str(&format!(" class={class}"));
    if e.root != Path::new("/") {
        d.push_str(&format!(
            " root={}",
            token(&escape_bytes(e.root.as_os_str().as_encoded_bytes()))
        ));
    }
    if let Some(r) = remote {
        let opts = network_options(&e.super_options);
        if let Some(u) = r.user.as_ref().or(opts.user.as_ref()) {
            d.push_str(&format!(" user={}", token(&escape(u))));
        }
        d.push_str(&format!(" remote={}", token(&escape(&r.server))));
        if !r.share.is_empty() {
            d.push_str(&format!(" share={}", token(&escape(&r.share))));
        }
        if let Some(addr) = opts.addr
            && addr.to_string() != r.server
        {
            d.push_str(&format!(" addr={addr}"));
        }
    }
    if let Some(u) = usb {
        d.push_str(&format!(
            " vendor_id={} product_id={}",
            token(&escape(&u.vendor_id)),
            token(&escape(&u.product_id))
        ));
        for (key, value) in [
            ("vendor", &u.manufacturer),
            ("model", &u.product),
            ("serial", &u.serial),
        ] {
            if let Some(v) = value {
                d.push_str(&format!(" {key}={}", quote(&escape(v))));
            }
        }
        if let Some(size) = u.size_bytes {
            d.push_str(&format!(" size={}", format_size(size)));
        }
    }
    d
}

/// Quotes already-escaped text if it is empty or contains whitespace or `"`.
pub(crate) fn token(escaped: &str) -> String {
    if escaped.is_empty() || escaped.chars().any(|c| c.is_whitespace() || c == '"') {
        quote(escaped)
    } else {
        escaped.to_string()
    }
}

/// Double-quotes already-escaped text. An inner `"` is written `\x22`, in the notation of
/// [`escape`], so a quoted value never contains a quote and always ends at the next `"`.
pub(crate) fn quote(escaped: &str) -> String {
    format!("\"{}\"", escaped.replace('"', "\\x22"))
}

/// A byte count in decimal units with one decimal (`15.5GB`), as drives are labelled.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

/// Sleeps for `d`, in short slices, returning early once `stop` is set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    loop {
        let now = Instant::now();
        if stop.load(Ordering::SeqCst) || now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// The worker loop: reports the current mounts once as `status` events (`baseline mount ...`,
/// then `baseline complete: N mounts`, so a reader knows the baseline is over), then a `mount` or
/// `unmount` event per change, until `stop` is set. Unmounts reuse the text recorded at mount
/// time, since the device (and its sysfs entry) is often gone by then.
///
/// Read errors are reported once as a `status` event and retried every `retry_every`; a
/// recovery is reported too, and changes made meanwhile show up as ordinary events. Only a
/// failure to write to `out` ends the loop with an error.
pub fn run_loop(
    source: &mut dyn MountSource,
    describer: &Describer,
    out: &mut dyn Write,
    stop: &AtomicBool,
    retry_every: Duration,
) -> io::Result<()> {
    let mut known: Option<Vec<MountEntry>> = None;
    let mut details: HashMap<u64, String> = HashMap::new();
    let mut failing: Option<String> = None;
    let report_failure =
        |out: &mut dyn Write, failing: &mut Option<String>, what: &str, e: io::Error| {
            let msg = format!(
                "cannot {what} the mount table: {e}; retrying every {:.1}s",
                retry_every.as_secs_f64()
            );
            if failing.as_deref() == Some(msg.as_str()) {
                return Ok(());
            }
            let r = Event::write_worker_lines(out, &[Event::now(EventKind::Status, msg.clone())]);
            *failing = Some(msg);
            r
        };
    while !stop.load(Ordering::SeqCst) {
        let table = match source.snapshot() {
            Ok(t) => t,
            Err(e) => {
                report_failure(out, &mut failing, "read", e)?;
                sleep_unless_stopped(retry_every, stop);
                continue;
            }
        };
        let mut batch = Vec::new();
        if failing.take().is_some() {
            batch.push(Event::now(EventKind::Status, "mount table readable again"));
        }
        match &known {
            None => {
                for e in &table {
                    let d = describer.describe(e);
                    batch.push(Event::now(EventKind::Status, format!("baseline mount {d}")));
                    details.insert(e.mount_id, d);
                }
                batch.push(Event::now(
                    EventKind::Status,
                    format!("baseline complete: {} mounts", table.len()),
                ));
            }
            Some(old) => {
                for change in diff(old, &table) {
                    match change {
                        MountChange::Unmounted(e) => {
                            let d = details
                                .remove(&e.mount_id)
                                .unwrap_or_else(|| describer.describe(&e));
                            batch.push(Event::now(EventKind::Unmount, d));
                        }
                        MountChange::Mounted(e) => {
                            let d = describer.describe(&e);
                            details.insert(e.mount_id, d.clone());
                            batch.push(Event::now(EventKind::Mount, d));
                        }
                    }
                }
            }
        }
        known = Some(table);
        Event::write_worker_lines(out, &batch)?;
        // Wait for the next change in short slices so a stop request is seen promptly.
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            match source.wait_change(WAIT_SLICE) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    report_failure(out, &mut failing, "watch", e)?;
                    sleep_unless_stopped(retry_every, stop);
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The source for this platform: change notification on Linux, polling elsewhere.
fn system_source() -> Box<dyn MountSource> {
    #[cfg(target_os = "linux")]
    {
        Box::new(ProcMountinfo::system())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Box::new(PollingSource::new(POLLING_INTERVAL))
    }
}

/// Runs the hidden `__mount-worker` subcommand: watches mounts and writes events to stdout until
/// stdin is closed (the client's way of saying stop), a stop signal arrives, or the parent dies.
/// A closed stdout means the client is gone, which is a normal end too.
pub fn run_worker() -> crate::error::Result<()> {
    crate::sys::die_with_parent();
    let stop = crate::sys::stop_on_stdin_eof();
    let mut source = system_source();
    let describer = Describer::system();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    // Everything this worker reads is world-readable: it needs no root at all.
    if let Err(e) = crate::sys::drop_privileges() {
        let line = Event::now(EventKind::Status, format!("mount worker keeps root: {e}"));
        let _ = out.write_all(line.to_worker_line().as_bytes());
    }
    match run_loop(&mut *source, &describer, &mut out, &stop, RETRY_EVERY) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(crate::error::Error::io("writing mount events", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::mountinfo::parse_line;
    use std::collections::VecDeque;
    use std::sync::Arc;

    /// Plays back a script of tables and errors, then sets `stop`.
    struct Scripted {
        steps: VecDeque<io::Result<Vec<MountEntry>>>,
        last: Vec<MountEntry>,
        stop: Arc<AtomicBool>,
        watch_error_once: bool,
    }

    impl MountSource for Scripted {
        fn snapshot(&mut self) -> io::Result<Vec<MountEntry>> {
            match self.steps.pop_front() {
                Some(Ok(t)) => {
                    self.last = t.clone();
                    Ok(t)
                }
                Some(Err(e)) => Err(e),
                None => {
                    self.stop.store(true, Ordering::SeqCst);
                    Ok(self.last.clone())
                }
            }
        }
        fn wait_change(&mut self, _: Duration) -> io::Result<bool> {
            if std::mem::take(&mut self.watch_error_once) {
                return Err(io::Error::other("watch broke"));
            }
            Ok(true)
        }
    }

    fn entry(line: &str) -> MountEntry {
        parse_line(line.as_bytes()).expect("valid test line")
    }

    fn nowhere() -> Describer {
        let p = std::env::temp_dir().join("proctor-nonexistent-sysfs-root");
        Describer {
            sysfs_root: p.clone(),
            dev_root: p,
        }
    }

    fn run(steps: Vec<io::Result<Vec<MountEntry>>>, watch_error_once: bool) -> Vec<Event> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut src = Scripted {
            steps: steps.into(),
            last: Vec::new(),
            stop: stop.clone(),
            watch_error_once,
        };
        let mut out = Vec::new();
        run_loop(
            &mut src,
            &nowhere(),
            &mut out,
            &stop,
            Duration::from_millis(1),
        )
        .expect("writes to a Vec succeed");
        let text = String::from_utf8(out).expect("utf8 output");
        assert!(text.ends_with('\n') || text.is_empty());
        text.lines()
            .map(|l| Event::parse_worker_line(l).expect("well-formed worker line"))
            .collect()
    }

    fn summary(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{} {}", e.kind, e.detail))
            .collect()
    }

    const ROOT: &str = "27 1 254:0 / / rw - ext4 /dev/vda rw";
    const PROC: &str = "22 27 0:21 / /proc rw - proc proc rw";
    const TMP: &str = "50 27 0:60 / /tmp/x rw - tmpfs tmpfs rw";
    const SPACE: &str = "51 27 0:61 / /tmp/a\\040b rw - tmpfs my\\040src rw";
    const SHARE: &str = "52 27 0:62 / /mnt/share rw - cifs //fileserver/exams rw";

    #[test]
    fn baseline_then_changes() {
        let base = vec![entry(ROOT), entry(PROC)];
        let mut second = base.clone();
        second.push(entry(TMP));
        second.push(entry(SPACE));
        let mut third = second.clone();
        third.retain(|e| e.mount_id != 50);
        third.push(entry(SHARE));
        let events = run(vec![Ok(base.clone()), Ok(second), Ok(third)], false);
        assert_eq!(
            summary(&events),
            [
                "status baseline mount /dev/vda on / type=ext4 source=/dev/vda class=block",
                "status baseline mount proc on /proc type=proc source=proc class=virtual",
                "status baseline complete: 2 mounts",
                "mount tmpfs on /tmp/x type=tmpfs source=tmpfs class=virtual",
                "mount \"my src\" on \"/tmp/a b\" type=tmpfs source=\"my src\" class=virtual",
                "unmount tmpfs on /tmp/x type=tmpfs source=tmpfs class=virtual",
                "mount //fileserver/exams on /mnt/share type=cifs class=network remote=fileserver share=/exams",
            ]
        );
    }

    #[test]
    fn unreadable_table_degrades_and_recovers() {
        let base = vec![entry(ROOT)];
        let mut later = base.clone();
        later.push(entry(TMP));
        let events = run(
            vec![
                Err(io::Error::other("boom")),
                Err(io::Error::other("boom")),
                Ok(base),
                Err(io::Error::new(io::ErrorKind::PermissionDenied, "denied")),
                Ok(later),
            ],
            false,
        );
        let s = summary(&events);
        assert_eq!(s.len(), 7, "{s:#?}");
        assert!(s[0].starts_with("status cannot read the mount table: boom; retrying"));
        assert_eq!(s[1], "status mount table readable again");
        assert!(s[2].starts_with("status baseline mount /dev/vda"));
        assert_eq!(s[3], "status baseline complete: 1 mounts");
        assert!(s[4].starts_with("status cannot read the mount table: denied"));
        assert_eq!(s[5], "status mount table readable again");
        assert!(s[6].starts_with("mount tmpfs on /tmp/x "));
        assert!(events.iter().all(|e| e.ts_ms > 0));
    }

    #[test]
    fn watch_error_is_reported_and_loop_continues() {
        let base = vec![entry(ROOT)];
        let mut later = base.clone();
        later.push(entry(TMP));
        let events = run(vec![Ok(base), Ok(later)], true);
        let s = summary(&events);
        assert!(
            s[2].starts_with("status cannot watch the mount table: watch broke"),
            "{s:#?}"
        );
        assert_eq!(s[3], "status mount table readable again");
        assert!(s[4].starts_with("mount tmpfs on /tmp/x"));
    }

    #[test]
    fn hostile_text_is_escaped_and_quoted() {
        let e = entry("60 27 0:70 /sub\\011dir /tmp/q\"x\\012y\\134z rw - tmpfs a\\040\"b rw");
        let d = describe_entry(&e, None);
        assert_eq!(
            d,
            r#""a \x22b" on "/tmp/q\x22x\x0ay\z" type=tmpfs source="a \x22b" class=virtual root=/sub\x09dir"#
        );
        assert!(crate::event::is_clean(&d));
        let empty = entry("61 27 0:71 / /e rw - tmpfs  rw");
        assert_eq!(
            describe_entry(&empty, None),
            "\"\" on /e type=tmpfs source=\"\" class=virtual"
        );
        let ssh = entry("62 27 0:72 / /home/s/r rw - fuse.sshfs bob@host:docs rw");
        assert_eq!(
            describe_entry(&ssh, None),
            "bob@host:docs on /home/s/r type=fuse.sshfs class=network user=bob remote=host share=docs"
        );
        let nfs = entry(
            "64 27 0:74 / /mnt/nfs rw,relatime - nfs4 fs.lab:/export/exams rw,vers=4.2,hard,proto=tcp,clientaddr=10.0.0.5,addr=10.0.0.2",
        );
        assert_eq!(
            describe_entry(&nfs, None),
            "fs.lab:/export/exams on /mnt/nfs type=nfs4 class=network remote=fs.lab share=/export/exams addr=10.0.0.2"
        );
        let nfs6 = entry("65 27 0:75 / /mnt/n6 rw - nfs [fd00::2]:/srv rw,vers=3,addr=fd00::2");
        assert_eq!(
            describe_entry(&nfs6, None),
            "[fd00::2]:/srv on /mnt/n6 type=nfs class=network remote=fd00::2 share=/srv"
        );
        let smb = entry(
            "66 27 0:76 / /mnt/smb rw - smb3 //10.0.0.3/exams\\040room rw,vers=3.1.1,username=bob,uid=1000,addr=10.0.0.3",
        );
        assert_eq!(
            describe_entry(&smb, None),
            "\"//10.0.0.3/exams room\" on /mnt/smb type=smb3 class=network user=bob remote=10.0.0.3 share=\"/exams room\""
        );
        let forged = entry("67 27 0:77 / /mnt/f rw - cifs //srv/s rw,username=a\\040b=c,addr=x");
        assert_eq!(
            describe_entry(&forged, None),
            "//srv/s on /mnt/f type=cifs class=network user=\"a b=c\" remote=srv share=/s"
        );
        let tag = entry("63 27 0:73 / /mnt/9p rw - 9p hostshare rw");
        assert_eq!(
            describe_entry(&tag, None),
            "hostshare on /mnt/9p type=9p source=hostshare class=network"
        );
    }

    #[test]
    fn usb_details_are_formatted() {
        let e = entry("41 27 8:17 / /media/usb rw - vfat /dev/sdb1 rw");
        let info = UsbInfo {
            block_device: "sdb1".into(),
            vendor_id: "0781".into(),
            product_id: "5581".into(),
            manufacturer: Some("SanDisk".into()),
            product: Some("Ultra \"Fit\"".into()),
            serial: Some("4C53".into()),
            size_bytes: Some(15_500_000_000),
        };
        assert_eq!(
            describe_entry(&e, Some(&info)),
            "/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=usb vendor_id=0781 \
             product_id=5581 vendor=\"SanDisk\" model=\"Ultra \\x22Fit\\x22\" serial=\"4C53\" size=15.5GB"
        );
        let bare = UsbInfo {
            vendor_id: "abcd".into(),
            product_id: "0001".into(),
            ..Default::default()
        };
        assert_eq!(
            describe_entry(&e, Some(&bare)),
            "/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=usb vendor_id=abcd product_id=0001"
        );
        assert_eq!(
            describe_entry(&e, None),
            "/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=block"
        );
    }

    #[cfg(unix)]
    #[test]
    fn describer_finds_usb_in_fake_sysfs() {
        let root =
            std::env::temp_dir().join(format!("proctor-mounts-{}-sysfs", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let stick = root.join("devices/usb1/1-1");
        let part = stick.join("1-1:1.0/host0/block/sdb/sdb1");
        std::fs::create_dir_all(&part).expect("mkdir");
        for (f, v) in [
            ("idVendor", "0781"),
            ("idProduct", "5581"),
            ("manufacturer", "SanDisk"),
            ("product", "Ultra"),
        ] {
            std::fs::write(stick.join(f), v).expect("write");
        }
        std::fs::write(part.join("size"), "2048\n").expect("write");
        std::fs::create_dir_all(root.join("class/block")).expect("mkdir");
        std::os::unix::fs::symlink(
            "../../devices/usb1/1-1/1-1:1.0/host0/block/sdb/sdb1",
            root.join("class/block/sdb1"),
        )
        .expect("symlink");
        let describer = Describer {
            sysfs_root: root.clone(),
            dev_root: root.join("no-dev"),
        };
        let d = describer.describe(&entry("41 27 8:17 / /media/usb rw - vfat /dev/sdb1 rw"));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(
            d,
            "/dev/sdb1 on /media/usb type=vfat source=/dev/sdb1 class=usb vendor_id=0781 \
             product_id=5581 vendor=\"SanDisk\" model=\"Ultra\" size=1.0MB"
        );
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(999), "999B");
        assert_eq!(format_size(1000), "1.0kB");
        assert_eq!(format_size(15_500_000_000), "15.5GB");
        assert_eq!(format_size(999_990), "1.0MB");
        assert_eq!(format_size(u64::MAX), "18.4EB");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_mountinfo_reads_this_system() {
        let mut src = ProcMountinfo::system();
        let table = src.snapshot().expect("mountinfo readable");
        assert!(table.iter().any(|e| e.mount_point == Path::new("/")));
        // Nothing changes in a test-sized instant (usually); either answer is fine, no error.
        src.wait_change(Duration::from_millis(1))
            .expect("poll works");
        let mut missing = ProcMountinfo::new("/nonexistent/mountinfo");
        assert!(missing.snapshot().is_err());
    }

    #[test]
    fn polling_source_lists_something() {
        let mut src = PollingSource::new(Duration::from_millis(20));
        let a = src.snapshot().expect("sysinfo lists disks");
        let mut woke = false;
        for _ in 0..10 {
            if src
                .wait_change(Duration::from_millis(10))
                .expect("no error")
            {
                woke = true;
                break;
            }
        }
        assert!(woke);
        let b = src.snapshot().expect("second listing");
        assert!(diff(&a, &b).len() <= a.len() + b.len());
    }
}
