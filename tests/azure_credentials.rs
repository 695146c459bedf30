//! Entra ID credentials that get their token from an Entra authority:
//! client certificates and client secrets, through azure_identity's real
//! credential code.
//!
//! The first tests post token requests to the fake Entra token endpoint
//! over plain HTTP, to show that its checks reject what Entra rejects. The
//! rest run `idrift scan` with `authority_url` set to a TLS front on
//! 127.0.0.1 before the fake, since azure_identity sends token requests to
//! HTTPS authorities only. The scans trust only the test CA
//! (`SSL_CERT_FILE`) and drop the caller's Azure, proxy and CA-folder
//! variables. They run with an empty `PATH`, so that a credential chain
//! that went wrong could reach neither the Azure CLI nor another host.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::hash::MessageDigest;
use openssl::sign::{Signer, Verifier};
use serde_json::{Value, json};
use tempfile::TempDir;

use common::fake_entra::{FakeClient, GRAPH_SCOPE, JWT_BEARER};
use common::fake_graph::{
    ENTRA_TOKEN_SUFFIX, FakeGraph, TENANT_ID, Tenant, USERS_PATH, guid, id_kind,
};
use common::pki::{AUTHORITY, CLIENT, KeyPair, OTHER_AUTHORITY, STRANGER};
use common::tls_front::TlsFront;

/// The application (client) id of the fake's app registration.
const CLIENT_ID: &str = "00000000-0000-4000-8000-00000000c11e";
/// The password of the PKCS#12 files and encrypted PEM keys the tests write.
const PASSWORD: &str = "idrift-test-pfx-password-Qx8";
/// The client secret that the fake accepts.
const SECRET: &str = "idrift-test-client-secret-Qx8";

fn unix_now() -> u64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH);
    elapsed.expect("the clock is after 1970").as_secs()
}

/// Returns the path of the fake tenant's token endpoint.
fn token_path() -> String {
    format!("/{TENANT_ID}{ENTRA_TOKEN_SUFFIX}")
}

/// A response read off the wire.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    body: Value,
}

/// Sends one HTTP/1.1 request over a new connection and reads the whole
/// response, which the fake ends by closing the connection.
fn http_request(endpoint: &str, request: &str) -> HttpResponse {
    let authority = endpoint
        .strip_prefix("http://")
        .expect("an http:// endpoint");
    let mut stream = TcpStream::connect(authority).expect("connect to the fake");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");

    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    HttpResponse { status, body }
}

