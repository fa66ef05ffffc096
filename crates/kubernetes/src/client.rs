//! A client for one cluster's API server: the endpoint and CA that `eks:DescribeCluster`
//! names, and a fresh token. TLS is verified against the cluster's own CA, always. Only a test
//! may point every cluster elsewhere (`KUBERNETES_API_URL`), and plain HTTP is accepted only
//! on a loopback address, which the log says.

use std::time::Duration;

use kube::config::AuthInfo;
use secrecy::SecretString;

use crate::token::Token;

/// How long one call may wait for the API server to connect or answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a cluster's API server is, and the CA its certificate chains to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://...eks.amazonaws.com`, or a test's loopback URL.
    pub url: String,
    /// `certificateAuthority.data` from DescribeCluster: base64 of the PEM. Required for https:
    /// the token goes to no server that the cluster's own CA did not sign for.
    pub ca_base64: Option<String>,
    /// Set by [`Endpoint::overridden`] (tests): the host need not be an EKS endpoint.
    pub test_override: bool,
}

/// Why no client could be made for a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the API endpoint {0:?} is not an https URL (plain http only on a loopback address)")]
    Endpoint(String),
    #[error("the cluster's certificate authority could not be read (DescribeCluster's certificateAuthority.data)")]
    Authority,
    #[error("DescribeCluster named no certificate authority: the token is sent to no server the cluster's own CA did not sign for (is the cluster still being created?)")]
    NoAuthority,
    #[error(
        "the API endpoint {0:?} is not an EKS endpoint (https://ID.xxx.REGION.eks.amazonaws.com)"
    )]
    NotEks(String),
    #[error("the Kubernetes client could not be built: {0}")]
    Client(#[from] kube::Error),
}

impl Endpoint {
    /// The test override (`KUBERNETES_API_URL`) in place of the cluster's own endpoint.
    pub fn overridden(self, test_url: Option<&str>) -> Self {
        match test_url {
            Some(url) => {
                tracing::warn!(
                    url,
                    "KUBERNETES_API_URL replaces the cluster's API endpoint (tests only)"
                );
                Self {
                    url: url.to_string(),
                    ca_base64: self.ca_base64,
                    test_override: true,
                }
            }
            None => self,
        }
    }
}

/// A client for `endpoint` that sends `token`.
pub fn connect(endpoint: &Endpoint, token: &Token) -> Result<kube::Client, ConnectError> {
    let url: http::Uri = endpoint
        .url
        .parse()
        .map_err(|_| ConnectError::Endpoint(clip(&endpoint.url)))?;
    let loopback = matches!(url.host(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme_str() {
        Some("https") if endpoint.ca_base64.is_none() => return Err(ConnectError::NoAuthority),
        Some("https") if !endpoint.test_override && !is_eks_host(url.host().unwrap_or("")) => {
            return Err(ConnectError::NotEks(clip(&endpoint.url)))
        }
        Some("https") => {}
        Some("http") if loopback && endpoint.test_override => {
            tracing::warn!(url = %endpoint.url, "plain HTTP to a loopback API server (tests only)");
        }
        _ => return Err(ConnectError::Endpoint(clip(&endpoint.url))),
    }
    let https = url.scheme_str() == Some("https");
    let mut config = kube::Config::new(url);
    config.connect_timeout = Some(CALL_TIMEOUT);
    // One retry policy, elbmedic's (`list.rs`: three attempts, within the gather's deadline):
    // kube's own would retry 429s again, honouring Retry-After past the deadline.
    config.default_retry = false;
    config.read_timeout = Some(CALL_TIMEOUT);
    // Only the cluster's CA is trusted, never the platform's roots (which kube would load,
    // a second's work in a debug build, when given none). Plain HTTP (a test's loopback
    // stand-in) has no certificate to check: it trusts nothing at all.
    config.root_cert = Some(match (&endpoint.ca_base64, https) {
        (Some(ca), true) => vec![der_of(ca).ok_or(ConnectError::Authority)?],
        _ => Vec::new(),
    });
    config.auth_info = AuthInfo {
        token: Some(SecretString::from(token.expose().to_string())),
        ..AuthInfo::default()
    };
    Ok(kube::Client::try_from(config)?)
}

/// An EKS API endpoint's host: `ID.gr7.REGION.eks.amazonaws.com` (or `.com.cn`).
fn is_eks_host(host: &str) -> bool {
    host.strip_suffix(".eks.amazonaws.com")
        .or_else(|| host.strip_suffix(".eks.amazonaws.com.cn"))
        .is_some_and(|rest| {
            rest.split('.').count() >= 2
                && rest.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'.'
                        || b == b'-'
                        || b.is_ascii_uppercase()
                })
        })
}

/// The DER of the first certificate in a base64-encoded PEM.
fn der_of(ca_base64: &str) -> Option<Vec<u8>> {
    let pem = aws_smithy_types::base64::decode(ca_base64.trim()).ok()?;
    let pem = String::from_utf8(pem).ok()?;
    let body: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?
        .split_whitespace()
        .collect();
    aws_smithy_types::base64::decode(body).ok()
}

fn clip(text: &str) -> String {
    crate::clipped(text, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        crate::token::token(
            &aws_credential_types::Credentials::new("AKID", "secret", None, None, "t"),
            "eu-west-1",
            "prod",
            std::time::SystemTime::now(),
        )
        .unwrap()
    }

    #[test]
    fn plain_http_only_on_a_loopback_address() {
        let http = |url: &str| Endpoint {
            url: url.into(),
            ca_base64: None,
            test_override: true,
        };
        for refused in [
            "http://10.0.0.1:443",
            "http://api.example.com",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(
                matches!(
                    connect(&http(refused), &token()),
                    Err(ConnectError::Endpoint(_))
                ),
                "{refused}"
            );
        }
        let bad_ca = Endpoint {
            url: "https://ABC.gr7.eu-west-1.eks.amazonaws.com".into(),
            ca_base64: Some("not base64 at all".into()),
            test_override: false,
        };
        assert!(matches!(
            connect(&bad_ca, &token()),
            Err(ConnectError::Authority)
        ));
        // No CA: the token would go to whoever has a publicly trusted certificate.
        let no_ca = Endpoint {
            ca_base64: None,
            ..bad_ca.clone()
        };
        assert!(matches!(
            connect(&no_ca, &token()),
            Err(ConnectError::NoAuthority)
        ));
        // Not an EKS host, unless a test overrides the endpoint.
        let elsewhere = Endpoint {
            url: "https://attacker.example.com".into(),
            ..bad_ca.clone()
        };
        assert!(matches!(
            connect(&elsewhere, &token()),
            Err(ConnectError::NotEks(_))
        ));
        // Plain HTTP even on loopback only under the test override.
        let loopback = Endpoint {
            url: "http://127.0.0.1:8080".into(),
            ca_base64: None,
            test_override: false,
        };
        assert!(matches!(
            connect(&loopback, &token()),
            Err(ConnectError::Endpoint(_))
        ));
    }

    #[test]
    fn the_ca_is_read_from_describe_clusters_base64_pem() {
        let der = b"\x30\x82\x01\x0a certificate bytes";
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            aws_smithy_types::base64::encode(der)
        );
        let data = aws_smithy_types::base64::encode(pem);
        assert_eq!(der_of(&data).as_deref(), Some(&der[..]));
    }
}
