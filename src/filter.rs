//! Packet decoding and the selection rule (pure; being written).
