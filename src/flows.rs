//! Per-flow reporting (pure; being written).
