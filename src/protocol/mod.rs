//! The wire formats, as plain Rust: WebSocket frames (`codec`), the opening handshake
//! (`handshake`), allow-lists for targets and origins (`allow`) and the PROXY protocol
//! header (`proxy_protocol`), and the RFB handshakes and client-message filter of a gateway
//! that logs in to the VNC server (`rfb`), and the session recording format (`recording`).
//! No nginx types; unit-tested and fuzzed.

pub mod allow;
pub mod codec;
pub mod handshake;
pub mod json;
pub mod proxy_protocol;
pub mod recording;
pub mod rfb;
