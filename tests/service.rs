//! Issue 7, "boot-time service" and "man page and completions": the systemd units and the
//! launchd plist in `dist/` are valid (`systemd-analyze verify` when the machine has it, otherwise
//! a syntax check of our own), carry the hardening the issue asks for, and start proctor with
//! options its command line accepts; `proctor __generate DIR` writes man pages and shell
//! completions that cover every public subcommand and option, and nothing internal.

mod common;

use clap::{CommandFactory, Parser};
use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(name)
}

const UNITS: [&str; 2] = ["proctor-client.service", "proctor-server.service"];

/// A unit file as `section -> [(key, value)]`, checking the syntax on the way: comments, empty
/// lines, `[Section]` headers and `Key=value` lines only, keys in a known section.
fn parse_unit(text: &str) -> HashMap<String, Vec<(String, String)>> {
    let mut sections: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: no continuation lines",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                ["Unit", "Service", "Install"].contains(&name),
                "line {}: unexpected section [{name}]",
                n + 1
            );
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=value: {line}", n + 1));
        assert!(
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: bad key {k:?}",
            n + 1
        );
        let s = current
            .clone()
            .unwrap_or_else(|| panic!("line {}: key outside a section", n + 1));
        sections
            .get_mut(&s)
            .unwrap()
            .push((k.to_string(), v.to_string()));
    }
    sections
}

fn values<'a>(u: &'a HashMap<String, Vec<(String, String)>>, key: &str) -> Vec<&'a str> {
    u.get("Service")
        .into_iter()
        .flatten()
        .chain(u.get("Unit").into_iter().flatten())
        .chain(u.get("Install").into_iter().flatten())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(u: &'a HashMap<String, Vec<(String, String)>>, key: &str) -> &'a str {
    let v = values(u, key);
    assert_eq!(v.len(), 1, "{key} once: {v:?}");
    v[0]
}

/// ExecStart with the unit's `Environment=` defaults and systemd specifiers filled in, as the
/// argument list proctor would get.
fn exec_args(u: &HashMap<String, Vec<(String, String)>>) -> Vec<String> {
    let mut env: HashMap<String, String> = HashMap::new();
    for e in values(u, "Environment") {
        let (k, v) = e.split_once('=').unwrap();
        env.insert(k.to_string(), v.to_string());
    }
    let mut args = Vec::new();
    for word in one(u, "ExecStart").split_whitespace() {
        let mut w = word.replace("%d", "/run/credentials/proctor.service");
        for (k, v) in &env {
            w = w.replace(&format!("${{{k}}}"), v);
        }
        if let Some(k) = w.strip_prefix('$') {
            // An unbraced variable expands to zero or more words.
            args.extend(env[k].split_whitespace().map(str::to_string));
        } else {
            assert!(!w.contains('$') && !w.contains('%'), "unexpanded: {w}");
            args.push(w);
        }
    }
    args
}

#[test]
fn units_pass_systemd_analyze_verify_or_a_syntax_check() {
    for name in UNITS {
        let text = std::fs::read_to_string(dist(name)).unwrap();
        let u = parse_unit(&text);
        assert!(
            u.contains_key("Service") && u.contains_key("Install"),
            "{name}"
        );
    }
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not found: checked the units' syntax only");
        return;
    };
    assert!(out.status.success());
    // verify insists that ExecStart's program exists: point it at the binary under test.
    let dir = temp_dir("units");
    let mut paths = Vec::new();
    for name in UNITS {
        let text = std::fs::read_to_string(dist(name))
            .unwrap()
            .replace("/usr/local/bin/proctor", bin());
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {err}");
    // Unknown keys and bad values are only warnings: accept none.
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned: {err}"
    );
}

