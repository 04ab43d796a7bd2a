//! The config file (`/etc/proctor/proctor.toml`, or `--config FILE`): a `[server]` and a
//! `[client]` table whose keys are the long option names of those subcommands
//! (`key = "/etc/proctor/keyfile.key"`, `broadcast = ["10.1.2.255"]`, `server-port = 45000`,
//! `demo = true`...). Options given on the command line win over the file; the file wins over the
//! built-in defaults.
//!
//! The file is checked against the clap definitions themselves ([`crate::cli`]), so every option
//! a flag can set can be set here, with the same validation, and nothing else: an unknown table or
//! key, a value of the wrong TOML type or a value the option refuses is an error naming the file
//! and line. Checked entries become command-line words (`--server-port=45000`) appended after the
//! user's own for the options the user did not give ([`merged_args`]); clap then parses the
//! whole line once more, so a setting in the file behaves exactly like the flag.
//!
//! [`parse`] is pure (text in, entries out); [`load`] adds the file system.

use clap::ArgAction;
use clap::parser::ValueSource;
use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use toml::de::{DeTable, DeValue};

/// Where proctor looks for its config file when `--config` is not given. A missing file here is
/// fine (flags and defaults apply); a missing file named with `--config` is an error.
pub const DEFAULT_CONFIG: &str = "/etc/proctor/proctor.toml";

/// The subcommands that read a table of the config file.
pub const SECTIONS: [&str; 2] = ["server", "client"];

/// Options that are not settings of a subcommand and so are refused in the file.
const NOT_IN_FILE: [&str; 5] = ["config", "verbose", "quiet", "help", "version"];

/// One checked `key = value` of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The option's long name, as written in the file.
    pub key: String,
    /// The option's clap id (what [`clap::ArgMatches::value_source`] takes).
    pub id: String,
    /// 1-based line of the key in the file.
    pub line: usize,
    /// The command-line words that set it (`--port=45001`; none for a `false` flag).
    pub words: Vec<String>,
}

impl Entry {
    /// The value as the file set it, for messages (`true`, `45001`, `10.0.0.255, 10.1.0.255`).
    pub fn shown(&self) -> String {
        let prefix = format!("--{}=", self.key);
        match self.words.as_slice() {
            [] => "false".into(),
            [flag] if !flag.contains('=') => "true".into(),
            words => words
                .iter()
                .map(|w| w.strip_prefix(&prefix).unwrap_or(w))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A parsed config file: the checked entries of each table present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Table name (`server`, `client`) to its entries, in file order.
    pub tables: BTreeMap<String, Vec<Entry>>,
}

/// 1-based line number of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The TOML type name of a value, for error messages.
fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// What TOML type an option's value must have, from the type its clap value parser produces.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Bool,
    Integer,
    Number,
    Text,
}

impl Want {
    fn of(arg: &clap::Arg) -> Want {
        if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            return Want::Bool;
        }
        let t = arg.get_value_parser().type_id();
        let ints = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i64>(),
        ];
        if ints.iter().any(|i| t == *i) {
            Want::Integer
        } else if t == TypeId::of::<f64>() {
            Want::Number
        } else {
            Want::Text
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Want::Bool => "a boolean (true or false)",
            Want::Integer => "an integer",
            Want::Number => "a number",
            Want::Text => "a string",
        }
    }

    /// The value as the text clap would see on the command line, if the TOML type fits.
    fn text(self, v: &DeValue<'_>) -> Option<String> {
        match (self, v) {
            (Want::Integer | Want::Number, DeValue::Integer(i)) => {
                // TOML integers may be hexadecimal, octal or binary, with `_` separators; clap
                // takes decimal. One too big for i128 is passed on as written, for clap to refuse.
                let digits = i.as_str().replace('_', "");
                Some(
                    i128::from_str_radix(&digits, i.radix())
                        .map(|n| n.to_string())
                        .unwrap_or(digits),
                )
            }
            (Want::Number, DeValue::Float(f)) => Some(f.as_str().replace('_', "")),
            (Want::Text, DeValue::String(s)) => Some(s.to_string()),
            _ => None,
        }
    }
}

