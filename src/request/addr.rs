//! Socket addresses from nginx as the allow-list and the PROXY header see them.

use core::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use ngx::ffi::{
    sockaddr, sockaddr_in, sockaddr_in6, sockaddr_un, socklen_t, AF_INET, AF_INET6, AF_UNIX,
};

use crate::protocol::allow::Peer;

/// A socket address as the allow-list sees it.
///
/// # Safety
/// `sa` is a socket address of `len` bytes that outlives `'a`.
pub unsafe fn peer_of<'a>(sa: *const sockaddr, len: socklen_t) -> Option<Peer<'a>> {
    // SAFETY: see # Safety; each family's struct fits in the address nginx stored.
    match i32::from(unsafe { (*sa).sa_family }) {
        f if f == AF_INET as i32 => {
            // SAFETY: as above.
            let sin = unsafe { &*(sa as *const sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            let port = u16::from_be(sin.sin_port);
            Some(Peer::Inet(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
        f if f == AF_INET6 as i32 => {
            // SAFETY: as above.
            let sin6 = unsafe { &*(sa as *const sockaddr_in6) };
            // SAFETY: every view of in6_addr is the same 16 bytes.
            let ip = Ipv6Addr::from(unsafe { sin6.sin6_addr.__in6_u.__u6_addr8 });
            let port = u16::from_be(sin6.sin6_port);
            Some(Peer::Inet(SocketAddr::V6(SocketAddrV6::new(
                ip, port, 0, 0,
            ))))
        }
        f if f == AF_UNIX as i32 => {
            // SAFETY: as above.
            let sun = unsafe { &*(sa as *const sockaddr_un) };
            let max = (len as usize).saturating_sub(mem::size_of_val(&sun.sun_family));
            // SAFETY: the path fills the len bytes after the family.
            let path =
                unsafe { core::slice::from_raw_parts(sun.sun_path.as_ptr().cast::<u8>(), max) };
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            path.get(..end).map(Peer::Unix)
        }
        _ => None,
    }
}
