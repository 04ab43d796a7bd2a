//! Pure parsing of Linux `/proc/self/mountinfo`, the difference between two mount tables, and
//! a first classification of each mount (network share, block device, FUSE, virtual).
//!
//! Nothing here touches the system: the mount worker ([`crate::client::mounts`]) reads the file
//! and asks sysfs ([`crate::client::usb`]) whether a block device hangs off a USB port. Keeping
//! the parser pure lets the tests feed it hostile input (escapes, garbage, random bytes) and be
//! sure it never panics; a lab PC's mount table is, after all, partly chosen by the student.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// A device number `major:minor` as shown in field 3 of mountinfo. Virtual file systems have
/// major 0 (an anonymous device), real block devices a non-zero major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DevId {
    /// Driver class of the device (0 for anonymous devices such as tmpfs).
    pub major: u32,
    /// Instance within the driver.
    pub minor: u32,
}

impl fmt::Display for DevId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One line of mountinfo: one mounted file system at one place in the tree.
///
/// Paths are kept as `PathBuf` because the kernel allows any bytes in them; the other fields
/// are text the kernel produced or the mounter chose, decoded lossily (they are only shown and
/// compared, never used to open anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique id of this mount while it exists (the key for [`diff`]).
    pub mount_id: u64,
    /// Id of the mount this one sits on (itself for the root of the namespace).
    pub parent_id: u64,
    /// `major:minor` of the device holding the file system.
    pub dev: DevId,
    /// The directory inside the file system that is mounted (not `/` for bind mounts).
    pub root: PathBuf,
    /// Where it is mounted, relative to the process's root.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,noatime`, ...).
    pub options: String,
    /// File system type, with a FUSE subtype if any (`ext4`, `fuse.sshfs`).
    pub fstype: String,
    /// Where the file system comes from: a device, `server:/export`, or a free-form name.
    pub source: String,
    /// Per-superblock options (may be empty).
    pub super_options: String,
}

/// One difference between two mount tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountChange {
    /// The entry is in the new table only.
    Mounted(MountEntry),
    /// The entry is in the old table only.
    Unmounted(MountEntry),
}

/// What kind of file system a mount is, as far as an invigilator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountClass {
    /// A share from another machine (NFS, SMB, sshfs, ...): a way to bring in material.
    Network,
    /// A block device behind a USB port (a memory stick, a phone in mass-storage mode).
    Usb,
    /// Any other block device (internal disks, loop devices, SD cards in a PCI reader).
    Block,
    /// A FUSE file system not known to be a network one.
    Fuse,
    /// A kernel or memory file system with no device behind it (tmpfs, proc, overlay, ...).
    Virtual,
}

impl MountClass {
    /// The word used after `class=` in event details.
    pub fn as_str(self) -> &'static str {
        match self {
            MountClass::Network => "network",
            MountClass::Usb => "usb",
            MountClass::Block => "block",
            MountClass::Fuse => "fuse",
            MountClass::Virtual => "virtual",
        }
    }
}

impl fmt::Display for MountClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The other end of a network mount, parsed from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteShare {
    /// User name given in the source (`user@host:path`), if any.
    pub user: Option<String>,
    /// Host name or address of the server (IPv6 brackets removed).
    pub server: String,
    /// The exported path or share name (`/export`, `/exams`); may be empty (sshfs home).
    pub share: String,
}

/// Parses the whole text of a mountinfo file. Malformed lines are skipped, never fatal: one
/// odd entry must not hide the others. Takes bytes because paths need not be UTF-8.
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountEntry> {
    text.split(|&b| b == b'\n').filter_map(parse_line).collect()
}