/// Posts a form to the fake's token endpoint over plain HTTP.
fn post_token(fake: &FakeGraph, path: &str, form: &Form) -> HttpResponse {
    let body = form
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    let authority = fake.endpoint.trim_start_matches("http://");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http_request(&fake.endpoint, &request)
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Gets a Graph path with a bearer token and returns the status.
fn graph_status(fake: &FakeGraph, path: &str, token: &str) -> u16 {
    let authority = fake.endpoint.trim_start_matches("http://");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    http_request(&fake.endpoint, &request).status
}

/// Signs a JWT with RS256 and a key pair's key.
fn sign_jwt(signer: &KeyPair, header: &Value, claims: &Value) -> String {
    let encode = |value: &Value| azure_core::base64::encode_url_safe(value.to_string());
    let signed = format!("{}.{}", encode(header), encode(claims));
    let mut rsa = Signer::new(MessageDigest::sha256(), &signer.key).expect("an RS256 signer");
    rsa.update(signed.as_bytes()).expect("hash the input");
    let signature = rsa.sign_to_vec().expect("sign");
    format!(
        "{signed}.{}",
        azure_core::base64::encode_url_safe(signature)
    )
}

/// Builds the JWT header that azure_identity 1.0 writes for a key pair.
fn jwt_header(pair: &KeyPair) -> Value {
    json!({"alg": "RS256", "typ": "JWT", "x5t": azure_core::base64::encode(pair.thumbprint())})
}

/// Claims valid for five minutes for an audience.
fn jwt_claims(audience: &str) -> Value {
    let now = unix_now();
    json!({
        "aud": audience,
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "jti": "00000000-0000-4000-8000-000000000001",
        "nbf": now,
        "exp": now + 300,
    })
}

/// The fields of a token request's form body, in order.
type Form = Vec<(&'static str, String)>;

/// Returns a certificate token request's form around an assertion.
fn assertion_form(assertion: &str) -> Form {
    vec![
        ("client_id", CLIENT_ID.to_string()),
        ("scope", GRAPH_SCOPE.to_string()),
        ("client_assertion_type", JWT_BEARER.to_string()),
        ("client_assertion", assertion.to_string()),
        ("grant_type", "client_credentials".to_string()),
    ]
}

/// Starts the fake with the sample tenant and an app registration whose
/// credentials are [`CLIENT`] and [`SECRET`].
fn start_fake() -> FakeGraph {
    let fake = FakeGraph::start(Tenant::sample());
    let mut client = FakeClient::with_certificate(CLIENT_ID, &CLIENT.certificate);
    client.secrets.push(SECRET.to_string());
    fake.add_client(client);
    fake
}

#[test]
fn token_endpoint_accepts_signed_assertion() {
    let fake = start_fake();
    let audience = format!("{}{}", fake.endpoint, token_path());
    let assertion = sign_jwt(&CLIENT, &jwt_header(&CLIENT), &jwt_claims(&audience));
    let form = assertion_form(&assertion);

    let response = post_token(&fake, &token_path(), &form);

    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 3600);
    let token = response.body["access_token"].as_str().expect("a token");
    assert_eq!(fake.issued_tokens(), vec![token.to_string()]);
    assert_eq!(graph_status(&fake, USERS_PATH, token), 200);
    let recorded = fake.entra_token_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].form_field("client_assertion"),
        Some(assertion.as_str())
    );
}

#[test]
fn token_endpoint_rejects_bad_requests() {
    let fake = start_fake();
    let audience = format!("{}{}", fake.endpoint, token_path());
    let header = jwt_header(&CLIENT);
    let claims = jwt_claims(&audience);
    let with_claim = |name: &str, value: Value| {
        let mut changed = claims.clone();
        changed[name] = value;
        sign_jwt(&CLIENT, &header, &changed)
    };
    // A character well inside the signature, since the last one also
    // carries padding bits that a decoder may reject on their own.
    let mut tampered = sign_jwt(&CLIENT, &header, &claims).into_bytes();
    let inside = tampered.len() - 10;
    tampered[inside] = if tampered[inside] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII");
    let now = unix_now();

    let assertion_cases: Vec<(&str, String, u16, u32)> = vec![
        ("tampered signature", tampered, 401, 700027),
        (
            "unregistered certificate",
            sign_jwt(&STRANGER, &jwt_header(&STRANGER), &claims),
            401,
            700027,
        ),
        (
            "x5t of the client, key of a stranger",
            sign_jwt(&STRANGER, &header, &claims),
            401,
            700027,
        ),
        (
            "wrong audience",
            with_claim("aud", json!("https://login.example.net/token")),
            401,
            700023,
        ),
        (
            "wrong issuer",
            with_claim("iss", json!("someone-else")),
            401,
            700021,
        ),
        (
            "wrong subject",
            with_claim("sub", json!("someone-else")),
            401,
            700021,
        ),
        ("expired", with_claim("exp", json!(now - 10)), 401, 700024),
        (
            "not yet valid",
            with_claim("nbf", json!(now + 600)),
            401,
            700024,
        ),
        (
            "HS256",
            sign_jwt(
                &CLIENT,
                &json!({"alg": "HS256", "x5t": header["x5t"]}),
                &claims,
            ),
            401,
            50027,
        ),
        ("not a JWT", "not-a-jwt".to_string(), 401, 50027),
    ];
    for (case, assertion, status, code) in assertion_cases {
        let response = post_token(&fake, &token_path(), &assertion_form(&assertion));
        assert_entra_error(case, &response, status, code);
    }

    let valid = sign_jwt(&CLIENT, &header, &claims);
    let form = assertion_form(&valid);
    let without = |name: &str| -> Form {
        let remaining = form.iter().filter(|(key, _)| *key != name);
        remaining.cloned().collect()
    };
    let form_cases: Vec<(&str, Form, String, u16, u32)> = vec![
        (
            "unknown client",
            replace_field(&form, "client_id", "00000000-0000-4000-8000-0000000000ff"),
            token_path(),
            400,
            700016,
        ),
        (
            "wrong scope",
            replace_field(&form, "scope", "https://management.azure.com/.default"),
            token_path(),
            400,
            70011,
        ),
        (
            "other tenant",
            form.clone(),
            format!("/00000000-0000-4000-8000-00000000dead{ENTRA_TOKEN_SUFFIX}"),
            400,
            90002,
        ),
        (
            "no grant type",
            without("grant_type"),
            token_path(),
            400,
            900144,
        ),
        (
            "no assertion type",
            without("client_assertion_type"),
            token_path(),
            400,
            50027,
        ),
        (
            "wrong secret",
            secret_form("not-the-secret"),
            token_path(),
            401,
            7000215,
        ),
    ];
    for (case, fields, path, status, code) in form_cases {
        let response = post_token(&fake, &path, &fields);
        assert_entra_error(case, &response, status, code);
    }
    assert!(
        fake.issued_tokens().is_empty(),
        "a rejected request got a token"
    );

    let accepted = post_token(&fake, &token_path(), &secret_form(SECRET));
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
}

