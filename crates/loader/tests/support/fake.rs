//! A scripted HTTP server on loopback for fault cases: each answer decided by the test.

use super::*;

/// What the scripted server does with one request.
pub enum Reply {
    /// Write these bytes (a whole HTTP response), then close.
    Send(Vec<u8>),
    /// Never answer.
    Hang,
}

/// A whole HTTP/1.1 response.
pub fn http_response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A scripted HTTP server on loopback: `reply(n, request_head)` decides the n-th answer.
pub struct FakeServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    pub heads: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(reply: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let (count, seen) = (requests.clone(), heads.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (reply, count, seen) = (reply.clone(), count.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    seen.lock().unwrap().push(head.clone());
                    match reply(n, &head) {
                        Reply::Send(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                            let _ = socket.shutdown().await;
                        }
                        Reply::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                    }
                });
            }
        });
        FakeServer {
            url,
            requests,
            heads,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
