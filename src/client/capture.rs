//! Capture worker (being written).

/// Runs the hidden `__capture-worker` subcommand.
pub fn run_worker(_args: &crate::cli::CaptureWorkerArgs) -> crate::error::Result<()> {
    Err(crate::error::Error::Runtime(
        "capture worker not written yet".into(),
    ))
}
