//! The gateway's half of the handshake with the VNC server, from its ProtocolVersion to
//! SecurityResult: the version, a security type chosen by the location's policy, VncAuth,
//! Plain, and VeNCrypt 0.2 (the caller starts TLS on the connection when told, then
//! calls [`Login::tls_started`]). ClientInit and ServerInit are left to the relay.

use std::fmt;

use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;

use super::wire::{self, Reader};
use super::{Auth, Code, Secret, Security, Tls, Version, TYPE_NONE, TYPE_VENCRYPT, TYPE_VNC};

/// What the server and the location let the gateway log in with.
pub struct Credentials {
    pub username: Secret,
    pub password: Secret,
}

/// Where the handshake stands after the input so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes from the server are needed.
    Reading,
    /// Write the queued output, then start TLS on the connection and call
    /// [`Login::tls_started`]; the bytes after go through TLS.
    StartTls(Tls),
    /// Logged in: the server waits for ClientInit.
    Done(LoggedIn),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    pub version: Version,
    pub security: Security,
}

/// Why the gateway could not log in: each names what the error log line needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server's first bytes are no RFB ProtocolVersion.
    NotRfb,
    /// The server refused the connection before any security type (count 0 or type 0).
    Refused(String),
    /// Nothing the server offered is allowed (or the credential it needs is empty).
    NoneAllowed { offered: Vec<u32>, vencrypt: bool },
    /// A VeNCrypt step the server would not do: what, in words.
    VeNCrypt(&'static str),
    /// SecurityResult failed: the server's reason where the version carries one.
    Denied(Security, Option<String>),
    /// A field out of range (a reason string of this length, a count of 0).
    Malformed(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotRfb => f.write_str("the target does not speak RFB"),
            Failure::Refused(why) => write!(f, "the VNC server refused the connection: \"{why}\""),
            Failure::NoneAllowed { offered, vencrypt } => {
                let kind = if *vencrypt {
                    "VeNCrypt subtypes"
                } else {
                    "security types"
                };
                write!(f, "no allowed security type: the VNC server offered {kind}")?;
                for (i, c) in offered.iter().enumerate() {
                    write!(f, "{}{}", if i == 0 { " " } else { ", " }, Code(*c))?;
                }
                Ok(())
            }
            Failure::VeNCrypt(what) => write!(f, "VeNCrypt: {what}"),
            Failure::Denied(s, Some(why)) => {
                write!(
                    f,
                    "authentication failed with security type {}: \"{why}\"",
                    s.name()
                )
            }
            Failure::Denied(s, None) => {
                write!(f, "authentication failed with security type {}", s.name())
            }
            Failure::Malformed(what) => write!(f, "malformed RFB handshake: {what}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    Version,
    Types,
    Type33,
    Challenge(Security),
    VencVersion,
    VencAck,
    VencTypes,
    VencAccept(Security),
    Tls(Security),
    Result(Security),
    Done(Security),
}

pub struct Login {
    policy: Vec<Security>,
    creds: Credentials,
    version: Version,
    state: State,
    out: Vec<u8>,
}

impl Login {
    /// `policy`: the types allowed, most preferred first.
    pub fn new(policy: &[Security], creds: Credentials) -> Login {
        Login {
            policy: policy.to_vec(),
            creds,
            version: Version::V3_8,
            state: State::Version,
            out: Vec::new(),
        }
    }

    /// What to write to the server now; it may hold the password (Plain): the caller
    /// writes it and drops it (wiped on drop).
    pub fn take_output(&mut self) -> Secret {
        Secret::new(std::mem::take(&mut self.out))
    }

    /// The security type chosen so far (for the error line of a failed TLS handshake).
    pub fn security(&self) -> Option<Security> {
        match self.state {
            State::Challenge(s)
            | State::VencAccept(s)
            | State::Tls(s)
            | State::Result(s)
            | State::Done(s) => Some(s),
            _ => None,
        }
    }

    /// Feeds the server's bytes not consumed before; returns how many were consumed now.
    pub fn input(&mut self, data: &[u8]) -> Result<(usize, Progress), Failure> {
        let mut used = 0;
        loop {
            let mut r = Reader::new(&data[used..]);
            let Some(step) = self.step(&mut r)? else {
                return Ok((used, Progress::Reading));
            };
            used += r.consumed();
            match step {
                Some(p) => return Ok((used, p)),
                None => continue,
            }
        }
    }

    /// TLS is up on the target connection: what the subtype runs inside it begins.
    pub fn tls_started(&mut self) {
        if let State::Tls(s) = self.state {
            self.state = self.authenticate(s);
        }
    }

    /// One message: None when it is not complete yet; Some(None) to go on parsing.
    fn step(&mut self, r: &mut Reader) -> Result<Option<Option<Progress>>, Failure> {
        let next = match self.state {
            State::Version => {
                let Some(msg) = r.array::<12>() else {
                    return Ok(None);
                };
                self.version = Version::of(&msg).ok_or(Failure::NotRfb)?;
                self.out.extend_from_slice(self.version.as_bytes());
                if self.version == Version::V3_3 {
                    State::Type33
                } else {
                    State::Types
                }
            }
            State::Type33 => match r.u32() {
                None => return Ok(None),
                Some(0) => return refused(r),
                Some(code) => {
                    let s = self.pick(&[code]).ok_or(Failure::NoneAllowed {
                        offered: vec![code],
                        vencrypt: false,
                    })?;
                    self.authenticate(s)
                }
            },
            State::Types => {
                let Some(n) = r.u8() else { return Ok(None) };
                if n == 0 {
                    return refused(r);
                }
                let Some(types) = r.bytes(usize::from(n)) else {
                    return Ok(None);
                };
                let offered: Vec<u32> = types.iter().map(|&t| u32::from(t)).collect();
                let Some(s) = self.pick(&offered) else {
                    return Err(Failure::NoneAllowed {
                        offered,
                        vencrypt: false,
                    });
                };
                if s.vencrypt() {
                    self.out.push(TYPE_VENCRYPT as u8);
                    State::VencVersion
                } else {
                    self.out.push(s.code() as u8);
                    self.authenticate(s)
                }
            }
            State::Challenge(s) => {
                let Some(challenge) = r.array::<16>() else {
                    return Ok(None);
                };
                self.out
                    .extend_from_slice(&vnc_response(&self.creds.password, challenge));
                State::Result(s)
            }
            State::VencVersion => {
                let Some([major, minor]) = r.array::<2>() else {
                    return Ok(None);
                };
                if (major, minor) < (0, 2) {
                    return Err(Failure::VeNCrypt("the server speaks a version before 0.2"));
                }
                self.out.extend_from_slice(&[0, 2]);
                State::VencAck
            }
            State::VencAck => match r.u8() {
                None => return Ok(None),
                Some(0) => State::VencTypes,
                Some(_) => return Err(Failure::VeNCrypt("the server refused version 0.2")),
            },
            State::VencTypes => {
                let Some(n) = r.u8() else { return Ok(None) };
                if n == 0 {
                    return Err(Failure::Malformed("no VeNCrypt subtypes"));
                }
                let mut offered = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    let Some(code) = r.u32() else { return Ok(None) };
                    offered.push(code);
                }
                let Some(s) = self.pick_subtype(&offered) else {
                    return Err(Failure::NoneAllowed {
                        offered,
                        vencrypt: true,
                    });
                };
                self.out.extend_from_slice(&s.code().to_be_bytes());
                // The TLS subtypes' first byte is the server's go-ahead for the handshake
                // (TigerVNC's SSecurityTLS); Plain's credentials follow the choice at once.
                match s.tls() {
                    Some(_) => State::VencAccept(s),
                    None => self.authenticate(s),
                }
            }
            State::VencAccept(s) => match (r.u8(), s.tls()) {
                (None, _) => return Ok(None),
                (Some(1), Some(tls)) => {
                    self.state = State::Tls(s);
                    return Ok(Some(Some(Progress::StartTls(tls))));
                }
                _ => return Err(Failure::VeNCrypt("the server refused the subtype")),
            },
            // Nothing is read until TLS is up.
            State::Tls(_) => return Ok(None),
            State::Result(s) => {
                let Some(result) = r.u32() else {
                    return Ok(None);
                };
                if result == 0 {
                    State::Done(s)
                } else if self.version == Version::V3_8 {
                    return match wire::reason(r) {
                        None => Ok(None),
                        Some(Ok(why)) => Err(Failure::Denied(s, Some(why))),
                        Some(Err(_)) => Err(Failure::Malformed("reason string too long")),
                    };
                } else {
                    return Err(Failure::Denied(s, None));
                }
            }
            State::Done(s) => {
                return Ok(Some(Some(Progress::Done(LoggedIn {
                    version: self.version,
                    security: s,
                }))))
            }
        };
        self.state = next;
        if let State::Done(s) = next {
            return Ok(Some(Some(Progress::Done(LoggedIn {
                version: self.version,
                security: s,
            }))));
        }
        Ok(Some(None))
    }

    /// Starts what `s` (a top-level type or a VeNCrypt subtype past its TLS) runs.
    fn authenticate(&mut self, s: Security) -> State {
        match s.auth() {
            Auth::Vnc => State::Challenge(s),
            Auth::Plain => {
                let (user, pass) = (
                    self.creds.username.as_bytes(),
                    self.creds.password.as_bytes(),
                );
                self.out
                    .extend_from_slice(&(user.len() as u32).to_be_bytes());
                self.out
                    .extend_from_slice(&(pass.len() as u32).to_be_bytes());
                self.out.extend_from_slice(user);
                self.out.extend_from_slice(pass);
                State::Result(s)
            }
            // 3.3 and 3.7 send no SecurityResult after None (RFC 6143 7.1.3).
            Auth::None if s == Security::None && self.version < Version::V3_8 => State::Done(s),
            Auth::None => State::Result(s),
        }
    }

    /// Whether the location holds what `s` needs: a password for VncAuth and Plain.
    fn usable(&self, s: Security) -> bool {
        s.auth() == Auth::None || !self.creds.password.is_empty()
    }

    /// The first allowed, usable type the server offers; VeNCrypt stands for its subtypes.
    fn pick(&self, offered: &[u32]) -> Option<Security> {
        let vencrypt = self.version >= Version::V3_7 && offered.contains(&TYPE_VENCRYPT);
        self.policy.iter().copied().find(|&s| {
            self.usable(s)
                && match s.code() {
                    code @ (TYPE_NONE | TYPE_VNC) => offered.contains(&code),
                    _ => vencrypt,
                }
        })
    }

    fn pick_subtype(&self, offered: &[u32]) -> Option<Security> {
        self.policy
            .iter()
            .copied()
            .find(|&s| s.vencrypt() && self.usable(s) && offered.contains(&s.code()))
    }
}

/// A refusal: the reason string that follows a count or type of 0.
fn refused(r: &mut Reader) -> Result<Option<Option<Progress>>, Failure> {
    match wire::reason(r) {
        None => Ok(None),
        Some(Ok(why)) => Err(Failure::Refused(why)),
        Some(Err(_)) => Err(Failure::Malformed("reason string too long")),
    }
}

/// VncAuth (RFC 6143 7.2.2): the challenge DES-encrypted with the password's first 8
/// bytes, zero-padded, each byte's bits reversed (the quirk of the original VNC).
fn vnc_response(password: &Secret, challenge: [u8; 16]) -> [u8; 16] {
    let mut key = zeroize::Zeroizing::new([0u8; 8]);
    for (k, p) in key.iter_mut().zip(password.as_bytes()) {
        *k = p.reverse_bits();
    }
    let cipher = Des::new(key.as_ref().into());
    let mut out = challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(block.into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(policy: &[Security], user: &str, pass: &str) -> Login {
        Login::new(
            policy,
            Credentials {
                username: Secret::new(user.into()),
                password: Secret::new(pass.into()),
            },
        )
    }

    /// Feeds `data` one byte at a time, as the slowest network would.
    fn trickle(l: &mut Login, data: &[u8]) -> Result<Progress, Failure> {
        let mut pending = Vec::new();
        let mut last = Progress::Reading;
        for &b in data {
            pending.push(b);
            let (used, p) = l.input(&pending)?;
            pending.drain(..used);
            last = p;
        }
        assert!(pending.is_empty(), "left unconsumed: {pending:?}");
        Ok(last)
    }

    fn out(l: &mut Login) -> Vec<u8> {
        l.take_output().as_bytes().to_vec()
    }

    fn challenge() -> [u8; 16] {
        core::array::from_fn(|i| i as u8 * 17)
    }

    /// Hex to bytes, for the vectors below.
    fn hex<const N: usize>(h: &str) -> [u8; N] {
        core::array::from_fn(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap_or(0))
    }

    #[test]
    fn vnc_auth_matches_openssl() {
        // Computed apart from this code: `openssl enc -des-ecb -nopad -K 0e86ceceeef64e26`
        // (the bits of each byte of "password" reversed) over the challenge 00 11 .. ff.
        let r = vnc_response(&Secret::new(b"password".to_vec()), challenge());
        assert_eq!(r, hex::<16>("b7b9c87777661a7a2299733209bfdfce"));
        // Only the first 8 bytes count, and a short password is zero-padded (-K 0e86cece00000000).
        assert_eq!(
            r,
            vnc_response(&Secret::new(b"password-and-more".to_vec()), challenge())
        );
        let short = vnc_response(&Secret::new(b"pass".to_vec()), challenge());
        assert_eq!(short, hex::<16>("fab34049b743efecb6287ffb551dce01"));
    }

    #[test]
    fn des_is_the_standard_cipher() {
        // FIPS 81 / the classic DES example: key 133457799BBCDFF1, 0123456789ABCDEF.
        let des = Des::new(&[0x13, 0x34, 0x57, 0x79, 0x9B, 0xBC, 0xDF, 0xF1].into());
        let mut b = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        des.encrypt_block((&mut b).into());
        assert_eq!(b, [0x85, 0xE8, 0x13, 0x54, 0x0F, 0x0A, 0xB4, 0x05]);
    }

    #[test]
    fn rfb_3_8_vnc_auth() {
        let mut l = login(&Security::DEFAULT, "", "secret");
        assert_eq!(trickle(&mut l, b"RFB 003.008\n"), Ok(Progress::Reading));
        assert_eq!(out(&mut l), b"RFB 003.008\n");
        // offers None and VncAuth: the policy prefers vnc when a password is configured
        assert_eq!(trickle(&mut l, &[2, 2, 1]), Ok(Progress::Reading));
        assert_eq!(out(&mut l), [2]);
        assert_eq!(trickle(&mut l, &challenge()), Ok(Progress::Reading));
        assert_eq!(
            out(&mut l),
            vnc_response(&Secret::new(b"secret".to_vec()), challenge())
        );
        let done = Progress::Done(LoggedIn {
            version: Version::V3_8,
            security: Security::Vnc,
        });
        assert_eq!(trickle(&mut l, &[0, 0, 0, 0]), Ok(done));
    }

    #[test]
    fn wrong_password_carries_the_servers_reason() {
        let mut l = login(&Security::DEFAULT, "", "wrong");
        let mut msg = b"RFB 003.008\n\x01\x02".to_vec();
        msg.extend_from_slice(&challenge());
        msg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 21]);
        msg.extend_from_slice(b"Authentication failed");
        assert_eq!(
            l.input(&msg),
            Err(Failure::Denied(
                Security::Vnc,
                Some("Authentication failed".into())
            ))
        );
        let mut l = login(&Security::DEFAULT, "", "wrong");
        let mut msg = b"RFB 003.007\n\x01\x02".to_vec();
        msg.extend_from_slice(&challenge());
        msg.extend_from_slice(&[0, 0, 0, 1]);
        assert_eq!(l.input(&msg), Err(Failure::Denied(Security::Vnc, None)));
    }

    #[test]
    fn rfb_3_3_server_decides() {
        let mut l = login(&Security::DEFAULT, "", "");
        let r = trickle(&mut l, b"RFB 003.003\n\x00\x00\x00\x01");
        let done = Progress::Done(LoggedIn {
            version: Version::V3_3,
            security: Security::None,
        });
        assert_eq!(r, Ok(done));
        assert_eq!(out(&mut l), b"RFB 003.003\n");
        // a 3.3 server that wants VncAuth from a location without a password
        let mut l = login(&Security::DEFAULT, "", "");
        assert_eq!(
            l.input(b"RFB 003.003\n\x00\x00\x00\x02"),
            Err(Failure::NoneAllowed {
                offered: vec![2],
                vencrypt: false
            })
        );
        // and its refusal, with a reason
        let mut l = login(&Security::DEFAULT, "", "x");
        assert_eq!(
            l.input(b"RFB 003.003\n\x00\x00\x00\x00\x00\x00\x00\x04busy"),
            Err(Failure::Refused("busy".into()))
        );
    }

    #[test]
    fn none_in_3_7_has_no_security_result_and_3_8_has_one() {
        let mut l = login(&[Security::None], "", "");
        let (used, p) = l.input(b"RFB 003.007\n\x01\x01").unwrap();
        assert_eq!(
            (used, p),
            (
                14,
                Progress::Done(LoggedIn {
                    version: Version::V3_7,
                    security: Security::None
                })
            )
        );
        let mut l = login(&[Security::None], "", "");
        assert_eq!(
            l.input(b"RFB 003.008\n\x01\x01"),
            Ok((14, Progress::Reading))
        );
        assert!(matches!(l.input(&[0, 0, 0, 0]), Ok((4, Progress::Done(_)))));
    }

    #[test]
    fn an_empty_password_fails_closed() {
        // the server wants VncAuth only: no credential, no fallback to passing it through
        let mut l = login(&Security::DEFAULT, "", "");
        assert_eq!(
            l.input(b"RFB 003.008\n\x01\x02"),
            Err(Failure::NoneAllowed {
                offered: vec![2],
                vencrypt: false
            })
        );
    }

    #[test]
    fn plain_is_never_chosen_unless_listed() {
        let vencrypt = |policy: &[Security]| {
            let mut l = login(policy, "u", "p");
            l.input(b"RFB 003.008\n\x01\x13\x00\x02\x00\x01\x00\x00\x01\x00")
        };
        // the server offers VeNCrypt with Plain (256) only
        assert_eq!(
            vencrypt(&Security::DEFAULT),
            Err(Failure::NoneAllowed {
                offered: vec![256],
                vencrypt: true
            })
        );
        let mut l = login(&[Security::Plain], "user", "pw");
        let (_, p) = l
            .input(b"RFB 003.008\n\x01\x13\x00\x02\x00\x01\x00\x00\x01\x00\x01")
            .unwrap();
        assert_eq!(p, Progress::Reading);
        let mut want = b"RFB 003.008\n\x13\x00\x02\x00\x00\x01\x00".to_vec();
        want.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 2]);
        want.extend_from_slice(b"userpw");
        assert_eq!(out(&mut l), want);
        assert!(matches!(
            l.input(&[0, 0, 0, 0]),
            Ok((
                4,
                Progress::Done(LoggedIn {
                    security: Security::Plain,
                    ..
                })
            ))
        ));
    }

    #[test]
    fn vencrypt_x509vnc_starts_tls_then_vnc_auth_inside() {
        let mut l = login(&Security::DEFAULT, "", "secret");
        // offers VncAuth and VeNCrypt: x509vnc ranks above vnc in the default policy
        let p = trickle(&mut l, b"RFB 003.008\n\x02\x02\x13");
        assert_eq!(p, Ok(Progress::Reading));
        assert_eq!(out(&mut l), b"RFB 003.008\n\x13");
        assert_eq!(trickle(&mut l, &[0, 2, 0]), Ok(Progress::Reading));
        assert_eq!(out(&mut l), [0, 2]);
        // subtypes TLSVnc, X509Vnc, X509None
        let subtypes = [3, 0, 0, 1, 2, 0, 0, 1, 5, 0, 0, 1, 4];
        assert_eq!(trickle(&mut l, &subtypes), Ok(Progress::Reading));
        assert_eq!(out(&mut l), 261u32.to_be_bytes());
        assert_eq!(l.input(&[1, 0xaa]), Ok((1, Progress::StartTls(Tls::X509))));
        // nothing more is read in clear
        assert_eq!(l.input(&[0xaa]), Ok((0, Progress::Reading)));
        l.tls_started();
        assert_eq!(trickle(&mut l, &challenge()), Ok(Progress::Reading));
        assert_eq!(
            out(&mut l),
            vnc_response(&Secret::new(b"secret".to_vec()), challenge())
        );
        assert_eq!(
            trickle(&mut l, &[0, 0, 0, 0]),
            Ok(Progress::Done(LoggedIn {
                version: Version::V3_8,
                security: Security::X509Vnc
            }))
        );
    }

    #[test]
    fn vencrypt_plain_sends_the_credentials_right_after_the_choice() {
        let mut l = login(&[Security::Plain], "ann", "pw");
        assert_eq!(
            trickle(&mut l, b"RFB 003.008\n\x01\x13"),
            Ok(Progress::Reading)
        );
        assert_eq!(out(&mut l), b"RFB 003.008\n\x13");
        assert_eq!(trickle(&mut l, &[0, 2, 0]), Ok(Progress::Reading));
        assert_eq!(out(&mut l), [0, 2]);
        // One subtype, Plain: no go-ahead byte comes, as TigerVNC does it.
        assert_eq!(trickle(&mut l, &[1, 0, 0, 1, 0]), Ok(Progress::Reading));
        let mut want = 256u32.to_be_bytes().to_vec();
        want.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 2]);
        want.extend_from_slice(b"annpw");
        assert_eq!(out(&mut l), want);
        assert_eq!(
            trickle(&mut l, &[0, 0, 0, 0]),
            Ok(Progress::Done(LoggedIn {
                version: Version::V3_8,
                security: Security::Plain
            }))
        );
    }

    #[test]
    fn anonymous_tls_only_when_listed() {
        let subtypes = b"RFB 003.008\n\x01\x13\x00\x02\x00\x01\x00\x00\x01\x02";
        let mut l = login(&Security::DEFAULT, "", "pw");
        assert_eq!(
            l.input(subtypes),
            Err(Failure::NoneAllowed {
                offered: vec![258],
                vencrypt: true
            })
        );
        let mut l = login(&[Security::TlsVnc], "", "pw");
        assert_eq!(l.input(subtypes), Ok((subtypes.len(), Progress::Reading)));
        assert_eq!(l.input(&[1]), Ok((1, Progress::StartTls(Tls::Anonymous))));
        assert_eq!(l.security(), Some(Security::TlsVnc));
    }

    #[test]
    fn vencrypt_refusals() {
        let mut l = login(&Security::DEFAULT, "", "pw");
        assert_eq!(
            l.input(b"RFB 003.008\n\x01\x13\x00\x01"),
            Err(Failure::VeNCrypt("the server speaks a version before 0.2"))
        );
        let mut l = login(&Security::DEFAULT, "", "pw");
        assert_eq!(
            l.input(b"RFB 003.008\n\x01\x13\x00\x02\x01"),
            Err(Failure::VeNCrypt("the server refused version 0.2"))
        );
        let mut l = login(&Security::DEFAULT, "", "pw");
        assert_eq!(
            l.input(b"RFB 003.008\n\x01\x13\x00\x02\x00\x01\x00\x00\x01\x05\x00"),
            Err(Failure::VeNCrypt("the server refused the subtype"))
        );
        let mut l = login(&Security::DEFAULT, "", "pw");
        assert_eq!(
            l.input(b"RFB 003.008\n\x01\x13\x00\x02\x00\x00"),
            Err(Failure::Malformed("no VeNCrypt subtypes"))
        );
    }

    #[test]
    fn bad_servers() {
        assert_eq!(
            login(&Security::DEFAULT, "", "").input(b"SSH-2.0-OpenSSH_9\r\n"),
            Err(Failure::NotRfb)
        );
        let mut l = login(&Security::DEFAULT, "", "");
        let mut msg = b"RFB 003.008\n\x00".to_vec();
        msg.extend_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(
            l.input(&msg),
            Err(Failure::Malformed("reason string too long"))
        );
        let mut l = login(&Security::DEFAULT, "", "");
        assert_eq!(
            l.input(b"RFB 003.008\n\x00\x00\x00\x00\x0dToo many \"x\"\n"),
            Err(Failure::Refused("Too many 'x'?".into()))
        );
    }

    #[test]
    fn the_error_line_lists_what_was_offered_and_no_secret() {
        let f = Failure::NoneAllowed {
            offered: vec![2, 16, 19],
            vencrypt: false,
        };
        assert_eq!(
            f.to_string(),
            "no allowed security type: the VNC server offered security types vnc, tight, vencrypt"
        );
        let f = Failure::Denied(Security::X509Plain, Some("bad".into()));
        assert_eq!(
            f.to_string(),
            "authentication failed with security type x509plain: \"bad\""
        );
    }
}
