//! A TCP proxy in front of Redis that can stop forwarding without closing anything: a
//! black-holed socket, as after a network partition or a dead NAT entry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; forwarding stops while [`Proxy::blackhole`] is on.
#[derive(Debug, Clone)]
pub struct Proxy {
    port: u16,
    blackholed: Arc<AtomicBool>,
    trip: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Proxy {
    /// A proxy in front of the shared Redis of the tests ([`crate::redis_url`]).
    pub async fn to_shared_redis() -> std::io::Result<Self> {
        Self::start(&address_of(&crate::redis_url())).await
    }

    /// Listens on a free local port and forwards to `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let blackholed = Arc::new(AtomicBool::new(false));
        let trip: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let target = target.to_owned();
        let flag = Arc::clone(&blackholed);
        let tripwire = Arc::clone(&trip);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let to_server = Arc::clone(&tripwire);
                tokio::spawn(pipe(cr, sw, Arc::clone(&flag), Some(to_server)));
                tokio::spawn(pipe(sr, cw, Arc::clone(&flag), None));
            }
        });
        Ok(Self {
            port,
            blackholed,
            trip,
        })
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops (`true`) or resumes (`false`) forwarding on every connection; bytes read while
    /// black-holed are dropped, and sockets stay open.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.store(on, Ordering::SeqCst);
    }

    /// Black-holes every connection from the first read from a client that contains `pattern`
    /// (that read is dropped too): how a test stops a client right before a given command
    /// (`XACK`, say) reaches Redis, after everything it sent before.
    pub fn blackhole_from(&self, pattern: &[u8]) {
        *self
            .trip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(pattern.to_vec());
    }

    /// Whether forwarding is stopped.
    pub fn is_blackholed(&self) -> bool {
        self.blackholed.load(Ordering::SeqCst)
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackholed: Arc<AtomicBool>,
    trip: Option<Arc<Mutex<Option<Vec<u8>>>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(trip) = &trip {
            let trip = trip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(pattern) = trip.as_deref() {
                if buf[..n].windows(pattern.len()).any(|w| w == pattern) {
                    blackholed.store(true, Ordering::SeqCst);
                }
            }
        }
        if blackholed.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The `host:port` of a `redis://` URL (`127.0.0.1:6379` when the URL names no host).
fn address_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    match host_port {
        "" => "127.0.0.1:6379".to_owned(),
        hp if hp.contains(':') => hp.to_owned(),
        host => format!("{host}:6379"),
    }
}

#[cfg(test)]
mod tests {
    use super::address_of;

    #[test]
    fn addresses_of_urls() {
        assert_eq!(address_of("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(address_of("redis://127.0.0.1:23456/0"), "127.0.0.1:23456");
        assert_eq!(
            address_of("redis://user:pw@localhost:7000"),
            "localhost:7000"
        );
        assert_eq!(address_of("redis://localhost"), "localhost:6379");
    }
}
