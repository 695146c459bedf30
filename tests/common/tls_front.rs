//! An HTTPS front on 127.0.0.1 for a plain HTTP fake, because
//! azure_identity 1.0 sends token requests to `https://` authorities only.
//!
//! It ends TLS with the test server certificate from [`super::pki`] and
//! forwards each request to the fake with `X-Forwarded-Proto: https` and
//! `Connection: close`, then copies the response back until the fake
//! closes the connection. It handles one request per connection, with a
//! `Content-Length` body (chunked bodies are not read). A client trusts the
//! front when `SSL_CERT_FILE` names the test CA's PEM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslMethod, SslStream};

use super::pki::TestAuthority;

/// An HTTPS front, stopped when dropped.
pub struct TlsFront {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    stopping: Arc<AtomicBool>,
    failed_handshakes: Arc<AtomicUsize>,
    worker: Option<JoinHandle<()>>,
}

impl TlsFront {
    /// Starts a front that forwards to `backend`, an `http://127.0.0.1:PORT` URL.
    pub fn start(backend: &str, authority: &TestAuthority) -> TlsFront {
        let backend = backend
            .strip_prefix("http://")
            .expect("the backend is an http:// URL")
            .trim_end_matches('/')
            .to_string();
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("TLS acceptor");
        acceptor
            .set_private_key(&authority.server.key)
            .expect("server key");
        acceptor
            .set_certificate(&authority.server.certificate)
            .expect("server certificate");
        acceptor.check_private_key().expect("the key matches");
        let acceptor = Arc::new(acceptor.build());

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS front");
        let port = listener.local_addr().expect("local address").port();
        let stopping = Arc::new(AtomicBool::new(false));
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let worker = {
            let stopping = Arc::clone(&stopping);
            let failed = Arc::clone(&failed_handshakes);
            std::thread::spawn(move || {
                accept_loop(&listener, &acceptor, &backend, &stopping, &failed)
            })
        };
        TlsFront {
            url: format!("https://127.0.0.1:{port}"),
            port,
            stopping,
            failed_handshakes,
            worker: Some(worker),
        }
    }

    /// Returns how many clients gave up during the TLS handshake, for
    /// example because they do not trust the server certificate.
    pub fn failed_handshakes(&self) -> usize {
        self.failed_handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // A connection wakes the accept loop, which then reads the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    acceptor: &Arc<SslAcceptor>,
    backend: &str,
    stopping: &AtomicBool,
    failed_handshakes: &Arc<AtomicUsize>,
) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let acceptor = Arc::clone(acceptor);
        let backend = backend.to_string();
        let failed = Arc::clone(failed_handshakes);
        std::thread::spawn(move || {
            let timeout = Some(Duration::from_secs(10));
            let _ = stream.set_read_timeout(timeout);
            match acceptor.accept(stream) {
                Ok(tls) => {
                    if let Err(error) = forward(tls, &backend) {
                        eprintln!("TLS front: forwarding failed: {error}");
                    }
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
}

/// Reads one request, sends it to the backend and copies the response back.
fn forward(mut tls: SslStream<TcpStream>, backend: &str) -> std::io::Result<()> {
    let request = read_request(&mut tls)?;
    let mut upstream = TcpStream::connect(backend)?;
    upstream.set_read_timeout(Some(Duration::from_secs(10)))?;
    upstream.write_all(&request)?;

    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    tls.write_all(&response)?;
    tls.flush()?;
    let _ = tls.shutdown();
    Ok(())
}

/// Reads a request's head and `Content-Length` body, and returns it with
/// `X-Forwarded-Proto: https` and `Connection: close` in place of any
/// `Connection` header.
fn read_request(tls: &mut SslStream<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(position) = find(&received, b"\r\n\r\n") {
            break position + 4;
        }
        let count = tls.read(&mut buffer)?;
        if count == 0 {
            return Err(std::io::Error::other(
                "the client closed before the head ended",
            ));
        }
        received.extend_from_slice(&buffer[..count]);
    };

    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let body_length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while received.len() < head_end + body_length {
        let count = tls.read(&mut buffer)?;
        if count == 0 {
            return Err(std::io::Error::other(
                "the client closed before the body ended",
            ));
        }
        received.extend_from_slice(&buffer[..count]);
    }

    // The fake closes the connection after its response only when the
    // request sets `Connection: close`, and the front reads the response
    // until the connection closes.
    let mut request = Vec::new();
    for (index, line) in head.trim_end().split("\r\n").enumerate() {
        let is_connection = line
            .split_once(':')
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"));
        if !is_connection {
            request.extend_from_slice(line.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        if index == 0 {
            request.extend_from_slice(b"X-Forwarded-Proto: https\r\nConnection: close\r\n");
        }
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(&received[head_end..head_end + body_length]);
    Ok(request)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