fn replace_field(form: &Form, name: &str, value: &str) -> Form {
    let mut changed = form.to_vec();
    for (key, field) in &mut changed {
        if *key == name {
            *field = value.to_string();
        }
    }
    changed
}

fn secret_form(secret: &str) -> Form {
    vec![
        ("client_id", CLIENT_ID.to_string()),
        ("client_secret", secret.to_string()),
        ("grant_type", "client_credentials".to_string()),
        ("scope", GRAPH_SCOPE.to_string()),
    ]
}

/// Asserts that a response is Entra's error body with a status and AADSTS code.
fn assert_entra_error(case: &str, response: &HttpResponse, status: u16, code: u32) {
    assert_eq!(response.status, status, "{case}: {:?}", response.body);
    assert_eq!(response.body["error_codes"], json!([code]), "{case}");
    let description = response.body["error_description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{case}: {description}"
    );
    assert!(response.body["error"].is_string(), "{case}");
}

// The tests below run `idrift scan` through the TLS front.

/// A fake tenant behind a TLS front, and a scratch folder with the test
/// CA's PEM, an empty `PATH` folder and the snapshots.
struct Setup {
    fake: FakeGraph,
    front: TlsFront,
    folder: TempDir,
}

/// What one scan produced.
struct Scan {
    exit_code: i32,
    report: Value,
    stdout: String,
    stderr: String,
}

impl Scan {
    fn assert_exit(&self, expected: i32) {
        assert_eq!(
            self.exit_code, expected,
            "report:\n{:#}\nstderr:\n{}",
            self.report, self.stderr
        );
    }

    fn scope(&self) -> &Value {
        &self.report["scopes"][0]
    }

    fn scope_error(&self) -> &str {
        self.scope()["error"].as_str().unwrap_or_default()
    }

    /// Asserts that a text appears in neither stdout nor stderr.
    fn assert_hidden(&self, text: &str, description: &str) {
        assert!(
            !self.stdout.contains(text),
            "stdout shows the {description}"
        );
        assert!(
            !self.stderr.contains(text),
            "stderr shows the {description}"
        );
    }
}

