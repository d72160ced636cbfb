//! websockify inside nginx: a WebSocket (RFC 6455) to TCP bridge for noVNC.
//!
//! `codec`, `handshake`, `allow`, `buffer`, `status`, `proxy_protocol` and `relay::core`
//! are plain Rust (no nginx types), unit-tested with `cargo test` and driven by the relay
//! simulation; the rest is the nginx glue, left out of test builds because it links
//! against symbols only an nginx binary provides. `pages` is the one piece of FFI they use
//! (mmap).

pub mod allow;
pub mod buffer;
pub mod codec;
pub mod handshake;
pub mod pages;
pub mod proxy_protocol;
pub mod relay;
pub mod status;

#[cfg(not(any(test, fuzzing)))]
mod config;
#[cfg(not(any(test, fuzzing)))]
mod config_target;
#[cfg(not(any(test, fuzzing)))]
mod handler;
#[cfg(not(any(test, fuzzing)))]
mod module;
#[cfg(not(any(test, fuzzing)))]
mod status_location;
#[cfg(not(any(test, fuzzing)))]
mod target;
#[cfg(not(any(test, fuzzing)))]
mod target_setup;
#[cfg(not(any(test, fuzzing)))]
mod variables;
#[cfg(not(any(test, fuzzing)))]
mod zone;
