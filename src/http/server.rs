//! The accept loop: HTTP/1.1 connections with a header-read timeout, an idle timeout and
//! a cap on open connections (axum::serve has none of them, so a few hundred sockets
//! sending a byte a second could hold the server's file descriptors forever). Shutdown
//! stops accepting and lets in-flight requests end.

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper::service::Service;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long and how many connections the server keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send a request's headers, counted from connecting or from
    /// the end of the previous answer on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed (a
    /// stalled upload, a client that stopped reading its answer).
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one
    /// closes (idle ones do within the header timeout).
    pub max_connections: usize,
}

/// Serve `app` on `listener` until `shutdown` resolves, then stop accepting and wait for
/// open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        spawn_connection(&http, &graceful, socket, app.clone(), limits, permit);
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serve one connection on its own task until it ends, stalls past the idle timeout or
/// shuts down; its place under the cap is given back then.
fn spawn_connection(
    http: &Builder,
    graceful: &GracefulShutdown,
    socket: TcpStream,
    app: Router,
    limits: Limits,
    permit: OwnedSemaphorePermit,
) {
    let _ = socket.set_nodelay(true);
    let (socket, activity) = Tracked::new(socket);
    // Each request carries when its first bytes were read (`RequestStart`), so handlers
    // can time themselves from there rather than from hyper's hand-over.
    let tower = TowerToHyperService::new(app);
    let stamps = activity.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut()
            .insert(RequestStart(stamps.take_request_start()));
        tower.call(req)
    });
    let conn = http.serve_connection(TokioIo::new(socket), service);
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            () = activity.stalled(limits.idle_timeout) => {
                tracing::debug!("connection closed after the idle timeout");
            }
        }
        drop(permit);
    });
}

/// Errors of accept() are about one connection (reset before it was accepted) or about
/// the process (out of file descriptors): either way, keep serving, pausing briefly so
/// a descriptor shortage does not spin.
async fn accept_failed(e: io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {}
        _ => {
            tracing::warn!(error = %e, "accept failed; retrying shortly");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// When a request's first bytes reached the server: the kernel's receive timestamp of
/// the first read on its connection after the previous answer was written
/// (`http::arrival`; the read's own time where the kernel gives none). A request read
/// together with the one before it (pipelined) gets the time hyper hands it over.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub std::time::Instant);

/// When a connection last moved a byte, shared between its socket and its watchdog; and
/// when its current request's first bytes arrived.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last read or write.
    last_ms: AtomicU64,
    /// When the first bytes of the request being received arrived, in nanoseconds since
    /// the Unix epoch (the kernel's clock); 0: none since the last answer was written or
    /// the last request was handed over.
    request_ns: AtomicU64,
    /// Set when an answer was written (and at the start): the next read begins a request.
    between: AtomicBool,
}

impl Activity {
    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Bytes that arrived at `arrived` were read: the first read after an answer starts
    /// a request.
    fn read(&self, arrived: SystemTime) {
        self.touch();
        if self.between.swap(false, Ordering::Relaxed) {
            let ns = arrived
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            self.request_ns.store(ns.max(1), Ordering::Relaxed);
        }
    }

    /// Bytes were written (an answer, or part of one).
    fn wrote(&self) {
        self.touch();
        self.between.store(true, Ordering::Relaxed);
    }

    /// When the request being handed over arrived, on the monotonic clock (now if not
    /// recorded; a wall clock stepped since reads as at most a second ago).
    fn take_request_start(&self) -> std::time::Instant {
        let now = std::time::Instant::now();
        match self.request_ns.swap(0, Ordering::Relaxed) {
            0 => now,
            ns => {
                let arrived = UNIX_EPOCH + Duration::from_nanos(ns);
                let age = SystemTime::now()
                    .duration_since(arrived)
                    .unwrap_or_default()
                    .min(Duration::from_secs(1));
                now.checked_sub(age).unwrap_or(now)
            }
        }
    }

    /// Resolves once no byte has moved for `limit`.
    async fn stalled(self: Arc<Self>, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A TCP stream that records when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// The kernel timestamps what this socket receives (`http::arrival`).
    stamped: bool,
}

impl Tracked {
    fn new(inner: TcpStream) -> (Tracked, Arc<Activity>) {
        let stamped = super::arrival::enable(&inner);
        let activity = Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            request_ns: AtomicU64::new(0),
            between: AtomicBool::new(true),
        });
        let tracked = Tracked {
            inner,
            activity: activity.clone(),
            stamped,
        };
        (tracked, activity)
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        // The first read of a request asks the kernel when its bytes arrived; the others
        // (the rest of a body) only need to count as activity.
        if self.stamped && self.activity.between.load(Ordering::Relaxed) {
            let arrived =
                std::task::ready!(super::arrival::poll_read_stamped(&self.inner, cx, buf))?;
            if buf.filled().len() > before {
                self.activity.read(arrived);
            }
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read(SystemTime::now());
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
