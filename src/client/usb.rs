//! Finds out whether a mounted block device sits behind a USB port, and if so which stick it
//! is (vendor and product ids, names, serial number, size), by walking sysfs.
//!
//! Every function takes the sysfs root (and the `/dev` root) as a parameter and resolves
//! symbolic links itself, relative to that root, so the tests can build a fake tree in a
//! temporary directory. Everything read is treated as untrusted text: bounded in size, decoded
//! lossily, and escaped by whoever shows it. Any failure simply means "not known to be USB".

use super::mountinfo::DevId;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Longest attribute file we read; real sysfs attributes are a few bytes.
const MAX_ATTR: u64 = 4096;
/// Symbolic links followed while resolving one path, as the kernel's own limit.
const MAX_LINKS: u32 = 40;
/// How deep we follow device-mapper `slaves/` (LUKS on LVM on a stick is 2).
const MAX_SLAVE_DEPTH: u32 = 4;

/// What sysfs says about a USB mass-storage device holding a mounted file system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsbInfo {
    /// Kernel name of the block device that was looked up (`sdb1`, `dm-0`).
    pub block_device: String,
    /// USB vendor id, four hex digits (`0781` is SanDisk).
    pub vendor_id: String,
    /// USB product id, four hex digits.
    pub product_id: String,
    /// Manufacturer string from the device, if it has one.
    pub manufacturer: Option<String>,
    /// Product string from the device, if it has one.
    pub product: Option<String>,
    /// Serial number string, if the device reports one: tells two identical sticks apart.
    pub serial: Option<String>,
    /// Size of the block device in bytes (partition size for a partition), if readable.
    pub size_bytes: Option<u64>,
}

/// Looks up the USB device behind a mount: first by its source (`/dev/sdb1`, or a
/// `/dev/mapper/..` or `/dev/disk/by-*/..` link, resolved under `dev_root`), then by its device
/// number through `<sysfs>/dev/block/<major>:<minor>`. `None` when it is not a USB device or
/// nothing can be found out.
pub fn lookup(sysfs_root: &Path, dev_root: &Path, source: &str, dev: DevId) -> Option<UsbInfo> {
    if let Some(name) = block_name_for_source(dev_root, source)
        && let Some(info) = lookup_block_device(sysfs_root, &name)
    {
        return Some(info);
    }
    if dev.major == 0 {
        return None;
    }
    let dir = resolve_under(sysfs_root, Path::new(&format!("dev/block/{dev}")))?;
    let name = dir.file_name()?.to_string_lossy().into_owned();
    lookup_dir(sysfs_root, &dir, &name, 0)
}

/// The kernel block device name for a `/dev/...` source: symbolic links under `dev_root` are
/// followed (`/dev/mapper/exam` -> `dm-0`, `/dev/disk/by-uuid/..` -> `sdb1`); a path that does
/// not exist gives its last component. `None` for sources that are not under `/dev/`.
pub fn block_name_for_source(dev_root: &Path, source: &str) -> Option<String> {
    let rel = Path::new(source.strip_prefix("/dev/")?);
    let fallback = rel.file_name()?;
    let resolved = resolve_under(dev_root, rel).filter(|p| p != dev_root);
    let name = match &resolved {
        Some(p) => p.file_name()?,
        None => fallback,
    };
    let name = name.to_str()?;
    valid_name(name).then(|| name.to_string())
}

/// Looks up a block device by its kernel name (`sdb1`) under `<sysfs>/class/block/`.
pub fn lookup_block_device(sysfs_root: &Path, name: &str) -> Option<UsbInfo> {
    if !valid_name(name) {
        return None;
    }
    let dir = resolve_under(sysfs_root, &Path::new("class/block").join(name))?;
    lookup_dir(sysfs_root, &dir, name, 0)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// `dir` is the resolved sysfs directory of block device `name`.
fn lookup_dir(sysfs_root: &Path, dir: &Path, name: &str, depth: u32) -> Option<UsbInfo> {
    let size_bytes = read_attr(&dir.join("size"))
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|sectors| sectors.checked_mul(512));
    if let Some(usb) = find_usb_ancestor(sysfs_root, dir) {
        return Some(UsbInfo {
            block_device: name.to_string(),
            vendor_id: read_attr(&usb.join("idVendor")).unwrap_or_default(),
            product_id: read_attr(&usb.join("idProduct")).unwrap_or_default(),
            manufacturer: read_attr(&usb.join("manufacturer")),
            product: read_attr(&usb.join("product")),
            serial: read_attr(&usb.join("serial")),
            size_bytes,
        });
    }
    // A device-mapper or md device: ask the devices underneath it.
    if depth >= MAX_SLAVE_DEPTH {
        return None;
    }
    let slaves = fs::read_dir(dir.join("slaves")).ok()?;
    for slave in slaves.flatten().take(64) {
        let slave_name = slave.file_name().to_string_lossy().into_owned();
        let Some(slave_dir) =
            resolve_under(sysfs_root, &Path::new("class/block").join(&slave_name))
        else {
            continue;
        };
        if let Some(mut info) = lookup_dir(sysfs_root, &slave_dir, &slave_name, depth + 1) {
            // Report the mounted device and its size, not the underlying partition's.
            info.block_device = name.to_string();
            info.size_bytes = size_bytes.or(info.size_bytes);
            return Some(info);
        }
    }
    None
}

