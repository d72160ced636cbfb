//! The RFB layer between the browser and the server once the gateway has logged in: the
//! server half of the handshake spoken to the browser (`greet`), then, for a view-only
//! session, the filter that drops input messages. It judges the client's payload in the
//! up buffer in place: bytes before `clear` may go to the target, judged input is cut out,
//! and a message not complete yet waits behind `clear`.

#![forbid(unsafe_code)]

use std::fmt;

use crate::protocol::rfb::filter::{Filter, Verdict};
use crate::protocol::rfb::greet::{self, Greet, Progress};
use crate::protocol::rfb::printable;

/// Why the browser's side of RFB ended the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its first bytes were no RFB ProtocolVersion.
    NotRfb,
    /// It asked for a security type other than None (told so in RFB first).
    Type(u8),
    /// A view-only session met a message type the filter cannot measure.
    Unknown(u8),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRfb => f.write_str("the client does not speak RFB"),
            Self::Type(t) => write!(
                f,
                "the client asked for RFB security type {t}, the gateway offers None only"
            ),
            Self::Unknown(t) => write!(
                f,
                "the client sent RFB message type {t}, unknown to the view-only filter"
            ),
        }
    }
}

pub struct Gate {
    greet: Option<Greet>,
    filter: Option<Filter>,
    /// Bytes for the browser (the handshake), framed at the next frame boundary.
    to_client: Vec<u8>,
    /// The server's first bytes until ServerInit's desktop name is complete.
    server_init: Option<Vec<u8>>,
    desktop: Option<String>,
}

/// ServerInit: width, height, pixel format, then the name's length and the name.
const SERVER_INIT: usize = 24;
/// Longer desktop names are cut for the log and the status.
const MAX_DESKTOP: usize = 256;

impl Gate {
    /// The gateway's ProtocolVersion is queued for the browser at once.
    pub fn new(view_only: bool) -> Gate {
        let mut greet = Greet::new();
        Gate {
            to_client: greet.take_output(),
            greet: Some(greet),
            filter: view_only.then(Filter::new),
            server_init: Some(Vec::new()),
            desktop: None,
        }
    }

    /// Watches the server's bytes (passed unchanged) for ServerInit's desktop name.
    pub fn server_bytes(&mut self, mut data: &[u8]) {
        while let Some(init) = self.server_init.as_mut() {
            let want = wanted(init);
            let take = want.saturating_sub(init.len()).min(data.len());
            init.extend_from_slice(&data[..take]);
            data = &data[take..];
            if init.len() < want {
                return;
            }
            if init.len() >= wanted(init) {
                self.desktop = Some(printable(init.get(SERVER_INIT..).unwrap_or_default()));
                self.server_init = None;
            }
        }
    }

    /// The desktop name from ServerInit, once seen.
    pub fn desktop(&self) -> Option<&str> {
        self.desktop.as_deref()
    }

    /// Still speaking the handshake: the server waits for ClientInit and is not read.
    pub fn greeting(&self) -> bool {
        self.greet.is_some()
    }

    pub fn has_output(&self) -> bool {
        !self.to_client.is_empty()
    }

    /// Moves up to `max` bytes for the browser into `dst`; returns how many.
    pub fn take_output(&mut self, dst: &mut [u8]) -> usize {
        let n = self.to_client.len().min(dst.len());
        dst[..n].copy_from_slice(&self.to_client[..n]);
        self.to_client.drain(..n);
        n
    }

    /// Judges the payload `buf[clear..last]`: returns the new `clear` and `last` (judged
    /// bytes that must not reach the server are cut out, the rest moves down), and the
    /// refusal that ends the session, if any (what was cleared before it still goes).
    pub fn judge(
        &mut self,
        buf: &mut [u8],
        mut clear: usize,
        mut last: usize,
    ) -> (usize, usize, Option<Refusal>) {
        last = last.min(buf.len());
        clear = clear.min(last);
        while clear < last {
            if let Some(g) = self.greet.as_mut() {
                let rc = g.input(&buf[clear..last]);
                self.to_client.extend_from_slice(&g.take_output());
                let (used, progress) = match rc {
                    Ok(r) => r,
                    Err(greet::Failure::NotRfb) => return (clear, last, Some(Refusal::NotRfb)),
                    Err(greet::Failure::Type(t)) => return (clear, last, Some(Refusal::Type(t))),
                };
                last = cut(buf, clear, used, last);
                match progress {
                    Progress::Done(_) => self.greet = None,
                    Progress::Reading => break,
                }
                continue;
            }
            let Some(f) = self.filter.as_mut() else {
                return (last, last, None);
            };
            match f.next(&mut buf[clear..last]) {
                Verdict::Pass(n) => clear += n,
                Verdict::Drop(n) => last = cut(buf, clear, n, last),
                Verdict::Reading => break,
                Verdict::Unknown(t) => return (clear, last, Some(Refusal::Unknown(t))),
            }
        }
        (clear, last, None)
    }
}

