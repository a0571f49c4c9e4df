//! A delaying TCP proxy: latency and jitter on one path without `netem` (this machine's kernel
//! has none), for both backends.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::error::{IoContext, Result};

/// A TCP proxy that holds every chunk of data for a latency plus or minus a jitter, in each
/// direction, keeping the order of the bytes within a connection.
///
/// It runs as tasks of the tokio runtime that started it, and stops (closing every connection
/// through it) when dropped. Make one with [`DelayProxy::start`], [`Node::delay_clients`]
/// (between this process and a node) or [`Node::delay_replication`] (between a replica and its
/// upstream).
///
/// [`Node::delay_clients`]: crate::Node::delay_clients
/// [`Node::delay_replication`]: crate::Node::delay_replication
///
/// ```no_run
/// # async fn demo(cluster: &rwsplit_testkit::Cluster) -> rwsplit_testkit::Result<()> {
/// use std::time::Duration;
/// let slow = cluster.replicas()[0].delay_clients(Duration::from_millis(200), Duration::ZERO).await?;
/// let url = slow.url(&cluster.replicas()[0].url()); // the same database, 200 ms further away
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

#[derive(Debug)]
struct Shared {
    latency_us: AtomicU64,
    jitter_us: AtomicU64,
    /// Connections are accepted but nothing is forwarded (a silent partition of this path).
    blackhole: AtomicBool,
    conns: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    /// The hold for the next chunk: latency ± jitter, from `rng`.
    fn hold(&self, rng: &mut u64) -> Duration {
        let latency = self.latency_us.load(Ordering::Relaxed);
        let jitter = self.jitter_us.load(Ordering::Relaxed);
        if jitter == 0 {
            return Duration::from_micros(latency);
        }
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let offset = *rng % (2 * jitter + 1);
        Duration::from_micros((latency + offset).saturating_sub(jitter))
    }
}

impl DelayProxy {
    /// Listens on `listen` (port chosen by the system) and forwards every connection to
    /// `target`, holding data `latency` ± `jitter` each way.
    pub async fn start(
        listen: IpAddr,
        target: SocketAddr,
        latency: Duration,
        jitter: Duration,
    ) -> Result<DelayProxy> {
        let listener = TcpListener::bind((listen, 0))
            .await
            .io_context(|| format!("delay proxy: listening on {listen}"))?;
        let addr = listener.local_addr().io_context(|| "delay proxy: its address".into())?;
        let shared = Arc::new(Shared {
            latency_us: AtomicU64::new(micros(latency)),
            jitter_us: AtomicU64::new(micros(jitter)),
            blackhole: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, target, Arc::clone(&shared)));
        Ok(DelayProxy { addr, target, shared, accept: accept.abort_handle() })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Changes the latency and jitter for data read from now on.
    pub fn set_delay(&self, latency: Duration, jitter: Duration) {
        self.shared.latency_us.store(micros(latency), Ordering::Relaxed);
        self.shared.jitter_us.store(micros(jitter), Ordering::Relaxed);
    }

    /// Stops forwarding anything (`true`): connections stay open and silent, like a partition
    /// that drops packets. `false` forwards again (what was dropped meanwhile is lost, so a
    /// connection's protocol usually breaks and the client reconnects).
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::Relaxed);
    }

    /// `url` with the target's `host:port` replaced by the proxy's, e.g. a node's URL made to go
    /// through the proxy.
    pub fn url(&self, url: &str) -> String {
        let target = format!("@{}:{}/", self.target.ip(), self.target.port());
        let proxy = format!("@{}:{}/", self.addr.ip(), self.addr.port());
        url.replace(&target, &proxy)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let conns = self.shared.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in conns.iter() {
            c.abort();
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let conn = tokio::spawn(forward(client, target, Arc::clone(&shared)));
        let mut conns = shared.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        conns.retain(|c| !c.is_finished());
        conns.push(conn.abort_handle());
    }
}

async fn forward(client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let seed = crate::native::unique() | 1;
    tokio::join!(
        pump(cr, sw, Arc::clone(&shared), seed),
        pump(sr, cw, shared, seed.rotate_left(17) | 1)
    );
}

/// One direction: chunks are read at once and written when their hold has passed; a chunk is
/// never written before the one read before it.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: Arc<Shared>, seed: u64) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut rng = seed;
        let mut last = Instant::now();
        let mut buf = vec![0_u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if shared.blackhole.load(Ordering::Relaxed) {
                continue;
            }
            let at = (Instant::now() + shared.hold(&mut rng)).max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0_u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_round_trip_takes_twice_the_latency_and_keeps_the_bytes() {
        let target = echo_server().await;
        let latency = Duration::from_millis(50);
        let proxy =
            DelayProxy::start("127.0.0.1".parse().unwrap(), target, latency, Duration::ZERO)
                .await
                .unwrap();
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let started = std::time::Instant::now();
        c.write_all(b"hello").await.unwrap();
        let mut got = [0_u8; 5];
        c.read_exact(&mut got).await.unwrap();
        let took = started.elapsed();
        assert_eq!(&got, b"hello");
        assert!(took >= 2 * latency, "round trip {took:?}, expected at least {:?}", 2 * latency);
        assert!(took < 2 * latency + Duration::from_millis(200), "round trip {took:?}");
    }

    #[tokio::test]
    async fn jitter_never_reorders_bytes() {
        let target = echo_server().await;
        let proxy = DelayProxy::start(
            "127.0.0.1".parse().unwrap(),
            target,
            Duration::from_millis(5),
            Duration::from_millis(5),
        )
        .await
        .unwrap();
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let sent: Vec<u8> = (0..200_u8).collect();
        for chunk in sent.chunks(10) {
            c.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut got = vec![0_u8; sent.len()];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn a_blackholed_proxy_forwards_nothing_and_the_url_points_at_it() {
        let target = echo_server().await;
        let proxy =
            DelayProxy::start("127.0.0.1".parse().unwrap(), target, Duration::ZERO, Duration::ZERO)
                .await
                .unwrap();
        proxy.blackhole(true);
        let mut c = TcpStream::connect(proxy.local_addr()).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut got = [0_u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(200), c.read_exact(&mut got)).await;
        assert!(read.is_err(), "nothing comes back through a blackhole");
        let url = format!("postgres://u@127.0.0.1:{}/db", target.port());
        assert_eq!(
            proxy.url(&url),
            format!("postgres://u@127.0.0.1:{}/db", proxy.local_addr().port())
        );
    }

    #[test]
    fn holds_stay_within_the_jitter() {
        let shared = Shared {
            latency_us: AtomicU64::new(10_000),
            jitter_us: AtomicU64::new(3_000),
            blackhole: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        };
        let mut rng = 12345;
        let holds: Vec<Duration> = (0..1000).map(|_| shared.hold(&mut rng)).collect();
        let (lo, hi) = (Duration::from_micros(7_000), Duration::from_micros(13_000));
        assert!(holds.iter().all(|h| (lo..=hi).contains(h)));
        assert!(holds.iter().any(|h| *h < Duration::from_micros(9_000)));
        assert!(holds.iter().any(|h| *h > Duration::from_micros(11_000)));
    }
}
