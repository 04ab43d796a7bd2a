//! `proctor install-service client|server`: writes the systemd unit shipped in `dist/` (built
//! into the binary) with this machine's paths filled in (the proctor program, the key, the
//! config file), then runs `systemctl daemon-reload` and `systemctl enable --now` unless
//! `--no-start`.
//!
//! [`render`] is pure (template in, unit out); running `systemctl` goes through the
//! [`Systemctl`] seam so tests can see the commands without a running systemd.

use crate::cli::{InstallServiceArgs, ServiceKind};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where units go by default (the admin's directory, not the package manager's).
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";
/// The key path the units use unless told otherwise.
pub const DEFAULT_KEY: &str = "/etc/proctor/keyfile.key";
/// The program path in the shipped units.
const TEMPLATE_EXEC: &str = "/usr/local/bin/proctor";

const CLIENT_UNIT: &str = include_str!("../dist/proctor-client.service");
const SERVER_UNIT: &str = include_str!("../dist/proctor-server.service");

impl ServiceKind {
    /// The unit's file name.
    pub fn unit_name(self) -> &'static str {
        match self {
            ServiceKind::Client => "proctor-client.service",
            ServiceKind::Server => "proctor-server.service",
        }
    }

    /// The shipped unit this kind starts from.
    pub fn template(self) -> &'static str {
        match self {
            ServiceKind::Client => CLIENT_UNIT,
            ServiceKind::Server => SERVER_UNIT,
        }
    }

    fn word(self) -> &'static str {
        match self {
            ServiceKind::Client => "client",
            ServiceKind::Server => "server",
        }
    }
}

/// What to fill into a unit.
#[derive(Debug, Clone)]
pub struct UnitPaths {
    /// The proctor program the unit starts.
    pub exec: PathBuf,
    /// The shared key file.
    pub key: PathBuf,
    /// A config file to pass with `--config` (None: proctor reads the default one if present).
    pub config: Option<PathBuf>,
}

/// Checks that a path can stand in a unit file as one word: absolute, no whitespace, quotes,
/// backslashes, or the `%` and `$` systemd would expand.
fn unit_path(what: &str, p: &Path) -> std::result::Result<String, String> {
    let s = p
        .to_str()
        .ok_or_else(|| format!("{what} {} is not valid UTF-8", p.display()))?;
    if !p.is_absolute() {
        return Err(format!("{what} {s} must be an absolute path"));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "%$\"'\\;".contains(c))
    {
        return Err(format!(
            "{what} {s} cannot go in a unit file (it has spaces, quotes, '%', '$', ';' or '\\')"
        ));
    }
    Ok(s.to_string())
}

