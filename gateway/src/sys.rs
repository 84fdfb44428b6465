//! The one module allowed `unsafe`: small socket calls monoio does not offer.
//!
//! monoio's `TcpStream` exposes its descriptor only as a raw fd, and the TLS
//! stream not at all, so a connection remembers its fd when it is opened and
//! borrows it here for the length of one call.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};

/// Whether an idle connection has anything waiting: the peer's close (EOF),
/// an error such as a reset, or bytes nobody asked for (a TLS close_notify,
/// a late answer). Any of these means the connection must not carry a new
/// request. Never blocks: `MSG_DONTWAIT`, and `MSG_PEEK` leaves what it
/// sees in place.
pub fn has_input(fd: RawFd) -> bool {
    // SAFETY: `fd` is the descriptor of a socket owned by the caller's
    // connection, which stays open for the whole call; the borrow ends with
    // it.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(&fd).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        Ok(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn has_input_sees_bytes_and_the_peer_closing() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(!super::has_input(client.as_raw_fd()), "open and quiet");
        server.write_all(b"x").unwrap();
        while !super::has_input(client.as_raw_fd()) {
            std::thread::yield_now();
        }
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut &client, &mut b).unwrap();
        assert!(!super::has_input(client.as_raw_fd()), "the byte was read");
        drop(server);
        while !super::has_input(client.as_raw_fd()) {
            std::thread::yield_now();
        }
    }
}
