//! Reads the client certificate of an Entra app registration for
//! azure_identity's `ClientCertificateCredential`, which takes PKCS#12
//! bytes with an RSA key and signs its client assertions with RS256.
//!
//! Two file forms are read, the two that `AZURE_CLIENT_CERTIFICATE_PATH`
//! takes in the Azure SDKs: PKCS#12 (`.pfx`, `.p12`), and PEM containing the
//! certificate and its private key in one file. Either is checked (a key, a
//! certificate that matches it, RSA) and encoded again as one PKCS#12 in
//! memory. Errors name the file and never contain the password or the key.

use std::fmt;
use std::path::{Path, PathBuf};

use azure_core::credentials::SecretBytes;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{Id, PKey, Private};
use openssl::stack::Stack;
use openssl::x509::X509;

/// The variable that names the certificate file when the config does not.
pub const PATH_VARIABLE: &str = "AZURE_CLIENT_CERTIFICATE_PATH";

/// The variable that contains the certificate file's password.
pub const PASSWORD_VARIABLE: &str = "AZURE_CLIENT_CERTIFICATE_PASSWORD";

/// How to turn a certificate and key into a PKCS#12 file, for messages.
const CONVERT_HINT: &str = "`openssl pkcs12 -export -in cert.pem -inkey key.pem -out cert.pfx` \
                            writes a PKCS#12 file from a PEM certificate and key";

/// A client certificate that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file does not exist.
    #[error(
        "client certificate {}: the file is not found; set certificate_path in the tenant's \
         config or AZURE_CLIENT_CERTIFICATE_PATH to a PKCS#12 (.pfx, .p12) or PEM file",
        path.display()
    )]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("client certificate {}: cannot read it: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is neither PKCS#12 nor PEM.
    #[error(
        "client certificate {}: the file is neither PKCS#12 (.pfx, .p12) nor PEM; {CONVERT_HINT}",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The password is wrong, or missing for an encrypted file.
    #[error(
        "client certificate {}: cannot decrypt it: {}",
        path.display(),
        password_hint(*.password_set)
    )]
    WrongPassword {
        /// The file.
        path: PathBuf,
        /// Whether `AZURE_CLIENT_CERTIFICATE_PASSWORD` was set.
        password_set: bool,
    },
    /// OpenSSL cannot read the file for another reason.
    #[error(
        "client certificate {}: OpenSSL cannot read it ({detail}); a PKCS#12 file with \
         legacy encryption (RC2) needs exporting again with `openssl pkcs12 -export`",
        path.display()
    )]
    Unparsable {
        /// The file.
        path: PathBuf,
        /// OpenSSL's reasons.
        detail: String,
    },
    /// The file contains no private key.
    #[error(
        "client certificate {}: the file contains no private key; it needs the certificate and \
         its private key. {CONVERT_HINT}",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The file contains no certificate.
    #[error(
        "client certificate {}: the file contains no certificate; it needs the certificate and \
         its private key. {CONVERT_HINT}",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// No certificate in the file matches its private key.
    #[error(
        "client certificate {}: no certificate in the file matches its private key; put the \
         app registration's certificate and its own key in the file",
        path.display()
    )]
    KeyMismatch {
        /// The file.
        path: PathBuf,
    },
    /// The key is not RSA.
    #[error(
        "client certificate {}: the private key is {algorithm}, but azure_identity 1.0 signs \
         client assertions with RS256 only; upload an RSA certificate to the app registration",
        path.display()
    )]
    NotRsa {
        /// The file.
        path: PathBuf,
        /// The key's algorithm, such as `EC`.
        algorithm: String,
    },
    /// OpenSSL failed to encode the key and certificate again.
    #[error("client certificate {}: cannot encode it as PKCS#12: {detail}", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// OpenSSL's reasons.
        detail: String,
    },
}

fn password_hint(password_set: bool) -> &'static str {
    if password_set {
        "the password in AZURE_CLIENT_CERTIFICATE_PASSWORD is wrong; set it to the file's password"
    } else {
        "the file is encrypted and AZURE_CLIENT_CERTIFICATE_PASSWORD is not set; set it to the \
         file's password"
    }
}

/// A checked client certificate, encoded as PKCS#12 with an empty password.
pub struct ClientCertificate {
    pkcs12: Vec<u8>,
    thumbprint: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientCertificate")
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Returns the certificate's SHA-1 thumbprint in uppercase hex, the
    /// form the Azure portal lists an app registration's certificates by.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Returns the PKCS#12 bytes for `ClientCertificateCredential::new`,
    /// which opens them with an empty password.
    pub fn into_pkcs12(self) -> SecretBytes {
        SecretBytes::new(self.pkcs12)
    }
}

