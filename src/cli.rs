//! The whole command line in one place (clap derive). Values are validated here; sockets, keys
//! and files are opened later by the subcommands themselves. The man pages and shell completions
//! are rendered from these definitions too ([`write_docs`], hidden `__generate`).

use clap::{Args, Parser, Subcommand};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Default TCP port the server listens on for clients.
pub const DEFAULT_SERVER_PORT: u16 = 45000;
/// Default UDP port clients listen on for start/stop announcements.
pub const DEFAULT_CLIENT_PORT: u16 = 45001;
/// Default key file path, relative to the working directory.
pub const DEFAULT_KEYFILE: &str = "keyfile.key";

/// proctor: watch an exam lab. A server announces a monitoring session; a client daemon on every
/// lab PC connects back and streams new network flows and filesystem mounts until told to stop.
#[derive(Parser, Debug)]
#[command(name = "proctor", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every subcommand takes: the config file and how much proctor says about itself.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Config file with a [server] and a [client] table whose keys are the long option names
    /// (e.g. key = "/etc/proctor/keyfile.key", server-port = 45000); options given on the
    /// command line win. Default: /etc/proctor/proctor.toml if it exists.
    #[arg(long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Say more about what proctor does, on standard error (-v information, -vv debugging).
    /// Not the evidence: that is in the log files.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only print errors on standard error (no warnings).
    #[arg(short = 'q', long = "quiet", global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a new random shared key (copy it to the server and every lab PC).
    Keygen(KeygenArgs),
    /// Run the invigilator's server: announce a session, receive and log every client's events.
    Server(ServerArgs),
    /// Run the lab-PC daemon (needs root): wait for a session, monitor, report, repeat.
    Client(ClientArgs),
    /// Print the network events the client would report for a capture file (pcap or pcapng).
    Inspect(InspectArgs),
    /// Write a self-contained HTML report of a session from its log directory (flagged events,
    /// counts, connection gaps, full logs), and print a summary.
    Report(ReportArgs),
    /// Install the systemd unit for the client (lab PCs) or the headless server, with this
    /// machine's paths, then enable and start it (needs root).
    #[command(name = "install-service")]
    InstallService(InstallServiceArgs),
    /// Internal: packet capture worker started by the client.
    #[command(name = "__capture-worker", hide = true)]
    CaptureWorker(CaptureWorkerArgs),
    /// Internal: mount watcher worker started by the client.
    #[command(name = "__mount-worker", hide = true)]
    MountWorker,
    /// Internal: USB device watcher worker started by the client.
    #[command(name = "__device-worker", hide = true)]
    DeviceWorker(DeviceWorkerArgs),
    /// Internal: benchmark load generator speaking the real protocol.
    #[command(name = "__loadgen", hide = true)]
    Loadgen(LoadgenArgs),
    /// Internal: write the man pages and shell completions generated from these definitions
    /// (for packaging).
    #[command(name = "__generate", hide = true)]
    Generate(GenerateArgs),
}

/// Hidden `__generate` arguments.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Directory to write into: `man/` (proctor.1 and one page per subcommand) and
    /// `completions/` (bash, zsh, fish). Created if missing.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// The command line as users see it: [`Cli`] without its hidden subcommands (clap_complete
/// would otherwise offer the internal workers for completion).
pub fn public_command() -> clap::Command {
    use clap::CommandFactory;
    let full = Cli::command();
    let public: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut cmd = clap::Command::new("proctor")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .args(full.get_arguments().filter(|a| a.is_global_set()).cloned())
        .subcommands(public);
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// `proctor __generate DIR`: man pages (`DIR/man/proctor.1`, `DIR/man/proctor-<subcommand>.1`)
/// with clap_mangen and shell completions (`DIR/completions/proctor.bash`, `_proctor`,
/// `proctor.fish`) with clap_complete, from the same definitions as `--help`. Hidden
/// subcommands (the workers, the load generator, this one) are left out of both.
pub fn write_docs(args: &GenerateArgs) -> crate::error::Result<()> {
    use clap_complete::Shell;
    let err = |what: &str, e: std::io::Error| crate::error::Error::io(what.to_string(), e);
    let man = args.dir.join("man");
    let completions = args.dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d)
            .map_err(|e| err(&format!("cannot create {}", d.display()), e))?;
    }
    clap_mangen::generate_to(public_command(), &man)
        .map_err(|e| err("cannot write the man pages", e))?;
    let mut cmd = public_command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "proctor", &completions)
            .map_err(|e| err(&format!("cannot write the {shell} completions"), e))?;
    }
    println!(
        "man pages in {}, shell completions in {}",
        man.display(),
        completions.display()
    );
    Ok(())
}

/// Which service `install-service` sets up.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// proctor-client.service: the lab-PC daemon, as root with only the capture capabilities.
    Client,
    /// proctor-server.service: a headless server without privileges (e.g. feeding a collector).
    Server,
}