#[test]
fn the_client_unit_is_hardened_and_keeps_what_the_client_needs() {
    let u = parse_unit(&std::fs::read_to_string(dist("proctor-client.service")).unwrap());
    let mut caps: Vec<&str> = one(&u, "CapabilityBoundingSet").split(' ').collect();
    caps.sort();
    assert_eq!(
        caps,
        [
            "CAP_DAC_READ_SEARCH",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SYS_PTRACE"
        ],
        "capture, dropping the workers to nobody, reading /proc/PID/fd for program attribution"
    );
    assert_eq!(one(&u, "ProtectSystem"), "strict");
    assert_eq!(one(&u, "StateDirectory"), "proctor");
    assert_eq!(one(&u, "Restart"), "on-failure");
    assert_eq!(one(&u, "StandardOutput"), "journal");
    assert_eq!(
        one(&u, "User"),
        "root",
        "the client refuses to run without root"
    );
    assert_eq!(one(&u, "WantedBy"), "multi-user.target");
    // Namespacing that would hide mounts or /dev links from the mount watcher is not used.
    for hidden in [
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ProtectHome",
    ] {
        assert!(values(&u, hidden).is_empty(), "{hidden} hides mounts");
    }
    let families = one(&u, "RestrictAddressFamilies");
    for f in ["AF_PACKET", "AF_INET", "AF_NETLINK", "AF_UNIX"] {
        assert!(families.contains(f), "{f}");
    }
    let args = exec_args(&u);
    assert_eq!(args[0], "/usr/local/bin/proctor");
    let cli = proctor::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let proctor::cli::Command::Client(c) = cli.command else {
        panic!("not the client: {args:?}");
    };
    assert_eq!(c.key.keyfile, Path::new("/etc/proctor/keyfile.key"));
    assert!(!c.key.demo);
    assert_eq!(c.spool, Path::new("/var/lib/proctor"), "the StateDirectory");
    assert_eq!(c.port, 45001);
}

#[test]
fn the_server_unit_runs_headless_without_privileges() {
    let u = parse_unit(&std::fs::read_to_string(dist("proctor-server.service")).unwrap());
    assert_eq!(one(&u, "CapabilityBoundingSet"), "");
    assert_eq!(one(&u, "DynamicUser"), "yes");
    assert_eq!(one(&u, "ProtectSystem"), "strict");
    assert_eq!(one(&u, "StateDirectory"), "proctor-server");
    assert_eq!(one(&u, "LoadCredential"), "key:/etc/proctor/keyfile.key");
    let args = exec_args(&u);
    let cli = proctor::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let proctor::cli::Command::Server(s) = cli.command else {
        panic!("not the server: {args:?}");
    };
    assert!(s.headless);
    assert!(s.logs.starts_with("/var/lib/proctor-server"));
    assert_eq!((s.server_port, s.client_port), (45000, 45001));
}

#[test]
fn the_system_call_filter_allows_what_proctor_uses() {
    let Ok(out) = Command::new("systemd-analyze")
        .args(["syscall-filter", "@system-service"])
        .output()
    else {
        eprintln!("systemd-analyze not found: system call filter not checked");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // @system-service names groups; expand the ones it lists.
    let groups: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('@'))
        .map(str::to_string)
        .collect();
    let all = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .args(&groups)
        .output()
        .unwrap();
    let all = format!("{text}\n{}", String::from_utf8_lossy(&all.stdout));
    let allowed: Vec<&str> = all.lines().map(str::trim).collect();
    for call in [
        "setgroups",
        "setgid",
        "setuid",
        "prctl",
        "socket",
        "bind",
        "setsockopt",
        "poll",
        "ppoll",
        "execve",
        "clone3",
        "pipe2",
        "getrlimit",
        "setrlimit",
        "mmap",
    ] {
        assert!(allowed.contains(&call), "{call} not in @system-service");
    }
}

