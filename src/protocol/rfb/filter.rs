//! The browser's messages to the server, parsed to keep a view-only session view-only:
//! input (keys, pointer, clipboard, resizing, power) never reaches the server, the rest
//! passes unchanged, whole messages only. It starts at ClientInit, which it sends with
//! shared = 1 so that a viewer never disconnects the others.
//!
//! Streaming: a message is judged from its header, then its body passes (or is dropped)
//! as it arrives, however long it is (a clipboard can be megabytes).

/// What to do with the start of the bytes given.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass these many bytes to the server.
    Pass(usize),
    /// Drop these many bytes (an input message, or the rest of one).
    Drop(usize),
    /// A message header is not complete yet: wait for more.
    Reading,
    /// A message type this filter does not know: it cannot tell where it ends.
    Unknown(u8),
}

#[derive(Clone, Copy, Debug)]
enum State {
    ClientInit,
    /// At a message boundary.
    Message,
    /// Inside a message: this many bytes left, passed or dropped.
    Body {
        left: u64,
        pass: bool,
    },
}

pub struct Filter {
    state: State,
}

impl Default for Filter {
    fn default() -> Filter {
        Filter::new()
    }
}

impl Filter {
    pub fn new() -> Filter {
        Filter {
            state: State::ClientInit,
        }
    }

    /// Judges the start of `data` (the browser's bytes not yet judged); ClientInit's
    /// shared flag is rewritten in place.
    pub fn next(&mut self, data: &mut [u8]) -> Verdict {
        let Some((first, _)) = data.split_first_mut() else {
            return Verdict::Reading;
        };
        match self.state {
            State::ClientInit => {
                *first = 1;
                self.state = State::Message;
                Verdict::Pass(1)
            }
            State::Body { left, pass } => self.body(data.len(), left, pass),
            State::Message => match length(*first, data) {
                Length::Known(len, input) => self.body(data.len(), len, !input),
                Length::Reading => Verdict::Reading,
                Length::Unknown(t) => Verdict::Unknown(t),
            },
        }
    }

    fn body(&mut self, have: usize, left: u64, pass: bool) -> Verdict {
        let n = usize::try_from(left).map_or(have, |l| l.min(have));
        let left = left - n as u64;
        self.state = if left == 0 {
            State::Message
        } else {
            State::Body { left, pass }
        };
        if pass {
            Verdict::Pass(n)
        } else {
            Verdict::Drop(n)
        }
    }
}

enum Length {
    /// The whole message's length, and whether it is input.
    Known(u64, bool),
    Reading,
    Unknown(u8),
}

