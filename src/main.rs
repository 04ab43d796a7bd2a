//! Entry point: parse the command line, dispatch to a subcommand, map errors to exit codes.

use clap::Parser;
use proctor::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Keygen(a) => proctor::keyfile::run_keygen(a),
        Command::Server(a) => proctor::server::run(a),
        Command::Client(a) => proctor::client::run(a),
        Command::Inspect(a) => proctor::inspect::run(a),
        Command::Report(a) => proctor::report::run(a),
        Command::CaptureWorker(a) => proctor::client::capture::run_worker(a),
        Command::MountWorker => proctor::client::mounts::run_worker(),
        Command::Loadgen(a) => proctor::loadgen::run(a),
        Command::Generate(a) => proctor::cli::write_docs(a),
    };
    if let Err(e) = result {
        eprintln!("proctor: error: {e}");
        std::process::exit(e.exit_code());
    }
}
