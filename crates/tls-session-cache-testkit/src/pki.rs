//! Certificates made at run time with the `openssl` command-line program
//! for TLS Redis tests: a CA, a server certificate for `127.0.0.1` /
//! `localhost`, a client certificate, and a second, unrelated CA with its
//! own server certificate (a Redis the store must refuse).
//!
//! The program, not the `openssl` crate, so that nothing depending on the
//! test kit (xtask in particular) needs libssl-dev and pkg-config to
//! compile: xtask installs those itself.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::error::Error;

/// How long the certificates are valid, in days from now.
const DAYS: &str = "2";

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

/// What one certificate is for.
enum Role<'a> {
    /// A self-signed CA.
    Ca,
    /// A server certificate for these subjectAltName entries
    /// (`IP:…`/`DNS:…`), signed by a CA.
    Server { sans: &'a str },
    /// A client (and server) certificate, signed by a CA.
    Client,
}

/// Runs `openssl ARGS`; a failure carries the command line and its stderr.
fn openssl(args: &[&str]) -> Result<(), Error> {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound => Error::OpensslNotInstalled,
            _ => Error::Spawn {
                program: "openssl",
                source,
            },
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Pki {
            command: format!("openssl {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// A random positive 63-bit serial number, as `openssl -set_serial` takes
/// it (`RandomState` is randomly seeded per process and per instance).
fn serial() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("0x{:x}", (h.finish() >> 1).max(1))
}

fn path_str(p: &Path) -> Result<&str, Error> {
    p.to_str().ok_or_else(|| {
        Error::Io(std::io::Error::new(
            ErrorKind::InvalidInput,
            format!("temporary path is not UTF-8: {}", p.display()),
        ))
    })
}

/// Makes `STEM.key` (P-256, PKCS#8) and `STEM.pem`, with subject
/// `CN=cn`, self-signed for [`Role::Ca`], otherwise signed by `issuer`.
fn certificate(
    dir: &Path,
    stem: &str,
    cn: &str,
    role: Role<'_>,
    issuer: Option<&CertFiles>,
) -> Result<CertFiles, Error> {
    let files = CertFiles {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    let conf = dir.join(format!("{stem}.cnf"));
    let csr = dir.join(format!("{stem}.csr"));
    // Same extensions as a CA / leaf made by hand: critical basic
    // constraints and key usage; leaves get EKU and (servers) SANs.
    let ext = match role {
        Role::Ca => "basicConstraints = critical,CA:TRUE\n\
                     keyUsage = critical,keyCertSign,cRLSign\n"
            .to_string(),
        Role::Server { sans } => format!(
            "basicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\n\
             subjectAltName = {sans}\n"
        ),
        Role::Client => "basicConstraints = critical,CA:FALSE\n\
                         keyUsage = critical,digitalSignature\n\
                         extendedKeyUsage = serverAuth,clientAuth\n"
            .to_string(),
    };
    // A self-contained config: nothing read from the system openssl.cnf.
    std::fs::write(
        &conf,
        format!(
            "[req]\nprompt = no\ndistinguished_name = dn\n\
             [dn]\nCN = {cn}\n[ext]\n{ext}"
        ),
    )?;
    let (conf_s, csr_s) = (path_str(&conf)?, path_str(&csr)?);
    let (cert_s, key_s) = (path_str(&files.cert)?, path_str(&files.key)?);
    let serial = serial();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key_s,
    ])?;
    openssl(&[
        "req", "-new", "-config", conf_s, "-key", key_s, "-out", csr_s,
    ])?;
    let mut sign = vec![
        "x509",
        "-req",
        "-in",
        csr_s,
        "-days",
        DAYS,
        "-sha256",
        "-set_serial",
        &serial,
        "-extfile",
        conf_s,
        "-extensions",
        "ext",
        "-out",
        cert_s,
    ];
    let (ca_cert, ca_key);
    match issuer {
        Some(ca) => {
            (ca_cert, ca_key) = (path_str(&ca.cert)?, path_str(&ca.key)?);
            sign.extend(["-CA", ca_cert, "-CAkey", ca_key]);
        }
        None => sign.extend(["-signkey", key_s]),
    }
    openssl(&sign)?;
    std::fs::remove_file(&csr)?;
    std::fs::remove_file(&conf)?;
    Ok(files)
}

impl TestPki {
    /// Makes the CAs and certificates (with the `openssl` program) and
    /// writes them to a temporary directory.
    ///
    /// A missing `openssl` program is [`Error::OpensslNotInstalled`], which
    /// says how to install it.
    pub fn generate() -> Result<TestPki, Error> {
        let dir = tempfile::Builder::new()
            .prefix("tls-session-cache-pki-")
            .tempdir()?;
        let d = dir.path();
        let sans = "IP:127.0.0.1,DNS:localhost";
        let ca = certificate(d, "ca", "test redis CA", Role::Ca, None)?;
        let server = certificate(d, "server", "redis", Role::Server { sans }, Some(&ca))?;
        let client = certificate(d, "client", "session cache", Role::Client, Some(&ca))?;
        let other = certificate(d, "other-ca", "another CA", Role::Ca, None)?;
        let other_server = certificate(
            d,
            "other-server",
            "redis",
            Role::Server { sans },
            Some(&other),
        )?;
        Ok(TestPki {
            ca: ca.cert,
            server,
            client,
            other_ca: other.cert,
            other_server,
            dir,
        })
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
