//! The PROXY protocol version 2 header (the binary form of HAProxy's "PROXY protocol"
//! specification) that tells the target who the client is. nginx writes only version 1
//! (`ngx_proxy_protocol_write`), which the glue uses for `websockify_proxy_protocol on`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const VERSION_PROXY: u8 = 0x21;
/// Address family and transport: unknown, TCP over IPv4, TCP over IPv6.
const UNSPEC: u8 = 0x00;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// The longest header written here: signature, 4 bytes, two IPv6 addresses and ports.
pub const V2_MAX: usize = 16 + 36;

/// A version 2 header, ready to send.
pub struct Header {
    buf: [u8; V2_MAX],
    len: usize,
}

impl Header {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The header for a connection from `client` to `server` (nginx's own address). When
/// either is not an IP address (a unix socket), the family is UNSPEC with no addresses,
/// as v1 writes "PROXY UNKNOWN": the receiver then uses the connection's own endpoints.
/// An IPv4 and an IPv6 address together are both sent as IPv6, the IPv4 one mapped.
pub fn v2(client: Option<SocketAddr>, server: Option<SocketAddr>) -> Header {
    let mut buf = [0u8; V2_MAX];
    buf[..12].copy_from_slice(&SIGNATURE);
    buf[12] = VERSION_PROXY;
    let (family, body): (u8, usize) = match (client, server) {
        (Some(SocketAddr::V4(c)), Some(SocketAddr::V4(s))) => {
            buf[16..20].copy_from_slice(&c.ip().octets());
            buf[20..24].copy_from_slice(&s.ip().octets());
            buf[24..26].copy_from_slice(&c.port().to_be_bytes());
            buf[26..28].copy_from_slice(&s.port().to_be_bytes());
            (TCP4, 12)
        }
        (Some(c), Some(s)) => {
            buf[16..32].copy_from_slice(&v6(c.ip()).octets());
            buf[32..48].copy_from_slice(&v6(s.ip()).octets());
            buf[48..50].copy_from_slice(&c.port().to_be_bytes());
            buf[50..52].copy_from_slice(&s.port().to_be_bytes());
            (TCP6, 36)
        }
        _ => (UNSPEC, 0),
    };
    buf[13] = family;
    buf[14..16].copy_from_slice(&(body as u16).to_be_bytes());
    Header {
        buf,
        len: 16 + body,
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn ipv4() {
        let h = v2(sa("192.0.2.10:51234"), sa("198.51.100.1:443"));
        let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
        want.extend_from_slice(&[192, 0, 2, 10, 198, 51, 100, 1]);
        want.extend_from_slice(&[0xc8, 0x22, 0x01, 0xbb]);
        assert_eq!(h.as_bytes(), &want[..]);
    }

    #[test]
    fn ipv6() {
        let h = v2(sa("[2001:db8::1]:65535"), sa("[::1]:80"));
        let b = h.as_bytes();
        assert_eq!(b.len(), 52);
        assert_eq!(&b[12..16], &[0x21, 0x21, 0x00, 0x24]);
        let mut client = [0u8; 16];
        client[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        client[15] = 1;
        assert_eq!(&b[16..32], &client);
        let mut server = [0u8; 16];
        server[15] = 1;
        assert_eq!(&b[32..48], &server);
        assert_eq!(&b[48..52], &[0xff, 0xff, 0x00, 0x50]);
    }

    #[test]
    fn mixed_families_map_ipv4_into_ipv6() {
        let h = v2(sa("192.0.2.10:1000"), sa("[2001:db8::2]:2000"));
        let b = h.as_bytes();
        assert_eq!(&b[13..16], &[0x21, 0x00, 0x24]);
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[192, 0, 2, 10]);
        assert_eq!(&b[16..32], &mapped);
        assert_eq!(&b[48..52], &[0x03, 0xe8, 0x07, 0xd0]);
    }

    #[test]
    fn unknown_family_has_no_addresses() {
        for (c, s) in [
            (None, sa("127.0.0.1:80")),
            (sa("127.0.0.1:9"), None),
            (None, None),
        ] {
            let h = v2(c, s);
            let mut want = SIGNATURE.to_vec();
            want.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
            assert_eq!(h.as_bytes(), &want[..]);
        }
    }
}