/// Runs one value through the option's own clap value parser, so the file gets exactly the
/// validation (ranges, addresses, positive seconds...) the flag gets. Returns clap's reason.
fn check_value(arg: &clap::Arg, long: &str, value: &str) -> Result<(), String> {
    // A bare copy of the option: the original's relations (conflicts_with...) name options the
    // probe does not have. clap wants a 'static long name, so the probe's is fixed and the
    // message gets the real one back.
    let mut probe = clap::Arg::new("value")
        .long("value")
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        probe = probe.value_names(names.iter().cloned());
    }
    clap::Command::new("proctor")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")])
        .map(|_| ())
        .map_err(|e| {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid value");
            first
                .strip_prefix("error: ")
                .unwrap_or(first)
                .replace("'--value", &format!("'--{long}"))
        })
}

/// The settable options of a subcommand: long name to its definition.
fn settable(sub: &clap::Command) -> BTreeMap<String, clap::Arg> {
    sub.get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .filter_map(|a| Some((a.get_long()?.to_string(), a.clone())))
        .filter(|(l, _)| !NOT_IN_FILE.contains(&l.as_str()))
        .collect()
}

/// Parses and checks a config file's text against the command line `cmd` (normally
/// [`crate::cli::Cli`]'s). Errors say `line N: ...`; the caller adds the file name.
pub fn parse(text: &str, cmd: &clap::Command) -> Result<Config, String> {
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        format!("line {line}: not valid TOML: {}", e.message())
    })?;
    let mut cfg = Config::default();
    // Tables in file order (the map itself is sorted by name).
    let mut tables: Vec<_> = doc.get_ref().iter().collect();
    tables.sort_by_key(|(k, _)| k.span().start);
    for (name, value) in tables {
        let line = line_of(text, name.span().start);
        let name = name.get_ref().as_ref();
        let DeValue::Table(table) = value.get_ref() else {
            return Err(format!(
                "line {line}: '{name}' must be a table: put settings under [server] or [client]"
            ));
        };
        let sub = cmd
            .get_subcommands()
            .find(|s| s.get_name() == name)
            .filter(|_| SECTIONS.contains(&name))
            .ok_or_else(|| {
                format!("line {line}: unknown table [{name}] (proctor reads [server] and [client])")
            })?;
        let options = settable(sub);
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = Vec::new();
        for (key, value) in entries {
            let line = line_of(text, key.span().start);
            let key = key.get_ref().as_ref();
            let arg = options.get(key).ok_or_else(|| {
                let known: Vec<&str> = options.keys().map(String::as_str).collect();
                format!(
                    "line {line}: unknown key '{key}' in [{name}] (known: {})",
                    known.join(", ")
                )
            })?;
            out.push(Entry {
                key: key.to_string(),
                id: arg.get_id().to_string(),
                line,
                words: words(arg, key, value.get_ref(), line, name)?,
            });
        }
        cfg.tables.insert(name.to_string(), out);
    }
    Ok(cfg)
}

/// The command-line words for one checked `key = value`.
fn words(
    arg: &clap::Arg,
    key: &str,
    value: &DeValue<'_>,
    line: usize,
    table: &str,
) -> Result<Vec<String>, String> {
    let want = Want::of(arg);
    let wrong = |v: &DeValue<'_>| {
        format!(
            "line {line}: '{key}' in [{table}] must be {}, not {}",
            want.describe(),
            type_name(v)
        )
    };
    if want == Want::Bool {
        return match value {
            DeValue::Boolean(true) => Ok(vec![format!("--{key}")]),
            DeValue::Boolean(false) => Ok(vec![]),
            v => Err(wrong(v)),
        };
    }
    let repeatable = matches!(arg.get_action(), ArgAction::Append);
    let items: Vec<&DeValue<'_>> = match value {
        DeValue::Array(a) if repeatable => a.iter().map(|v| v.get_ref()).collect(),
        DeValue::Array(_) => {
            return Err(format!(
                "line {line}: '{key}' in [{table}] takes one value, not an array"
            ));
        }
        v => vec![v],
    };
    let mut out = Vec::new();
    for item in items {
        let text = want.text(item).ok_or_else(|| {
            if repeatable {
                format!(
                    "line {line}: '{key}' in [{table}] must be {} or an array of them, not {}",
                    want.describe(),
                    type_name(item)
                )
            } else {
                wrong(item)
            }
        })?;
        check_value(arg, key, &text).map_err(|e| format!("line {line}: {e}"))?;
        out.push(format!("--{key}={text}"));
    }
    Ok(out)
}

