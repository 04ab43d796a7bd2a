//! Issue 7, the lab admin's side: the config file (`--config`, `/etc/proctor/proctor.toml`) and
//! its precedence under the command line, errors with line numbers, the example in `dist/`;
//! `-q`/`-v` and the journal prefixes for proctor's own messages.

mod common;

use clap::CommandFactory;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn dist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(name)
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The repository's demo key, which needs `--demo` and draws a warning.
fn demo_key() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("keyfile.key")
        .display()
        .to_string()
}

#[test]
fn the_example_config_loads_cleanly_and_sets_what_it_says() {
    let text = std::fs::read_to_string(dist("proctor.toml")).unwrap();
    let cfg = proctor::config::parse(&text, &proctor::cli::Cli::command())
        .unwrap_or_else(|e| panic!("dist/proctor.toml: {e}"));
    let words =
        |t: &str| -> Vec<String> { cfg.tables[t].iter().flat_map(|e| e.words.clone()).collect() };
    let client = words("client");
    assert!(client.contains(&"--key=/etc/proctor/keyfile.key".to_string()));
    assert!(client.contains(&"--port=45001".to_string()));
    let server = words("server");
    assert!(server.contains(&"--logs=/var/lib/proctor-server/logs".to_string()));
    assert!(server.contains(&"--server-port=45000".to_string()));
    // And the real binary accepts it (up to the key, which this machine need not have).
    let (code, _, err) = run(&[
        "--config",
        dist("proctor.toml").to_str().unwrap(),
        "server",
        "--headless",
        "-k",
        "/nonexistent/proctor-test.key",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot read key file /nonexistent/proctor-test.key"),
        "{err}"
    );
}

#[test]
fn the_command_line_wins_over_the_file_and_the_file_over_defaults() {
    let dir = temp_dir("config-precedence");
    let key = keygen(&dir, "k.key");
    let (file_port, cport) = ports(60);
    let (cli_port, _) = ports(61);
    let cfg = dir.join("proctor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nkey = \"{}\"\nserver-port = {file_port}\nclient-port = {cport}\nlogs = \"{}\"\nbroadcast = [\"127.255.255.255\"]\nheadless = true\nstop-after = 30\n",
            key.display(),
            dir.join("file-logs").display()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    // Only the file: its port, its log directory, headless, its key.
    let mut p = Proc::start(
        &["server", "--config", cfg_s, "--stop-after", "1"],
        dir.join("a.out"),
    );
    assert_eq!(
        p.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        p.output()
    );
    let out = p.output();
    assert!(
        out.contains(&format!("listening on TCP port {file_port}")),
        "{out}"
    );
    assert!(
        out.contains(&dir.join("file-logs").display().to_string()),
        "{out}"
    );
    // The command line wins: -s and --logs given.
    let cli_logs = dir.join("cli-logs");
    let mut p = Proc::start(
        &[
            "--config",
            cfg_s,
            "server",
            "-s",
            &cli_port.to_string(),
            "--logs",
            cli_logs.to_str().unwrap(),
            "--stop-after",
            "1",
        ],
        dir.join("b.out"),
    );
    assert_eq!(
        p.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        p.output()
    );
    let out = p.output();
    assert!(
        out.contains(&format!("listening on TCP port {cli_port}")),
        "{out}"
    );
    assert!(out.contains(&cli_logs.display().to_string()), "{out}");
    assert!(cli_logs.is_dir());
}

#[test]
fn config_errors_name_the_file_and_line_and_exit_2() {
    let dir = temp_dir("config-errors");
    let cfg = dir.join("bad.toml");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let cases = [
        (
            "[client]\n# ok so far\nport = 45001\nfoo = 1\n",
            "line 4: unknown key 'foo' in [client]",
        ),
        (
            "[server]\n\nserver-port = \"45000\"\n",
            "line 3: 'server-port' in [server] must be an integer, not a string",
        ),
        (
            "[server]\nbroadcast = [\"300.1.1.1\"]\n",
            "line 2: invalid value '300.1.1.1' for '--broadcast <ADDR>'",
        ),
        (
            "[server]\nserver-port = 45000\n[server]\n",
            "line 3: not valid TOML",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&cfg, text).unwrap();
        for sub in ["server", "client"] {
            let (code, _, err) = run(&[sub, "--config", &cfg_s, "-k", "/nonexistent"]);
            assert_eq!(code, Some(2), "{text}: {err}");
            assert!(
                err.contains(&format!("config file {cfg_s}, {want}")),
                "{sub} {text:?}: {err}"
            );
        }
    }
    // A file named with --config must exist.
    let missing = dir.join("missing.toml");
    let (code, _, err) = run(&["client", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot read config file") && err.contains("missing.toml"),
        "{err}"
    );
    // A setting that clashes with the command line is reported with the file's name.
    std::fs::write(&cfg, "[server]\nstart = true\n").unwrap();
    let (code, _, err) = run(&["server", "--config", &cfg_s, "--headless"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("with the settings of config file {cfg_s}")),
        "{err}"
    );
    assert!(err.contains("--start"), "{err}");
}

/// Runs a headless server for a moment with the demo key and `flags`; returns its stderr.
fn demo_server_stderr(dir: &Path, slot: u16, flags: &[&str]) -> String {
    let (sport, cport) = ports(slot);
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    args.extend(server_args(dir, Path::new(&demo_key()), sport, cport));
    args.extend(["--demo", "--headless", "--stop-after", "0.3"].map(String::from));
    let out = Command::new(bin()).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn quiet_silences_warnings_and_verbose_shows_information() {
    let dir = temp_dir("log-levels");
    let warning = "proctor: warning: using the public demo key";
    let normal = demo_server_stderr(&dir, 62, &[]);
    assert!(normal.contains(warning), "{normal}");
    assert!(!normal.contains("proctor: info:"), "{normal}");
    let quiet = demo_server_stderr(&dir, 63, &["-q"]);
    assert!(!quiet.contains("warning"), "{quiet}");
    // -v: information too, e.g. which config file was read.
    let cfg = dir.join("p.toml");
    let jsonl = dir.join("e.jsonl");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nannounce-every = 1.5\njsonl = \"{}\"\n",
            jsonl.display()
        ),
    )
    .unwrap();
    let verbose = demo_server_stderr(&dir, 64, &["-v", "--config", cfg.to_str().unwrap()]);
    assert!(verbose.contains(warning), "{verbose}");
    assert!(
        verbose.contains(&format!(
            "proctor: info: read config file {}",
            cfg.display()
        )),
        "{verbose}"
    );
    // -vv: debugging too, e.g. what the file set and what the command line overrode.
    // (server_args gives --announce-every on the command line.)
    let debug = demo_server_stderr(&dir, 67, &["-vv", "--config", cfg.to_str().unwrap()]);
    let c = cfg.display();
    assert!(
        debug.contains(&format!(
            "proctor: debug: {c} line 2: announce-every = 1.5 (the command line wins)\n"
        )) && debug.contains(&format!(
            "proctor: debug: {c} line 3: jsonl = {}\n",
            jsonl.display()
        )),
        "{debug}"
    );
    assert!(jsonl.exists(), "the file's jsonl setting applied");
    // -q and -v together are a usage error.
    let (code, _, err) = run(&["-q", "-v", "keygen"]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn under_the_journal_lines_carry_sd_daemon_levels() {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("journal");
    let (sport, cport) = ports(65);
    let err_path = dir.join("stderr");
    let err_file = std::fs::File::create(&err_path).unwrap();
    let meta = err_file.metadata().unwrap();
    // JOURNAL_STREAM names the file stderr goes to, as systemd does for the journal's socket.
    let mut args = server_args(&dir, Path::new(&demo_key()), sport, cport);
    args.extend(["--demo", "--headless", "--stop-after", "0.3"].map(String::from));
    let status = Command::new(bin())
        .args(&args)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(std::process::Stdio::null())
        .stderr(err_file)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("<4>using the public demo key")),
        "{text}"
    );
    assert!(!text.contains("proctor: warning"), "{text}");
    // A JOURNAL_STREAM that names another file (stderr redirected elsewhere) is ignored.
    let (sport, cport) = ports(66);
    let mut args = server_args(&dir, Path::new(&demo_key()), sport, cport);
    args.extend(["--demo", "--headless", "--stop-after", "0.3"].map(String::from));
    let out = Command::new(bin())
        .args(&args)
        .env("JOURNAL_STREAM", "1:1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("proctor: warning: using the public demo key"),
        "{text}"
    );
}

/// `systemd-analyze verify` on unit files, if the machine has it; returns whether it ran.
fn systemd_verify(paths: &[PathBuf]) -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not found: units not verified");
        return false;
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(paths)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {err}");
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned: {err}"
    );
    true
}

