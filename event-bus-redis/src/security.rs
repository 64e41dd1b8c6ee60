//! Credentials and TLS: the builder's settings for them, the one [`redis::Client`] every
//! connection of a bus is opened from (so the publish connection, the blocking readers and
//! every reconnect authenticate and encrypt the same way), and keeping secrets out of `Debug`,
//! error messages and logs.
//!
//! Where a secret could surface, and why it does not:
//! - the URL: kept as a [`RedisUrl`], whose `Debug` and every message show it with the
//!   password replaced by `***` ([`redact_url`]);
//! - passwords and private keys: kept as [`Secret`]s, whose `Debug` is `"<redacted>"`;
//! - the redis crate's errors: its `ConnectionInfo` and `TlsCertificates` redact themselves, and
//!   the password is only ever sent in `AUTH`/`HELLO`, whose failures it reports with fixed
//!   texts; errors that reach a start error still go through [`scrub`], which replaces an
//!   error that names a secret with a redacted copy.

use event_bus_core::{BoxError, StartError};
use redis::{Client, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::config::RedisBusBuilder;

/// A secret (a password, a private key): its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret<T = String>(T);

impl<T> Secret<T> {
    fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// The Redis URL; its `Debug` shows it without its password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl(String);

impl RedisUrl {
    pub(crate) fn new(url: String) -> Self {
        Self(url)
    }

    /// The URL as a message may show it (see [`redact_url`]).
    pub(crate) fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.redacted(), f)
    }
}

/// `url` as a log line or a message may show it: the password of its user info
/// (`user:password@`) and any `pass=` query value (the `redis+unix://` form) replaced by `***`.
/// The bus shows URLs this way; use it for your own logs of a Redis URL.
///
/// ```
/// use event_bus_redis::redact_url;
///
/// assert_eq!(
///     redact_url("redis://orders:s3cret@redis.internal:6379/0"),
///     "redis://orders:***@redis.internal:6379/0"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // The authority ends at the first `/`, `?` or `#`; its user info at its last `@`.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = redact_query(tail);
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key @ ("pass" | "password"), _)) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{path}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// A user name and password for `AUTH`, given to the builder.
#[derive(Debug, Clone)]
struct Credentials {
    /// `None`: the `default` user (`requirepass`).
    username: Option<String>,
    password: Secret,
}

/// The builder's security settings: credentials (overriding the URL's) and TLS certificates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    credentials: Option<Credentials>,
    #[cfg(feature = "tls")]
    tls: TlsSettings,
}

/// Certificates for `rediss://` connections.
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
struct TlsSettings {
    /// PEM; replaces the system's root certificates when set.
    roots: Option<Vec<u8>>,
    /// The client certificate chain (PEM) and its private key (PEM), for mutual TLS.
    client: Option<(Vec<u8>, Secret<Vec<u8>>)>,
}

/// Certificates are public, but long: their sizes only. The key is a [`Secret`].
#[cfg(feature = "tls")]
impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pem = |bytes: &Vec<u8>| format!("<{} bytes of PEM>", bytes.len());
        f.debug_struct("TlsSettings")
            .field("roots", &self.roots.as_ref().map(pem))
            .field(
                "client",
                &self.client.as_ref().map(|(chain, key)| (pem(chain), key)),
            )
            .finish()
    }
}

#[cfg(feature = "tls")]
impl TlsSettings {
    fn is_set(&self) -> bool {
        self.roots.is_some() || self.client.is_some()
    }
}

/// The password in the URL's user info, as written (percent-encoded or not).
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (user_info, _) = authority.rsplit_once('@')?;
    user_info.split_once(':').map(|(_, password)| password)
}

