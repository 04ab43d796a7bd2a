//! Test support shared by the unit tests inside the crate and the integration tests in `tests/`:
//! hand-built packets ([`packets`]) and a deterministic random generator ([`Rng`]).
//!
//! It is an ordinary (hidden) public module rather than `#[cfg(test)]` code because integration
//! tests link the library as it is built for them and cannot see `cfg(test)` items; keeping one
//! copy here means the decoder's unit tests and the end-to-end tests build the very same bytes.
//! Nothing in the program calls it, so the linker drops it from the binary.

pub mod packets;
mod rng;

pub use rng::Rng;
