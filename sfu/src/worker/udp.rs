//! Batched UDP I/O for the media port: `recvmmsg`/`sendmmsg` with the
//! destination address of each received packet (`IP_PKTINFO`), which ICE
//! needs to tell which of our candidates a packet was sent to while the
//! socket is bound to the wildcard address. Linux only, IPv4.
//!
//! Buffers are allocated once per batch object and reused for every call.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest datagram we accept; WebRTC keeps packets under the path MTU.
pub const MAX_DATAGRAM: usize = 2048;

/// Binds the media socket (non-blocking, with `IP_PKTINFO`).
pub fn bind(port: u16) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    // Media bursts (a keyframe to many subscribers) need room in the kernel.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd and a correctly sized int option.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    Ok(socket.into())
}

const CMSG_SPACE: usize = 64;

/// Receive buffers for one `recvmmsg` call.
pub struct RecvBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    addrs: [libc::sockaddr_in; BATCH],
    cmsgs: [[u8; CMSG_SPACE]; BATCH],
    iovs: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
    len: usize,
}

/// One received datagram.
pub struct Received<'a> {
    pub from: SocketAddr,
    /// The address the packet was sent to (one of our candidates).
    pub local: IpAddr,
    pub data: &'a [u8],
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        Self {
            bufs: Box::new([[0; MAX_DATAGRAM]; BATCH]),
            // SAFETY: these are plain C structs for which all-zero is valid.
            addrs: unsafe { zeroed() },
            cmsgs: [[0; CMSG_SPACE]; BATCH],
            iovs: unsafe { zeroed() },
            msgs: unsafe { zeroed() },
            len: 0,
        }
    }

    /// One `recvmmsg` without waiting: the number of datagrams read, or
    /// `WouldBlock` when there are none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            hdr.msg_controllen = CMSG_SPACE as _;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every header points into buffers owned by `self`, which
        // outlive the call; lengths match the buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.len = 0;
            return Err(io::Error::last_os_error());
        }
        self.len = n as usize;
        Ok(self.len)
    }

    /// The `i`th datagram of the last call.
    pub fn get(&self, i: usize) -> Option<Received<'_>> {
        if i >= self.len {
            return None;
        }
        let msg = &self.msgs[i];
        let sin = &self.addrs[i];
        let from = SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
            u16::from_be(sin.sin_port),
        ));
        let local = pktinfo_dst(&msg.msg_hdr).unwrap_or(Ipv4Addr::UNSPECIFIED);
        // A datagram longer than the buffer is truncated; MSG_TRUNC tells.
        let len = (msg.msg_len as usize).min(MAX_DATAGRAM);
        Some(Received {
            from,
            local: IpAddr::V4(local),
            data: &self.bufs[i][..len],
        })
    }
}