impl Setup {
    fn start() -> Setup {
        let fake = start_fake();
        let front = TlsFront::start(&fake.endpoint, &AUTHORITY);
        let folder = tempfile::tempdir().expect("create a temporary folder");
        std::fs::write(folder.path().join("ca.pem"), AUTHORITY.ca_pem()).expect("write the CA");
        std::fs::create_dir(folder.path().join("empty-path")).expect("create a folder");
        Setup {
            fake,
            front,
            folder,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    fn snapshot_path(&self) -> PathBuf {
        self.path("snapshots")
            .join("azure")
            .join(format!("{TENANT_ID}.json"))
    }

    /// Writes a key pair as PKCS#12 with [`PASSWORD`] and returns its path.
    fn write_pkcs12(&self, pair: &KeyPair, name: &str) -> PathBuf {
        KeyPair::write(self.folder.path(), name, &pair.pkcs12(PASSWORD))
    }

    /// Writes a config that scans the fake tenant with fast retries, the
    /// front as its authority, and `tenant_lines` in its table.
    fn write_config(&self, tenant_lines: &str) -> PathBuf {
        let config = self.path("idrift.toml");
        let text = format!(
            "[retry]\nmax_attempts = 2\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n\
             attempt_timeout_seconds = 10\n\n\
             [[azure.tenants]]\ntenant_id = \"{TENANT_ID}\"\ngraph_url = \"{}\"\n\
             authority_url = \"{}\"\n{tenant_lines}\n",
            self.fake.endpoint, self.front.url
        );
        std::fs::write(&config, text).expect("write the config");
        config
    }

    /// Returns an `idrift scan` command with a sealed environment that
    /// trusts `ca_pem` and has the variables in `env`.
    fn command(&self, config: &Path, ca_pem: &Path, env: &[(&str, &str)]) -> Command {
        let mut command = common::idrift(self.folder.path());
        for (name, _) in std::env::vars() {
            let lower = name.to_ascii_lowercase();
            let sealed = ["AZURE_", "IDENTITY_", "MSI_", "SSL_CERT_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || lower.ends_with("_proxy")
                || name == "RUST_LOG";
            if sealed {
                command.env_remove(name);
            }
        }
        command
            .env("SSL_CERT_FILE", ca_pem)
            .env("PATH", self.path("empty-path"))
            .envs(env.iter().copied())
            .arg("scan")
            .arg("--config")
            .arg(config)
            .arg("--snapshots")
            .arg(self.path("snapshots"))
            .args(["--format", "json"]);
        command
    }

    /// Runs a scan with `tenant_lines` in the tenant's table and `env` set.
    fn scan(&self, tenant_lines: &str, env: &[(&str, &str)]) -> Scan {
        let config = self.write_config(tenant_lines);
        let mut command = self.command(&config, &self.path("ca.pem"), env);
        self.run(&mut command)
    }

    fn run(&self, command: &mut Command) -> Scan {
        let (exit_code, stdout, stderr) = common::run(command);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!("the report is not JSON ({error}):\n{stdout}\nstderr:\n{stderr}")
        });
        Scan {
            exit_code,
            report,
            stdout,
            stderr,
        }
    }

    /// Returns the tenant lines that select the client certificate in a file.
    fn certificate_lines(path: &Path) -> String {
        format!(
            "credential = \"client_certificate\"\nclient_id = \"{CLIENT_ID}\"\n\
             certificate_path = \"{}\"",
            path.display()
        )
    }

    /// Asserts that the scan wrote a complete snapshot of the sample tenant,
    /// read with tokens that the fake's Entra endpoint issued.
    fn assert_sample_snapshot(&self, scan: &Scan) {
        scan.assert_exit(0);
        assert_eq!(scan.scope()["scope"], TENANT_ID);
        assert_eq!(scan.scope()["status"], "baseline");
        let text = std::fs::read_to_string(self.snapshot_path()).expect("the snapshot");
        let snapshot: Value = serde_json::from_str(&text).expect("the snapshot is JSON");
        let ids: Vec<&str> = snapshot["identities"]
            .as_array()
            .expect("identities")
            .iter()
            .filter_map(|identity| identity["id"].as_str())
            .collect();
        for user in [1, 2] {
            let id = guid(id_kind::USER, user);
            assert!(ids.contains(&id.as_str()), "user {id} in {ids:?}");
        }
        let principal = guid(id_kind::SERVICE_PRINCIPAL, 1);
        assert!(ids.contains(&principal.as_str()), "{ids:?}");
        for (name, completeness) in snapshot["collections"].as_object().expect("collections") {
            assert_eq!(completeness["status"], "complete", "{name}");
        }

        let token_requests = self.fake.entra_token_requests();
        assert!(
            !token_requests.is_empty(),
            "no token request reached the fake"
        );
        assert!(token_requests.iter().all(|request| request.status == 200));
        let issued = self.fake.issued_tokens();
        let graph_requests: Vec<_> = self
            .fake
            .requests()
            .into_iter()
            .filter(|request| !request.is_token_request())
            .collect();
        assert!(!graph_requests.is_empty());
        for request in graph_requests {
            let token = request.bearer_token().unwrap_or_default().to_string();
            assert!(issued.contains(&token), "{} sent {token:?}", request.url);
        }
    }
}

#[test]
fn certificate_scan_writes_snapshot() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");

