//! websockify inside nginx: a WebSocket (RFC 6455) to TCP bridge for noVNC.
//!
//! `codec`, `handshake`, `allow` and `buffer` are plain Rust (no nginx types) and unit-tested with
//! `cargo test`; the rest is the nginx glue, left out of test builds because it
//! links against symbols only an nginx binary provides.

pub mod allow;
pub mod buffer;
pub mod codec;
pub mod handshake;

#[cfg(not(any(test, fuzzing)))]
mod config;
#[cfg(not(any(test, fuzzing)))]
mod handler;
#[cfg(not(any(test, fuzzing)))]
mod module;
#[cfg(not(any(test, fuzzing)))]
mod relay;
#[cfg(not(any(test, fuzzing)))]
mod target;
