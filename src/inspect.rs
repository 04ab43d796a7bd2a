//! `proctor inspect` (being written).

/// Runs `proctor inspect`.
pub fn run(_args: &crate::cli::InspectArgs) -> crate::error::Result<()> {
    Err(crate::error::Error::Runtime(
        "inspect not written yet".into(),
    ))
}