    let scan = setup.scan(
        &Setup::certificate_lines(&pfx),
        &[("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD)],
    );

    setup.assert_sample_snapshot(&scan);
    let request = &setup.fake.entra_token_requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.form_field("client_id"), Some(CLIENT_ID));
    assert_eq!(request.form_field("client_secret"), None);
    assert!(request.form_field("client_assertion").is_some());
    assert_eq!(setup.front.failed_handshakes(), 0);
}

#[test]
fn token_request_carries_signed_assertion() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");
    let scan = setup.scan(
        &Setup::certificate_lines(&pfx),
        &[("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD)],
    );
    scan.assert_exit(0);

    let request = &setup.fake.entra_token_requests()[0];
    assert_eq!(request.path, token_path());
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.form_field("grant_type"), Some("client_credentials"));
    assert_eq!(request.form_field("scope"), Some(GRAPH_SCOPE));
    assert_eq!(
        request.form_field("client_assertion_type"),
        Some(JWT_BEARER)
    );

    let assertion = request
        .form_field("client_assertion")
        .expect("an assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3, "{assertion}");
    let decode = |part: &str| -> Value {
        let bytes = azure_core::base64::decode_url_safe(part).expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let header = decode(parts[0]);
    let claims = decode(parts[1]);
    assert_eq!(header["alg"], "RS256");
    let x5t = header["x5t"].as_str().expect("x5t");
    assert_eq!(
        azure_core::base64::decode(x5t).expect("base64"),
        CLIENT.thumbprint()
    );
    assert_eq!(
        claims["aud"],
        format!("{}{}", setup.front.url, token_path())
    );
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert!(claims["exp"].as_u64().expect("exp") > unix_now());

    let signature = azure_core::base64::decode_url_safe(parts[2]).expect("base64url");
    let public_key = CLIENT.certificate.public_key().expect("public key");
    let mut verifier = Verifier::new(MessageDigest::sha256(), &public_key).expect("verifier");
    verifier
        .update(format!("{}.{}", parts[0], parts[1]).as_bytes())
        .expect("hash");
    assert!(
        verifier.verify(&signature).expect("verify"),
        "the signature does not verify with the certificate's key"
    );
}

#[test]
fn pem_certificate_with_encrypted_key_scans() {
    let setup = Setup::start();
    let pem = KeyPair::write(
        setup.folder.path(),
        "client.pem",
        &CLIENT.pem_encrypted(PASSWORD),
    );

    let scan = setup.scan(
        &Setup::certificate_lines(&pem),
        &[("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD)],
    );

    setup.assert_sample_snapshot(&scan);
}

#[test]
fn unregistered_certificate_fails_scope() {
    let setup = Setup::start();
    let registered = setup.write_pkcs12(&CLIENT, "client.pfx");
    let env = [("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD)];
    setup.assert_sample_snapshot(&setup.scan(&Setup::certificate_lines(&registered), &env));
    let baseline = std::fs::read(setup.snapshot_path()).expect("the baseline");
    setup.fake.clear_requests();

    let stranger = setup.write_pkcs12(&STRANGER, "stranger.pfx");
    let scan = setup.scan(&Setup::certificate_lines(&stranger), &env);

    scan.assert_exit(2);
    assert_eq!(scan.scope()["scope"], TENANT_ID);
    assert_eq!(scan.scope()["status"], "failed");
    let error = scan.scope_error();
    assert!(error.contains("AADSTS700027"), "{error}");
    assert!(error.contains("stranger.pfx"), "{error}");
    assert!(error.contains(&STRANGER.thumbprint_hex()), "{error}");
    assert!(error.contains("client_id"), "{error}");
    assert!(scan.stderr.contains(TENANT_ID), "{}", scan.stderr);
    let token_requests = setup.fake.entra_token_requests();
    assert_eq!(
        token_requests.len(),
        1,
        "one token attempt, not one per listing"
    );
    assert_eq!(token_requests[0].status, 401);
    let graph_requests = setup.fake.requests().len() - token_requests.len();
    assert_eq!(graph_requests, 0, "Graph was called without a token");
    assert_eq!(
        std::fs::read(setup.snapshot_path()).expect("the snapshot"),
        baseline,
        "the snapshot changed"
    );
}

#[test]
fn wrong_pkcs12_password_is_named() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");
    let wrong = "idrift-wrong-password-Zq9";

    let scan = setup.scan(
        &Setup::certificate_lines(&pfx),
        &[("AZURE_CLIENT_CERTIFICATE_PASSWORD", wrong)],
    );

    scan.assert_exit(2);
    assert_eq!(scan.scope()["scope"], TENANT_ID);
    assert_eq!(scan.scope()["status"], "failed");
    let error = scan.scope_error();
    assert!(error.contains(&pfx.display().to_string()), "{error}");
    assert!(
        error.contains("AZURE_CLIENT_CERTIFICATE_PASSWORD is wrong"),
        "{error}"
    );
    assert!(scan.stderr.contains(TENANT_ID), "{}", scan.stderr);
    scan.assert_hidden(wrong, "wrong password");
    assert!(setup.fake.requests().is_empty(), "a request was sent");
    assert!(!setup.snapshot_path().exists());
}

#[test]
fn unusable_certificate_files_are_named() {
    let setup = Setup::start();
    let garbage = KeyPair::write(setup.folder.path(), "garbage.pfx", b"\x30\x03not DER");
    let missing = setup.path("absent.pfx");
    let cases = [
        (missing, "not found"),
        (garbage, "neither PKCS#12 (.pfx, .p12) nor PEM"),
    ];

    for (path, expected) in cases {
        let scan = setup.scan(&Setup::certificate_lines(&path), &[]);

        scan.assert_exit(2);
        assert_eq!(scan.scope()["scope"], TENANT_ID);
        let error = scan.scope_error();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains(expected), "{error}");
        assert!(
            error.contains("openssl pkcs12") || expected == "not found",
            "{error}"
        );
    }
    assert!(setup.fake.requests().is_empty(), "a request was sent");
}

#[test]
fn missing_client_id_names_fix() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");
    let lines = format!(
        "credential = \"client_certificate\"\ncertificate_path = \"{}\"",
        pfx.display()
    );

    let scan = setup.scan(&lines, &[("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD)]);

    scan.assert_exit(2);
    assert_eq!(scan.scope()["scope"], TENANT_ID);
    let error = scan.scope_error();
    assert!(error.contains("client_id"), "{error}");
    assert!(error.contains("AZURE_CLIENT_ID"), "{error}");
    assert!(error.contains(&pfx.display().to_string()), "{error}");
    assert!(setup.fake.requests().is_empty(), "a request was sent");
}

#[test]
fn certificate_path_from_environment() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");
    let path = pfx.display().to_string();
    let lines = format!("credential = \"client_certificate\"\nclient_id = \"{CLIENT_ID}\"");

    let scan = setup.scan(
        &lines,
        &[
            ("AZURE_CLIENT_CERTIFICATE_PATH", &path),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD),
        ],
    );

    setup.assert_sample_snapshot(&scan);
}

#[test]
fn default_chain_picks_certificate() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");
    let path = pfx.display().to_string();

    let scan = setup.scan(
        "",
        &[
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_CLIENT_CERTIFICATE_PATH", &path),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD),
        ],
    );

    setup.assert_sample_snapshot(&scan);
    for request in setup.fake.entra_token_requests() {
        assert!(request.form_field("client_assertion").is_some());
        assert_eq!(request.form_field("client_secret"), None);
    }
}

#[test]
fn default_chain_prefers_secret() {
    let setup = Setup::start();
    let stranger = setup.write_pkcs12(&STRANGER, "stranger.pfx");
    let path = stranger.display().to_string();

    let scan = setup.scan(
        "",
        &[
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_CLIENT_SECRET", SECRET),
            ("AZURE_CLIENT_CERTIFICATE_PATH", &path),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD),
        ],
    );

    setup.assert_sample_snapshot(&scan);
    for request in setup.fake.entra_token_requests() {
        assert_eq!(request.form_field("client_secret"), Some(SECRET));
        assert_eq!(request.form_field("client_assertion"), None);
    }
}

#[test]
fn client_secret_scan_writes_snapshot() {
    let setup = Setup::start();
    let lines = format!("credential = \"client_secret\"\nclient_id = \"{CLIENT_ID}\"");

    let scan = setup.scan(&lines, &[("AZURE_CLIENT_SECRET", SECRET)]);

    setup.assert_sample_snapshot(&scan);
    let request = &setup.fake.entra_token_requests()[0];
    assert_eq!(request.form_field("client_secret"), Some(SECRET));
    assert_eq!(request.form_field("scope"), Some(GRAPH_SCOPE));
    scan.assert_hidden(SECRET, "client secret");
}

#[test]
fn wrong_client_secret_fails_scope() {
    let setup = Setup::start();
    let lines = format!("credential = \"client_secret\"\nclient_id = \"{CLIENT_ID}\"");
    let wrong = "idrift-wrong-secret-Zq9";

    let scan = setup.scan(&lines, &[("AZURE_CLIENT_SECRET", wrong)]);

    scan.assert_exit(2);
    assert_eq!(scan.scope()["scope"], TENANT_ID);
    assert_eq!(scan.scope()["status"], "failed");
    let error = scan.scope_error();
    assert!(error.contains("AADSTS7000215"), "{error}");
    assert!(error.contains("AZURE_CLIENT_SECRET"), "{error}");
    scan.assert_hidden(wrong, "wrong secret");
    assert!(!setup.snapshot_path().exists());
}

#[test]
fn untrusted_authority_certificate_fails() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");
    let other_ca = setup.path("other-ca.pem");
    std::fs::write(&other_ca, OTHER_AUTHORITY.ca_pem()).expect("write the CA");
    let config = setup.write_config(&Setup::certificate_lines(&pfx));
    let env = [("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD)];

    let scan = setup.run(&mut setup.command(&config, &other_ca, &env));

    scan.assert_exit(2);
    assert_eq!(scan.scope()["status"], "failed");
    let error = scan.scope_error();
    assert!(error.contains(&setup.front.url), "{error}");
    assert!(error.contains("SSL_CERT_FILE"), "{error}");
    assert!(
        setup.front.failed_handshakes() >= 1,
        "no TLS handshake failed"
    );
    assert!(
        setup.fake.requests().is_empty(),
        "a request passed the TLS front"
    );
}

#[test]
fn certificate_secrets_stay_out_of_output() {
    let setup = Setup::start();
    let pfx = setup.write_pkcs12(&CLIENT, "client.pfx");
    let config = setup.write_config(&Setup::certificate_lines(&pfx));
    let env = [
        ("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSWORD),
        ("RUST_LOG", "trace"),
    ];

    let scan = setup.run(&mut setup.command(&config, &setup.path("ca.pem"), &env));

    scan.assert_exit(0);
    scan.assert_hidden(PASSWORD, "certificate password");
    let key_pem = CLIENT.key_pem();
    let key_line = key_pem.lines().nth(1).expect("a line of the key");
    scan.assert_hidden(key_line, "private key");
    let request = &setup.fake.entra_token_requests()[0];
    let assertion = request
        .form_field("client_assertion")
        .expect("an assertion");
    let signature = assertion.rsplit('.').next().expect("a signature");
    scan.assert_hidden(signature, "client assertion");
    for token in setup.fake.issued_tokens() {
        scan.assert_hidden(&token, "access token");
    }
}
