//! Entry point: parse the command line (with the config file), dispatch to a subcommand, map
//! errors to exit codes.

use proctor::cli::Command;
use proctor::config::{CommandLineError, parse_command_line};

fn main() {
    let cli = match parse_command_line(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(CommandLineError::Clap(e)) => e.exit(),
        Err(CommandLineError::Config(e)) => fail(&e),
    };
    let result = match &cli.command {
        Command::Keygen(a) => proctor::keyfile::run_keygen(a),
        Command::Server(a) => proctor::server::run(a),
        Command::Client(a) => proctor::client::run(a),
        Command::Inspect(a) => proctor::inspect::run(a),
        Command::Report(a) => proctor::report::run(a, cli.global.quiet),
        Command::InstallService(a) => proctor::service::run(a, cli.global.config.as_deref()),
        Command::CaptureWorker(a) => proctor::client::capture::run_worker(a),
        Command::MountWorker => proctor::client::mounts::run_worker(),
        Command::DeviceWorker(a) => proctor::client::devices::run_worker(a),
        Command::Loadgen(a) => proctor::loadgen::run(a),
        Command::Generate(a) => proctor::cli::write_docs(a),
    };
    if let Err(e) = result {
        fail(&e);
    }
}

fn fail(e: &proctor::error::Error) -> ! {
    log::error!("{e}");
    std::process::exit(e.exit_code());
}
