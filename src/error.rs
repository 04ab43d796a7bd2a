//! The one error type that reaches `main`, and the exit code each kind of failure gives.
//!
//! Exit codes (documented in the README): 0 success, 1 runtime failure, 2 usage or key problem,
//! 3 permission problem (e.g. client not run as root), 4 address/port already in use.

use std::fmt;

/// Why a subcommand failed, with a message meant for the person at the terminal.
#[derive(Debug)]
pub enum Error {
    /// Bad input on the command line or in a file the user named (exit 2).
    Usage(String),
    /// The key file is missing, malformed, too open, or the demo key without `--demo` (exit 2).
    Key(String),
    /// The process lacks a privilege it needs (exit 3).
    Permission(String),
    /// A port or address is taken by another process (exit 4).
    AddrInUse(String),
    /// Anything else that went wrong while running (exit 1).
    Runtime(String),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Key(_) => 2,
            Error::Permission(_) => 3,
            Error::AddrInUse(_) => 4,
            Error::Runtime(_) => 1,
        }
    }

    /// Wraps an I/O error with what was being attempted, choosing the kind from the error.
    pub fn io(context: impl fmt::Display, e: std::io::Error) -> Self {
        let msg = format!("{context}: {e}");
        match e.kind() {
            std::io::ErrorKind::AddrInUse => Error::AddrInUse(msg),
            std::io::ErrorKind::PermissionDenied => Error::Permission(msg),
            _ => Error::Runtime(msg),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::Key(m)
            | Error::Permission(m)
            | Error::AddrInUse(m)
            | Error::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias used by the subcommands.
pub type Result<T> = std::result::Result<T, Error>;