/// Parses one mountinfo line (without its newline); `None` if it is malformed.
///
/// Format: `id parent major:minor root mount_point options [optional...] - fstype source
/// super_options`. Fields are separated by single spaces; the kernel writes space, tab,
/// newline and backslash inside fields as octal escapes (`\040`, `\011`, `\012`, `\134`).
pub fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if fields.len() < 9 {
        return None;
    }
    let mount_id = parse_u64(fields[0])?;
    let parent_id = parse_u64(fields[1])?;
    let dev = parse_dev(fields[2])?;
    let (root, mount_point, options) = (fields[3], fields[4], fields[5]);
    if root.is_empty() || mount_point.is_empty() || options.is_empty() {
        return None;
    }
    // Optional fields (`shared:1`, `master:2`, ...) run until a lone `-`.
    let sep = 6 + fields[6..].iter().position(|f| *f == b"-")?;
    let fstype = *fields.get(sep + 1)?;
    let source = *fields.get(sep + 2)?;
    let super_options = fields.get(sep + 3).copied().unwrap_or(b"");
    if fstype.is_empty() {
        return None;
    }
    Some(MountEntry {
        mount_id,
        parent_id,
        dev,
        root: path_from_bytes(unescape_octal(root)),
        mount_point: path_from_bytes(unescape_octal(mount_point)),
        options: text_from_bytes(&unescape_octal(options)),
        fstype: text_from_bytes(&unescape_octal(fstype)),
        source: text_from_bytes(&unescape_octal(source)),
        super_options: text_from_bytes(&unescape_octal(super_options)),
    })
}

/// Undoes the kernel's `\ooo` escapes (exactly three octal digits, value at most 255). Any other
/// backslash is kept as it is, so odd input degrades to literal text instead of failing.
pub fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(v) = field.get(i + 1..i + 4).and_then(octal3)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

fn octal3(d: &[u8]) -> Option<u8> {
    let mut v: u32 = 0;
    for &c in d {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        v = v * 8 + u32::from(c - b'0');
    }
    u8::try_from(v).ok()
}

fn parse_u64(f: &[u8]) -> Option<u64> {
    if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(f).ok()?.parse().ok()
}

fn parse_u32(f: &[u8]) -> Option<u32> {
    u32::try_from(parse_u64(f)?).ok()
}

fn parse_dev(f: &[u8]) -> Option<DevId> {
    let colon = f.iter().position(|&b| b == b':')?;
    Some(DevId {
        major: parse_u32(&f[..colon])?,
        minor: parse_u32(&f[colon + 1..])?,
    })
}

fn text_from_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(unix)]
fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(b))
}

#[cfg(not(unix))]
fn path_from_bytes(b: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&b).into_owned())
}

/// What changed from `old` to `new`: unmounts first (in `old`'s order), then mounts (in `new`'s
/// order, which the kernel keeps parents-before-children).
///
/// Entries are matched by mount id. If an id is present in both tables but now names a
/// different mount (other mount point, source, type or device; ids are reused after an
/// unmount) it counts as an unmount plus a mount. A remount that only changes options keeps its
/// id and is not reported.
pub fn diff(old: &[MountEntry], new: &[MountEntry]) -> Vec<MountChange> {
    let old_by_id: HashMap<u64, &MountEntry> = old.iter().map(|e| (e.mount_id, e)).collect();
    let new_by_id: HashMap<u64, &MountEntry> = new.iter().map(|e| (e.mount_id, e)).collect();
    let same = |a: &MountEntry, b: &MountEntry| {
        a.mount_point == b.mount_point
            && a.source == b.source
            && a.fstype == b.fstype
            && a.dev == b.dev
            && a.root == b.root
    };
    let mut changes = Vec::new();
    for e in old {
        match new_by_id.get(&e.mount_id) {
            Some(n) if same(e, n) => {}
            _ => changes.push(MountChange::Unmounted(e.clone())),
        }
    }
    for e in new {
        match old_by_id.get(&e.mount_id) {
            Some(o) if same(o, e) => {}
            _ => changes.push(MountChange::Mounted(e.clone())),
        }
    }
    changes
}

/// Kernel file system types that talk to another machine.
const NETWORK_FSTYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "smb",
    "ncpfs",
    "ncp",
    "afs",
    "9p",
    "virtiofs",
    "ceph",
    "glusterfs",
    "davfs",
    "coda",
    "lustre",
    "orangefs",
    "beegfs",
];

/// FUSE subtypes (`fuse.<name>`) of file systems that fetch data from another machine.
const NETWORK_FUSE_SUBTYPES: &[&str] = &[
    "sshfs",
    "rclone",
    "s3fs",
    "curlftpfs",
    "davfs",
    "davfs2",
    "ftpfs",
    "httpfs",
    "httpfs2",
    "httpdirfs",
    "gcsfuse",
    "goofys",
    "glusterfs",
    "ceph",
    "ceph-fuse",
    "smbnetfs",
    "onedriver",
    "google-drive-ocamlfuse",
    "mountpoint-s3",
    "geesefs",
    "juicefs",
    "blobfuse",
    "blobfuse2",
    "nfs",
];

