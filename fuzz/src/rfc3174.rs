//! SHA-1 as RFC 3174 section 6.1 computes it (method 1).

pub fn sha1(message: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
    // Section 4: a 1 bit, zeros to 448 mod 512, the length in bits as 64 bits.
    let mut m = message.to_vec();
    m.push(0x80);
    while m.len() % 64 != 56 {
        m.push(0);
    }
    m.extend_from_slice(&((message.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in m.chunks(64) {
        let mut w = [0u32; 80];
        for t in 0..16 {
            w[t] = u32::from_be_bytes([
                block[4 * t],
                block[4 * t + 1],
                block[4 * t + 2],
                block[4 * t + 3],
            ]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, &wt) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5a827999),
                20..=39 => (b ^ c ^ d, 0x6ed9eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1bbcdc),
                _ => (b ^ c ^ d, 0xca62c1d6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(wt)
                .wrapping_add(k);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, temp);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (o, x) in out.chunks_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

pub(crate) fn self_check() {
    // Section 7.3's tests 1, 2 and 3.
    let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02X}")).collect::<String>();
    assert_eq!(
        hex(sha1(b"abc")),
        "A9993E364706816ABA3E25717850C26C9CD0D89D"
    );
    assert_eq!(
        hex(sha1(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        )),
        "84983E441C3BD26EBAAE4AA1F95129E5E54670F1"
    );
    assert_eq!(
        hex(sha1(&vec![b'a'; 1_000_000])),
        "34AA973CD4C4DAA4F61EEB2BDBAD27316534016F"
    );
}
