//! Certificates for tests, generated with OpenSSL at run time so that no
//! key is committed: a test certificate authority, a server certificate it
//! issues for `127.0.0.1`, and self-signed client certificates as Entra app
//! registrations hold them. Keys are RSA 2048, which azure_identity 1.0
//! needs for client certificates.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder};

/// A certificate and its private key.
pub struct KeyPair {
    /// The certificate.
    pub certificate: X509,
    /// Its RSA private key.
    pub key: PKey<Private>,
}

impl KeyPair {
    /// Encodes the pair as PKCS#12 with a password.
    pub fn pkcs12(&self, password: &str) -> Vec<u8> {
        let mut builder = Pkcs12::builder();
        builder.pkey(&self.key).cert(&self.certificate);
        let pkcs12 = builder.build2(password).expect("build PKCS#12");
        pkcs12.to_der().expect("encode PKCS#12")
    }

    /// Encodes the certificate and then the key as PEM, in one file's text.
    pub fn pem(&self) -> Vec<u8> {
        let mut text = self.certificate.to_pem().expect("certificate PEM");
        text.extend(self.key.private_key_to_pem_pkcs8().expect("key PEM"));
        text
    }

    /// Encodes the certificate and the key as PEM, the key encrypted with AES-256.
    pub fn pem_encrypted(&self, password: &str) -> Vec<u8> {
        let mut text = self.certificate.to_pem().expect("certificate PEM");
        let key = self
            .key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), password.as_bytes())
            .expect("encrypted key PEM");
        text.extend(key);
        text
    }

    /// Returns the PEM of the private key alone, to search output for leaks.
    pub fn key_pem(&self) -> String {
        let pem = self.key.private_key_to_pem_pkcs8().expect("key PEM");
        String::from_utf8(pem).expect("PEM is text")
    }

    /// Returns the SHA-1 thumbprint of the certificate in uppercase hex.
    pub fn thumbprint_hex(&self) -> String {
        self.thumbprint()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// Returns the SHA-1 digest of the certificate's DER encoding.
    pub fn thumbprint(&self) -> Vec<u8> {
        let digest = self.certificate.digest(MessageDigest::sha1());
        digest.expect("SHA-1 digest").to_vec()
    }

    /// Writes bytes to `folder/name` and returns the path.
    pub fn write(folder: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = folder.join(name);
        std::fs::write(&path, bytes).expect("write the certificate file");
        path
    }
}

/// The test certificate authority, the HTTPS server certificate it issued
/// for 127.0.0.1, and the CA's certificate in PEM for `SSL_CERT_FILE`.
pub struct TestAuthority {
    /// The CA's certificate and key.
    pub ca: KeyPair,
    /// The server's certificate (SAN IP 127.0.0.1) and key.
    pub server: KeyPair,
}

impl TestAuthority {
    /// Returns the CA certificate in PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.ca.certificate.to_pem().expect("CA PEM")
    }
}

/// The authority that [`super::tls_front::TlsFront`] serves with.
pub static AUTHORITY: LazyLock<TestAuthority> = LazyLock::new(|| new_authority("idrift test CA"));

/// Another authority, trusted by nobody, for tests of a wrong CA.
pub static OTHER_AUTHORITY: LazyLock<TestAuthority> =
    LazyLock::new(|| new_authority("idrift other test CA"));

/// The client certificate registered on the fake's app.
pub static CLIENT: LazyLock<KeyPair> = LazyLock::new(|| self_signed("idrift-test-client"));

/// A client certificate that no app registration has.
pub static STRANGER: LazyLock<KeyPair> = LazyLock::new(|| self_signed("idrift-test-stranger"));

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("generate an RSA key")).expect("wrap the key")
}

fn name(common_name: &str) -> X509Name {
    let mut builder = X509NameBuilder::new().expect("name builder");
    builder
        .append_entry_by_nid(Nid::COMMONNAME, common_name)
        .expect("common name");
    builder.build()
}

/// Starts a version 3 certificate valid from yesterday for 30 days.
fn builder(subject: &X509Name, key: &PKey<Private>, serial: u32) -> X509Builder {
    let mut builder = X509::builder().expect("certificate builder");
    builder.set_version(2).expect("version 3");
    let serial = BigNum::from_u32(serial).and_then(|number| number.to_asn1_integer());
    builder
        .set_serial_number(&serial.expect("serial"))
        .expect("set the serial");
    builder.set_subject_name(subject).expect("subject");
    builder.set_pubkey(key).expect("public key");
    let not_before = Asn1Time::from_unix(unix_now() - 86_400).expect("time");
    builder.set_not_before(&not_before).expect("not before");
    let not_after = Asn1Time::days_from_now(30).expect("time");
    builder.set_not_after(&not_after).expect("not after");
    builder
}

fn unix_now() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    elapsed.expect("the clock is after 1970").as_secs() as i64
}

/// Builds a self-signed client certificate.
pub fn self_signed(common_name: &str) -> KeyPair {
    let key = rsa_key();
    let subject = name(common_name);
    let mut builder = builder(&subject, &key, 1);
    builder.set_issuer_name(&subject).expect("issuer");
    builder
        .sign(&key, MessageDigest::sha256())
        .expect("sign the certificate");
    KeyPair {
        certificate: builder.build(),
        key,
    }
}

fn new_authority(common_name: &str) -> TestAuthority {
    let ca_key = rsa_key();
    let ca_name = name(common_name);
    let mut ca = builder(&ca_name, &ca_key, 1);
    ca.set_issuer_name(&ca_name).expect("issuer");
    let constraints = BasicConstraints::new().critical().ca().build();
    ca.append_extension(constraints.expect("basic constraints"))
        .expect("add basic constraints");
    let usage = KeyUsage::new()
        .critical()
        .key_cert_sign()
        .crl_sign()
        .build();
    ca.append_extension(usage.expect("key usage"))
        .expect("add key usage");
    ca.sign(&ca_key, MessageDigest::sha256())
        .expect("sign the CA certificate");
    let ca = KeyPair {
        certificate: ca.build(),
        key: ca_key,
    };

    let server_key = rsa_key();
    let mut server = builder(&name("127.0.0.1"), &server_key, 2);
    server
        .set_issuer_name(ca.certificate.subject_name())
        .expect("issuer");
    let context = server.x509v3_context(Some(&ca.certificate), None);
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&context);
    let san = san.expect("subject alternative name");
    server.append_extension(san).expect("add the SAN");
    let usage = ExtendedKeyUsage::new().server_auth().build();
    server
        .append_extension(usage.expect("extended key usage"))
        .expect("add extended key usage");
    server
        .sign(&ca.key, MessageDigest::sha256())
        .expect("sign the server certificate");
    TestAuthority {
        ca,
        server: KeyPair {
            certificate: server.build(),
            key: server_key,
        },
    }
}