/// File system types with no device behind them.
const VIRTUAL_FSTYPES: &[&str] = &[
    "tmpfs",
    "ramfs",
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "overlay",
    "aufs",
    "mqueue",
    "hugetlbfs",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "efivarfs",
    "rpc_pipefs",
    "nfsd",
    "nsfs",
    "selinuxfs",
    "none",
];

/// True when `fstype` is a network file system, kernel or FUSE.
pub fn is_network_fstype(fstype: &str) -> bool {
    if let Some(sub) = fstype.strip_prefix("fuse.") {
        return NETWORK_FUSE_SUBTYPES.contains(&sub);
    }
    NETWORK_FSTYPES.contains(&fstype)
}

/// Classifies a mount from its own fields only. Block devices come back as
/// [`MountClass::Block`]; whether one is really [`MountClass::Usb`] needs sysfs, which the
/// worker asks via [`crate::client::usb`].
pub fn classify(e: &MountEntry) -> MountClass {
    let fstype = e.fstype.as_str();
    if is_network_fstype(fstype) {
        return MountClass::Network;
    }
    if fstype == "fuse" || fstype.starts_with("fuse.") {
        return MountClass::Fuse;
    }
    if VIRTUAL_FSTYPES.contains(&fstype) {
        return MountClass::Virtual;
    }
    // fuseblk (ntfs-3g, exfat-fuse), ext4, vfat, ...: decided by what backs them.
    if e.source.starts_with("/dev/") || e.dev.major != 0 {
        return MountClass::Block;
    }
    MountClass::Virtual
}

/// Parses the server and share of a network mount's source: `server:/export`,
/// `//server/share`, `user@host:path`, `[v6addr]:/export`, `mon1:6789,mon2:6789:/path` (Ceph)
/// and the old FUSE form `sshfs#user@host:path`. `None` when the source names no server (a 9p
/// tag, say), so the caller shows the raw source instead.
pub fn parse_remote(source: &str) -> Option<RemoteShare> {
    // SMB/CIFS: //server/share[/sub] (or with backslashes).
    let unc = source
        .strip_prefix("//")
        .or_else(|| source.strip_prefix("\\\\"));
    if let Some(rest) = unc {
        let (host, share) = match rest.find(['/', '\\']) {
            Some(i) => (&rest[..i], rest[i..].replace('\\', "/")),
            None => (rest, String::new()),
        };
        return remote_from(host, share);
    }
    // Old FUSE syntax puts the program in front: `sshfs#user@host:path`.
    let source = match source.split_once('#') {
        Some((prog, rest)) if !prog.contains([':', '/', '@']) => rest,
        _ => source,
    };
    // host:/path: the first ":/" whose left side has no slash (paths may contain ":/" too).
    if let Some(i) = source.find(":/") {
        let host = &source[..i];
        if !host.contains('/') {
            return remote_from(host, source[i + 1..].to_string());
        }
        return None;
    }
    // host:relative/path (sshfs), skipping colons inside an IPv6 [..] literal.
    let mut depth = 0usize;
    for (i, c) in source.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => return None,
            ':' if depth == 0 => return remote_from(&source[..i], source[i + 1..].to_string()),
            _ => {}
        }
    }
    None
}

/// What a network mount's super options add to its source: the server's address as the kernel
/// resolved it (`addr=`, NFS and CIFS; the source may name the server by host name) and the
/// account used (`username=`, CIFS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetOptions {
    /// The server's IP address (`addr=`), if given and valid.
    pub addr: Option<std::net::IpAddr>,
    /// The user name the share was mounted with (`username=` or `user=`), if given.
    pub user: Option<String>,
}

/// Reads [`NetOptions`] from a comma-separated super options field.
pub fn network_options(super_options: &str) -> NetOptions {
    let mut o = NetOptions::default();
    for opt in super_options.split(',') {
        match opt.split_once('=') {
            Some(("addr", v)) => o.addr = v.parse().ok(),
            Some(("username" | "user", v)) if !v.is_empty() => o.user = Some(v.to_string()),
            _ => {}
        }
    }
    o
}

