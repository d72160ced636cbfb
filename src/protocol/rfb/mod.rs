//! RFB (RFC 6143, and the community rfbproto spec for VeNCrypt and the extensions), for a
//! gateway that logs in to the VNC server itself: `login` is the client half of the
//! handshake with the server (version, security negotiation, VncAuth, VeNCrypt up to the
//! TLS start and inside it), `greet` the server half with the browser (None only), and
//! `filter` parses the client's messages to drop input when the session is view-only.
//!
//! Sans-IO like the relay core: each machine is fed the bytes read so far, says how many
//! it consumed, queues what to write, and asks the caller to perform what it cannot do
//! itself (start TLS). No nginx types; unit-tested here and fuzzed.

pub mod filter;
pub mod greet;
pub mod login;
pub mod observe;
mod wire;

pub use wire::printable;

use std::fmt;

use zeroize::Zeroizing;

/// A security type the gateway may use with the server (`websockify_rfb_security`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    None,
    Vnc,
    Plain,
    TlsNone,
    TlsVnc,
    TlsPlain,
    X509None,
    X509Vnc,
    X509Plain,
}

/// What runs inside a VeNCrypt subtype's TLS (or alone, for the top-level types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Vnc,
    Plain,
}

/// The TLS a VeNCrypt subtype starts on the target connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// `tls*`: anonymous Diffie-Hellman, no certificate to verify.
    Anonymous,
    /// `x509*`: the server's certificate, verified as `websockify_ssl_verify` says.
    X509,
}

/// The top-level security type codes (RFC 6143 7.2.1 and the IANA registry).
pub const TYPE_NONE: u32 = 1;
pub const TYPE_VNC: u32 = 2;
pub const TYPE_VENCRYPT: u32 = 19;

impl Security {
    /// Every type, in the order the directive documents them.
    pub const ALL: [Security; 9] = [
        Security::X509Plain,
        Security::X509Vnc,
        Security::X509None,
        Security::TlsPlain,
        Security::TlsVnc,
        Security::TlsNone,
        Security::Plain,
        Security::Vnc,
        Security::None,
    ];

    /// The default policy: verified TLS first, never a password in clear (`plain` only
    /// when listed), never anonymous TLS unless listed.
    pub const DEFAULT: [Security; 5] = [
        Security::X509Plain,
        Security::X509Vnc,
        Security::X509None,
        Security::Vnc,
        Security::None,
    ];

    /// The directive's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::Vnc => "vnc",
            Security::Plain => "plain",
            Security::TlsNone => "tlsnone",
            Security::TlsVnc => "tlsvnc",
            Security::TlsPlain => "tlsplain",
            Security::X509None => "x509none",
            Security::X509Vnc => "x509vnc",
            Security::X509Plain => "x509plain",
        }
    }

    pub fn parse(name: &[u8]) -> Option<Security> {
        Security::ALL
            .into_iter()
            .find(|s| s.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The code on the wire: a top-level type, or a VeNCrypt subtype (256 and up).
    pub fn code(self) -> u32 {
        match self {
            Security::None => TYPE_NONE,
            Security::Vnc => TYPE_VNC,
            Security::Plain => 256,
            Security::TlsNone => 257,
            Security::TlsVnc => 258,
            Security::TlsPlain => 259,
            Security::X509None => 260,
            Security::X509Vnc => 261,
            Security::X509Plain => 262,
        }
    }

    fn vencrypt(self) -> bool {
        self.code() >= 256
    }

    pub fn tls(self) -> Option<Tls> {
        match self {
            Security::TlsNone | Security::TlsVnc | Security::TlsPlain => Some(Tls::Anonymous),
            Security::X509None | Security::X509Vnc | Security::X509Plain => Some(Tls::X509),
            Security::None | Security::Vnc | Security::Plain => None,
        }
    }

    pub fn auth(self) -> Auth {
        match self {
            Security::None | Security::TlsNone | Security::X509None => Auth::None,
            Security::Vnc | Security::TlsVnc | Security::X509Vnc => Auth::Vnc,
            Security::Plain | Security::TlsPlain | Security::X509Plain => Auth::Plain,
        }
    }
}

/// A security type code as a log line shows it: the name where known.
pub(crate) struct Code(pub u32);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TYPE_VENCRYPT => f.write_str("vencrypt"),
            16 => f.write_str("tight"),
            30 | 35 => f.write_str("apple"),
            c => match Security::ALL.into_iter().find(|s| s.code() == c) {
                Some(s) => f.write_str(s.name()),
                None => write!(f, "{c}"),
            },
        }
    }
}

/// A protocol version both sides can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V3_3,
    V3_7,
    V3_8,
}

impl Version {
    pub fn as_bytes(self) -> &'static [u8; 12] {
        match self {
            Version::V3_3 => b"RFB 003.003\n",
            Version::V3_7 => b"RFB 003.007\n",
            Version::V3_8 => b"RFB 003.008\n",
        }
    }

    /// The version to speak with a peer that sent `msg`: the highest known one not above
    /// it (odd ones such as Apple's 3.889 or 4.x included), None for no ProtocolVersion.
    fn of(msg: &[u8; 12]) -> Option<Version> {
        if &msg[..4] != b"RFB " || msg[7] != b'.' || msg[11] != b'\n' {
            return None;
        }
        let number = |d: &[u8]| {
            d.iter().try_fold(0u32, |n, &b| {
                b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
            })
        };
        let (major, minor) = (number(&msg[4..7])?, number(&msg[8..11])?);
        Some(match (major, minor) {
            (0..=2, _) => return None,
            (3, 0..=6) => Version::V3_3,
            (3, 7) => Version::V3_7,
            _ => Version::V3_8,
        })
    }
}

/// A credential: wiped from memory when dropped, never printed.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_down_to_a_known_one() {
        let v = |s: &[u8; 12]| Version::of(s);
        assert_eq!(v(b"RFB 003.008\n"), Some(Version::V3_8));
        assert_eq!(v(b"RFB 003.007\n"), Some(Version::V3_7));
        assert_eq!(v(b"RFB 003.003\n"), Some(Version::V3_3));
        assert_eq!(v(b"RFB 003.005\n"), Some(Version::V3_3));
        assert_eq!(v(b"RFB 003.889\n"), Some(Version::V3_8));
        assert_eq!(v(b"RFB 004.001\n"), Some(Version::V3_8));
        assert_eq!(v(b"RFB 002.000\n"), None);
        assert_eq!(v(b"SSH-2.0-Open"), None);
        assert_eq!(v(b"RFB 003.00x\n"), None);
        assert_eq!(v(b"RFB 003.008\r"), None);
    }

    #[test]
    fn names_round_trip_and_codes_are_rfbprotos() {
        for s in Security::ALL {
            assert_eq!(Security::parse(s.name().as_bytes()), Some(s));
        }
        assert_eq!(Security::parse(b"X509Vnc"), Some(Security::X509Vnc));
        assert_eq!(Security::parse(b"vencrypt"), None);
        assert_eq!(Security::X509Plain.code(), 262);
        assert_eq!(Security::TlsNone.code(), 257);
        assert_eq!(Code(19).to_string(), "vencrypt");
        assert_eq!(Code(258).to_string(), "tlsvnc");
        assert_eq!(Code(99).to_string(), "99");
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(s.as_bytes(), b"hunter2");
    }
}
