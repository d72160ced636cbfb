//! One HTTP request's life in nginx: `handler` checks the handshake, `connect` drives the
//! connection to the target (peer choice, resolver, connect, next server) through the
//! steps in `setup` (source address, PROXY header, TLS), `relay` sends the 101 (`upgrade`),
//! performs the relay's actions and ends the session; `status_page` serves a zone's status, `variables` the
//! `$websockify_*` variables. `session` is the state they share.

pub mod addr;
pub mod attempt;
pub mod connect;
pub mod handler;
pub mod login;
pub mod recfile;
pub mod record;
pub mod relay;
pub mod session;
pub mod setup;
pub mod status_page;
pub mod upgrade;
pub mod variables;
