//! The accept loop: one task per connection, TLS when configured, HTTP/1.1
//! by hyper, a cap on connections, timeouts for clients that stall, and a
//! graceful drain on shutdown.
//!
//! Every stage a client can stall has a deadline, so no connection holds
//! its slot (and its file descriptor, and any body it was sent) for long
//! without doing its part:
//!
//! | stage | deadline |
//! |---|---|
//! | waiting for a slot | none: the connection waits in the kernel's listen backlog (see `limits`) |
//! | TLS handshake | [`HANDSHAKE_TIMEOUT`] from accept |
//! | request headers, first byte included, and idle keep-alive | [`HEADER_READ_TIMEOUT`] |
//! | sending the response | [`WRITE_TIMEOUT`] without progress |
//! | shutdown | [`SHUTDOWN_GRACE`] from the signal, then closed |

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::auth;
use super::limits::ConnectionLimit;
use super::shutdown::SHUTDOWN_GRACE;
use super::web_config::WebConfig;
use super::write_timeout::WriteTimeout;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent a request's headers by then is dropped. The
/// clock starts when the connection is ready for a request, before its
/// first byte, so it also closes silent and idle keep-alive connections.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A response the client takes nothing of for this long is abandoned and
/// the connection closed. Prometheus reads as the body comes (and gives up
/// after its `scrape_timeout`, 10 s by default), so only clients that do
/// not read are cut off.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections waiting for a free slot queue in the kernel. Go, and so
/// Prometheus, asks for `net.core.somaxconn`; the kernel caps what is asked
/// at that, so asking for its usual maximum amounts to the same.
const BACKLOG: u32 = 4096;

/// Binds a listener on `address` (`host:port`; the first resolved address
/// that binds), with a listen backlog deep enough for connections waiting
/// for a free slot.
pub async fn bind(address: &str) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(address).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As std and mio do: a restart can bind while old connections
        // linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{address} resolves to no address"),
        )
    }))
}

/// Serves `app` on `listener` until `shutdown` resolves: plain HTTP without
/// a web config; otherwise with its basic auth and headers on every route,
/// over TLS when it has `tls_server_config`. At most `limit` connections
/// are open at once (shared with [`serve_health`]); each has its own task,
/// so one failing or stalling never affects another. On shutdown it stops
/// accepting and gives in-flight requests 5 s to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<Arc<WebConfig>>,
    limit: ConnectionLimit,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let Some(web) = web else {
        return accept_loop(listener, app, None, limit, shutdown).await;
    };
    web.log_loaded();
    let app = app.layer(axum::middleware::from_fn_with_state(
        web.clone(),
        auth::guard,
    ));
    let tls = web.tls_enabled().then_some(web);
    accept_loop(listener, app, tls, limit, shutdown).await
}

/// Serves `app` (the health routes) on a plain-HTTP `listener`, without TLS
/// or auth, until `shutdown` resolves: for Kubernetes probes when the main
/// port demands client certificates. Its connections count against the
/// same `limit` as the main listener's.
pub async fn serve_health(
    listener: TcpListener,
    app: Router,
    limit: ConnectionLimit,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "serving health checks");
    accept_loop(listener, app, None, limit, shutdown).await
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<WebConfig>>,
    limit: ConnectionLimit,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut shutdown = pin!(shutdown);
    let closing = CancellationToken::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a connection task panicked");
                    }
                }
            }
            // Both steps are cancel-safe: a slot taken by a dropped
            // attempt is given back, and no connection is lost.
            accepted = accept(&listener, &limit) => match accepted {
                Some(Ok((stream, peer, slot))) => {
                    connections.spawn(connection(
                        stream,
                        peer,
                        app.clone(),
                        tls.clone(),
                        closing.clone(),
                        slot,
                    ));
                }
                None => break,
                // The client gave up before we got to it: nothing to do.
                Some(Err(e)) if is_connection_error(&e) => {}
                // Out of file descriptors and the like: let it ease.
                Some(Err(e)) => {
                    tracing::error!(error = %e, "accepting connections failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    drop(listener);
    closing.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            grace = ?SHUTDOWN_GRACE,
            "closing connections that did not finish in time"
        );
        connections.abort_all();
    }
    Ok(())
}

/// The next connection, once a slot is free for it; `None` if the limit
/// can no longer hand out slots.
async fn accept(
    listener: &TcpListener,
    limit: &ConnectionLimit,
) -> Option<io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)>> {
    let slot = limit.slot().await?;
    Some(
        listener
            .accept()
            .await
            .map(|(stream, peer)| (stream, peer, slot)),
    )
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, holding its `_slot` until it ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<Arc<WebConfig>>,
    closing: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    // Beneath TLS, so that it measures what the client actually takes.
    let stream = WriteTimeout::new(stream, WRITE_TIMEOUT);
    let Some(web) = tls else {
        return http(TokioIo::new(stream), peer, app, closing).await;
    };
    let Some(config) = web.current().await.tls.clone() else {
        return; // cannot happen: a reload never switches TLS off
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshake = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
        () = closing.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => http(TokioIo::new(stream), peer, app, closing).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out"),
    }
}

async fn http<I>(io: I, peer: SocketAddr, app: Router, closing: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Queue the body's chunks as they are, never flatten them into a
        // buffer of the connection's own: a /metrics body is the render
        // cache's shared `Bytes`, megabytes that a copy per connection
        // would multiply by the number of slow readers.
        .writev(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    let mut conn = pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = closing.cancelled() => {
            // Finish the request in progress, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
