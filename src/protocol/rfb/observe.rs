//! Watches an RFB session from the side, in the bytes the client received and sent, until
//! its ServerInit: the facts a recording states so that its readers need not parse RFB
//! (the protocol version, the security type, the framebuffer and the desktop's name).
//! It speaks to no one, and gives up on what it cannot follow (a security type with its
//! own messages, such as VeNCrypt or Tight, a refusal, or no RFB at all).

use super::wire::Reader;
use super::{printable, Code, Version, TYPE_NONE, TYPE_VNC};

/// The longest desktop name followed; a longer one ends the watch.
const MAX_NAME: usize = 4096;
/// Neither side's handshake bytes are kept beyond this.
const MAX_KEPT: usize = MAX_NAME + 512;

/// What the session's handshake showed the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Info {
    /// The server's ProtocolVersion, e.g. "RFB 003.008".
    pub server_version: String,
    /// The client's answer: the version the session speaks.
    pub client_version: String,
    /// "none", "vnc" or another type's name or number.
    pub security: String,
    pub width: u16,
    pub height: u16,
    pub desktop: String,
}

#[derive(Default)]
pub struct Observer {
    down: Vec<u8>,
    up: Vec<u8>,
    over: bool,
}

enum Step {
    More,
    Seen(Info),
    GiveUp,
}

impl Observer {
    pub fn new() -> Observer {
        Observer::default()
    }

    /// Bytes the client received; `Some` once, when they complete the ServerInit.
    pub fn down(&mut self, data: &[u8]) -> Option<Info> {
        self.feed(data, true)
    }

    /// Bytes the client sent.
    pub fn up(&mut self, data: &[u8]) -> Option<Info> {
        self.feed(data, false)
    }

    /// Whether it has nothing more to say (seen, or given up).
    pub fn is_over(&self) -> bool {
        self.over
    }

    fn feed(&mut self, data: &[u8], down: bool) -> Option<Info> {
        if self.over {
            return None;
        }
        let kept = if down { &mut self.down } else { &mut self.up };
        let room = MAX_KEPT.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
        // The handshake is small: parsed again from its start until it is complete.
        match handshake(&self.down, &self.up) {
            Step::More if self.down.len() < MAX_KEPT && self.up.len() < MAX_KEPT => None,
            Step::More | Step::GiveUp => self.end(None),
            Step::Seen(info) => self.end(Some(info)),
        }
    }

    fn end(&mut self, info: Option<Info>) -> Option<Info> {
        self.over = true;
        self.down = Vec::new();
        self.up = Vec::new();
        info
    }
}

fn handshake(down: &[u8], up: &[u8]) -> Step {
    let (mut d, mut u) = (Reader::new(down), Reader::new(up));
    match parse(&mut d, &mut u) {
        Some(Some(info)) => Step::Seen(info),
        Some(None) => Step::GiveUp,
        None => Step::More,
    }
}

