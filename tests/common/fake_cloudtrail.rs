//! A fake CloudTrail `LookupEvents` endpoint on 127.0.0.1, because moto
//! 5.2.1 does not implement LookupEvents.
//!
//! It speaks the awsJson1_1 protocol. Requests are `POST /` with
//! `X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`
//! (the botocore model's target prefix) or `CloudTrail_20131101.LookupEvents`
//! (what aws-sdk-cloudtrail 1.130 sends); the fake accepts both. They carry a
//! SigV4 `Authorization` header for the `cloudtrail` service, and a JSON
//! body with `LookupAttributes` (one), `StartTime` and `EndTime` (epoch
//! seconds), `MaxResults` and `NextToken`. Events are served newest first,
//! in pages of at most the fake's page size, with an opaque `NextToken`.
//! Errors are `{"__type", "message"}` bodies with HTTP 400, as CloudTrail
//! sends `ThrottlingException` and `AccessDeniedException`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::{Value, json};
use tiny_http::{Method, Request, Server, StatusCode};

/// The `X-Amz-Target` values of LookupEvents: the long and the short form.
pub const LOOKUP_EVENTS_TARGETS: [&str; 2] = [
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
    "CloudTrail_20131101.LookupEvents",
];

/// One management event as CloudTrail stores it.
#[derive(Debug, Clone)]
pub struct TrailEvent {
    /// `eventID`.
    pub id: String,
    /// `eventName`, such as `CreateUser`.
    pub name: String,
    /// `eventTime`, in seconds since the Unix epoch.
    pub time: i64,
    /// Names of the resources the event touched, which `ResourceName` matches.
    pub resources: Vec<String>,
    /// The `userIdentity.arn` of the caller.
    pub actor_arn: String,
    /// `requestParameters`.
    pub request: Value,
    /// `responseElements`.
    pub response: Value,
}

impl TrailEvent {
    /// Builds an IAM event made by `actor_arn` on the resources named.
    pub fn iam(id: &str, name: &str, time: i64, actor_arn: &str, resources: &[&str]) -> TrailEvent {
        TrailEvent {
            id: id.to_string(),
            name: name.to_string(),
            time,
            resources: resources.iter().map(|name| name.to_string()).collect(),
            actor_arn: actor_arn.to_string(),
            request: json!({ "userName": resources.first() }),
            response: Value::Null,
        }
    }

    /// Returns the `CloudTrailEvent` JSON text of the event.
    fn record(&self) -> String {
        let record = json!({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "IAMUser",
                "arn": self.actor_arn,
                "accountId": "123456789012",
            },
            "eventTime": format_time(self.time),
            "eventSource": "iam.amazonaws.com",
            "eventName": self.name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.15.0 Python/3.11",
            "requestParameters": self.request,
            "responseElements": self.response,
            "eventID": self.id,
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "123456789012",
        });
        record.to_string()
    }

    fn to_json(&self) -> Value {
        let user_name = self.actor_arn.rsplit('/').next().unwrap_or_default();
        json!({
            "EventId": self.id,
            "EventName": self.name,
            "ReadOnly": "false",
            "EventTime": self.time,
            "EventSource": "iam.amazonaws.com",
            "Username": user_name,
            "Resources": self.resources.iter().map(|name| json!({
                "ResourceType": "AWS::IAM::User",
                "ResourceName": name,
            })).collect::<Vec<_>>(),
            "CloudTrailEvent": self.record(),
        })
    }
}

/// Formats seconds since the Unix epoch as RFC 3339 in UTC.
pub fn format_time(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A scripted misbehavior.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Returns `ThrottlingException` for the next `times` requests.
    Throttle {
        /// How many requests fail.
        times: usize,
    },
    /// Returns `AccessDeniedException` for every request.
    Denied,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The parsed JSON body.
    pub body: Value,
    /// The HTTP status sent back.
    pub status: u16,
    /// When it arrived.
    pub received: Instant,
}

impl RecordedRequest {
    /// Returns the lookup attribute's value.
    pub fn attribute_value(&self) -> Option<&str> {
        self.body["LookupAttributes"][0]["AttributeValue"].as_str()
    }

    /// Returns the `NextToken` sent, if any.
    pub fn next_token(&self) -> Option<&str> {
        self.body["NextToken"].as_str()
    }
}

struct State {
    events: Vec<TrailEvent>,
    page_size: usize,
    faults: Vec<(Fault, usize)>,
    requests: Vec<RecordedRequest>,
}

