//! websockify inside nginx: a WebSocket (RFC 6455) to TCP bridge for noVNC.
//!
//! Layers, each using only those below it:
//! - `module` and `directives`: registration (the module, its context, its directives);
//! - `request`: one HTTP request's life: the content handlers, connecting the target, the
//!   relay's nginx side, variables;
//! - `conf` and `zone`: the location configuration and the shared-memory zone;
//! - `protocol`, `relay` and `status`: plain Rust that knows no nginx (frames, the
//!   handshake, allow-lists, the PROXY header, the relay state machine, status rendering),
//!   unit-tested with `cargo test`, simulated and fuzzed.
//!
//! The nginx layers are left out of test builds: they link against symbols only an nginx
//! binary provides. The one name every layer uses is the module itself, re-exported here.

// Every unsafe operation sits in its own block with a SAFETY line, unsafe fns included.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod protocol;
pub mod relay;
pub mod status;

#[cfg(not(any(test, fuzzing)))]
mod conf;
#[cfg(not(any(test, fuzzing)))]
mod directives;
#[cfg(not(any(test, fuzzing)))]
mod request;
#[cfg(not(any(test, fuzzing)))]
mod zone;

#[cfg(not(any(test, fuzzing)))]
mod module;

#[cfg(not(any(test, fuzzing)))]
pub(crate) use module::Websockify;
