//! The checks of a fake Entra token endpoint for the client credentials
//! grant, `POST /{tenant}/oauth2/v2.0/token` with a form body, as
//! azure_identity's `ClientSecretCredential` and
//! `ClientCertificateCredential` send it. [`super::fake_graph::FakeGraph`]
//! serves the endpoint and issues the tokens; this module decides whether a
//! request earns one.
//!
//! A client authenticates with a secret (`client_secret`) or a certificate
//! (`client_assertion`, a JWT signed with RS256). The assertion's header
//! must name the certificate by `x5t`, the SHA-1 thumbprint of its DER
//! encoding in base64, and the signature must verify with the certificate's
//! public key. Its claims must have `aud` equal to the token endpoint's URL,
//! `iss` and `sub` equal to the client id, an `exp` in the future and an
//! `nbf` that is not in the future.
//!
//! Failures return Entra's error body: `error`, `error_description`
//! starting with `AADSTS<code>:`, and `error_codes`. Six codes come from
//! Microsoft's page "Troubleshoot service principal authentication" for the
//! Azure SDK for Java (learn.microsoft.com), with shortened texts: a wrong
//! secret (7000215), an unknown client (700016), an unknown certificate or
//! a bad signature (700027), an `iss` or `sub` that is not the client
//! (700021), a wrong `aud` (700023), and an assertion out of its time range
//! (700024).
//!
//! NOTE: the codes for malformed requests (90002, 900144, 900561, 70003,
//! 7000216, 50027) and for a failing endpoint (90033) are unchecked recollections of Entra's; no test or idrift
//! code depends on their numbers.

use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::X509;
use serde_json::{Value, json};

/// The scope that azure_identity requests: Graph's default permissions.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An app registration that may get tokens with the client credentials grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeClient {
    /// The application (client) id.
    pub client_id: String,
    /// Client secrets that the endpoint accepts.
    pub secrets: Vec<String>,
    /// DER encodings of the certificates whose keys may sign assertions.
    pub certificates: Vec<Vec<u8>>,
}

impl FakeClient {
    /// Builds a client with one secret.
    pub fn with_secret(client_id: &str, secret: &str) -> FakeClient {
        FakeClient {
            client_id: client_id.to_string(),
            secrets: vec![secret.to_string()],
            certificates: Vec::new(),
        }
    }

    /// Builds a client with one certificate.
    pub fn with_certificate(client_id: &str, certificate: &X509) -> FakeClient {
        FakeClient {
            client_id: client_id.to_string(),
            secrets: Vec::new(),
            certificates: vec![certificate.to_der().expect("encode the certificate")],
        }
    }
}

/// A token request the endpoint rejects, in Entra's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    /// The HTTP status.
    pub status: u16,
    /// The OAuth error, such as `invalid_client`.
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u32,
    /// The description after `AADSTS<code>: `.
    pub description: String,
}

impl EntraError {
    fn new(status: u16, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        EntraError {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    fn missing(parameter: &str) -> EntraError {
        EntraError::new(
            400,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn invalid_client(code: u32, description: impl Into<String>) -> EntraError {
        EntraError::new(401, "invalid_client", code, description)
    }

    /// Returns Entra's JSON error body.
    pub fn to_json(&self) -> Value {
        let trace_id = "00000000-0000-4000-8000-0000000000aa";
        let correlation_id = "00000000-0000-4000-8000-0000000000bb";
        let timestamp = "2024-06-01 12:00:00Z";
        json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        })
    }
}

/// A token request as the endpoint received it.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The tenant segment of the path.
    pub tenant: &'a str,
    /// The URL the client sent the request to, which a client assertion's
    /// `aud` must equal.
    pub url: &'a str,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// The decoded form fields.
    pub form: &'a [(String, String)],
}

impl TokenRequest<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Checks a client credentials request for `tenant_id` against the
/// registered clients at Unix time `now`.
pub fn check_token_request(
    request: &TokenRequest<'_>,
    tenant_id: &str,
    clients: &[FakeClient],
    now: u64,
) -> Result<(), EntraError> {
    if request.method != "POST" {
        return Err(EntraError::new(
            405,
            "invalid_request",
            900561,
            format!(
                "The endpoint only accepts POST requests. Received a {} request.",
                request.method
            ),
        ));
    }
    if request.tenant != tenant_id {
        return Err(EntraError::new(
            400,
            "invalid_request",
            90002,
            format!("Tenant '{}' not found.", request.tenant),
        ));
    }
    let form_type = "application/x-www-form-urlencoded";
    if !request
        .content_type
        .is_some_and(|value| value.starts_with(form_type))
    {
        return Err(EntraError::missing("grant_type"));
    }
    match request.field("grant_type") {
        None => return Err(EntraError::missing("grant_type")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(EntraError::new(
                400,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            ));
        }
    }
    let client_id = request
        .field("client_id")
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let scope = request
        .field("scope")
        .ok_or_else(|| EntraError::missing("scope"))?;
    if scope != GRAPH_SCOPE {
        return Err(EntraError::new(
            400,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        ));
    }
    let client = clients
        .iter()
        .find(|client| client.client_id == client_id)
        .ok_or_else(|| {
            EntraError::new(
                400,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'."
                ),
            )
        })?;