#[test]
fn the_launchd_plist_is_well_formed_and_starts_the_client() {
    let text = std::fs::read_to_string(dist("com.proctor.client.plist")).unwrap();
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"));
    // Tags balance (comments, the declaration and the doctype aside).
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if rest.starts_with("<!--") {
            rest = &rest[rest.find("-->").expect("comment closed") + 3..];
            continue;
        }
        let end = rest.find('>').expect("tag closed");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        let name = tag.split_whitespace().next().unwrap().to_string();
        if let Some(closing) = name.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(closing),
                "unbalanced </{closing}>"
            );
        } else {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    for key in [
        "Label",
        "ProgramArguments",
        "RunAtLoad",
        "KeepAlive",
        "UserName",
    ] {
        assert!(text.contains(&format!("<key>{key}</key>")), "{key}");
    }
    // The program arguments parse with the real command line.
    let start = text.find("<array>").unwrap();
    let end = text.find("</array>").unwrap();
    let args: Vec<&str> = text[start..end]
        .split("<string>")
        .skip(1)
        .map(|s| s.split("</string>").next().unwrap())
        .collect();
    let cli = proctor::cli::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(matches!(cli.command, proctor::cli::Command::Client(_)));
    // A real plist parser, when the machine has one.
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import plistlib,sys; d=plistlib.load(open(sys.argv[1],'rb')); print(d['Label'])",
        ])
        .arg(dist("com.proctor.client.plist"))
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "com.proctor.client"
        );
    }
    if let Ok(out) = Command::new("plutil")
        .arg("-lint")
        .arg(dist("com.proctor.client.plist"))
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Man page text with the roff markup that matters for searching removed.
fn unroff(s: &str) -> String {
    s.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "")
}

#[test]
fn generated_man_pages_and_completions_cover_every_public_subcommand_and_option() {
    let dir = temp_dir("generate");
    let out = Command::new(bin())
        .arg("__generate")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read =
        |p: &str| std::fs::read_to_string(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let main_page = unroff(&read("man/proctor.1"));
    assert!(
        main_page.starts_with(".ie") || main_page.contains(".TH proctor 1"),
        "{main_page}"
    );
    let completions: Vec<(&str, String)> = ["proctor.bash", "_proctor", "proctor.fish"]
        .iter()
        .map(|f| (*f, read(&format!("completions/{f}"))))
        .collect();

    let cli = proctor::cli::Cli::command();
    let mut public = 0;
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        if sub.is_hide_set() {
            assert!(!main_page.contains(name), "internal {name} in the man page");
            for (f, text) in &completions {
                assert!(
                    !text.contains(&format!("'{name}"))
                        && !text.contains(&format!(" {name} "))
                        && !text.contains(&format!(" {name}\""))
                        && !text.contains(&format!("\"{name}\"")),
                    "internal {name} offered by {f}"
                );
            }
            continue;
        }
        public += 1;
        assert!(
            main_page.contains(&format!("proctor-{name}(1)")),
            "{name} in proctor.1"
        );
        let page = unroff(&read(&format!("man/proctor-{name}.1")));
        for (f, text) in &completions {
            assert!(text.contains(name), "{name} in {f}");
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    page.contains(&format!("--{long}")),
                    "--{long} in proctor-{name}.1"
                );
                let bash = &completions[0].1;
                assert!(
                    bash.contains(&format!("--{long}")),
                    "--{long} in the bash completions"
                );
            }
            if let Some(short) = arg.get_short() {
                assert!(
                    page.contains(&format!("-{short}")),
                    "-{short} in proctor-{name}.1"
                );
            }
            if arg.is_positional() {
                let id = arg
                    .get_value_names()
                    .map(|v| v[0].to_string())
                    .unwrap_or_else(|| arg.get_id().to_string());
                assert!(page.contains(&id), "<{id}> in proctor-{name}.1");
            }
        }
    }
    assert_eq!(
        public, 6,
        "keygen, server, client, inspect, report, install-service"
    );
    // The options added for issue 7 are documented.
    let server = unroff(&read("man/proctor-server.1"));
    assert!(
        server.contains("--jsonl") && server.contains("--syslog") && server.contains("HOST:PORT")
    );
    // The hidden subcommand stays out of --help.
    let help = Command::new(bin()).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("__generate"));
}