/// None: more bytes needed; Some(None): not a session to follow.
fn parse(d: &mut Reader, u: &mut Reader) -> Option<Option<Info>> {
    let server: [u8; 12] = d.array()?;
    let Some(offered) = Version::of(&server) else {
        return Some(None);
    };
    let client: [u8; 12] = u.array()?;
    let Some(answered) = Version::of(&client) else {
        return Some(None);
    };
    let version = offered.min(answered);
    let security = if version == Version::V3_3 {
        d.u32()?
    } else {
        let n = d.u8()?;
        d.bytes(usize::from(n))?;
        if n == 0 {
            return Some(None);
        }
        u32::from(u.u8()?)
    };
    let result = match security {
        TYPE_NONE => version == Version::V3_8,
        TYPE_VNC => {
            d.bytes(16)?;
            true
        }
        _ => return Some(None),
    };
    if result && d.u32()? != 0 {
        return Some(None);
    }
    let width = u16::from_be_bytes(d.array()?);
    let height = u16::from_be_bytes(d.array()?);
    d.bytes(16)?;
    let len = d.u32()? as usize;
    if len > MAX_NAME {
        return Some(None);
    }
    let name = d.bytes(len)?;
    Some(Some(Info {
        server_version: printable(&server[..11]),
        client_version: printable(&client[..11]),
        security: Code(security).to_string(),
        width,
        height,
        desktop: String::from_utf8_lossy(name).into_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_init(name: &str) -> Vec<u8> {
        let mut m = vec![0x04, 0x00, 0x03, 0x00];
        m.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        m.extend_from_slice(&(name.len() as u32).to_be_bytes());
        m.extend_from_slice(name.as_bytes());
        m
    }

    /// Feeds both sides `cut` bytes at a time, the client's first; returns what was seen
    /// and whether the observer was over by the end.
    fn watch(down: &[u8], up: &[u8], cut: usize) -> (Option<Info>, bool) {
        let mut o = Observer::new();
        let mut seen = None;
        let (mut dc, mut uc) = (down.chunks(cut), up.chunks(cut));
        loop {
            let (a, b) = (uc.next(), dc.next());
            if a.is_none() && b.is_none() {
                return (seen, o.is_over());
            }
            for (part, is_down) in [(a, false), (b, true)] {
                let Some(part) = part else { continue };
                let got = if is_down { o.down(part) } else { o.up(part) };
                if got.is_some() {
                    assert!(seen.is_none(), "seen twice");
                    seen = got;
                }
            }
        }
    }

    #[test]
    fn a_vnc_auth_session_in_3_8() {
        let mut down = b"RFB 003.008\n\x02\x02\x01".to_vec();
        down.extend_from_slice(&[7; 16]);
        down.extend_from_slice(&[0, 0, 0, 0]);
        down.extend(server_init("lab desk"));
        down.extend_from_slice(b"\x00\x00\x00\x01 update");
        let mut up = b"RFB 003.008\n\x02".to_vec();
        up.extend_from_slice(&[9; 16]);
        up.push(1);
        for cut in [1, 3, 7, 1000] {
            let (info, over) = watch(&down, &up, cut);
            assert_eq!(
                info,
                Some(Info {
                    server_version: "RFB 003.008".into(),
                    client_version: "RFB 003.008".into(),
                    security: "vnc".into(),
                    width: 1024,
                    height: 768,
                    desktop: "lab desk".into(),
                }),
                "cut {cut}"
            );
            assert!(over);
        }
    }

    #[test]
    fn none_without_a_result_before_3_8_and_3_3_from_the_server() {
        let mut down = b"RFB 003.007\n\x01\x01".to_vec();
        down.extend(server_init("seven"));
        let info = watch(&down, b"RFB 003.007\n\x01\x01", 2).0;
        assert_eq!(
            info.map(|i| (i.security, i.desktop)),
            Some(("none".into(), "seven".into()))
        );

        // A 3.8 server, a 3.3 client: the server names the type.
        let mut down = b"RFB 003.008\n\x00\x00\x00\x01".to_vec();
        down.extend(server_init("three"));
        let info = watch(&down, b"RFB 003.003\n\x01", 5).0;
        assert_eq!(
            info.map(|i| (i.client_version, i.desktop)),
            Some(("RFB 003.003".into(), "three".into()))
        );
    }

    #[test]
    fn what_it_cannot_follow_ends_the_watch() {
        // VeNCrypt: its own messages, then TLS.
        assert_eq!(
            watch(b"RFB 003.008\n\x01\x13\x00\x02", b"RFB 003.008\n\x13", 4),
            (None, true)
        );
        // A refusal, then a reason.
        assert_eq!(
            watch(
                b"RFB 003.008\n\x00\x00\x00\x00\x04nope",
                b"RFB 003.008\n",
                4
            ),
            (None, true)
        );
        // Failed authentication.
        let mut down = b"RFB 003.008\n\x01\x02".to_vec();
        down.extend_from_slice(&[7; 16]);
        down.extend_from_slice(&[0, 0, 0, 1]);
        let mut up = b"RFB 003.008\n\x02".to_vec();
        up.extend_from_slice(&[9; 16]);
        assert_eq!(watch(&down, &up, 16), (None, true));
        // No RFB at all.
        assert_eq!(
            watch(b"HTTP/1.1 200 OK\r\n", b"GET / HTTP/1.1\r\n", 3),
            (None, true)
        );
        // A name beyond the bound.
        let mut down = b"RFB 003.008\n\x01\x01\x00\x00\x00\x00".to_vec();
        down.extend(server_init(&"n".repeat(MAX_NAME + 1)));
        assert_eq!(watch(&down, b"RFB 003.008\n\x01\x01", 64), (None, true));
    }

    #[test]
    fn an_unfinished_handshake_is_still_watched() {
        assert_eq!(
            watch(b"RFB 003.008\n\x01\x01", b"RFB 003.008\n", 5),
            (None, false)
        );
    }
}
