//! `harness node --listen-metrics ADDR`: the member's metrics over plain HTTP for a Prometheus
//! scrape. Read-only and bounded: `GET /metrics` (or `/`) only, a request head of at most
//! `REQUEST_BYTES_MAX`, each connection answered and closed within `IO_TIMEOUT`, at most
//! `CONNECTIONS_PER_POLL` a poll. It runs on the `harness node` process's main thread, which
//! otherwise only waits for a signal, so the member keeps its two threads (DESIGN.md "Shape").

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The longest request head read; a scrape's is a few hundred bytes.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long one connection may take to send its request and read the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections answered per poll, so a flood cannot keep the main thread from a stop signal.
pub const CONNECTIONS_PER_POLL: usize = 16;
/// How often the main thread looks for scrapes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The listening socket of the metrics endpoint.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Binds `addr`; the error says what the operating system refused.
    pub fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer { listener })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers the connections waiting now; `render` gives the metrics text, or why not.
    pub fn serve_pending(&self, render: &dyn Fn() -> Result<String, String>) {
        for _ in 0..CONNECTIONS_PER_POLL {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = answer(stream, render) {
                        log::debug!("metrics: {peer}: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("metrics: accept failed: {e}");
                    return;
                }
            }
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// `GET /metrics` or `GET /` (with `head` for HEAD: no body).
    Metrics {
        /// A HEAD request.
        head: bool,
    },
    /// Another path.
    NotFound,
    /// Another method.
    NotAllowed,
    /// Not an HTTP request line.
    Bad,
}

/// Reads what the request line of `head` asks for.
pub fn parse_request(head: &str) -> Asked {
    let line = head.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next()) else {
        return Asked::Bad;
    };
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return Asked::Bad;
    }
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => Asked::Metrics { head: method == "HEAD" },
        ("GET" | "HEAD", _) => Asked::NotFound,
        _ => Asked::NotAllowed,
    }
}

/// Reads one request head and answers it; the connection is closed after.
fn answer(mut stream: TcpStream, render: &dyn Fn() -> Result<String, String>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let give_up = Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= REQUEST_BYTES_MAX || Instant::now() >= give_up {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "request head too long\n",
                false,
            );
        }
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    match parse_request(&String::from_utf8_lossy(&head)) {
        Asked::Metrics { head } => match render() {
            Ok(text) => respond(&mut stream, "200 OK", &text, head),
            Err(problem) => respond(&mut stream, "503 Service Unavailable", &format!("{problem}\n"), head),
        },
        Asked::NotFound => respond(&mut stream, "404 Not Found", "only /metrics is served\n", false),
        Asked::NotAllowed => {
            respond(&mut stream, "405 Method Not Allowed", "read-only: GET /metrics\n", false)
        }
        Asked::Bad => respond(&mut stream, "400 Bad Request", "not an HTTP/1 request\n", false),
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str, head_only: bool) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_of_the_metrics_path_is_served() {
        assert_eq!(parse_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Asked::Metrics { head: false });
        assert_eq!(parse_request("HEAD /?x=1 HTTP/1.0\r\n\r\n"), Asked::Metrics { head: true });
        assert_eq!(parse_request("GET /admin HTTP/1.1\r\n\r\n"), Asked::NotFound);
        assert_eq!(parse_request("POST /metrics HTTP/1.1\r\n\r\n"), Asked::NotAllowed);
        assert_eq!(parse_request("hello\r\n\r\n"), Asked::Bad);
        assert_eq!(parse_request("GET /metrics SPDY/3\r\n\r\n"), Asked::Bad);
    }

    #[test]
    fn a_scrape_gets_the_text_and_other_paths_404() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let fetch = |request: &'static str| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(request.as_bytes()).unwrap();
                let mut reply = String::new();
                stream.read_to_string(&mut reply).unwrap();
                reply
            })
        };
        for (request, expected) in [
            ("GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
            ("GET /secrets HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        ] {
            let client = fetch(request);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !client.is_finished() && Instant::now() < deadline {
                server.serve_pending(&|| Ok("harness_view{member=\"1\"} 3\n".to_string()));
                std::thread::sleep(Duration::from_millis(5));
            }
            let reply = client.join().unwrap();
            assert!(reply.starts_with(expected), "{reply}");
            assert_eq!(
                reply.ends_with("harness_view{member=\"1\"} 3\n"),
                expected.ends_with("OK"),
                "{reply}"
            );
        }
    }
}