/// Fills `paths` into the unit `kind`'s template: the program in `ExecStart=`, the key in
/// `Environment=PROCTOR_KEY=` (client) or `LoadCredential=key:` (server), and `--config FILE`
/// after the subcommand when a config file is given. A header comment says who wrote it.
pub fn render(
    kind: ServiceKind,
    template: &str,
    paths: &UnitPaths,
) -> std::result::Result<String, String> {
    let exec = unit_path("the program", &paths.exec)?;
    let key = unit_path("the key file", &paths.key)?;
    let config = paths
        .config
        .as_deref()
        .map(|c| unit_path("the config file", c))
        .transpose()?;
    let mut out = format!(
        "# Written by 'proctor install-service {}' (proctor {}) from the unit in dist/.\n",
        kind.word(),
        env!("CARGO_PKG_VERSION")
    );
    let (mut saw_exec, mut saw_key) = (false, false);
    for line in template.lines() {
        let line = if let Some(rest) = line.strip_prefix("ExecStart=") {
            let rest = rest
                .strip_prefix(TEMPLATE_EXEC)
                .ok_or("the unit's ExecStart= does not start proctor")?;
            let sub = format!(" {} ", kind.word());
            let rest = rest
                .strip_prefix(&sub)
                .ok_or("the unit's ExecStart= runs another subcommand")?;
            saw_exec = true;
            match &config {
                Some(c) => format!("ExecStart={exec}{sub}--config {c} {rest}"),
                None => format!("ExecStart={exec}{sub}{rest}"),
            }
        } else if line.starts_with("Environment=PROCTOR_KEY=") && kind == ServiceKind::Client {
            saw_key = true;
            format!("Environment=PROCTOR_KEY={key}")
        } else if line.starts_with("LoadCredential=key:") && kind == ServiceKind::Server {
            saw_key = true;
            format!("LoadCredential=key:{key}")
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    if !saw_exec || !saw_key {
        return Err("the unit template lacks its ExecStart= or key line".into());
    }
    Ok(out)
}

/// How `systemctl` is run (the real one, or a fake in tests).
pub type Systemctl<'a> = &'a dyn Fn(&[&str]) -> Result<()>;

/// Runs the real `systemctl` with `args`; a failure carries its output.
pub fn real_systemctl(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| Error::io("cannot run systemctl", e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Runtime(format!(
        "systemctl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Makes a path absolute against the working directory (systemd runs services from `/`).
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(format!("cannot resolve {}", p.display()), e))
}

/// Runs `proctor install-service` with `config` the global `--config` value.
pub fn run(args: &InstallServiceArgs, config: Option<&Path>) -> Result<()> {
    install(args, config, crate::sys::is_root(), &real_systemctl)
}

/// [`run`] with the root check and `systemctl` given: writes the unit, reloads, enables.
pub fn install(
    args: &InstallServiceArgs,
    config: Option<&Path>,
    is_root: bool,
    systemctl: Systemctl<'_>,
) -> Result<()> {
    let unit_dir = args
        .unit_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_UNIT_DIR.into());
    let only_writes_elsewhere = args.unit_dir.is_some() && args.no_start;
    if !is_root && !only_writes_elsewhere {
        return Err(Error::Permission(format!(
            "proctor install-service must run as root (sudo): it writes {} and runs systemctl \
             (to only write the unit somewhere else, pass --unit-dir DIR --no-start)",
            unit_dir.display()
        )));
    }
    let exec = match &args.exec {
        Some(p) => absolute(p)?,
        None => std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|e| Error::io("cannot find the proctor program", e))?,
    };
    let paths = UnitPaths {
        exec,
        key: absolute(&args.key)?,
        config: config.map(absolute).transpose()?,
    };
    let kind = args.which;
    let unit = render(kind, kind.template(), &paths).map_err(Error::Usage)?;
    if !paths.key.exists() {
        log::warn!(
            "{} does not exist yet: the service fails until it does (make a key with \
             'proctor keygen' on the server and copy it here, mode 0600)",
            paths.key.display()
        );
    }
    std::fs::create_dir_all(&unit_dir)
        .map_err(|e| Error::io(format!("cannot create {}", unit_dir.display()), e))?;
    let file = unit_dir.join(kind.unit_name());
    let replaced = file.exists();
    let tmp = unit_dir.join(format!(".{}.tmp", kind.unit_name()));
    std::fs::write(&tmp, unit)
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| Error::io(format!("cannot write {}", file.display()), e))?;
    println!("wrote {}", file.display());
    if args.no_start {
        println!(
            "not started (--no-start); to start it now and at every boot: systemctl daemon-reload && systemctl enable --now {}",
            kind.unit_name()
        );
        return Ok(());
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", kind.unit_name()])?;
    if replaced {
        // enable --now leaves a running service on its old settings.
        systemctl(&["try-restart", kind.unit_name()])?;
    }
    println!(
        "enabled and started {}; its messages: journalctl -u {}",
        kind.unit_name(),
        kind.unit_name().trim_end_matches(".service")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn paths(config: Option<&str>) -> UnitPaths {
        UnitPaths {
            exec: "/usr/bin/proctor".into(),
            key: "/srv/keys/lab.key".into(),
            config: config.map(PathBuf::from),
        }
    }

    #[test]
    fn the_client_unit_gets_the_program_key_and_config() {
        let u = render(
            ServiceKind::Client,
            CLIENT_UNIT,
            &paths(Some("/etc/p/room.toml")),
        )
        .unwrap();
        assert!(u.starts_with("# Written by 'proctor install-service client'"));
        assert!(
            u.contains("\nEnvironment=PROCTOR_KEY=/srv/keys/lab.key\n"),
            "{u}"
        );
        assert!(
            u.contains(
                "\nExecStart=/usr/bin/proctor client --config /etc/p/room.toml -k ${PROCTOR_KEY} "
            ),
            "{u}"
        );
        assert!(!u.contains("ExecStart=/usr/local/bin"));
        // Everything else is the shipped unit.
        assert_eq!(u.lines().count(), CLIENT_UNIT.lines().count() + 1);
    }

    #[test]
    fn the_server_unit_gets_the_credential_path() {
        let u = render(ServiceKind::Server, SERVER_UNIT, &paths(None)).unwrap();
        assert!(
            u.contains("\nLoadCredential=key:/srv/keys/lab.key\n"),
            "{u}"
        );
        assert!(
            u.contains("\nExecStart=/usr/bin/proctor server --headless -k %d/key "),
            "{u}"
        );
        assert!(!u.contains("--config"));
    }

    #[test]
    fn paths_that_cannot_stand_in_a_unit_are_refused() {
        for bad in ["relative.key", "/a b/k", "/a%n/k", "/a$X/k", "/a\"/k"] {
            let mut p = paths(None);
            p.key = bad.into();
            let e = render(ServiceKind::Client, CLIENT_UNIT, &p).unwrap_err();
            assert!(e.contains("the key file"), "{bad}: {e}");
        }
        assert!(render(ServiceKind::Client, "[Service]\n", &paths(None)).is_err());
    }

    fn args(dir: Option<&Path>, no_start: bool) -> InstallServiceArgs {
        InstallServiceArgs {
            which: ServiceKind::Client,
            key: "/etc/proctor/keyfile.key".into(),
            unit_dir: dir.map(Path::to_path_buf),
            no_start,
            exec: Some("/usr/bin/proctor".into()),
        }
    }

    #[test]
    fn installing_reloads_and_enables_unless_no_start() {
        let dir = std::env::temp_dir().join(format!("proctor-unit-{}", std::process::id()));
        let calls = RefCell::new(Vec::new());
        let fake = |a: &[&str]| -> Result<()> {
            calls.borrow_mut().push(a.join(" "));
            Ok(())
        };
        let _ = std::fs::remove_dir_all(&dir);
        install(&args(Some(&dir), false), None, true, &fake).unwrap();
        assert_eq!(
            *calls.borrow(),
            ["daemon-reload", "enable --now proctor-client.service"]
        );
        assert!(dir.join("proctor-client.service").is_file());
        calls.borrow_mut().clear();
        // Replacing the unit restarts a running service, so it runs with the new settings.
        install(&args(Some(&dir), false), None, true, &fake).unwrap();
        assert_eq!(
            *calls.borrow(),
            [
                "daemon-reload",
                "enable --now proctor-client.service",
                "try-restart proctor-client.service"
            ]
        );
        calls.borrow_mut().clear();
        install(&args(Some(&dir), true), None, true, &fake).unwrap();
        assert!(calls.borrow().is_empty());
        // Without root: refused, unless it only writes elsewhere.
        let e = install(&args(None, true), None, false, &fake).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("must run as root"), "{e}");
        assert!(install(&args(Some(&dir), false), None, false, &fake).is_err());
        install(&args(Some(&dir), true), None, false, &fake).unwrap();
        assert!(calls.borrow().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