/// Walks from `dir` towards `sysfs_root` and returns the first directory holding `idVendor`:
/// the USB device (not interface) the block device hangs off.
fn find_usb_ancestor(sysfs_root: &Path, dir: &Path) -> Option<PathBuf> {
    let mut cur = dir;
    while cur.starts_with(sysfs_root) && cur != sysfs_root {
        if cur.join("idVendor").is_file() {
            return Some(cur.to_path_buf());
        }
        cur = cur.parent()?;
    }
    None
}

/// Reads a small attribute file, trimmed; `None` if missing, unreadable or empty.
fn read_attr(path: &Path) -> Option<String> {
    let mut buf = Vec::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_ATTR)
        .read_to_end(&mut buf)
        .ok()?;
    let s = String::from_utf8_lossy(&buf).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Resolves `rel` inside `root`, following symbolic links component by component the way the
/// kernel would if `root` were `/`-relative: relative targets are taken from the link's
/// directory, absolute targets must point inside `root` (e.g. `/dev/dm-0` under `/dev`), and
/// `..` never climbs above `root`. Returns `None` if a component is missing, a link leaves
/// the tree, or there are too many links. Unlike `fs::canonicalize` this works for a fake
/// sysfs under a temporary directory.
pub fn resolve_under(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut pending: Vec<OsString> = Vec::new(); // stack: last element is next
    push_components(&mut pending, rel)?;
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0u32;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate: PathBuf = root.join(resolved.iter().collect::<PathBuf>()).join(&c);
        let meta = fs::symlink_metadata(&candidate).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = fs::read_link(&candidate).ok()?;
            if target.is_absolute() {
                let inside = target.strip_prefix(root).ok()?;
                resolved.clear();
                push_components(&mut pending, inside)?;
            } else {
                push_components(&mut pending, &target)?;
            }
        } else {
            resolved.push(c);
        }
    }
    Some(root.join(resolved.iter().collect::<PathBuf>()))
}