    if let Some(secret) = request.field("client_secret") {
        return match client.secrets.iter().any(|known| known == secret) {
            true => Ok(()),
            false => Err(EntraError::invalid_client(
                7000215,
                format!("Invalid client secret provided for app '{client_id}'."),
            )),
        };
    }
    let Some(assertion) = request.field("client_assertion") else {
        return Err(EntraError::new(
            400,
            "invalid_request",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ));
    };
    if request.field("client_assertion_type") != Some(JWT_BEARER) {
        return Err(EntraError::new(
            400,
            "invalid_request",
            50027,
            format!("client_assertion_type must be {JWT_BEARER}."),
        ));
    }
    check_assertion(assertion, client, request.url, now)
}

/// A JWT split into its decoded parts.
struct Jwt {
    header: Value,
    claims: Value,
    /// The header and claims as sent, joined by `.`: the signed input.
    signed: String,
    signature: Vec<u8>,
}

fn malformed(reason: &str) -> EntraError {
    EntraError::invalid_client(
        50027,
        format!("JWT token is invalid or malformed: {reason}."),
    )
}

fn decode_jwt(assertion: &str) -> Result<Jwt, EntraError> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(malformed("it does not have three parts"));
    };
    let json = |part: &str| -> Result<Value, EntraError> {
        let bytes = azure_core::base64::decode_url_safe(part)
            .map_err(|_| malformed("a part is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| malformed("a part is not JSON"))
    };
    Ok(Jwt {
        header: json(header)?,
        claims: json(claims)?,
        signed: format!("{header}.{claims}"),
        signature: azure_core::base64::decode_url_safe(signature)
            .map_err(|_| malformed("the signature is not base64url"))?,
    })
}

/// Decodes an `x5t` value, which azure_identity 1.0 writes in standard
/// base64 and RFC 7515 in base64url; both name the same thumbprint.
fn decode_thumbprint(x5t: &str) -> Option<Vec<u8>> {
    azure_core::base64::decode(x5t)
        .ok()
        .or_else(|| azure_core::base64::decode_url_safe(x5t).ok())
}

fn check_assertion(
    assertion: &str,
    client: &FakeClient,
    audience: &str,
    now: u64,
) -> Result<(), EntraError> {
    let jwt = decode_jwt(assertion)?;
    if jwt.header["alg"] != "RS256" {
        return Err(malformed("alg is not RS256"));
    }
    let thumbprint = jwt.header["x5t"]
        .as_str()
        .and_then(decode_thumbprint)
        .ok_or_else(|| malformed("the header has no x5t thumbprint"))?;
    let certificate = client
        .certificates
        .iter()
        .map(|der| X509::from_der(der).expect("a registered certificate parses"))
        .find(|certificate| {
            let digest = certificate.digest(MessageDigest::sha1()).expect("SHA-1");
            *digest == *thumbprint
        })
        .ok_or_else(|| {
            let hex: String = thumbprint.iter().map(|b| format!("{b:02X}")).collect();
            EntraError::invalid_client(
                700027,
                format!(
                    "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{hex}']"
                ),
            )
        })?;

    let public_key = certificate.public_key().expect("the certificate's key");
    let mut verifier =
        Verifier::new(MessageDigest::sha256(), &public_key).expect("an RS256 verifier");
    verifier
        .update(jwt.signed.as_bytes())
        .expect("hash the signed input");
    if !verifier.verify(&jwt.signature).unwrap_or(false) {
        return Err(EntraError::invalid_client(
            700027,
            "Client assertion contains an invalid signature. [Reason - The signature does not verify.]",
        ));
    }

    let claims = &jwt.claims;
    if claims["aud"] != audience {
        return Err(EntraError::invalid_client(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. Expected {audience}, got {}.",
                claims["aud"]
            ),
        ));
    }
    for claim in ["iss", "sub"] {
        if claims[claim] != client.client_id.as_str() {
            return Err(EntraError::invalid_client(
                700021,
                format!(
                    "Client assertion application identifier doesn't match 'client_id' parameter ({claim})."
                ),
            ));
        }
    }
    let exp = claims["exp"].as_u64().unwrap_or(0);
    let nbf = claims["nbf"].as_u64().unwrap_or(0);
    if exp <= now || nbf > now {
        return Err(EntraError::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {nbf} to {exp}."
            ),
        ));
    }
    Ok(())
}