/// `proctor install-service`.
#[derive(Args, Debug)]
pub struct InstallServiceArgs {
    /// Which unit: client (every lab PC) or server (a headless server).
    #[arg(value_enum, value_name = "WHICH")]
    pub which: ServiceKind,
    /// The shared key file the service uses (copy it there first: see 'proctor keygen').
    #[arg(short = 'k', long = "key", default_value = crate::service::DEFAULT_KEY, value_name = "KEYFILE")]
    pub key: PathBuf,
    /// Directory to write the unit into. Default: /etc/systemd/system.
    #[arg(long = "unit-dir", value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Only write the unit; do not run 'systemctl daemon-reload' and 'systemctl enable --now'.
    #[arg(long = "no-start")]
    pub no_start: bool,
    /// The proctor program the unit starts. Default: this one.
    #[arg(long = "exec", value_name = "PATH")]
    pub exec: Option<PathBuf>,
}

/// `proctor keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key (file mode 0600). Default: keyfile.key, or with --signing
    /// server-signing.key (and its public half next to it, ending in .pub).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Write the server's Ed25519 signing key pair instead (stronger mode): the secret half
    /// stays on the server (--signing-key), the public half goes to every lab PC
    /// (--server-pubkey), so a lab PC holding the shared key cannot stop or redirect others.
    #[arg(long)]
    pub signing: bool,
    /// Replace an existing real key (the shipped demo key is always replaced without asking).
    #[arg(long)]
    pub force: bool,
}

/// Options shared by server and client for the key.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// The shared key file written by `proctor keygen` (must not be readable by group or others).
    #[arg(short = 'k', long = "key", default_value = DEFAULT_KEYFILE, value_name = "KEYFILE")]
    pub keyfile: PathBuf,
    /// Accept the public demo key shipped with proctor. Only for trying it out: anyone can
    /// forge announcements with that key.
    #[arg(long)]
    pub demo: bool,
}

/// `proctor server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// TCP port to listen on for clients.
    #[arg(short = 's', long = "server-port", default_value_t = DEFAULT_SERVER_PORT, value_name = "PORT")]
    pub server_port: u16,
    /// UDP port the clients listen on for announcements.
    #[arg(short = 'c', long = "client-port", default_value_t = DEFAULT_CLIENT_PORT, value_name = "CLIENT_PORT")]
    pub client_port: u16,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Directory for the log files; each session gets its own sub-directory.
    #[arg(long = "logs", default_value = "server_logs", value_name = "DIR")]
    pub logs: PathBuf,
    /// Broadcast address for announcements (repeatable). Default: the broadcast address of every
    /// up IPv4 interface.
    #[arg(long = "broadcast", value_name = "ADDR")]
    pub broadcast: Vec<Ipv4Addr>,
    /// Seconds between re-announcements of a running session, so late clients join by themselves.
    #[arg(long = "announce-every", default_value_t = 2.0, value_name = "SECS", value_parser = positive_secs)]
    pub announce_every: f64,
    /// Stronger mode: sign announcements and handshakes with this Ed25519 key
    /// (from 'proctor keygen --signing').
    #[arg(long = "signing-key", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Run without a window: start a session at once, print one line per event, stop on
    /// SIGINT/SIGTERM. Without it, the invigilator's window opens (needs an X display).
    #[arg(long)]
    pub headless: bool,
    /// Stop the session by itself after this many seconds (for scripts and tests).
    #[arg(long = "stop-after", value_name = "SECS", value_parser = positive_secs)]
    pub stop_after: Option<f64>,
    /// Window only: start a session as soon as the window opens (instead of waiting for the
    /// Start button).
    #[arg(long, conflicts_with = "headless")]
    pub start: bool,
    /// Window only: close the window by itself after this many seconds, stopping a running
    /// session cleanly first, without asking (for tests and demos).
    #[arg(long = "quit-after", value_name = "SECS", value_parser = positive_secs, conflicts_with = "headless")]
    pub quit_after: Option<f64>,
    /// Window only: when the program quits, write what the window shows (machine table,
    /// Start/Stop control, message, session) to FILE as JSON (for tests).
    #[arg(long = "dump-state", value_name = "FILE", conflicts_with = "headless")]
    pub dump_state: Option<PathBuf>,
    /// Also write every event as JSON Lines (one object per line) to FILE, appending; `-` for
    /// standard output (proctor's own messages then go to standard error).
    #[arg(long = "jsonl", value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Also forward every event as RFC 5424 syslog over TCP (octet-counted framing) to the
    /// collector at HOST:PORT (rsyslog imtcp, syslog-ng, Fluent Bit, Vector...). Never slows the
    /// server: if the collector is down, events are queued, then dropped and counted.
    #[arg(long = "syslog", value_name = "HOST:PORT", value_parser = crate::server::export::syslog::parse_target)]
    pub syslog: Option<String>,
    /// Judge every network, mount and device event against the allow-lists in this TOML file
    /// (see docs/POLICY.md and dist/policy.example.toml): each such log line ends with
    /// `verdict=ok` or `verdict=flagged why="..."`, flagged events are counted per machine and
    /// highlighted. The file is reloaded when it changes, on SIGHUP, or from the window; a
    /// broken file at start is an error (exit 2), a broken reload keeps the previous policy.
    #[arg(long = "policy", value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// `proctor client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// UDP port to listen on for the server's announcements.
    #[arg(short = 'p', long = "port", default_value_t = DEFAULT_CLIENT_PORT, value_name = "PORT")]
    pub port: u16,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Interface to capture on (repeatable). Default: every up, non-loopback interface.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Report every selected packet instead of one line per flow (floods the log; the original
    /// behaviour).
    #[arg(long = "per-packet")]
    pub per_packet: bool,
    /// Seconds without packets after which a flow is reported as ended.
    #[arg(long = "flow-idle", default_value_t = 30.0, value_name = "SECS", value_parser = positive_secs)]
    pub flow_idle: f64,
    /// Name to report instead of the machine's host name.
    #[arg(long = "hostname", value_name = "NAME")]
    pub hostname: Option<String>,
    /// Stronger mode: accept start/stop and servers only when signed by the key whose public
    /// half is in FILE (from 'proctor keygen --signing').
    #[arg(long = "server-pubkey", value_name = "FILE")]
    pub server_pubkey: Option<PathBuf>,
    /// Directory for the on-disk spool that keeps events until the server acknowledges them
    /// (survives a client restart or reboot).
    #[arg(long = "spool", default_value = "/var/lib/proctor", value_name = "DIR")]
    pub spool: PathBuf,
    /// Most unacknowledged events the spool keeps while the server is unreachable; if it fills,
    /// the oldest are dropped and their number is reported.
    #[arg(long = "spool-limit", default_value_t = 1_000_000, value_name = "EVENTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub spool_limit: u64,
    /// Where sysfs is mounted, for the USB device worker (hidden: tests point it at a fake tree).
    #[arg(
        long = "sysfs-root",
        default_value = "/sys",
        value_name = "DIR",
        hide = true
    )]
    pub sysfs_root: PathBuf,
}

