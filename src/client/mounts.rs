//! Mount worker (being written).

/// Runs the hidden `__mount-worker` subcommand.
pub fn run_worker() -> crate::error::Result<()> {
    Err(crate::error::Error::Runtime(
        "mount worker not written yet".into(),
    ))
}
