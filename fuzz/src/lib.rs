//! Oracles for the fuzz targets, written from the RFCs and not from `src/`: they share no
//! code or dependency with the module (no base64 or sha1 crate), so a rule the module gets
//! wrong is not repeated here.
//!
//! - `rfc4648`: base64 (section 4), both ways.
//! - `rfc3629`: UTF-8 well-formedness.
//! - `rfc3174`: SHA-1.
//! - `rfc6455`: a whole-stream client frame decoder (sections 5.2-5.5, 7.4) and the
//!   server's opening-handshake decision (sections 4.2.1, 4.2.2).
//!
//! `self_check()` holds each against the RFCs' own test vectors; every target calls it.

pub mod rfc3174;
pub mod rfc3629;
pub mod rfc4648;
pub mod rfc6455;

/// Asserts the RFCs' test vectors, once per process.
pub fn self_check() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        rfc4648::self_check();
        rfc3629::self_check();
        rfc3174::self_check();
        rfc6455::self_check();
    });
}
