//! When a request's bytes reached this machine: the kernel's receive timestamp of a TCP
//! read (`SO_TIMESTAMPNS`, taken as the segment is handed to the network stack, before
//! any server thread wakes up). The accept loop reads the first bytes of each request
//! this way, so the guard's server-side time includes the wait for a thread to run it.
//! Linux only; elsewhere, or when the socket option is refused, the time of the read.

use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::ReadBuf;
use tokio::net::TcpStream;

/// Ask the kernel to timestamp what `socket` receives; false if it refuses.
#[cfg(target_os = "linux")]
pub fn enable(socket: &TcpStream) -> bool {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
    setsockopt(socket, ReceiveTimestampns, &true).is_ok()
}

#[cfg(not(target_os = "linux"))]
pub fn enable(_socket: &TcpStream) -> bool {
    false
}

/// Read into `buf` as `poll_read` does, returning when the bytes read arrived (the
/// kernel's timestamp of the last segment read, else now).
#[cfg(target_os = "linux")]
pub fn poll_read_stamped(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<SystemTime>> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    loop {
        if let Err(e) = std::task::ready!(socket.poll_read_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        let unfilled = buf.initialize_unfilled();
        match socket.try_io(tokio::io::Interest::READABLE, || recv(fd, unfilled)) {
            Ok((n, arrived)) => {
                buf.advance(n);
                return Poll::Ready(Ok(arrived.unwrap_or_else(SystemTime::now)));
            }
            // Readiness was stale: `try_io` cleared it, so the next poll waits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn poll_read_stamped(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<SystemTime>> {
    use tokio::io::AsyncRead;
    let mut socket = socket;
    std::pin::Pin::new(&mut socket)
        .poll_read(cx, buf)
        .map_ok(|()| SystemTime::now())
}

/// One recvmsg: bytes read and the receive timestamp the kernel attached, if any.
#[cfg(target_os = "linux")]
fn recv(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(fd, &mut iov, Some(space.as_mut_slice()), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let arrived = msg.cmsgs().ok().and_then(|mut all| {
        all.find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(ts) => {
                let secs = u64::try_from(ts.tv_sec()).ok()?;
                let nanos = u32::try_from(ts.tv_nsec()).ok()?;
                Some(UNIX_EPOCH + Duration::new(secs, nanos))
            }
            _ => None,
        })
    });
    Ok((msg.bytes, arrived))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Wait until the kernel stamps what `server` receives. It turns receive
    /// timestamps on for the whole machine a moment after the first socket asks (in a
    /// deferred work item) and off after the last one closes: until then segments carry
    /// no stamp and a read reports its own time (this test alone failed 5 times in 7).
    async fn stamps_on(client: &mut TcpStream, server: &TcpStream) {
        use std::os::fd::AsRawFd;
        let (fd, mut drain) = (server.as_raw_fd(), [0u8; 64]);
        for _ in 0..400 {
            client.write_all(b"w").await.unwrap();
            server.readable().await.unwrap();
            let got = server.try_io(tokio::io::Interest::READABLE, || recv(fd, &mut drain));
            let stamped = matches!(got, Ok((_, Some(_))));
            // Drain, and clear the readiness: the next `readable` waits for new bytes.
            while server
                .try_io(tokio::io::Interest::READABLE, || recv(fd, &mut drain))
                .is_ok()
            {}
            if stamped {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the kernel never stamped a received segment");
    }

    /// Bytes read 200 ms after they arrived carry the time they arrived, not the read's.
    /// The arrival is awaited rather than assumed: on a loaded machine the kernel may
    /// deliver loopback bytes well after the write returned.
    #[tokio::test]
    async fn a_late_read_reports_when_the_bytes_arrived() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert!(enable(&server));
        stamps_on(&mut client, &server).await;
        let sent = SystemTime::now();
        client.write_all(b"hello").await.unwrap();
        server.readable().await.unwrap();
        let seen_ready = SystemTime::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut bytes = [0u8; 16];
        let mut buf = ReadBuf::new(&mut bytes);
        let arrived = std::future::poll_fn(|cx| poll_read_stamped(&server, cx, &mut buf))
            .await
            .unwrap();
        let read_at = SystemTime::now();
        assert_eq!(buf.filled(), b"hello");
        assert!(
            arrived >= sent - Duration::from_millis(1),
            "stamped before the send"
        );
        // The kernel's stamp and `SystemTime` read the same clock by different paths
        // (a loaded CI machine showed the stamp a hair after the readiness check).
        assert!(
            arrived <= seen_ready + Duration::from_millis(1),
            "stamped after the bytes were seen ready: {:?}",
            arrived.duration_since(seen_ready)
        );
        let before_read = read_at.duration_since(arrived).unwrap();
        assert!(before_read >= Duration::from_millis(200), "{before_read:?}");
    }
}
