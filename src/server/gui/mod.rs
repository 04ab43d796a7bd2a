//! The invigilator's window (`proctor server` without `--headless`): an FLTK front end over the
//! same headless core ([`super::core`]) that `--headless` uses. The window holds no protocol or
//! storage logic: the core runs on its own named thread and reports [`Note`]s; the sink closure
//! only forwards them as [`Message::Core`] over one `fltk::app::channel`; only the `app::wait()`
//! loop in [`ServerApp::run`] touches widgets, applying messages in batches and redrawing at most
//! every few tens of milliseconds, so a flood of events cannot make the window lag.
//!
//! - [`model`]: what the window shows, as plain data, unit-tested without a display.
//! - [`dump`]: the `--dump-state` JSON written when the program quits.
//! - [`layout`]: builds the widgets and fixes where they are.
//! - [`table`]: the machine table widget; [`events_view`]: the colour-coded event view.
//! - [`app`]: [`ServerApp`], the message loop.

pub mod app;
pub mod dump;
pub mod events_view;
pub mod layout;
pub mod model;
pub mod table;

pub use app::ServerApp;

use crate::cli::ServerArgs;
use crate::error::Result;
use crate::server::core::{CoreConfig, Note};
use model::Column;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that reaches the window's loop: notes from the core, clicks and timers.
#[derive(Debug, Clone)]
pub enum Message {
    /// A note from the core (sent from the core's thread), with the time it was sent, so the
    /// window can tell how far behind it runs.
    Core(Note, std::time::Instant),
    /// The core's loop failed and ended (sent from the core's thread).
    CoreFailed(String),
    /// The Start/Stop control was pressed.
    StartStop,
    /// A column title of the machine table was clicked.
    SortBy(Column),
    /// A row of the machine table was clicked (index in display order).
    SelectRow(i32),
    /// "All machines" was pressed: stop filtering the event view by machine.
    ShowAll,
    /// The text filter box changed.
    FilterChanged,
    /// "Copy path" was pressed.
    CopyLogPath,
    /// "Reload policy" was pressed.
    ReloadPolicy,
    /// The window's close button was pressed.
    CloseRequested,
    /// `--quit-after` ran out: close without asking.
    QuitAfter,
    /// `--stop-after` ran out: stop the running session.
    StopAfter,
    /// Periodic timer: ages, events per second, signals.
    Tick,
    /// A deferred redraw is due.
    Refresh,
}

/// Options of the window taken from the command line.
#[derive(Debug, Clone, Default)]
pub struct GuiOptions {
    /// Window title (names the TCP port, so several servers can be told apart).
    pub title: String,
    /// Start a session as soon as the window opens.
    pub start: bool,
    /// Stop the session by itself after this long.
    pub stop_after: Option<Duration>,
    /// Close the window by itself after this long (stopping a session cleanly first).
    pub quit_after: Option<Duration>,
    /// Write the window's state as JSON here when the program quits.
    pub dump_state: Option<PathBuf>,
    /// One or two lines on ports, announcement targets and key fingerprint.
    pub setup_info: String,
    /// What the policy given with `--policy` checks (`None` without one).
    pub policy: Option<String>,
    /// The policy file's name, shown with what it checks.
    pub policy_file: Option<String>,
}

impl GuiOptions {
    /// Options for `args`; `cfg` (when the setup worked) supplies the setup line.
    pub fn from_args(args: &ServerArgs, cfg: Option<&CoreConfig>) -> GuiOptions {
        let setup_info = match cfg {
            Some(c) => {
                let targets: Vec<String> = c
                    .broadcasts
                    .iter()
                    .map(|b| format!("{b}:{}", c.client_port))
                    .collect();
                format!(
                    "TCP port {} · announcing to {}\nkey fingerprint {}",
                    c.server_port,
                    targets.join(", "),
                    c.key.fingerprint()
                )
            }
            None => format!(
                "TCP port {} · clients' UDP port {}",
                args.server_port, args.client_port
            ),
        };
        GuiOptions {
            title: format!("proctor: invigilator (TCP port {})", args.server_port),
            start: args.start,
            stop_after: args.stop_after.map(Duration::from_secs_f64),
            quit_after: args.quit_after.map(Duration::from_secs_f64),
            dump_state: args.dump_state.clone(),
            setup_info,
            policy: cfg
                .and_then(|c| c.policy.as_ref())
                .map(|p| p.policy().summary()),
            policy_file: args.policy.as_ref().map(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.display().to_string())
            }),
        }
    }
}

/// Runs the window until it is closed. `setup` is the core's configuration, or the problem that
/// kept it from being built (shown in the window; the same error is returned on close, so the
/// exit code still tells scripts what went wrong).
pub fn run(args: &ServerArgs, setup: Result<CoreConfig>) -> Result<()> {
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        // FLTK would print "Can't open display" and exit(1); say what to do instead.
        if let Err(e) = &setup {
            log::error!("{e}");
        }
        return Err(crate::error::Error::Usage(
            "the invigilator's window needs an X display (DISPLAY is not set); run it in a desktop session, under xvfb-run, or use --headless".into(),
        ));
    }
    let opts = GuiOptions::from_args(args, setup.as_ref().ok());
    ServerApp::new(setup, opts)?.run()
}