#[test]
fn install_service_writes_units_that_verify_with_the_paths_filled_in() {
    let dir = temp_dir("install-service");
    let units = dir.join("units");
    let key = keygen(&dir, "lab.key");
    let cfg = dir.join("room.toml");
    std::fs::write(&cfg, "[client]\nport = 45001\n").unwrap();
    let mut written = Vec::new();
    for which in ["client", "server"] {
        let (code, out, err) = run(&[
            "install-service",
            which,
            "--unit-dir",
            units.to_str().unwrap(),
            "--no-start",
            "-k",
            key.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        let file = units.join(format!("proctor-{which}.service"));
        assert!(out.contains(&format!("wrote {}", file.display())), "{out}");
        assert!(out.contains("systemctl enable --now"), "{out}");
        let text = std::fs::read_to_string(&file).unwrap();
        // The program is this binary; the key and config are the ones given.
        let exec = std::fs::canonicalize(bin()).unwrap();
        let exec_line = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert!(
            exec_line.starts_with(&format!(
                "ExecStart={} {which} --config {} ",
                exec.display(),
                cfg.display()
            )),
            "{exec_line}"
        );
        let key_line = if which == "client" {
            format!("Environment=PROCTOR_KEY={}", key.display())
        } else {
            format!("LoadCredential=key:{}", key.display())
        };
        assert!(text.lines().any(|l| l == key_line), "{text}");
        written.push(file);
    }
    systemd_verify(&written);
    // The client unit's command line, with the unit's variables filled in, is one the client
    // accepts, and the config file named in it is read (-v says so).
    let text = std::fs::read_to_string(&written[0]).unwrap();
    let exec_line = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    let args: Vec<String> = exec_line["ExecStart=".len()..]
        .split_whitespace()
        .skip(1)
        .filter(|w| *w != "$PROCTOR_CLIENT_OPTS")
        .map(|w| w.replace("${PROCTOR_KEY}", key.to_str().unwrap()))
        .collect();
    let cli = <proctor::cli::Cli as clap::Parser>::try_parse_from(
        std::iter::once("proctor".to_string()).chain(args),
    )
    .unwrap();
    assert_eq!(cli.global.config.as_deref(), Some(cfg.as_path()));
    let proctor::cli::Command::Client(c) = cli.command else {
        panic!("not the client");
    };
    assert_eq!(c.key.keyfile, key);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn install_service_refuses_without_root_and_bad_paths() {
    use std::os::unix::process::CommandExt;
    let dir = temp_dir("install-service-refusals");
    // As nobody, into the system directory: refused with exit 3 before anything is written.
    let out = Command::new(bin())
        .args(["install-service", "client", "--no-start"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("must run as root"), "{err}");
    // A key path systemd would mangle is a usage error.
    let (code, _, err) = run(&[
        "install-service",
        "client",
        "--unit-dir",
        dir.to_str().unwrap(),
        "--no-start",
        "-k",
        "/etc/my keys/k.key",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot go in a unit file"), "{err}");
    assert!(!dir.join("proctor-client.service").exists());
    // A missing key is written anyway, with a warning saying what to do.
    let (code, _, err) = run(&[
        "install-service",
        "server",
        "--unit-dir",
        dir.to_str().unwrap(),
        "--no-start",
        "-k",
        "/nonexistent/k.key",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("does not exist yet") && err.contains("proctor keygen"),
        "{err}"
    );
}