fn remote_from(host: &str, share: String) -> Option<RemoteShare> {
    let (user, host) = match host.rfind('@') {
        Some(i) => (Some(host[..i].to_string()), &host[i + 1..]),
        None => (None, host),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(RemoteShare {
        user: user.filter(|u| !u.is_empty()),
        server: host.to_string(),
        share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime shared:7 - sysfs sysfs rw
27 1 254:0 / / rw,relatime shared:1 master:2 - ext4 /dev/vda rw,discard
36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
40 27 0:45 / /tmp/a\\040b\\011c\\012d\\134e rw - tmpfs proctor\\040test rw,size=1024k
41 27 8:17 / /media/usb rw,nosuid - vfat /dev/sdb1 rw,fmask=0022
42 27 0:50 / /mnt/share rw - cifs //fileserver/exams rw,vers=3.0
43 27 0:51 / /mnt/nfs rw - nfs4 server.lab:/export/home rw
44 27 0:52 / /home/s/remote rw,nosuid - fuse.sshfs bob@host.example:docs rw
45 27 0:53 / /run/user/1000/doc rw - fuse.portal portal rw
this is not a mountinfo line
46 27 0:54 / /x rw - tmpfs
47 27 nodev / /y rw - tmpfs tmpfs rw

48 27 0:55 / /z rw - tmpfs tmpfs
";

    fn sample() -> Vec<MountEntry> {
        parse_mountinfo(SAMPLE.as_bytes())
    }

    fn by_id(v: &[MountEntry], id: u64) -> &MountEntry {
        v.iter().find(|e| e.mount_id == id).expect("entry present")
    }

    #[test]
    fn parses_fields_optional_fields_and_escapes() {
        let v = sample();
        let ids: Vec<u64> = v.iter().map(|e| e.mount_id).collect();
        assert_eq!(ids, [22, 23, 27, 36, 40, 41, 42, 43, 44, 45, 48]);
        let e = by_id(&v, 36);
        assert_eq!(e.parent_id, 35);
        assert_eq!(
            e.dev,
            DevId {
                major: 98,
                minor: 0
            }
        );
        assert_eq!(e.root, Path::new("/mnt1"));
        assert_eq!(e.mount_point, Path::new("/mnt/parent"));
        assert_eq!(e.options, "rw,noatime");
        assert_eq!(e.fstype, "ext3");
        assert_eq!(e.source, "/dev/root");
        assert_eq!(e.super_options, "rw,errors=continue");
        let p = by_id(&v, 22);
        assert_eq!(p.fstype, "proc");
        assert_eq!(p.dev.to_string(), "0:21");
        let t = by_id(&v, 40);
        assert_eq!(t.mount_point, Path::new("/tmp/a b\tc\nd\\e"));
        assert_eq!(t.source, "proctor test");
        // Super options missing at the very end are tolerated.
        assert_eq!(by_id(&v, 48).super_options, "");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for l in [
            "",
            "-",
            "1 2 3:4 / /x rw",
            "1 2 3:4 / /x rw - ",
            "1 2 3:4 / /x rw tag - tmpfs",
            "x 2 3:4 / /x rw - tmpfs t rw",
            "1 2 3 / /x rw - tmpfs t rw",
            "1 2 3:4:5 / /x rw - tmpfs t rw",
            "1 2 3:99999999999 / /x rw - tmpfs t rw",
            "1 2 3:4  /x rw - tmpfs t rw",
            "1 2 3:4 / /x rw shared:1 tmpfs t rw",
            "-1 2 3:4 / /x rw - tmpfs t rw",
            "99999999999999999999999 2 3:4 / /x rw - tmpfs t rw",
        ] {
            assert!(parse_line(l.as_bytes()).is_none(), "{l:?}");
        }
        // Empty source (kernel prints nothing) still parses.
        let e = parse_line(b"1 2 0:4 / /x rw - tmpfs  rw").expect("parses");
        assert_eq!(e.source, "");
        assert_eq!(e.super_options, "rw");
    }

    #[test]
    fn odd_escapes_stay_literal() {
        assert_eq!(unescape_octal(b"a\\040b"), b"a b");
        assert_eq!(unescape_octal(b"\\"), b"\\");
        assert_eq!(unescape_octal(b"\\04"), b"\\04");
        assert_eq!(unescape_octal(b"\\089"), b"\\089");
        assert_eq!(unescape_octal(b"\\777"), b"\\777");
        assert_eq!(unescape_octal(b"\\377\\000"), [0xff, 0]);
        assert_eq!(unescape_octal(b"x\\134\\134"), b"x\\\\");
    }

    #[test]
    fn invalid_utf8_paths_are_kept() {
        let e = parse_line(b"1 2 0:4 / /m\xff\\376 rw - tmpfs s\xfe rw").expect("parses");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            assert_eq!(e.mount_point.as_os_str().as_bytes(), b"/m\xff\xfe");
        }
        assert_eq!(e.source, "s\u{fffd}");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
        let alphabet = b" -\\0123456789:/\nabcrw,shared";
        let base = SAMPLE.as_bytes();
        let mut buf = Vec::with_capacity(512);
        for i in 0..50_000u32 {
            buf.clear();
            match i % 3 {
                0 => {
                    let n = (rng.next_u64() % 200) as usize;
                    buf.extend((0..n).map(|_| rng.next_u64() as u8));
                }
                1 => {
                    let n = (rng.next_u64() % 200) as usize;
                    buf.extend(
                        (0..n).map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize]),
                    );
                }
                _ => {
                    // Mutate a valid table: flip, drop or insert a few bytes.
                    buf.extend_from_slice(base);
                    for _ in 0..(1 + rng.next_u64() % 8) {
                        let pos = (rng.next_u64() % buf.len().max(1) as u64) as usize;
                        match rng.next_u64() % 3 {
                            0 if !buf.is_empty() => buf[pos] = rng.next_u64() as u8,
                            1 if !buf.is_empty() => {
                                buf.remove(pos);
                            }
                            _ => buf.insert(
                                pos.min(buf.len()),
                                b"\\ -:\n"[(rng.next_u64() % 5) as usize],
                            ),
                        }
                    }
                }
            }
            let parsed = parse_mountinfo(&buf);
            for e in &parsed {
                let _ = classify(e);
                let _ = parse_remote(&e.source);
            }
            let _ = diff(&parsed, &sample());
            if let Ok(s) = std::str::from_utf8(&buf) {
                let _ = parse_remote(s);
            }
        }
    }

    #[test]
    fn diff_reports_mounts_and_unmounts_by_id() {
        let old = sample();
        let mut new = old.clone();
        new.retain(|e| e.mount_id != 41);
        let mut added = by_id(&old, 40).clone();
        added.mount_id = 99;
        added.mount_point = PathBuf::from("/tmp/new");
        new.push(added.clone());
        // Options-only remount: same id, not reported.
        new.iter_mut()
            .find(|e| e.mount_id == 43)
            .expect("present")
            .options = "ro".into();
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            vec![
                MountChange::Unmounted(by_id(&old, 41).clone()),
                MountChange::Mounted(added),
            ]
        );
        assert!(diff(&old, &old).is_empty());
        assert_eq!(diff(&[], &old).len(), old.len());
    }

    #[test]
    fn reused_id_or_new_id_at_same_point_is_unmount_plus_mount() {
        let old = sample();
        let mut new = old.clone();
        // Same id now names another mount.
        let e = new.iter_mut().find(|e| e.mount_id == 42).expect("present");
        e.mount_point = PathBuf::from("/elsewhere");
        // Remount with a new id at the same point.
        let f = new.iter_mut().find(|e| e.mount_id == 44).expect("present");
        f.mount_id = 144;
        let changes = diff(&old, &new);
        let unmounted: Vec<u64> = changes
            .iter()
            .filter_map(|c| match c {
                MountChange::Unmounted(e) => Some(e.mount_id),
                _ => None,
            })
            .collect();
        let mounted: Vec<u64> = changes
            .iter()
            .filter_map(|c| match c {
                MountChange::Mounted(e) => Some(e.mount_id),
                _ => None,
            })
            .collect();
        assert_eq!(unmounted, [42, 44]);
        assert_eq!(mounted, [42, 144]);
    }

    #[test]
    fn classifies_mounts() {
        let v = sample();
        let class = |id| classify(by_id(&v, id));
        assert_eq!(class(22), MountClass::Virtual);
        assert_eq!(class(23), MountClass::Virtual);
        assert_eq!(class(27), MountClass::Block);
        assert_eq!(class(36), MountClass::Block);
        assert_eq!(class(40), MountClass::Virtual);
        assert_eq!(class(41), MountClass::Block);
        assert_eq!(class(42), MountClass::Network);
        assert_eq!(class(43), MountClass::Network);
        assert_eq!(class(44), MountClass::Network);
        assert_eq!(class(45), MountClass::Fuse);
        for t in [
            "nfs",
            "cifs",
            "smb3",
            "smbfs",
            "ncpfs",
            "afs",
            "9p",
            "ceph",
            "glusterfs",
            "fuse.sshfs",
            "fuse.rclone",
            "fuse.s3fs",
            "fuse.curlftpfs",
            "fuse.davfs",
        ] {
            assert!(is_network_fstype(t), "{t}");
        }
        for t in [
            "fuse",
            "fuse.gvfsd-fuse",
            "fuseblk",
            "ext4",
            "tmpfs",
            "fuse.",
        ] {
            assert!(!is_network_fstype(t), "{t}");
        }
        let mut e = by_id(&v, 41).clone();
        e.fstype = "fuseblk".into();
        assert_eq!(classify(&e), MountClass::Block);
        e.fstype = "cgroup2".into();
        assert_eq!(classify(&e), MountClass::Virtual);
        e.fstype = "squashfs".into();
        e.source = "/dev/loop3".into();
        assert_eq!(classify(&e), MountClass::Block);
        e.source = "weird".into();
        e.dev = DevId::default();
        assert_eq!(classify(&e), MountClass::Virtual);
        assert_eq!(MountClass::Usb.to_string(), "usb");
    }

    #[test]
    fn network_options_give_address_and_user() {
        let nfs = "rw,vers=4.2,rsize=1048576,hard,proto=tcp,clientaddr=10.0.0.5,local_lock=none,addr=10.0.0.2";
        assert_eq!(
            network_options(nfs),
            NetOptions {
                addr: Some("10.0.0.2".parse().expect("ip")),
                user: None,
            }
        );
        let cifs = "rw,vers=3.1.1,cache=strict,username=bob,uid=1000,addr=fe80::1";
        assert_eq!(
            network_options(cifs),
            NetOptions {
                addr: Some("fe80::1".parse().expect("ip")),
                user: Some("bob".into()),
            }
        );
        for none in [
            "",
            "rw",
            "addr=",
            "addr=fs.lab",
            "username=",
            "xaddr=1.2.3.4,=x,,",
        ] {
            assert_eq!(network_options(none), NetOptions::default(), "{none:?}");
        }
    }

    #[test]
    fn parses_remote_server_and_share() {
        let r = |s: &str, user: Option<&str>, server: &str, share: &str| {
            let want = RemoteShare {
                user: user.map(str::to_string),
                server: server.to_string(),
                share: share.to_string(),
            };
            assert_eq!(parse_remote(s), Some(want), "{s:?}");
        };
        r("//fileserver/exams", None, "fileserver", "/exams");
        r("//fs.lab/exams/2024", None, "fs.lab", "/exams/2024");
        r("//10.0.0.5", None, "10.0.0.5", "");
        r("\\\\srv\\share\\x", None, "srv", "/share/x");
        r("server:/export", None, "server", "/export");
        r(
            "server.lab:/export/a:/b",
            None,
            "server.lab",
            "/export/a:/b",
        );
        r("[fe80::1]:/export", None, "fe80::1", "/export");
        r("bob@host.example:docs", Some("bob"), "host.example", "docs");
        r("bob@host:", Some("bob"), "host", "");
        r("sshfs#bob@host:/srv", Some("bob"), "host", "/srv");
        r("a@b@host:/p", Some("a@b"), "host", "/p");
        r(
            "mon1:6789,mon2:6789:/vol",
            None,
            "mon1:6789,mon2:6789",
            "/vol",
        );
        r("remote:bucket/dir", None, "remote", "bucket/dir");
        for s in [
            "hostshare",
            "",
            "/dev/sda1",
            "//",
            "///x",
            ":/x",
            "@:/x",
            "a/b:c",
            "/x:/y",
        ] {
            assert_eq!(parse_remote(s), None, "{s:?}");
        }
    }
}
