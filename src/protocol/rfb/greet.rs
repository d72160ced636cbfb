//! The server half of the handshake, spoken to the browser once the gateway has logged
//! in to the VNC server: `RFB 003.008`, one security type (None), SecurityResult OK. The
//! browser's ClientInit then passes to the server and the relay runs as without it.

use super::wire::Reader;
use super::{Version, TYPE_NONE};

/// Where the browser's side stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    Reading,
    /// The handshake is over: the browser's next byte is ClientInit.
    Done(Version),
}

/// Why the browser's side failed; the session ends with one log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Its first bytes are no ProtocolVersion.
    NotRfb,
    /// It asked for a security type other than None (told so before the end).
    Type(u8),
}

#[derive(Clone, Copy)]
enum State {
    Version,
    Choice(Version),
    Done(Version),
}

pub struct Greet {
    state: State,
    out: Vec<u8>,
}

/// Said to a browser that asks for another type (RFC 6143 7.1.3's failure reason).
const ONLY_NONE: &[u8] = b"the gateway offers security type None only";

impl Default for Greet {
    fn default() -> Greet {
        Greet::new()
    }
}

impl Greet {
    /// Queues the gateway's ProtocolVersion, the first thing the browser reads.
    pub fn new() -> Greet {
        Greet {
            state: State::Version,
            out: Version::V3_8.as_bytes().to_vec(),
        }
    }

    /// What to send to the browser now.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Feeds the browser's bytes not consumed before; returns how many were consumed.
    pub fn input(&mut self, data: &[u8]) -> Result<(usize, Progress), Failure> {
        let mut r = Reader::new(data);
        loop {
            match self.state {
                State::Version => {
                    let Some(msg) = r.array::<12>() else { break };
                    // A client answers a version not above ours; a higher one is read as ours.
                    let v = Version::of(&msg).ok_or(Failure::NotRfb)?;
                    if v == Version::V3_3 {
                        // 3.3: the server decides, and no SecurityResult follows None.
                        self.out.extend_from_slice(&TYPE_NONE.to_be_bytes());
                        self.state = State::Done(v);
                    } else {
                        self.out.extend_from_slice(&[1, TYPE_NONE as u8]);
                        self.state = State::Choice(v);
                    }
                }
                State::Choice(v) => {
                    let Some(t) = r.u8() else { break };
                    if u32::from(t) != TYPE_NONE {
                        self.out.extend_from_slice(&1u32.to_be_bytes());
                        if v == Version::V3_8 {
                            self.out
                                .extend_from_slice(&(ONLY_NONE.len() as u32).to_be_bytes());
                            self.out.extend_from_slice(ONLY_NONE);
                        }
                        return Err(Failure::Type(t));
                    }
                    if v == Version::V3_8 {
                        self.out.extend_from_slice(&0u32.to_be_bytes());
                    }
                    self.state = State::Done(v);
                }
                State::Done(v) => return Ok((r.consumed(), Progress::Done(v))),
            }
        }
        Ok((r.consumed(), Progress::Reading))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_3_8_browser_gets_none_and_ok() {
        let mut g = Greet::new();
        assert_eq!(g.take_output(), b"RFB 003.008\n");
        assert_eq!(g.input(b"RFB 003.008"), Ok((0, Progress::Reading)));
        assert_eq!(g.input(b"RFB 003.008\n"), Ok((12, Progress::Reading)));
        assert_eq!(g.take_output(), [1, 1]);
        // the choice and the ClientInit after it: only the choice is the greeting's
        assert_eq!(g.input(&[1, 1]), Ok((1, Progress::Done(Version::V3_8))));
        assert_eq!(g.take_output(), [0, 0, 0, 0]);
    }

    #[test]
    fn older_browsers_per_rfc_6143() {
        let mut g = Greet::new();
        g.take_output();
        assert_eq!(
            g.input(b"RFB 003.003\n"),
            Ok((12, Progress::Done(Version::V3_3)))
        );
        assert_eq!(g.take_output(), [0, 0, 0, 1]);
        let mut g = Greet::new();
        g.take_output();
        assert_eq!(
            g.input(b"RFB 003.007\n\x01"),
            Ok((13, Progress::Done(Version::V3_7)))
        );
        assert_eq!(g.take_output(), [1, 1], "3.7: no SecurityResult after None");
    }

    #[test]
    fn a_browser_asking_for_vnc_auth_is_told_why() {
        let mut g = Greet::new();
        g.take_output();
        assert_eq!(g.input(b"RFB 003.008\n\x02"), Err(Failure::Type(2)));
        let out = g.take_output();
        assert_eq!(&out[..6], [1, 1, 0, 0, 0, 1]);
        assert_eq!(&out[10..], ONLY_NONE);
        assert_eq!(
            Greet::new().input(b"GET / HTTP/1.1\r\n"),
            Err(Failure::NotRfb)
        );
    }
}