/// Hidden `__device-worker` arguments, passed by the client.
#[derive(Args, Debug)]
pub struct DeviceWorkerArgs {
    /// Where sysfs is mounted (a fake tree in tests).
    #[arg(long = "sysfs", default_value = "/sys", value_name = "DIR")]
    pub sysfs: PathBuf,
}

/// `proctor inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// One line per selected packet instead of one line per flow.
    #[arg(long = "per-packet")]
    pub per_packet: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Seconds without packets after which a flow is reported as ended.
    #[arg(long = "flow-idle", default_value_t = 30.0, value_name = "SECS", value_parser = positive_secs)]
    pub flow_idle: f64,
    /// The capture file (pcap or pcapng).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `proctor report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The session's log directory: one of the directories the server creates under its --logs
    /// directory (e.g. server_logs/2026-11-26T14-09-42Z). Only the files are needed, so it can
    /// be a copy on another machine.
    #[arg(value_name = "SESSION_DIR")]
    pub session_dir: PathBuf,
    /// Where to write the HTML report. Default: report.html inside SESSION_DIR. Progress goes
    /// to standard error (a live files/bytes line on a terminal, otherwise one closing line);
    /// the global -q silences it.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Hidden `__loadgen` arguments (benchmarks).
#[derive(Args, Debug)]
pub struct LoadgenArgs {
    /// The server's stream endpoint.
    #[arg(long)]
    pub server: SocketAddr,
    /// The running session's id (hex, as the server prints it).
    #[arg(long)]
    pub session: String,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Simulated lab PCs (one connection each).
    #[arg(short = 'c', long = "conns", default_value_t = 1)]
    pub conns: usize,
    /// Events per connection.
    #[arg(short = 'n', long = "events", default_value_t = 100_000)]
    pub events: u64,
    /// Most unacknowledged events in flight per connection.
    #[arg(long, default_value_t = 4096)]
    pub window: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Pace the events: at most this many per second over all connections together (each
    /// sent as soon as it is due, so a low rate gives one event per frame, as a quiet lab PC
    /// does). Without it, events go out as fast as the window allows.
    #[arg(long, value_name = "EVENTS_PER_S", value_parser = crate::loadgen::parse_rate)]
    pub rate: Option<f64>,
    /// Append the send time to each event's detail as ` t=<microseconds since the Unix epoch>`
    /// (taken just before the event is sealed), so transport latency can be read from the
    /// server's files: file line seen minus `t`.
    #[arg(long)]
    pub stamp: bool,
}

/// Hidden `__capture-worker` arguments, passed by the client.
#[derive(Args, Debug)]
pub struct CaptureWorkerArgs {
    /// Interfaces to capture on.
    #[arg(long = "iface", required = true)]
    pub ifaces: Vec<String>,
    /// The server's stream endpoint, whose TCP traffic is proctor's own and never reported.
    #[arg(long = "exclude-tcp")]
    pub exclude_tcp: Vec<SocketAddr>,
    /// UDP port of the announcements, never reported.
    #[arg(long = "exclude-udp-port")]
    pub exclude_udp_port: Vec<u16>,
    /// One event per selected packet.
    #[arg(long = "per-packet")]
    pub per_packet: bool,
    /// Flow idle timeout in seconds.
    #[arg(long = "flow-idle", default_value_t = 30.0)]
    pub flow_idle: f64,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v < 1e7 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be a positive number of seconds"))
    }
}
