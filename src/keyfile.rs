//! Key file (being written).

/// Runs `proctor keygen` (being written).
pub fn run_keygen(_args: &crate::cli::KeygenArgs) -> crate::error::Result<()> {
    Err(crate::error::Error::Runtime(
        "keygen not written yet".into(),
    ))
}