/// The parts of a certificate file.
struct Parts {
    key: PKey<Private>,
    certificate: X509,
    chain: Vec<X509>,
}

/// Reads and checks a PKCS#12 or PEM certificate file; `password` opens an
/// encrypted PKCS#12 file or PEM key.
pub fn load(path: &Path, password: Option<&str>) -> Result<ClientCertificate, CertificateError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CertificateError::NotFound {
            path: path.to_path_buf(),
        },
        _ => CertificateError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let parts = if is_pem(&bytes) {
        read_pem(path, &bytes, password)?
    } else {
        read_pkcs12(path, &bytes, password)?
    };
    encode(path, parts)
}

/// Returns true for text with a PEM block. PKCS#12 is binary DER.
fn is_pem(bytes: &[u8]) -> bool {
    bytes
        .windows(b"-----BEGIN ".len())
        .any(|window| window == b"-----BEGIN ")
}

fn read_pkcs12(
    path: &Path,
    bytes: &[u8],
    password: Option<&str>,
) -> Result<Parts, CertificateError> {
    let pkcs12 = Pkcs12::from_der(bytes).map_err(|_| CertificateError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let parsed = pkcs12.parse2(password.unwrap_or("")).map_err(|errors| {
        // OpenSSL 3 reports a wrong password as a failed MAC check.
        if reasons(&errors).contains("mac verify failure") {
            CertificateError::WrongPassword {
                path: path.to_path_buf(),
                password_set: password.is_some_and(|password| !password.is_empty()),
            }
        } else {
            CertificateError::Unparsable {
                path: path.to_path_buf(),
                detail: reasons(&errors),
            }
        }
    })?;
    let key = parsed.pkey.ok_or_else(|| CertificateError::NoPrivateKey {
        path: path.to_path_buf(),
    })?;
    let certificate = parsed.cert.ok_or_else(|| CertificateError::NoCertificate {
        path: path.to_path_buf(),
    })?;
    if !certificate_matches(&certificate, &key) {
        return Err(CertificateError::KeyMismatch {
            path: path.to_path_buf(),
        });
    }
    let chain = parsed.ca.map(|stack| stack.into_iter().collect());
    Ok(Parts {
        key,
        certificate,
        chain: chain.unwrap_or_default(),
    })
}

/// Reads a PEM file's private key and certificates. The certificate that
/// matches the key is the client certificate; the others form its chain.
fn read_pem(path: &Path, bytes: &[u8], password: Option<&str>) -> Result<Parts, CertificateError> {
    let mut encrypted = false;
    // The callback runs only for an encrypted key. It is always given, so
    // that OpenSSL never prompts on the terminal for a password.
    let key = PKey::private_key_from_pem_callback(bytes, |buffer| {
        encrypted = true;
        let password = password.unwrap_or("").as_bytes();
        if password.len() > buffer.len() {
            return Ok(0);
        }
        buffer[..password.len()].copy_from_slice(password);
        Ok(password.len())
    });
    let key = match key {
        Ok(key) => key,
        Err(_) if encrypted => {
            return Err(CertificateError::WrongPassword {
                path: path.to_path_buf(),
                password_set: password.is_some_and(|password| !password.is_empty()),
            });
        }
        Err(_) => {
            return Err(CertificateError::NoPrivateKey {
                path: path.to_path_buf(),
            });
        }
    };

    let certificates = X509::stack_from_pem(bytes).unwrap_or_default();
    if certificates.is_empty() {
        return Err(CertificateError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let Some(position) = certificates
        .iter()
        .position(|certificate| certificate_matches(certificate, &key))
    else {
        return Err(CertificateError::KeyMismatch {
            path: path.to_path_buf(),
        });
    };
    let mut chain = certificates;
    let certificate = chain.remove(position);
    Ok(Parts {
        key,
        certificate,
        chain,
    })
}

fn certificate_matches(certificate: &X509, key: &PKey<Private>) -> bool {
    certificate
        .public_key()
        .is_ok_and(|public| public.public_eq(key))
}

/// Checks the key's algorithm and encodes the parts as PKCS#12.
fn encode(path: &Path, parts: Parts) -> Result<ClientCertificate, CertificateError> {
    if parts.key.id() != Id::RSA {
        return Err(CertificateError::NotRsa {
            path: path.to_path_buf(),
            algorithm: algorithm_name(parts.key.id()),
        });
    }
    let failed = |errors: ErrorStack| CertificateError::Encode {
        path: path.to_path_buf(),
        detail: reasons(&errors),
    };

    let thumbprint = parts
        .certificate
        .digest(MessageDigest::sha1())
        .map_err(failed)?;
    let thumbprint = thumbprint
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();

    let mut builder = Pkcs12::builder();
    builder.pkey(&parts.key).cert(&parts.certificate);
    if !parts.chain.is_empty() {
        let mut chain = Stack::new().map_err(failed)?;
        for certificate in parts.chain {
            chain.push(certificate).map_err(failed)?;
        }
        builder.ca(chain);
    }
    let pkcs12 = builder.build2("").and_then(|pkcs12| pkcs12.to_der());
    Ok(ClientCertificate {
        pkcs12: pkcs12.map_err(failed)?,
        thumbprint,
    })
}

fn algorithm_name(id: Id) -> String {
    match id {
        Id::EC => "EC".to_string(),
        Id::DSA => "DSA".to_string(),
        Id::ED25519 => "Ed25519".to_string(),
        Id::ED448 => "Ed448".to_string(),
        other => format!("of OpenSSL type {}", other.as_raw()),
    }
}

/// Joins OpenSSL's reason strings, which name no key material.
fn reasons(errors: &ErrorStack) -> String {
    let reasons: Vec<&str> = errors
        .errors()
        .iter()
        .filter_map(|error| error.reason())
        .collect();
    if reasons.is_empty() {
        "no reason given".to_string()
    } else {
        reasons.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use azure_identity::{ClientCertificateCredential, ClientCertificateCredentialOptions};
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::rsa::Rsa;
    use openssl::symm::Cipher;
    use openssl::x509::X509NameBuilder;

    const TENANT_ID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT_ID: &str = "00000000-0000-4000-8000-000000000001";

    fn rsa_key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).expect("generate an RSA key")).expect("wrap the key")
    }

    /// Builds a self-signed certificate for a key, as an app registration's
    /// certificate usually is.
    fn self_signed(key: &PKey<Private>, name: &str) -> X509 {
        let mut subject = X509NameBuilder::new().expect("name builder");
        subject
            .append_entry_by_nid(Nid::COMMONNAME, name)
            .expect("common name");
        let subject = subject.build();
        let mut builder = X509::builder().expect("certificate builder");
        builder.set_version(2).expect("version");
        let serial = BigNum::from_u32(1).and_then(|serial| serial.to_asn1_integer());
        builder
            .set_serial_number(&serial.expect("serial"))
            .expect("set serial");
        builder.set_subject_name(&subject).expect("subject");
        builder.set_issuer_name(&subject).expect("issuer");
        builder.set_pubkey(key).expect("public key");
        builder
            .set_not_before(&Asn1Time::days_from_now(0).expect("time"))
            .expect("not before");
        builder
            .set_not_after(&Asn1Time::days_from_now(30).expect("time"))
            .expect("not after");
        builder
            .sign(key, MessageDigest::sha256())
            .expect("sign the certificate");
        builder.build()
    }

    fn write(folder: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = folder.join(name);
        std::fs::write(&path, bytes).expect("write the file");
        path
    }

    fn pkcs12(key: &PKey<Private>, certificate: &X509, password: &str) -> Vec<u8> {
        let mut builder = Pkcs12::builder();
        builder.pkey(key).cert(certificate);
        let pkcs12 = builder.build2(password).expect("build PKCS#12");
        pkcs12.to_der().expect("encode PKCS#12")
    }

    fn pem(key: &PKey<Private>, certificate: &X509) -> Vec<u8> {
        let mut bytes = certificate.to_pem().expect("certificate PEM");
        bytes.extend(key.private_key_to_pem_pkcs8().expect("key PEM"));
        bytes
    }

    fn expected_thumbprint(certificate: &X509) -> String {
        let digest = certificate.digest(MessageDigest::sha1()).expect("digest");
        digest.iter().map(|byte| format!("{byte:02X}")).collect()
    }

    /// Asserts that azure_identity accepts the encoded certificate. Building
    /// the credential sends no request.
    fn assert_credential_accepts(certificate: ClientCertificate) {
        let created = ClientCertificateCredential::new(
            TENANT_ID.to_string(),
            CLIENT_ID.to_string(),
            certificate.into_pkcs12(),
            Some(ClientCertificateCredentialOptions::default()),
        );
        assert!(created.is_ok(), "{:?}", created.err());
    }

    #[test]
    fn pkcs12_with_password_loads() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let key = rsa_key();
        let certificate = self_signed(&key, "idrift-test");
        let path = write(
            folder.path(),
            "client.pfx",
            &pkcs12(&key, &certificate, "pa55"),
        );

        let loaded = load(&path, Some("pa55")).expect("load the certificate");
        assert_eq!(loaded.thumbprint(), expected_thumbprint(&certificate));
        assert_credential_accepts(loaded);
    }

    #[test]
    fn pkcs12_wrong_password_names_variable() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let key = rsa_key();
        let certificate = self_signed(&key, "idrift-test");
        let path = write(
            folder.path(),
            "client.pfx",
            &pkcs12(&key, &certificate, "pa55"),
        );

        for (password, expected) in [
            (
                Some("Wr0ng-pa55word"),
                "AZURE_CLIENT_CERTIFICATE_PASSWORD is wrong",
            ),
            (None, "AZURE_CLIENT_CERTIFICATE_PASSWORD is not set"),
        ] {
            let error = load(&path, password).expect_err("a wrong password fails");
            assert!(
                matches!(error, CertificateError::WrongPassword { .. }),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("client.pfx"), "{message}");
            assert!(!message.contains("Wr0ng-pa55word"), "{message}");
            assert!(!message.contains("pa55"), "{message}");
        }
    }

    #[test]
    fn pem_certificate_and_key_convert() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let key = rsa_key();
        let certificate = self_signed(&key, "idrift-test");
        let other = self_signed(&rsa_key(), "idrift-chain");
        // The chain certificate comes first, so the match is by key, not order.
        let mut bytes = other.to_pem().expect("PEM");
        bytes.extend(pem(&key, &certificate));
        let path = write(folder.path(), "client.pem", &bytes);

        let loaded = load(&path, None).expect("load the PEM file");
        assert_eq!(loaded.thumbprint(), expected_thumbprint(&certificate));
        assert_credential_accepts(loaded);
    }

    #[test]
    fn encrypted_pem_key_needs_password() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let key = rsa_key();
        let certificate = self_signed(&key, "idrift-test");
        let mut bytes = certificate.to_pem().expect("PEM");
        let encrypted = key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"pa55")
            .expect("encrypted key PEM");
        bytes.extend(encrypted);
        let path = write(folder.path(), "client.pem", &bytes);

        let missing = load(&path, None).expect_err("no password");
        assert!(missing.to_string().contains("is not set"), "{missing}");
        let wrong = load(&path, Some("wrong")).expect_err("a wrong password");
        assert!(wrong.to_string().contains("is wrong"), "{wrong}");
        let loaded = load(&path, Some("pa55")).expect("the right password");
        assert_eq!(loaded.thumbprint(), expected_thumbprint(&certificate));
    }

    #[test]
    fn unusable_files_are_named() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let key = rsa_key();
        let certificate = self_signed(&key, "idrift-test");
        let stranger = self_signed(&rsa_key(), "idrift-stranger");
        let certificate_only = certificate.to_pem().expect("PEM");
        let key_only = key.private_key_to_pem_pkcs8().expect("PEM");
        let mut mismatched = stranger.to_pem().expect("PEM");
        mismatched.extend(&key_only);

        let cases: [(&str, &[u8], &str); 5] = [
            (
                "random.pfx",
                b"\x30\x82\x01\x00not a certificate",
                "neither PKCS#12",
            ),
            ("cert-only.pem", &certificate_only, "no private key"),
            ("key-only.pem", &key_only, "no certificate"),
            ("mismatched.pem", &mismatched, "matches its private key"),
            ("empty.pfx", b"", "neither PKCS#12"),
        ];
        for (name, bytes, expected) in cases {
            let path = write(folder.path(), name, bytes);
            let message = load(&path, None).expect_err(name).to_string();
            assert!(message.contains(name), "{message}");
            assert!(message.contains(expected), "{name}: {message}");
        }

        let missing = folder.path().join("absent.pfx");
        let message = load(&missing, None).expect_err("missing").to_string();
        assert!(message.contains("absent.pfx"), "{message}");
        assert!(message.contains("not found"), "{message}");
        assert!(
            message.contains("AZURE_CLIENT_CERTIFICATE_PATH"),
            "{message}"
        );
    }

    #[test]
    fn ec_key_is_rejected() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
        let key = PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("wrap");
        let certificate = self_signed(&key, "idrift-ec");
        let path = write(folder.path(), "ec.pem", &pem(&key, &certificate));

        let message = load(&path, None).expect_err("EC").to_string();
        assert!(message.contains("is EC"), "{message}");
        assert!(message.contains("RS256"), "{message}");
    }
}
