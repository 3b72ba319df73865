//! Batched UDP I/O for the media port: `recvmmsg`/`sendmmsg` with the
//! destination address of each received packet (`IP_PKTINFO`), which ICE
//! needs to tell which of our candidates a packet was sent to while the
//! socket is bound to the wildcard address. Linux only, IPv4.
//!
//! Buffers are allocated once per batch object and reused for every call.
//! A datagram longer than [`MAX_DATAGRAM`] arrives cut short; it is marked
//! so, and never passed on as if it were whole.

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

/// Room for control messages, aligned as a `cmsghdr` must be: the `CMSG_*`
/// macros read and write headers in place.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Cmsg([u8; CMSG_SPACE]);

const _: () = assert!(std::mem::align_of::<Cmsg>() >= std::mem::align_of::<libc::cmsghdr>());

/// Receive buffers for one `recvmmsg` call.
pub struct RecvBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    addrs: [libc::sockaddr_in; BATCH],
    cmsgs: [Cmsg; BATCH],
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
    /// It was longer than [`MAX_DATAGRAM`]: `data` is only its start.
    pub truncated: bool,
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
            cmsgs: [Cmsg([0; CMSG_SPACE]); BATCH],
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
            hdr.msg_control = self.cmsgs[i].0.as_mut_ptr().cast();
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
        let len = (msg.msg_len as usize).min(MAX_DATAGRAM);
        Some(Received {
            from,
            local: IpAddr::V4(local),
            data: &self.bufs[i][..len],
            truncated: msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
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

/// A datagram to send from our address `from` (unspecified: let the
/// kernel choose).
#[derive(Debug)]
pub struct Datagram {
    pub from: Ipv4Addr,
    pub to: SocketAddrV4,
    pub data: bytes::BytesMut,
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sin: libc::sockaddr_in = unsafe { zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = addr.port().to_be();
    sin.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    sin
}

/// Buffers for `sendmmsg` calls, each datagram with the source address it
/// must carry. The socket is bound to the wildcard address, so without one
/// the kernel picks the source by route, which on a host with several
/// addresses need not be the candidate the browser checked, and ICE then
/// ignores the reply.
pub struct Sender {
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<Cmsg>,
    msgs: Vec<libc::mmsghdr>,
}

impl Default for Sender {
    fn default() -> Self {
        Self {
            addrs: Vec::with_capacity(BATCH),
            iovs: Vec::with_capacity(BATCH),
            cmsgs: vec![Cmsg([0; CMSG_SPACE]); BATCH],
            msgs: Vec::with_capacity(BATCH),
        }
    }
}

impl Sender {
    /// One `sendmmsg` of up to [`BATCH`] of `datagrams`, without waiting:
    /// how many went, or the error that stopped the first one
    /// (`WouldBlock` when the socket takes nothing now).
    pub fn send(&mut self, fd: RawFd, datagrams: &[Datagram]) -> io::Result<usize> {
        let chunk = &datagrams[..datagrams.len().min(BATCH)];
        self.addrs.clear();
        self.iovs.clear();
        self.msgs.clear();
        for d in chunk {
            self.addrs.push(sockaddr(d.to));
            self.iovs.push(libc::iovec {
                iov_base: d.data.as_ptr() as *mut libc::c_void,
                iov_len: d.data.len(),
            });
        }
        for (i, d) in chunk.iter().enumerate() {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut m: libc::mmsghdr = unsafe { zeroed() };
            m.msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut self.iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            if !d.from.is_unspecified() {
                set_source(&mut m.msg_hdr, &mut self.cmsgs[i], d.from);
            }
            self.msgs.push(m);
        }
        // SAFETY: headers point at addresses, control data and payloads
        // that are not touched until the call returns.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                self.msgs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Points `hdr`'s control data at `buf`, holding an `IP_PKTINFO` that sets
/// the source address.
fn set_source(hdr: &mut libc::msghdr, buf: &mut Cmsg, from: Ipv4Addr) {
    hdr.msg_control = buf.0.as_mut_ptr().cast();
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

    fn v4(addr: SocketAddr) -> SocketAddrV4 {
        match addr {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => panic!("IPv4 only"),
        }
    }

    /// Receives until `want` datagrams came (or gives up).
    fn receive(
        rx: &mut RecvBatch,
        fd: RawFd,
        want: usize,
    ) -> Vec<(Vec<u8>, bool, SocketAddr, IpAddr)> {
        let mut got = Vec::new();
        for _ in 0..1000 {
            match rx.recv(fd) {
                Ok(n) => {
                    for i in 0..n {
                        let r = rx.get(i).unwrap();
                        got.push((r.data.to_vec(), r.truncated, r.from, r.local));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if got.len() >= want {
                break;
            }
            std::thread::yield_now();
        }
        got
    }

    #[test]
    fn round_trip_on_loopback() {
        let a = bind(0).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = SocketAddr::from(([127, 0, 0, 1], a.local_addr().unwrap().port()));
        let out: Vec<Datagram> = (0..5u8)
            .map(|i| Datagram {
                from: Ipv4Addr::UNSPECIFIED,
                to: v4(b.local_addr().unwrap()),
                data: bytes::BytesMut::from(&[i; 3][..]),
            })
            .collect();
        assert_eq!(Sender::default().send(a.as_raw_fd(), &out).unwrap(), 5);
        let mut buf = [0; 16];
        for i in 0..5u8 {
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 3]);
            assert_eq!(from.port(), a_addr.port());
            b.send_to(&[i, i], a_addr).unwrap();
        }
        let got = receive(&mut RecvBatch::new(), a.as_raw_fd(), 5);
        for (i, (data, truncated, from, local)) in got.iter().enumerate() {
            assert_eq!(data, &vec![i as u8; 2]);
            assert!(!truncated);
            assert_eq!(*from, b.local_addr().unwrap());
            assert_eq!(*local, IpAddr::from([127, 0, 0, 1]));
        }
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn an_oversized_datagram_is_marked_cut_short() {
        let a = bind(0).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a_addr = SocketAddr::from(([127, 0, 0, 1], a.local_addr().unwrap().port()));
        b.send_to(&[7; MAX_DATAGRAM + 100], a_addr).unwrap();
        b.send_to(&[8; 10], a_addr).unwrap();
        let got = receive(&mut RecvBatch::new(), a.as_raw_fd(), 2);
        assert_eq!(got.len(), 2);
        assert!(got[0].1, "cut short, and says so");
        assert_eq!(got[0].0.len(), MAX_DATAGRAM);
        assert!(!got[1].1);
    }

    #[test]
    fn replies_carry_the_chosen_source_address() {
        let a = bind(0).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Every 127/8 address is ours on loopback: pick one the kernel
        // would not choose by itself.
        let d = Datagram {
            from: Ipv4Addr::new(127, 0, 0, 2),
            to: v4(b.local_addr().unwrap()),
            data: bytes::BytesMut::from(&b"x"[..]),
        };
        Sender::default().send(a.as_raw_fd(), &[d]).unwrap();
        let mut buf = [0; 4];
        let (_, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(from.ip(), IpAddr::from([127, 0, 0, 2]));
    }
}