/// The destination address from an `IP_PKTINFO` control message.
fn pktinfo_dst(hdr: &libc::msghdr) -> Option<Ipv4Addr> {
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // bounded by msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                let info = libc::CMSG_DATA(cmsg)
                    .cast::<libc::in_pktinfo>()
                    .read_unaligned();
                return Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// Datagrams waiting to go out in one `sendmmsg`, each with the source
/// address it must carry. The socket is bound to the wildcard address, so
/// without one the kernel picks the source by route, which on a host with
/// several addresses need not be the candidate the browser checked, and ICE
/// then ignores the reply.
pub struct SendBatch {
    queue: Vec<(libc::sockaddr_in, Ipv4Addr, bytes::BytesMut)>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u8; CMSG_SPACE]>,
    msgs: Vec<libc::mmsghdr>,
    /// Datagrams the kernel refused (other than "try again").
    pub errors: u64,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

fn sockaddr(addr: SocketAddr) -> Option<libc::sockaddr_in> {
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sin: libc::sockaddr_in = unsafe { zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = v4.port().to_be();
    sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
    Some(sin)
}

impl SendBatch {
    pub fn new() -> Self {
        Self {
            queue: Vec::with_capacity(BATCH),
            iovs: Vec::with_capacity(BATCH),
            cmsgs: vec![[0; CMSG_SPACE]; BATCH],
            msgs: Vec::with_capacity(BATCH),
            errors: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.queue.len() >= BATCH
    }

    /// Queues a datagram from our address `from` (unspecified: let the
    /// kernel choose); IPv6 is dropped (not supported yet).
    pub fn push(&mut self, from: IpAddr, to: SocketAddr, data: bytes::BytesMut) {
        match (sockaddr(to), from) {
            (Some(sin), IpAddr::V4(from)) => self.queue.push((sin, from, data)),
            _ => self.errors += 1,
        }
    }

    /// Sends what is queued. On `WouldBlock` the unsent rest stays queued.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<()> {
        while !self.queue.is_empty() {
            self.iovs.clear();
            self.msgs.clear();
            let chunk = &self.queue[..self.queue.len().min(BATCH)];
            for (_, _, data) in chunk {
                self.iovs.push(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
            }
            for (i, (sin, from, _)) in chunk.iter().enumerate() {
                // SAFETY: all-zero is a valid mmsghdr.
                let mut m: libc::mmsghdr = unsafe { zeroed() };
                m.msg_hdr.msg_name = (sin as *const libc::sockaddr_in).cast_mut().cast();
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                m.msg_hdr.msg_iov = &mut self.iovs[i];
                m.msg_hdr.msg_iovlen = 1;
                if !from.is_unspecified() {
                    set_source(&mut m.msg_hdr, &mut self.cmsgs[i], *from);
                }
                self.msgs.push(m);
            }
            // SAFETY: headers point at addresses and payloads in `queue`,
            // which is not touched until the call returns.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    self.msgs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Err(e);
                }
                // The first datagram is undeliverable (unreachable peer,
                // say): drop it and go on with the rest.
                self.errors += 1;
                self.queue.remove(0);
                continue;
            }
            self.queue.drain(..n as usize);
        }
        Ok(())
    }
}

/// Points `hdr`'s control data at `buf`, holding an `IP_PKTINFO` that sets
/// the source address.
fn set_source(hdr: &mut libc::msghdr, buf: &mut [u8; CMSG_SPACE], from: Ipv4Addr) {
    hdr.msg_control = buf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE of an in_pktinfo (24 bytes) fits in the buffer;
    // the macros stay within msg_controllen.
    unsafe {
        hdr.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = libc::IPPROTO_IP;
        (*cmsg).cmsg_type = libc::IP_PKTINFO;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
        let info = libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(from).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        libc::CMSG_DATA(cmsg)
            .cast::<libc::in_pktinfo>()
            .write_unaligned(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_on_loopback() {
        let a = bind(0).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = SocketAddr::from(([127, 0, 0, 1], a.local_addr().unwrap().port()));
        let mut out = SendBatch::new();
        let unspecified = IpAddr::from([0, 0, 0, 0]);
        for i in 0..5u8 {
            out.push(
                unspecified,
                b.local_addr().unwrap(),
                bytes::BytesMut::from(&[i; 3][..]),
            );
        }
        out.flush(a.as_raw_fd()).unwrap();
        let mut buf = [0; 16];
        for i in 0..5u8 {
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 3]);
            assert_eq!(from.port(), a_addr.port());
            b.send_to(&[i, i], a_addr).unwrap();
        }
        let mut rx = RecvBatch::new();
        let mut got = Vec::new();
        for _ in 0..100 {
            match rx.recv(a.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let r = rx.get(i).unwrap();
                        assert_eq!(r.from, b.local_addr().unwrap());
                        assert_eq!(r.local, IpAddr::from([127, 0, 0, 1]));
                        got.push(r.data.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if got.len() == 5 {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i, i]).collect::<Vec<_>>());
    }

    #[test]
    fn replies_carry_the_chosen_source_address() {
        let a = bind(0).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = SendBatch::new();
        // Every 127/8 address is ours on loopback: pick one the kernel
        // would not choose by itself.
        out.push(
            IpAddr::from([127, 0, 0, 2]),
            b.local_addr().unwrap(),
            bytes::BytesMut::from(&b"x"[..]),
        );
        out.flush(a.as_raw_fd()).unwrap();
        let mut buf = [0; 4];
        let (_, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(from.ip(), IpAddr::from([127, 0, 0, 2]));
    }
}