/// The command line to parse for real: `argv` with the words of every entry of `table` whose
/// option was not given on the command line (`sub` is that subcommand's first-pass matches).
pub fn merged_args(
    argv: &[OsString],
    sub: &clap::ArgMatches,
    cfg: &Config,
    table: &str,
) -> Vec<OsString> {
    let mut out = argv.to_vec();
    for e in cfg.tables.get(table).into_iter().flatten() {
        let from_cli = matches!(
            sub.value_source(&e.id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if !from_cli {
            out.extend(e.words.iter().map(OsString::from));
        }
    }
    out
}

/// Which file to read: the `--config` value (`explicit`) or the default path.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// True when named with `--config` (then it must exist).
    pub explicit: bool,
}

/// Reads and checks the config file. `Ok(None)` when the default file does not exist.
pub fn load(src: &Source, cmd: &clap::Command) -> crate::error::Result<Option<Config>> {
    use crate::error::Error;
    let shown = src.path.display();
    let text = match std::fs::read_to_string(&src.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !src.explicit => {
            log::info!("no config file at {shown}: using the command line and defaults");
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::Usage(format!(
                "cannot read config file {shown}: {e}"
            )));
        }
    };
    let cfg = parse(&text, cmd).map_err(|e| Error::Usage(format!("config file {shown}, {e}")))?;
    log::info!("read config file {shown}");
    Ok(Some(cfg))
}

/// Why the command line could not be turned into a [`crate::cli::Cli`].
#[derive(Debug)]
pub enum CommandLineError {
    /// clap's own outcome (a usage error, or `--help`/`--version`): `main` lets clap print it and
    /// exit with clap's code.
    Clap(clap::Error),
    /// The config file is unreadable or wrong, or its settings clash with the command line.
    Config(crate::error::Error),
}

