//! A throwaway certificate for tests, examples and local trials.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};

/// A self-signed ECDSA P-256 certificate for `localhost` (and 127.0.0.1),
/// valid from a day ago for a year, with its private key. Usable as a
/// server or a client certificate.
///
/// ```
/// let (cert, key) = tls_session_cache_openssl::self_signed_localhost()?;
/// assert!(cert.public_key()?.public_eq(&key));
/// # Ok::<(), openssl::error::ErrorStack>(())
/// ```
pub fn self_signed_localhost() -> Result<(X509, PKey<Private>), ErrorStack> {
    self_signed("localhost")
}

/// Like [`self_signed_localhost`], for another common name (also the
/// certificate's DNS name).
pub fn self_signed(common_name: &str) -> Result<(X509, PKey<Private>), ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    // A day back, so that clocks a little apart agree it is valid.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    b.set_not_before(Asn1Time::from_unix(now - 86_400)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(365)?.as_ref())?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()?,
    )?;
    let san = SubjectAlternativeName::new()
        .dns(common_name)
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build(), key))
}
