//! Reading RFB's big-endian fields from what has arrived so far: every read is all or
//! nothing, so a message is parsed only once it is complete.

/// The longest reason string kept from a peer; a longer one is taken for garbage.
pub const MAX_REASON: usize = 1024;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes taken so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }
}

/// A reason string from a peer (u32 length, then text), printable for a log line.
/// `Err` when the length is beyond [`MAX_REASON`].
pub fn reason(r: &mut Reader) -> Option<Result<String, u32>> {
    let len = r.u32()?;
    if len as usize > MAX_REASON {
        return Some(Err(len));
    }
    let text = r.bytes(len as usize)?;
    Some(Ok(printable(text)))
}

/// Text from a peer as it may appear in a log line: control characters and invalid
/// UTF-8 become '?', quotes are left out.
pub fn printable(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() || c == char::REPLACEMENT_CHARACTER => '?',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_all_or_nothing() {
        let mut r = Reader::new(&[0, 0, 0]);
        assert_eq!(r.u32(), None);
        assert_eq!(r.consumed(), 0);
        assert_eq!(r.u8(), Some(0));
        assert_eq!(r.bytes(usize::MAX), None);
    }

    #[test]
    fn reasons_are_bounded_and_printable() {
        let mut msg = 6u32.to_be_bytes().to_vec();
        msg.extend_from_slice(b"no\n\"x\xff");
        assert_eq!(reason(&mut Reader::new(&msg)), Some(Ok("no?'x?".into())));
        assert_eq!(reason(&mut Reader::new(&msg[..8])), None);
        let long = 5000u32.to_be_bytes();
        assert_eq!(reason(&mut Reader::new(&long)), Some(Err(5000)));
    }
}