/// Pushes the components of `p` so that its first component is popped first. `.` is dropped;
/// root or prefix components (an absolute path where a relative one was expected) give `None`.
fn push_components(stack: &mut Vec<OsString>, p: &Path) -> Option<()> {
    let mut comps = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => comps.push(n.to_os_string()),
            Component::ParentDir => comps.push(OsString::from("..")),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    stack.extend(comps.into_iter().rev());
    Some(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A unique scratch directory removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("proctor-usb-{}-{}", std::process::id(), name));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("create scratch dir");
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        fs::write(p, content).expect("write");
    }

    fn link(root: &Path, rel: &str, target: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, p).expect("symlink");
    }

    const STICK: &str = "devices/pci0000:00/0000:00:14.0/usb2/2-1";
    const DISK: &str =
        "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb";

    /// A fake sysfs with a SanDisk stick (sdb, partition sdb1), an internal disk (sda1), a
    /// dm-0 on top of sdb1, and the root hub's own idVendor further up.
    fn fake_sysfs(root: &Path) {
        write(
            root,
            "devices/pci0000:00/0000:00:14.0/usb2/idVendor",
            "1d6b\n",
        );
        write(root, &format!("{STICK}/idVendor"), "0781\n");
        write(root, &format!("{STICK}/idProduct"), "5581\n");
        write(root, &format!("{STICK}/manufacturer"), " SanDisk\n");
        write(root, &format!("{STICK}/product"), "Ultra\n");
        write(root, &format!("{STICK}/serial"), "4C530001230101117393\n");
        write(root, &format!("{DISK}/size"), "30277632\n");
        write(root, &format!("{DISK}/sdb1/size"), "30275584\n");
        write(
            root,
            "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1/size",
            "1000\n",
        );
        write(root, "devices/virtual/block/dm-0/size", "30000000\n");
        fs::create_dir_all(root.join("devices/virtual/block/dm-0/slaves")).expect("mkdir");
        link(
            root,
            "devices/virtual/block/dm-0/slaves/sdb1",
            &format!("../../../../{DISK}/sdb1"),
        );
        link(root, "class/block/sdb", &format!("../../{DISK}"));
        link(root, "class/block/sdb1", &format!("../../{DISK}/sdb1"));
        link(
            root,
            "class/block/sda1",
            "../../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1",
        );
        link(root, "class/block/dm-0", "../../devices/virtual/block/dm-0");
        link(root, "dev/block/8:17", &format!("../../{DISK}/sdb1"));
        link(root, "class/block/loop", "../../class/block/loop");
    }

    #[test]
    fn finds_usb_stick_behind_partition() {
        let s = Scratch::new("stick");
        fake_sysfs(&s.0);
        let info = lookup_block_device(&s.0, "sdb1").expect("usb");
        assert_eq!(
            info,
            UsbInfo {
                block_device: "sdb1".into(),
                vendor_id: "0781".into(),
                product_id: "5581".into(),
                manufacturer: Some("SanDisk".into()),
                product: Some("Ultra".into()),
                serial: Some("4C530001230101117393".into()),
                size_bytes: Some(30_275_584 * 512),
            }
        );
        assert_eq!(
            lookup_block_device(&s.0, "sdb")
                .expect("whole disk")
                .size_bytes,
            Some(30_277_632 * 512)
        );
    }

    #[test]
    fn non_usb_and_missing_devices_give_none() {
        let s = Scratch::new("none");
        fake_sysfs(&s.0);
        assert_eq!(lookup_block_device(&s.0, "sda1"), None);
        assert_eq!(lookup_block_device(&s.0, "sdz9"), None);
        assert_eq!(lookup_block_device(&s.0, ".."), None);
        assert_eq!(lookup_block_device(&s.0, ""), None);
        // A symlink loop ends, it does not hang.
        assert_eq!(lookup_block_device(&s.0, "loop"), None);
        let none = DevId::default();
        assert_eq!(lookup(&s.0, &s.0.join("nodev"), "tmpfs", none), None);
        assert_eq!(
            lookup(
                &s.0,
                &s.0.join("nodev"),
                "/dev/sda1",
                DevId { major: 8, minor: 1 }
            ),
            None
        );
    }

    #[test]
    fn device_mapper_on_usb_is_usb() {
        let s = Scratch::new("dm");
        fake_sysfs(&s.0);
        let info = lookup_block_device(&s.0, "dm-0").expect("usb below dm");
        assert_eq!(info.block_device, "dm-0");
        assert_eq!(info.vendor_id, "0781");
        assert_eq!(info.size_bytes, Some(30_000_000 * 512));
    }

    #[test]
    fn dev_links_and_device_numbers_are_followed() {
        let s = Scratch::new("devlinks");
        let sys = s.0.join("sys");
        let dev = s.0.join("dev");
        fake_sysfs(&sys);
        write(&dev, "dm-0", "");
        write(&dev, "sdb1", "");
        link(&dev, "mapper/exam", "../dm-0");
        link(&dev, "disk/by-uuid/1234-ABCD", "../../sdb1");
        let dm = lookup(&sys, &dev, "/dev/mapper/exam", DevId::default()).expect("dm");
        assert_eq!(dm.block_device, "dm-0");
        let by_uuid =
            lookup(&sys, &dev, "/dev/disk/by-uuid/1234-ABCD", DevId::default()).expect("by uuid");
        assert_eq!(by_uuid.block_device, "sdb1");
        // Absolute link inside the /dev root.
        link(&dev, "mapper/abs", &dev.join("dm-0").to_string_lossy());
        assert_eq!(
            block_name_for_source(&dev, "/dev/mapper/abs").as_deref(),
            Some("dm-0")
        );
        // Absolute link leaving the root: fall back to the name itself.
        link(&dev, "mapper/out", "/nonexistent/elsewhere");
        assert_eq!(
            block_name_for_source(&dev, "/dev/mapper/out").as_deref(),
            Some("out")
        );
        // Unknown source name, but the device number leads to the stick.
        let by_num = lookup(
            &sys,
            &dev,
            "/dev/root",
            DevId {
                major: 8,
                minor: 17,
            },
        )
        .expect("dev");
        assert_eq!(by_num.block_device, "sdb1");
        assert_eq!(block_name_for_source(&dev, "tmpfs"), None);
        assert_eq!(block_name_for_source(&dev, "/dev/"), None);
        assert_eq!(block_name_for_source(&dev, "/dev/.."), None);
    }

    #[test]
    fn resolve_under_stays_inside_root() {
        let s = Scratch::new("resolve");
        write(&s.0, "a/b/file", "x");
        link(&s.0, "a/up", "../../../../..");
        link(&s.0, "a/rel", "b/file");
        assert_eq!(
            resolve_under(&s.0, Path::new("a/rel")),
            Some(s.0.join("a/b/file"))
        );
        // `..` past the root stops at the root.
        assert_eq!(
            resolve_under(&s.0, Path::new("a/up/a/b")),
            Some(s.0.join("a/b"))
        );
        assert_eq!(resolve_under(&s.0, Path::new("a/missing")), None);
        assert_eq!(resolve_under(&s.0, Path::new("/abs")), None);
    }
}
