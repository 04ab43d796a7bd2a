//! The shared key on disk: reading it with every check a careful admin would want, and writing
//! new ones (`proctor keygen`).
//!
//! File format (text, so an admin can see what it is):
//! ```text
//! proctor-key-v1
//! key: <64 hex digits>
//! ```
//! The public demo key shipped in the repository adds a `demo: yes` line; server and client
//! accept it only with `--demo`.

use crate::cli::{KeyArgs, KeygenArgs};
use crate::crypto::{KEY_LEN, Key};
use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

const HEADER: &str = "proctor-key-v1";

/// A key as read from a file, with whether it is the public demo key.
#[derive(Debug)]
pub struct KeyFile {
    /// The key itself.
    pub key: Key,
    /// True for the public demo key (`demo: yes`).
    pub demo: bool,
}

/// Parses key file text. Errors name the problem, never the key.
pub fn parse(text: &str) -> std::result::Result<KeyFile, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    if lines.next() != Some(HEADER) {
        return Err(format!(
            "not a proctor key file (first line must be '{HEADER}')"
        ));
    }
    let mut key = None;
    let mut demo = false;
    for line in lines {
        if let Some(hex) = line.strip_prefix("key:") {
            key = Some(
                crate::hex::decode::<KEY_LEN>(hex.trim())
                    .ok_or("the 'key:' line must hold 64 hex digits")?,
            );
        } else if let Some(v) = line.strip_prefix("demo:") {
            demo = v.trim() == "yes";
        } else {
            return Err("unexpected line in key file".to_string());
        }
    }
    let key = key.ok_or("no 'key:' line")?;
    Ok(KeyFile {
        key: Key::from_bytes(key),
        demo,
    })
}

/// Formats a real (non-demo) key file.
pub fn format(key: &Key) -> String {
    let hex = crate::hex::encode(key.as_bytes());
    format!(
        "# proctor shared key. Keep it secret: copy it (mode 0600) to the server and every lab PC.\n\
         # fingerprint {}\n{HEADER}\nkey: {hex}\n",
        key.fingerprint()
    )
}

/// Loads the key for `server`/`client`: refuses a missing, unreadable or malformed file, a real
/// key readable by group or others, and the demo key without `--demo`.
pub fn load(args: &KeyArgs) -> Result<Key> {
    let path = &args.keyfile;
    let shown = path.display();
    let text = fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (create one with 'proctor keygen', or pass -k PATH)"
        } else {
            ""
        };
        Error::Key(format!("cannot read key file {shown}: {e}{hint}"))
    })?;
    let kf = parse(&text).map_err(|e| Error::Key(format!("key file {shown} is malformed: {e}")))?;
    if kf.demo {
        if !args.demo {
            return Err(Error::Key(format!(
                "{shown} is the public demo key: anyone can forge announcements with it. \
                 Generate a real key with 'proctor keygen', or pass --demo to try proctor out"
            )));
        }
        log::warn!(
            "using the public demo key from {shown}: anyone can forge announcements with it; \
             only for trying proctor out"
        );
        return Ok(kf.key);
    }
    let mode = fs::metadata(path)
        .map_err(|e| Error::Key(format!("cannot stat key file {shown}: {e}")))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::Key(format!(
            "key file {shown} is readable by group or others (mode {:04o}); run 'chmod 600 {shown}'",
            mode & 0o7777
        )));
    }
    Ok(kf.key)
}

/// Runs `proctor keygen`: writes a new random key with mode 0600, atomically, refusing to
/// replace a real key unless `--force`. With `--signing`, writes the server's signing key pair.
pub fn run_keygen(args: &KeygenArgs) -> Result<()> {
    if args.signing {
        return keygen_signing(args);
    }
    let default = Path::new(crate::cli::DEFAULT_KEYFILE);
    let path = args.output.as_deref().unwrap_or(default);
    if let Ok(text) = fs::read_to_string(path) {
        let is_demo = parse(&text).map(|k| k.demo).unwrap_or(false);
        if !is_demo && !args.force {
            return Err(Error::Usage(format!(
                "{} already holds a key; refusing to overwrite it (clients using it would stop working). \
                 Pass --force to replace it",
                path.display()
            )));
        }
    } else {
        refuse_existing(path, args.force)?;
    }
    let key = Key::generate().map_err(no_random)?;
    write_secret(path, &format(&key), 0o600)?;
    println!(
        "wrote a new key to {} (mode 0600, fingerprint {})",
        path.display(),
        key.fingerprint()
    );
    println!("copy it to the server and to every lab PC; keep it secret");
    Ok(())
}

fn keygen_signing(args: &KeygenArgs) -> Result<()> {
    let secret = args
        .output
        .clone()
        .unwrap_or_else(|| "server-signing.key".into());
    let public = secret.with_extension("pub");
    refuse_existing(&secret, args.force)?;
    refuse_existing(&public, args.force)?;
    let signer = crate::signing::ServerSigner::generate().map_err(no_random)?;
    write_secret(&secret, &crate::signing::format_signer(&signer), 0o600)?;
    write_secret(
        &public,
        &crate::signing::format_public(&signer.public()),
        0o644,
    )?;
    println!(
        "wrote the server signing key to {} (mode 0600; keep it on the server: --signing-key)",
        secret.display()
    );
    println!(
        "wrote its public half to {} (fingerprint {}; copy it to every lab PC: --server-pubkey)",
        public.display(),
        signer.public().fingerprint()
    );
    Ok(())
}

fn no_random(e: getrandom::Error) -> Error {
    Error::Runtime(format!("no random numbers from the OS: {e}"))
}

fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        return Err(Error::Usage(format!(
            "{} already exists; refusing to overwrite it. Pass --force to replace it",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `text` to `path` with `mode`, atomically (temporary file in the same directory,
/// synced, then renamed over the target).
fn write_secret(path: &Path, text: &str, mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_key_parses_back() {
        let k = Key::from_bytes([0xab; 32]);
        let kf = parse(&format(&k)).unwrap();
        assert_eq!(kf.key, k);
        assert!(!kf.demo);
    }

    #[test]
    fn shipped_demo_key_is_marked_demo() {
        let kf = parse(include_str!("../keyfile.key")).unwrap();
        assert!(kf.demo);
    }

    #[test]
    fn malformed_files_are_refused() {
        for t in [
            "",
            "hello",
            "proctor-key-v1\n",
            "proctor-key-v1\nkey: abcd\n",
            "proctor-key-v1\nkey: zz\n",
            "proctor-key-v1\nfoo\n",
        ] {
            assert!(parse(t).is_err(), "{t:?}");
        }
        let bad_hex = format!("proctor-key-v1\nkey: {}\n", "g".repeat(64));
        assert!(parse(&bad_hex).is_err());
        let non_ascii = format!("proctor-key-v1\nkey: {}é\n", "a".repeat(62));
        assert!(parse(&non_ascii).is_err());
    }
}