/// How much of ServerInit to collect, from what has been collected.
fn wanted(init: &[u8]) -> usize {
    match init.get(20..SERVER_INIT) {
        Some(&[a, b, c, d]) => {
            SERVER_INIT + (u32::from_be_bytes([a, b, c, d]) as usize).min(MAX_DESKTOP)
        }
        _ => SERVER_INIT,
    }
}

/// Removes `buf[at..at + n]` from the bytes up to `last`; returns the new `last`.
fn cut(buf: &mut [u8], at: usize, n: usize, last: usize) -> usize {
    buf.copy_within(at + n..last, at);
    last - n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(gate: &mut Gate, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut buf = input.to_vec();
        let (clear, last, refused) = gate.judge(&mut buf, 0, input.len());
        assert_eq!(refused, None);
        let mut out = [0u8; 256];
        let n = gate.take_output(&mut out);
        assert!(clear <= last);
        (buf[..clear].to_vec(), out[..n].to_vec())
    }

    #[test]
    fn the_handshake_goes_to_the_browser_and_client_init_to_the_server() {
        let mut g = Gate::new(false);
        assert!(g.has_output() && g.greeting());
        let mut input = b"RFB 003.008\n\x01".to_vec();
        input.extend_from_slice(&[0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let (up, down) = run(&mut g, &input);
        assert_eq!(&down[..12], b"RFB 003.008\n");
        assert_eq!(&down[12..], &[1, 1, 0, 0, 0, 0]);
        // ClientInit (shared 0: left as the browser said) and a FramebufferUpdateRequest.
        assert_eq!(up, &input[13..]);
        assert!(!g.greeting());
    }

    #[test]
    fn view_only_drops_input_whole_and_shares_the_desktop() {
        let mut g = Gate::new(true);
        let mut input = b"RFB 003.008\n\x01\x00".to_vec();
        let key = [4u8, 1, 0, 0, 0, 0, 0, 0x61];
        let fbur = [3u8, 0, 0, 0, 0, 0, 0, 10, 0, 10];
        input.extend_from_slice(&key);
        input.extend_from_slice(&fbur);
        input.extend_from_slice(&[5, 1, 0, 9, 0, 9]); // a PointerEvent
        input.extend_from_slice(&[2, 0]); // SetEncodings without its count yet
        let mut buf = input.clone();
        let (clear, last, _) = g.judge(&mut buf, 0, input.len());
        let mut want = vec![1u8];
        want.extend_from_slice(&fbur);
        assert_eq!(&buf[..clear], &want[..]);
        assert_eq!(&buf[clear..last], &[2, 0], "a partial header waits");
        let (clear, last, _) = g.judge(&mut buf, clear, last);
        assert_eq!((clear, last), (want.len(), want.len() + 2));
    }

    #[test]
    fn the_desktop_name_comes_from_server_init_in_any_pieces() {
        let mut init = vec![0u8; 20];
        init.extend_from_slice(&7u32.to_be_bytes());
        init.extend_from_slice(b"desk\"1\x01");
        init.extend_from_slice(&[0, 0, 0]); // a FramebufferUpdate's start
        for cut in 0..init.len() {
            let mut g = Gate::new(false);
            g.server_bytes(&init[..cut]);
            let whole = cut >= 31;
            assert_eq!(g.desktop().is_some(), whole, "cut at {cut}");
            g.server_bytes(&init[cut..]);
            assert_eq!(g.desktop(), Some("desk'1?"), "cut at {cut}");
        }
        let mut g = Gate::new(false);
        g.server_bytes(&[0; 24]);
        assert_eq!(g.desktop(), Some(""));
    }

    #[test]
    fn refusals() {
        let mut g = Gate::new(false);
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        assert_eq!(g.judge(&mut buf, 0, 16).2, Some(Refusal::NotRfb));
        let mut g = Gate::new(false);
        let mut buf = b"RFB 003.008\n\x02".to_vec();
        assert_eq!(g.judge(&mut buf, 0, 13).2, Some(Refusal::Type(2)));
        let mut out = [0u8; 128];
        let n = g.take_output(&mut out);
        assert!(
            out[..n].ends_with(b"None only"),
            "the reason reaches the browser"
        );
        let mut g = Gate::new(true);
        // What was judged before the unknown message still goes: ClientInit here.
        let mut buf = b"RFB 003.008\n\x01\x00\x07".to_vec();
        let (clear, _, refused) = g.judge(&mut buf, 0, 15);
        assert_eq!(
            (&buf[..clear], refused),
            (&[1u8][..], Some(Refusal::Unknown(7)))
        );
    }
}
