//! Certificates made at run time (rust-openssl) for TLS Redis tests: a CA,
//! a server certificate for `127.0.0.1` / `localhost`, a client
//! certificate, and a second, unrelated CA with its own server certificate
//! (a Redis the store must refuse).

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509NameBuilder};
use tempfile::TempDir;

use crate::error::Error;

/// One certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// A test PKI in a temporary directory (removed on drop).
#[derive(Debug)]
pub struct TestPki {
    /// The CA certificate the store should trust.
    pub ca: PathBuf,
    /// The server certificate, signed by [`ca`](Self::ca), for
    /// `IP:127.0.0.1` and `DNS:localhost`.
    pub server: CertFiles,
    /// A client certificate signed by [`ca`](Self::ca).
    pub client: CertFiles,
    /// Another CA, unrelated to [`ca`](Self::ca).
    pub other_ca: PathBuf,
    /// A server certificate for `127.0.0.1` signed by
    /// [`other_ca`](Self::other_ca): a Redis the store must refuse.
    pub other_server: CertFiles,
    dir: TempDir,
}

struct Issued {
    cert: X509,
    key: PKey<Private>,
}

fn key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn certificate(
    cn: &str,
    issuer: Option<&Issued>,
    ca: bool,
    sans: &[&str],
    client: bool,
) -> Result<Issued, ErrorStack> {
    let key = key()?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))?;
    b.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(2)?);
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
    } else {
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        let mut eku = ExtendedKeyUsage::new();
        eku.server_auth();
        if client {
            eku.client_auth();
        }
        b.append_extension(eku.build()?)?;
        if !sans.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for s in sans {
                match s.strip_prefix("IP:") {
                    Some(ip) => san.ip(ip),
                    None => san.dns(s),
                };
            }
            let ext = san.build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))?;
            b.append_extension(ext)?;
        }
    }
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256())?;
    Ok(Issued {
        cert: b.build(),
        key,
    })
}

fn write(dir: &Path, stem: &str, issued: &Issued) -> Result<CertFiles, Error> {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, issued.cert.to_pem().map_err(Error::Pki)?)?;
    std::fs::write(
        &key,
        issued.key.private_key_to_pem_pkcs8().map_err(Error::Pki)?,
    )?;
    Ok(CertFiles { cert, key })
}

impl TestPki {
    /// Makes the CAs and certificates and writes them to a temporary directory.
    pub fn generate() -> Result<TestPki, Error> {
        let dir = tempfile::Builder::new()
            .prefix("tls-session-cache-pki-")
            .tempdir()?;
        let sans = ["IP:127.0.0.1", "localhost"];
        let ca = certificate("test redis CA", None, true, &[], false).map_err(Error::Pki)?;
        let server = certificate("redis", Some(&ca), false, &sans, false).map_err(Error::Pki)?;
        let client =
            certificate("session cache", Some(&ca), false, &[], true).map_err(Error::Pki)?;
        let other = certificate("another CA", None, true, &[], false).map_err(Error::Pki)?;
        let other_server =
            certificate("redis", Some(&other), false, &sans, false).map_err(Error::Pki)?;
        let ca_files = write(dir.path(), "ca", &ca)?;
        let other_files = write(dir.path(), "other-ca", &other)?;
        Ok(TestPki {
            ca: ca_files.cert,
            server: write(dir.path(), "server", &server)?,
            client: write(dir.path(), "client", &client)?,
            other_ca: other_files.cert,
            other_server: write(dir.path(), "other-server", &other_server)?,
            dir,
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