/// A client message's length from its first bytes (RFC 6143 7.5 and rfbproto).
fn length(kind: u8, m: &[u8]) -> Length {
    let u8_at = |i: usize| m.get(i).map(|&b| u64::from(b));
    let u16_at = |i: usize| {
        m.get(i..i + 2)
            .map(|b| u64::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let known = |len: Option<u64>, input: bool| match len {
        Some(len) => Length::Known(len, input),
        None => Length::Reading,
    };
    match kind {
        0 => Length::Known(20, false),                    // SetPixelFormat
        2 => known(u16_at(2).map(|n| 4 + 4 * n), false),  // SetEncodings
        3 => Length::Known(10, false),                    // FramebufferUpdateRequest
        4 => Length::Known(8, true),                      // KeyEvent
        5 => Length::Known(6, true),                      // PointerEvent
        6 => known(cut_text(m), true),                    // ClientCutText
        150 => Length::Known(10, false),                  // EnableContinuousUpdates
        248 => known(u8_at(8).map(|n| 9 + n), false),     // Fence
        250 => Length::Known(4, true),                    // xvp (power)
        251 => known(u8_at(6).map(|n| 8 + 16 * n), true), // SetDesktopSize
        253 => known(u16_at(2).map(|n| 4 + n), true),     // gii
        255 => match (u8_at(1), u16_at(2)) {
            (Some(0), _) => Length::Known(12, true), // QEMU extended key event
            (Some(1), Some(2)) => Length::Known(10, false), // QEMU audio: set format
            (Some(1), Some(_)) => Length::Known(4, false), // QEMU audio: enable, disable
            (Some(t), _) if t > 1 => Length::Unknown(255),
            _ => Length::Reading,
        },
        t => Length::Unknown(t),
    }
}

/// ClientCutText: 8 bytes, then its text; a negative length is the extended clipboard
/// form, whose payload is |length| bytes.
fn cut_text(m: &[u8]) -> Option<u64> {
    let b = m.get(4..8)?;
    let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some(8 + u64::from(len.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter over `stream` cut into `chunk`-byte reads; returns what passed.
    fn run(stream: &[u8], chunk: usize) -> Result<Vec<u8>, u8> {
        let mut f = Filter::new();
        let (mut pending, mut passed) = (Vec::new(), Vec::new());
        for part in stream.chunks(chunk) {
            pending.extend_from_slice(part);
            loop {
                match f.next(&mut pending) {
                    Verdict::Pass(n) => passed.extend(pending.drain(..n)),
                    Verdict::Drop(n) => drop(pending.drain(..n)),
                    Verdict::Reading => break,
                    Verdict::Unknown(t) => return Err(t),
                }
            }
        }
        assert!(pending.is_empty(), "a message left incomplete");
        Ok(passed)
    }

    fn messages() -> (Vec<u8>, Vec<u8>) {
        let mut all = vec![0u8]; // ClientInit, exclusive
        let mut kept = vec![1u8]; // ... sent shared
        let mut add = |m: &[u8], keep: bool| {
            all.extend_from_slice(m);
            if keep {
                kept.extend_from_slice(m);
            }
        };
        add(&[0; 20], true);
        add(
            &[2, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x21],
            true,
        );
        add(&[3, 1, 0, 0, 0, 0, 4, 0, 3, 0], true);
        add(&[4, 1, 0, 0, 0, 0, 0, 0x61], false);
        add(&[5, 1, 0, 10, 0, 20], false);
        let mut cut = vec![6, 0, 0, 0, 0, 0, 0, 5];
        cut.extend_from_slice(b"hello");
        add(&cut, false);
        // the extended clipboard form: length -4
        let mut ext = vec![6, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc];
        ext.extend_from_slice(&[0, 0, 0, 1]);
        add(&ext, false);
        add(&[150, 1, 0, 0, 0, 0, 4, 0, 3, 0], true);
        add(&[248, 0, 0, 0, 0, 0, 0, 1, 2, 0xa, 0xb], true);
        add(&[250, 0, 1, 2], false);
        let mut size = vec![251, 0, 4, 0, 3, 0, 1, 0];
        size.extend_from_slice(&[0; 16]);
        add(&size, false);
        add(&[253, 0, 0, 2, 9, 9], false);
        add(&[255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e], false);
        add(&[255, 1, 0, 0], true);
        add(&[255, 1, 0, 2, 3, 2, 0, 0, 0xac, 0x44], true);
        add(&[3, 0, 0, 0, 0, 0, 4, 0, 3, 0], true);
        (all, kept)
    }

    #[test]
    fn input_is_dropped_whole_the_rest_passes_unchanged_in_order() {
        let (all, kept) = messages();
        for chunk in [1, 2, 3, 7, 64, all.len()] {
            assert_eq!(run(&all, chunk), Ok(kept.clone()), "reads of {chunk}");
        }
    }

    #[test]
    fn a_long_clipboard_streams_through_without_being_held() {
        let mut f = Filter::new();
        assert_eq!(f.next(&mut [0]), Verdict::Pass(1));
        let mut head = vec![6, 0, 0, 0, 0, 0x10, 0, 0];
        head.extend_from_slice(&[b'x'; 100]);
        assert_eq!(f.next(&mut head), Verdict::Drop(108));
        assert_eq!(f.next(&mut [b'x'; 4096]), Verdict::Drop(4096));
        // a header cut short waits
        let mut f = Filter::new();
        f.next(&mut [0]);
        assert_eq!(f.next(&mut [2, 0, 0]), Verdict::Reading);
        assert_eq!(f.next(&mut [255]), Verdict::Reading);
    }

    #[test]
    fn unknown_types_stop_the_stream() {
        let mut stream = vec![1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        stream.push(7);
        assert_eq!(run(&stream, 4), Err(7));
        assert_eq!(run(&[1, 255, 9, 0, 0], 5), Err(255));
    }
}