impl Security {
    /// Every secret a message must not contain: the builder's, the URL's password as written,
    /// and the password the client will send (`info`, decoded).
    pub(crate) fn secrets<'a>(
        &'a self,
        url: Option<&'a RedisUrl>,
        info: Option<&'a ConnectionInfo>,
    ) -> Vec<&'a str> {
        let mut out = Vec::new();
        if let Some(password) = url.and_then(|u| url_password(&u.0)) {
            out.push(password);
        }
        if let Some(c) = &self.credentials {
            out.push(c.password.expose());
        }
        #[cfg(feature = "tls")]
        if let Some((_, key)) = &self.tls.client {
            out.extend(std::str::from_utf8(key.expose()).ok());
        }
        if let Some(password) = info.and_then(|i| i.redis_settings().password()) {
            out.push(password);
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// The error as a start error may carry it: `e` itself, unless its message or `Debug` contains
/// a secret, then a copy of its message with each secret replaced by `***`.
pub(crate) fn scrub(e: redis::RedisError, secrets: &[&str]) -> BoxError {
    let display = e.to_string();
    let debug = format!("{e:?}");
    if secrets
        .iter()
        .any(|s| display.contains(s) || debug.contains(s))
    {
        let mut text = display;
        for secret in secrets {
            text = text.replace(secret, "***");
        }
        text.into()
    } else {
        Box::new(e)
    }
}

/// Whether the URL asks for TLS.
fn is_tls_url(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
}

/// The client every connection of the bus is opened from: the URL, with the builder's
/// credentials (if any) in place of the URL's, and the builder's TLS certificates.
pub(crate) fn client(url: &RedisUrl, security: &Security) -> Result<Client, StartError> {
    let shown = url.redacted();
    if is_tls_url(&url.0) && !cfg!(feature = "tls") {
        return Err(StartError::Config(format!(
            "{shown} asks for TLS, which needs the `tls` feature of event-bus-redis \
             (event-bus-redis = {{ version = \"...\", features = [\"tls\"] }})"
        )));
    }
    let secrets = security.secrets(Some(url), None);
    let mut info = url
        .0
        .as_str()
        .into_connection_info()
        .map_err(|e| StartError::Transport {
            what: format!("a client for {shown}"),
            source: scrub(e, &secrets),
        })?;
    if let Some(c) = &security.credentials {
        let old = info.redis_settings();
        let mut settings = RedisConnectionInfo::default()
            .set_db(old.db())
            .set_protocol(old.protocol())
            .set_password(c.password.expose());
        if let Some(user) = &c.username {
            settings = settings.set_username(user);
        }
        info = info.set_redis_settings(settings);
    }
    #[cfg(feature = "tls")]
    {
        if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            // rustls needs a crypto provider. `Err` means the application installed one
            // first: it is kept, nothing failed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if security.tls.is_set() {
            return tls_client(info, &security.tls, &shown, &secrets);
        }
    }
    Client::open(info).map_err(|e| StartError::Transport {
        what: format!("a client for {shown}"),
        source: scrub(e, &secrets),
    })
}

#[cfg(feature = "tls")]
fn tls_client(
    info: ConnectionInfo,
    tls: &TlsSettings,
    shown: &str,
    secrets: &[&str],
) -> Result<Client, StartError> {
    if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
        return Err(StartError::Config(format!(
            "TLS certificates were given to the builder, but {shown} is not a TLS URL: \
             use `rediss://`"
        )));
    }
    const BEGIN_CERT: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let has_cert = |pem: &[u8]| pem.windows(BEGIN_CERT.len()).any(|w| w == BEGIN_CERT);
    if let Some(roots) = &tls.roots {
        if !has_cert(roots) {
            return Err(StartError::Config(
                "`tls_root_certificates`: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
                    .to_owned(),
            ));
        }
    }
    if let Some((chain, _)) = &tls.client {
        if !has_cert(chain) {
            return Err(StartError::Config(
                "`tls_client_certificate`: no PEM certificate (-----BEGIN CERTIFICATE-----) in \
                 the certificate chain"
                    .to_owned(),
            ));
        }
    }
    Client::build_with_tls(info, certificates(tls)).map_err(|e| {
        StartError::Config(format!(
            "the TLS certificates for {shown}: {}",
            scrub(e, secrets)
        ))
    })
}

impl Security {
    /// The builder's TLS certificates, if it was given any (a cluster client needs them for
    /// the nodes it discovers).
    #[cfg(feature = "tls")]
    pub(crate) fn tls_certificates(&self) -> Option<redis::TlsCertificates> {
        self.tls.is_set().then(|| certificates(&self.tls))
    }
}

/// The builder's certificates as redis-rs takes them.
#[cfg(feature = "tls")]
fn certificates(tls: &TlsSettings) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: tls
            .client
            .as_ref()
            .map(|(chain, key)| redis::ClientTlsConfig {
                client_cert: chain.clone(),
                client_key: key.expose().clone(),
            }),
        root_cert: tls.roots.clone(),
    }
}

