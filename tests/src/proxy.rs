//! A TCP proxy in front of Redis that can stop forwarding without closing anything: a
//! black-holed socket, as after a network partition or a dead NAT entry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; forwarding stops while [`Proxy::blackhole`] is on.
#[derive(Debug, Clone)]
pub struct Proxy {
    port: u16,
    blackholed: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free local port and forwards to `target` (`127.0.0.1:6379`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let blackholed = Arc::new(AtomicBool::new(false));
        let target = target.to_owned();
        let flag = Arc::clone(&blackholed);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, Arc::clone(&flag)));
                tokio::spawn(pipe(sr, cw, Arc::clone(&flag)));
            }
        });
        Ok(Self { port, blackholed })
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
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackholed: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if blackholed.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
