//! The lab-PC daemon: waits for an authenticated start, connects back to the server, runs the
//! capture and mount workers as child processes and streams their events until stopped.

pub mod capture;
pub mod mountinfo;
pub mod mounts;
pub mod usb;

/// Runs `proctor client` (being written).
pub fn run(_args: &crate::cli::ClientArgs) -> crate::error::Result<()> {
    Err(crate::error::Error::Runtime(
        "client not written yet".into(),
    ))
}
