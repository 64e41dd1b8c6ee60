//! Certificates for TLS tests, made on the spot with `rcgen`: a private CA ([`Pki`]) and the
//! server and client certificates it signs, written where a private `redis-server` reads them
//! ([`Pki::server_tls`]).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::server::ServerTls;

/// A private certificate authority.
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

fn fail(what: &str, e: rcgen::Error) -> ! {
    panic!("cannot make {what}: {e}")
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("a CA", e));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap_or_else(|e| fail("a CA key", e));
        let cert = params.self_signed(&key).unwrap_or_else(|e| fail("a CA", e));
        Self {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate and its key (PEM), signed by this CA: for a server named `names`
    /// (DNS names or IP addresses), or for a client.
    pub fn leaf(&self, names: &[&str], client: bool) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap_or_else(|e| fail("a leaf", e));
        params
            .distinguished_name
            .push(DnType::CommonName, if client { "client" } else { "server" });
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap_or_else(|e| fail("a leaf key", e));
        let cert = params
            .signed_by(&key, &self.issuer)
            .unwrap_or_else(|e| fail("a leaf", e));
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a server certificate for `127.0.0.1` and `localhost` into `dir`, and returns
    /// the TLS settings of a [`crate::server::RedisServer`] that serves it (with a client
    /// certificate for mutual TLS; clients must present one when `auth_clients`).
    pub fn server_tls(&self, dir: &Path, auth_clients: bool) -> ServerTls {
        let (cert, key) = self.leaf(&["127.0.0.1", "localhost"], false);
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            if let Err(e) = std::fs::write(&path, text) {
                panic!("cannot write {}: {e}", path.display());
            }
            path
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        ServerTls {
            cert_file: write("server.pem", &cert),
            key_file: write("server.key", &key),
            ca_file: write("ca.pem", &self.ca_pem),
            ca_pem: self.ca_pem.clone(),
            client: self.leaf(&["client"], true),
            auth_clients,
        }
    }
}