/// The fake, stopped when dropped.
pub struct FakeCloudTrail {
    /// `http://127.0.0.1:PORT`, for `[attribution.aws] endpoint_url`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl FakeCloudTrail {
    /// Starts the fake with no events, 50 events a page (LookupEvents'
    /// maximum) and no faults.
    pub fn start() -> FakeCloudTrail {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the fake CloudTrail"));
        let port = server.server_addr().to_ip().expect("TCP address").port();
        let state = Arc::new(Mutex::new(State {
            events: Vec::new(),
            page_size: 50,
            faults: Vec::new(),
            requests: Vec::new(),
        }));
        let stopping = Arc::new(AtomicBool::new(false));
        let worker = {
            let (server, state, stopping) = (server.clone(), state.clone(), stopping.clone());
            std::thread::spawn(move || serve(&server, &state, &stopping))
        };
        FakeCloudTrail {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            server,
            stopping,
            worker: Some(worker),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an event to the trail.
    pub fn add_event(&self, event: TrailEvent) {
        self.state().events.push(event);
    }

    /// Sets the maximum number of events per page.
    pub fn set_page_size(&self, page_size: usize) {
        self.state().page_size = page_size.max(1);
    }

    /// Adds a fault.
    pub fn add_fault(&self, fault: Fault) {
        self.state().faults.push((fault, 0));
    }

    /// Returns every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }
}

impl Drop for FakeCloudTrail {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn serve(server: &Server, state: &Mutex<State>, stopping: &AtomicBool) {
    loop {
        let mut request = match server.recv() {
            Ok(request) => request,
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(_) => continue,
        };
        let mut body = String::new();
        let readable = request.as_reader().read_to_string(&mut body).is_ok();
        let header = |name: &str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_string())
        };
        let problem = if !readable || *request.method() != Method::Post || request.url() != "/" {
            Some("the fake accepts only POST / with a UTF-8 body")
        } else if !header("x-amz-target")
            .is_some_and(|t| LOOKUP_EVENTS_TARGETS.contains(&t.as_str()))
        {
            Some("the fake serves only LookupEvents")
        } else if !header("authorization").is_some_and(|auth| {
            auth.starts_with("AWS4-HMAC-SHA256") && auth.contains("/cloudtrail/")
        }) {
            Some("the request is not SigV4-signed for cloudtrail")
        } else {
            None
        };
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let (status, reply) = {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            let (status, reply) = match problem {
                Some(message) => error("ValidationException", message),
                None => state.lookup(&parsed),
            };
            state.requests.push(RecordedRequest {
                body: parsed,
                status,
                received: Instant::now(),
            });
            (status, reply)
        };
        write_reply(request, status, &reply.to_string());
    }
}

fn error(code: &str, message: &str) -> (u16, Value) {
    (400, json!({ "__type": code, "message": message }))
}

impl State {
    fn lookup(&mut self, body: &Value) -> (u16, Value) {
        for (fault, hits) in &mut self.faults {
            match fault {
                Fault::Throttle { times } if *hits < *times => {
                    *hits += 1;
                    return error("ThrottlingException", "Rate exceeded");
                }
                Fault::Denied => {
                    return error(
                        "AccessDeniedException",
                        "User: arn:aws:iam::123456789012:user/idrift is not authorized to \
                         perform: cloudtrail:LookupEvents because no identity-based policy \
                         allows the cloudtrail:LookupEvents action",
                    );
                }
                _ => {}
            }
        }
        let attributes = body["LookupAttributes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if attributes.len() > 1 {
            return error(
                "InvalidLookupAttributesException",
                "You cannot specify more than one lookup attribute.",
            );
        }
        let start = body["StartTime"].as_f64().map_or(i64::MIN, |t| t as i64);
        let end = body["EndTime"].as_f64().map_or(i64::MAX, |t| t as i64);
        if start > end {
            return error("InvalidTimeRangeException", "StartTime is after EndTime.");
        }
        let key = attributes.first().and_then(|a| a["AttributeKey"].as_str());
        let value = attributes
            .first()
            .and_then(|a| a["AttributeValue"].as_str());
        let mut matching: Vec<&TrailEvent> = self
            .events
            .iter()
            .filter(|event| (start..=end).contains(&event.time))
            .filter(|event| match (key, value) {
                (Some("ResourceName"), Some(value)) => event.resources.iter().any(|r| r == value),
                (Some("EventName"), Some(value)) => event.name == value,
                (Some("EventId"), Some(value)) => event.id == value,
                (Some("Username"), Some(value)) => event.actor_arn.ends_with(&format!("/{value}")),
                (None, _) => true,
                _ => false,
            })
            .collect();
        matching.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));

        let offset = match body["NextToken"].as_str() {
            None => 0,
            Some(token) => match token
                .strip_prefix("fake-token-")
                .and_then(|n| n.parse().ok())
            {
                Some(offset) => offset,
                None => return error("InvalidNextTokenException", "Invalid NextToken."),
            },
        };
        let max = body["MaxResults"]
            .as_u64()
            .map_or(50, |m| m as usize)
            .clamp(1, 50);
        let size = max.min(self.page_size);
        let end_index = (offset + size).min(matching.len());
        let events: Vec<Value> = matching[offset.min(end_index)..end_index]
            .iter()
            .map(|event| event.to_json())
            .collect();
        let mut reply = json!({ "Events": events });
        if end_index < matching.len() {
            reply["NextToken"] = json!(format!("fake-token-{end_index}"));
        }
        (200, reply)
    }
}

fn write_reply(request: Request, status: u16, body: &str) {
    let reason = StatusCode(status).default_reason_phrase();
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = request.into_writer();
    let _ = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body.as_bytes()))
        .and_then(|()| writer.flush());
}
