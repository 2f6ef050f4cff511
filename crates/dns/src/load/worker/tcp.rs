//! The TCP transport: one connection per worker, queries pipelined on it, reads and writes
//! interleaved without ever blocking the worker (RFC 7766's pipelining).

use std::{
    collections::VecDeque,
    io::{self, ErrorKind},
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{io::Interest, net::TcpStream};

use super::{Built, Plan, Shared, Worker, WorkerStats};

pub(crate) async fn connect_tcp(server: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(server))
        .await
        .map_err(|_| io::Error::new(ErrorKind::TimedOut, "connecting timed out"))??;
    // Queries are small and latency is measured: do not let Nagle hold them back.
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub(crate) async fn run_tcp(
    stream: Option<TcpStream>,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    window: usize,
    seed: Option<u64>,
) -> WorkerStats {
    let mut worker = Worker::new(plan, shared.clone(), window, seed);
    let mut ticker = worker.expiry_ticker();
    let mut connection = TcpConnection::new(stream);
    loop {
        // Queue every query allowed now; they go out pipelined on the one connection.
        while worker.try_permit(connection.queued.len()) {
            connection.queue(&mut worker);
        }
        connection.flush(&mut worker).await;
        if worker.finished() && connection.queued.is_empty() {
            break;
        }
        let wants_permit = worker.wants_permit(connection.queued.len());
        let wants_to_write = connection.wants_to_write();
        tokio::select! {
            biased;
            ready = ready(&connection.stream, Interest::READABLE) => match ready {
                Ok(()) => connection.read(&mut worker),
                Err(e) => connection.broken(&mut worker, "receiving", &e),
            },
            ready = ready(&connection.stream, Interest::WRITABLE), if wants_to_write => match ready {
                Ok(()) => connection.write(&mut worker),
                Err(e) => connection.broken(&mut worker, "sending", &e),
            },
            permit = shared.permits.acquire(), if wants_permit => match permit {
                Ok(permit) => {
                    worker.took(permit);
                    connection.queue(&mut worker);
                }
                Err(_) => worker.sending_closed = true,
            },
            _ = ticker.tick() => worker.expire(),
        }
    }
    worker.stats
}

/// Waits until the connection is ready, or forever when there is none.
async fn ready(stream: &Option<TcpStream>, interest: Interest) -> io::Result<()> {
    match stream {
        Some(stream) => stream.ready(interest).await.map(drop),
        None => std::future::pending().await,
    }
}

/// One TCP connection with its buffers. Reads and writes never block the worker: a server
/// that stops reading until we read its answers must not deadlock us.
struct TcpConnection {
    stream: Option<TcpStream>,
    /// Room for the largest message plus its length prefix, twice, so a partial frame always
    /// fits after the complete ones have been consumed.
    received: Vec<u8>,
    filled: usize,
    outgoing: Vec<u8>,
    written: usize,
    /// Queries in `outgoing`, with the offset where each ends: sent once written up to there.
    queued: VecDeque<(Built, usize)>,
}

impl TcpConnection {
    fn new(stream: Option<TcpStream>) -> TcpConnection {
        TcpConnection {
            stream,
            received: vec![0u8; 2 * (2 + 65_535)],
            filled: 0,
            outgoing: Vec::with_capacity(64 * 1024),
            written: 0,
            queued: VecDeque::new(),
        }
    }

    fn queue(&mut self, worker: &mut Worker) {
        let built = worker.build(2);
        let len = (worker.query.len() - 2) as u16;
        worker.query[..2].copy_from_slice(&len.to_be_bytes());
        self.outgoing.extend_from_slice(&worker.query);
        self.queued.push_back((built, self.outgoing.len()));
    }

    fn wants_to_write(&self) -> bool {
        self.stream.is_some() && self.written < self.outgoing.len()
    }

    /// Connects if needed and writes what the socket takes now.
    async fn flush(&mut self, worker: &mut Worker) {
        if self.queued.is_empty() {
            return;
        }
        if self.stream.is_none() {
            match connect_tcp(worker.plan.server, worker.plan.timeout).await {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.filled = 0;
                }
                Err(e) => {
                    self.fail_queued(worker, "connecting", &e);
                    return;
                }
            }
        }
        self.write(worker);
    }

    fn write(&mut self, worker: &mut Worker) {
        while self.written < self.outgoing.len() {
            let Some(stream) = &self.stream else { return };
            match stream.try_write(&self.outgoing[self.written..]) {
                Ok(0) => {
                    let closed = io::Error::new(ErrorKind::WriteZero, "connection closed");
                    return self.broken(worker, "sending", &closed);
                }
                Ok(len) => self.written += len,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return self.broken(worker, "sending", &e),
            }
        }
        let now = Instant::now();
        while let Some((_, end)) = self.queued.front() {
            if *end > self.written {
                break;
            }
            let (built, _) = self.queued.pop_front().expect("just looked");
            worker.sent(built, now);
        }
        if self.written == self.outgoing.len() {
            self.outgoing.clear();
            self.written = 0;
        }
    }

    fn read(&mut self, worker: &mut Worker) {
        loop {
            let Some(stream) = &self.stream else { return };
            match stream.try_read(&mut self.received[self.filled..]) {
                Ok(0) => {
                    // The server closed the connection (an idle time-out, or a limit).
                    let closed = io::Error::new(ErrorKind::UnexpectedEof, "closed by the server");
                    return self.broken(worker, "receiving", &closed);
                }
                Ok(len) => {
                    self.filled += len;
                    self.take_frames(worker);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => return self.broken(worker, "receiving", &e),
            }
        }
    }

    fn take_frames(&mut self, worker: &mut Worker) {
        let now = Instant::now();
        let mut start = 0;
        while self.filled - start >= 2 {
            let len = usize::from(u16::from_be_bytes([
                self.received[start],
                self.received[start + 1],
            ]));
            if self.filled - start < 2 + len {
                break;
            }
            worker.answer(&self.received[start + 2..start + 2 + len], now);
            start += 2 + len;
        }
        self.received.copy_within(start..self.filled, 0);
        self.filled -= start;
    }

    /// The connection is gone: what was in flight is lost, what was not yet written fails.
    /// The next query opens a new connection.
    fn broken(&mut self, worker: &mut Worker, what: &str, error: &io::Error) {
        let in_flight = worker.in_flight.count;
        if in_flight > 0 || !self.queued.is_empty() || error.kind() != ErrorKind::UnexpectedEof {
            worker.error(what, error);
        }
        worker.lose_in_flight();
        self.fail_queued(worker, what, error);
        self.stream = None;
        self.filled = 0;
    }

    fn fail_queued(&mut self, worker: &mut Worker, what: &str, error: &io::Error) {
        for _ in self.queued.drain(..) {
            worker.error(what, error);
        }
        self.outgoing.clear();
        self.written = 0;
    }
}