/// Credentials and TLS.
impl RedisBusBuilder {
    /// Authenticates every connection as this Redis ACL user (`AUTH username password`), so the
    /// password need not be in the URL. Overrides the URL's `user:password@`. The password never
    /// appears in `Debug` output, errors or logs.
    ///
    /// ```no_run
    /// use event_bus_redis::RedisBus;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let password = std::env::var("REDIS_PASSWORD")?;
    /// let bus = RedisBus::builder()
    ///     .url("redis://redis.internal:6379")
    ///     .credentials("orders-service", password)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.security.credentials = Some(Credentials {
            username: Some(username.into()),
            password: Secret(password.into()),
        });
        self
    }

    /// Authenticates every connection with this password as the `default` user
    /// (`requirepass`; `AUTH password`). Overrides the URL's `:password@`. See
    /// [`credentials`](Self::credentials) for an ACL user.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.security.credentials = Some(Credentials {
            username: None,
            password: Secret(password.into()),
        });
        self
    }

    /// Trusts these root certificates (PEM, one or more) for `rediss://` connections, instead
    /// of the system's: the CA of a private or managed Redis. Needs the `tls` feature.
    ///
    /// ```no_run
    /// use event_bus_redis::RedisBus;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis-tls/ca.pem")?;
    /// let bus = RedisBus::builder()
    ///     .url("rediss://redis.internal:6380")
    ///     .tls_root_certificates(ca)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.security.tls.roots = Some(pem.into());
        self
    }

    /// Presents this client certificate (PEM chain) with its private key (PEM) on `rediss://`
    /// connections: mutual TLS, for a server run with `tls-auth-clients yes`. The key never
    /// appears in `Debug` output, errors or logs. Needs the `tls` feature.
    ///
    /// ```no_run
    /// use event_bus_redis::RedisBus;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = RedisBus::builder()
    ///     .url("rediss://redis.internal:6380")
    ///     .tls_root_certificates(std::fs::read("/etc/redis-tls/ca.pem")?)
    ///     .tls_client_certificate(
    ///         std::fs::read("/etc/redis-tls/client.pem")?,
    ///         std::fs::read("/etc/redis-tls/client.key")?,
    ///     )
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_client_certificate(
        mut self,
        certificate_chain: impl Into<Vec<u8>>,
        private_key: impl Into<Vec<u8>>,
    ) -> Self {
        self.config.security.tls.client =
            Some((certificate_chain.into(), Secret(private_key.into())));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("redis://user:s3cret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(redact_url("rediss://:s3cret@host"), "rediss://:***@host");
        assert_eq!(redact_url("redis://user@host"), "redis://user@host");
        assert_eq!(
            redact_url("redis://u:p@ss:w@rd@host:1?protocol=3#x"),
            "redis://u:***@host:1?protocol=3#x"
        );
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?db=1&pass=s3cret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
        assert_eq!(redact_url("host:6379"), "host:6379");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let builder = RedisBusBuilder::default()
            .url("redis://u:s3cret-url@host")
            .credentials("u", "s3cret-builder");
        let debug = format!("{builder:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("redis://u:***@host"), "{debug}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_tls_url_without_the_feature_says_which_feature() {
        let url = RedisUrl::new("rediss://u:s3cret@host:6380".to_owned());
        match client(&url, &Security::default()) {
            Err(StartError::Config(message)) => {
                assert!(message.contains("`tls` feature"), "{message}");
                assert!(!message.contains("s3cret"), "{message}");
            }
            other => panic!("expected a configuration error: {other:?}"),
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn certificates_need_a_tls_url() {
        let security = Security {
            credentials: None,
            tls: TlsSettings {
                roots: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
                client: None,
            },
        };
        let url = RedisUrl::new("redis://u:s3cret@host:6379".to_owned());
        match client(&url, &security) {
            Err(StartError::Config(message)) => {
                assert!(message.contains("rediss://"), "{message}");
                assert!(!message.contains("s3cret"), "{message}");
            }
            other => panic!("expected a configuration error: {other:?}"),
        }
    }

    #[test]
    fn errors_naming_a_secret_are_scrubbed() {
        let e = redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "bad",
            "around s3cret here".to_owned(),
        ));
        let scrubbed = scrub(e, &["s3cret"]);
        assert!(!scrubbed.to_string().contains("s3cret"));
        assert!(!format!("{scrubbed:?}").contains("s3cret"));
        assert!(scrubbed.to_string().contains("***"));
    }
}
