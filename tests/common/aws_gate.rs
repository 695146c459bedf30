//! A forwarding proxy on 127.0.0.1 in front of moto that responds to chosen
//! requests itself, for the failures moto cannot produce: moto's
//! `AssumeRole` succeeds for any role ARN and external id, even a role that
//! does not exist.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Request, Response, Server};

/// A request as the proxy received it.
pub struct GateRequest {
    /// The `X-Amz-Target` header of JSON-protocol requests, such as
    /// `AWSOrganizationsV20161128.ListAccounts`.
    pub target: Option<String>,
    /// The body, form-encoded for Query-protocol requests such as STS.
    pub body: String,
}

/// A response the proxy sends in place of moto's.
pub struct GateResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

/// Decides which requests the proxy responds to itself; `None` forwards to moto.
pub type Handler = dyn Fn(&GateRequest) -> Option<GateResponse> + Send + Sync;

/// The proxy, stopped when dropped.
pub struct AwsGate {
    /// `http://127.0.0.1:PORT`, for `endpoint_url` in the config.
    pub endpoint: String,
    server: Arc<Server>,
    worker: Option<JoinHandle<()>>,
}

impl AwsGate {
    /// Starts the proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, handler: Box<Handler>) -> AwsGate {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the proxy"));
        let port = server.server_addr().to_ip().expect("TCP").port();
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .to_string();
        let handler: Arc<Handler> = Arc::from(handler);
        let worker = {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let upstream = upstream.clone();
                    let handler = Arc::clone(&handler);
                    std::thread::spawn(move || serve(request, &upstream, &*handler));
                }
            })
        };
        AwsGate {
            endpoint: format!("http://127.0.0.1:{port}"),
            server,
            worker: Some(worker),
        }
    }
}

impl Drop for AwsGate {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn serve(mut request: Request, upstream: &str, handler: &Handler) {
    let mut body = Vec::new();
    request
        .as_reader()
        .read_to_end(&mut body)
        .expect("read the request body");
    let target = request
        .headers()
        .iter()
        .find(|header| header.field.equiv("X-Amz-Target"))
        .map(|header| header.value.to_string());
    let seen = GateRequest {
        target,
        body: String::from_utf8_lossy(&body).into_owned(),
    };

    let (status, headers, reply) = match handler(&seen) {
        Some(response) => {
            let content_type =
                Header::from_bytes("Content-Type", response.content_type).expect("a valid header");
            (
                response.status,
                vec![content_type],
                response.body.into_bytes(),
            )
        }
        None => forward(&request, &body, upstream),
    };
    let mut response = Response::from_data(reply).with_status_code(status);
    for header in headers {
        response.add_header(header);
    }
    let _ = request.respond(response);
}

/// Sends the request to moto over HTTP/1.0, so that moto closes the
/// connection after one plain (not chunked) response.
fn forward(request: &Request, body: &[u8], upstream: &str) -> (u16, Vec<Header>, Vec<u8>) {
    let mut head = format!("{} {} HTTP/1.0\r\n", request.method(), request.url());
    for header in request.headers() {
        let name = header.field.as_str().as_str();
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("Connection") {
            continue;
        }
        head.push_str(&format!("{name}: {}\r\n", header.value));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));

    let mut stream = TcpStream::connect(upstream).expect("connect to moto");
    stream.write_all(head.as_bytes()).expect("send to moto");
    stream.write_all(body).expect("send to moto");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read moto's response");

    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete response head from moto");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line from moto");
    let skipped = [
        "content-length",
        "connection",
        "transfer-encoding",
        "server",
        "date",
    ];
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| !skipped.contains(&name.trim().to_ascii_lowercase().as_str()))
        .filter_map(|(name, value)| Header::from_bytes(name.trim(), value.trim()).ok())
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

/// Returns the STS `AccessDenied` error that AWS sends when a role's trust
/// policy does not let the caller assume it.
pub fn access_denied(role_arn: &str) -> GateResponse {
    GateResponse {
        status: 403,
        content_type: "text/xml",
        body: format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <Error><Type>Sender</Type><Code>AccessDenied</Code>\
             <Message>User: arn:aws:iam::123456789012:user/idrift is not authorized to perform: \
             sts:AssumeRole on resource: {role_arn}</Message></Error>\
             <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
        ),
    }
}