/// Parses the command line `argv`, installs the logger at the level `-v`/`-q` ask for, and for
/// `server` and `client` merges in the config file's table (command line first). The one entry
/// point `main` uses.
pub fn parse_command_line(argv: Vec<OsString>) -> Result<crate::cli::Cli, CommandLineError> {
    use crate::error::Error;
    use clap::{CommandFactory, FromArgMatches};
    let cmd = crate::cli::Cli::command();
    let first = cmd
        .clone()
        .try_get_matches_from(&argv)
        .map_err(CommandLineError::Clap)?;
    let cli = crate::cli::Cli::from_arg_matches(&first).map_err(CommandLineError::Clap)?;
    crate::logging::init(crate::logging::level_for(
        cli.global.verbose,
        cli.global.quiet,
    ));
    let Some((name, sub)) = first.subcommand().filter(|(n, _)| SECTIONS.contains(n)) else {
        return Ok(cli);
    };
    let src = match &cli.global.config {
        Some(p) => Source {
            path: p.clone(),
            explicit: true,
        },
        None => Source {
            path: DEFAULT_CONFIG.into(),
            explicit: false,
        },
    };
    let Some(cfg) = load(&src, &cmd).map_err(CommandLineError::Config)? else {
        return Ok(cli);
    };
    for e in cfg.tables.get(name).into_iter().flatten() {
        let overridden = matches!(sub.value_source(&e.id), Some(ValueSource::CommandLine));
        log::debug!(
            "{} line {}: {} = {}{}",
            src.path.display(),
            e.line,
            e.key,
            e.shown(),
            if overridden {
                " (the command line wins)"
            } else {
                ""
            }
        );
    }
    let merged = merged_args(&argv, sub, &cfg, name);
    if merged.len() == argv.len() {
        return Ok(cli);
    }
    <crate::cli::Cli as clap::Parser>::try_parse_from(&merged).map_err(|e| {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("invalid settings");
        CommandLineError::Config(Error::Usage(format!(
            "with the settings of config file {}: {}",
            src.path.display(),
            first.strip_prefix("error: ").unwrap_or(first)
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cmd() -> clap::Command {
        crate::cli::Cli::command()
    }

    fn words_of(cfg: &Config, table: &str) -> Vec<String> {
        cfg.tables[table]
            .iter()
            .flat_map(|e| e.words.clone())
            .collect()
    }

    #[test]
    fn keys_become_flags_with_lines() {
        let text = "# proctor\n[server]\nserver-port = 0xb3b0\nbroadcast = [\"10.1.2.255\", \"10.1.3.255\"]\nkey = \"/etc/proctor/k.key\"\ndemo = true\nheadless = false\nannounce-every = 1\n\n[client]\nport = 45001\ninterface = \"eth0\"\nflow-idle = 2.5\n";
        let cfg = parse(text, &cmd()).unwrap();
        assert_eq!(
            words_of(&cfg, "server"),
            [
                "--server-port=46000",
                "--broadcast=10.1.2.255",
                "--broadcast=10.1.3.255",
                "--key=/etc/proctor/k.key",
                "--demo",
                "--announce-every=1"
            ]
        );
        assert_eq!(cfg.tables["server"][0].line, 3);
        assert_eq!(cfg.tables["server"][2].id, "keyfile");
        assert_eq!(
            words_of(&cfg, "client"),
            ["--port=45001", "--interface=eth0", "--flow-idle=2.5"]
        );
        assert_eq!(cfg.tables["client"][2].line, 13);
    }

    #[test]
    fn errors_name_the_line_and_the_reason() {
        let cases = [
            (
                "[server]\nport = 1\n",
                "line 2: unknown key 'port' in [server]",
            ),
            (
                "[server]\n\n\nserver-port = \"x\"\n",
                "line 4: 'server-port' in [server] must be an integer, not a string",
            ),
            (
                "[client]\nport = 70000\n",
                "line 2: invalid value '70000' for '--port <PORT>'",
            ),
            (
                "[client]\nflow-idle = -1.0\n",
                "line 2: invalid value '-1.0' for '--flow-idle <SECS>'",
            ),
            (
                "[server]\nbroadcast = [\"10.0.0.255\", \"nope\"]\n",
                "line 2: invalid value 'nope' for '--broadcast <ADDR>'",
            ),
            (
                "[server]\ndemo = \"yes\"\n",
                "line 2: 'demo' in [server] must be a boolean (true or false), not a string",
            ),
            (
                "[server]\nlogs = [\"a\"]\n",
                "line 2: 'logs' in [server] takes one value, not an array",
            ),
            (
                "[server]\nbroadcast = 5\n",
                "line 2: 'broadcast' in [server] must be a string or an array of them, not an integer",
            ),
            (
                "\n[keygen]\nforce = true\n",
                "line 2: unknown table [keygen]",
            ),
            ("[servr]\n", "line 1: unknown table [servr]"),
            ("key = \"x\"\n", "line 1: 'key' must be a table"),
            ("[server]\nverbose = 2\n", "line 2: unknown key 'verbose'"),
            ("[server]\nconfig = \"x\"\n", "line 2: unknown key 'config'"),
            ("[client]\nport = 1\n\nport = 2\n", "line 4: not valid TOML"),
            ("[client]\nport = \n", "line 2: not valid TOML"),
            (
                "[client]\nport = 0x1_0000\n",
                "line 2: invalid value '65536' for '--port <PORT>'",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, &cmd()).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let cfg = parse(
            "[server]\nserver-port = 46000\nbroadcast = \"10.0.0.255\"\nlogs = \"/srv/l\"\n",
            &cmd(),
        )
        .unwrap();
        let argv: Vec<OsString> = ["proctor", "server", "-s", "47000", "--headless"]
            .iter()
            .map(OsString::from)
            .collect();
        let m = cmd().try_get_matches_from(&argv).unwrap();
        let sub = m.subcommand_matches("server").unwrap();
        let merged = merged_args(&argv, sub, &cfg, "server");
        assert_eq!(
            merged[argv.len()..],
            [
                OsString::from("--broadcast=10.0.0.255"),
                "--logs=/srv/l".into()
            ]
        );
    }

    #[test]
    fn every_server_and_client_option_can_be_set() {
        // Each settable option, with a value of its type, passes parse and the real parser.
        let c = cmd();
        for table in SECTIONS {
            let sub = c.get_subcommands().find(|s| s.get_name() == table).unwrap();
            for (long, arg) in settable(sub) {
                let v = match Want::of(&arg) {
                    Want::Bool => "true".to_string(),
                    Want::Integer | Want::Number => "1".to_string(),
                    Want::Text if long == "broadcast" => "\"127.255.255.255\"".into(),
                    Want::Text if long == "syslog" => "\"127.0.0.1:514\"".into(),
                    Want::Text => "\"x\"".into(),
                };
                let text = format!("[{table}]\n{long} = {v}\n");
                let cfg = parse(&text, &c).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(cfg.tables[table].len(), 1, "{text}");
            }
        }
    }

    #[test]
    fn line_numbers_count_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
