//! Socket addresses from nginx as the allow-list and the PROXY header see them.

use core::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use ngx::ffi::{
    sockaddr, sockaddr_in, sockaddr_in6, sockaddr_un, socklen_t, AF_INET, AF_INET6, AF_UNIX,
};

use crate::protocol::allow::Peer;

/// A socket address as the allow-list sees it.
pub unsafe fn peer_of<'a>(sa: *const sockaddr, len: socklen_t) -> Option<Peer<'a>> {
    match i32::from((*sa).sa_family) {
        f if f == AF_INET as i32 => {
            let sin = &*(sa as *const sockaddr_in);
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            let port = u16::from_be(sin.sin_port);
            Some(Peer::Inet(SocketAddr::V4(SocketAddrV4::new(ip, port))))
        }
        f if f == AF_INET6 as i32 => {
            let sin6 = &*(sa as *const sockaddr_in6);
            let ip = Ipv6Addr::from(sin6.sin6_addr.__in6_u.__u6_addr8);
            let port = u16::from_be(sin6.sin6_port);
            Some(Peer::Inet(SocketAddr::V6(SocketAddrV6::new(
                ip, port, 0, 0,
            ))))
        }
        f if f == AF_UNIX as i32 => {
            let sun = &*(sa as *const sockaddr_un);
            let max = (len as usize).saturating_sub(mem::size_of_val(&sun.sun_family));
            let path = core::slice::from_raw_parts(sun.sun_path.as_ptr().cast::<u8>(), max);
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            path.get(..end).map(Peer::Unix)
        }
        _ => None,
    }
}
