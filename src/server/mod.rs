//! The server (being written).

/// Runs `proctor server` (being written).
pub fn run(_args: &crate::cli::ServerArgs) -> crate::error::Result<()> {
    Err(crate::error::Error::Runtime(
        "server not written yet".into(),
    ))
}
