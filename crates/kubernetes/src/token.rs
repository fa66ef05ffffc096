//! The bearer token an EKS cluster accepts from an IAM principal (access entries): `k8s-aws-v1.`
//! and the base64url encoding, without padding, of a presigned STS `GetCallerIdentity` URL
//! whose signed headers include `x-k8s-aws-id: CLUSTER`. The API server sends that request to
//! STS with its own cluster name, so a token signed for another cluster fails there.
//!
//! As aws-iam-authenticator and `aws eks get-token` make it: `X-Amz-Expires=60` is sent but the
//! server keeps a token for 15 minutes from `X-Amz-Date` (elbmedic uses it for 14, for clock
//! skew); the URL names the partition's regional STS host, even when SDK endpoints are
//! overridden (the server accepts only the partition's STS hosts).
//! A token is a credential: its `Debug` hides it, and nothing here logs it.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningError, SigningSettings,
};
use aws_sigv4::sign::v4;
use elbmedic_engine::alarm::formats::{dns_suffix_of, is_cluster_name, is_region_code};

pub const PREFIX: &str = "k8s-aws-v1.";
/// The signed header that names the cluster.
pub const CLUSTER_HEADER: &str = "x-k8s-aws-id";
/// How long the API server accepts a token after it was signed.
pub const LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long elbmedic uses one: a minute less, for clock skew, as `aws eks get-token` does.
pub const USABLE_FOR: Duration = Duration::from_secs(14 * 60);
/// What the URL says; the server ignores it (it keeps [`LIFETIME`]).
const PRESIGNED_EXPIRY: Duration = Duration::from_secs(60);

/// A bearer token for one cluster. Mint one per invocation; never log it.
#[derive(Clone)]
pub struct Token {
    value: String,
    /// When the API server stops accepting it.
    pub expires_at: SystemTime,
}

impl Token {
    /// The token itself, for the `Authorization: Bearer` header only.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"(hidden)")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0:?} is not an EKS cluster name (1-100 letters, digits, hyphens and underscores, starting with a letter or digit)")]
    ClusterName(String),
    #[error("{0:?} is not a region code")]
    Region(String),
    #[error("the STS request could not be signed: {0}")]
    Signing(#[from] SigningError),
    #[error("the signing parameters are incomplete: {0}")]
    Parameters(#[from] v4::signing_params::BuildError),
}

/// The partition's regional STS host, the only kind the API server accepts.
pub fn sts_host(region: &str) -> String {
    format!("sts.{region}.{}", dns_suffix_of(region))
}

/// A token for `cluster` in `region`, signed with `credentials` at `now`.
pub fn token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<Token, TokenError> {
    if !is_cluster_name(cluster) {
        return Err(TokenError::ClusterName(cluster.chars().take(100).collect()));
    }
    // The ISO partitions have STS hosts of their own, which elbmedic does not know.
    if !is_region_code(region) || region.contains("-iso") {
        return Err(TokenError::Region(region.chars().take(40).collect()));
    }
    let url = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGNED_EXPIRY);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()?
        .into();
    let signable = SignableRequest::new(
        "GET",
        &url,
        [(CLUSTER_HEADER, cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .expect("a valid URL and method");
    instructions.apply_to_request_http1x(&mut request);
    let presigned = request.uri().to_string();
    Ok(Token {
        value: format!("{PREFIX}{}", base64url_unpadded(presigned.as_bytes())),
        expires_at: now + USABLE_FOR,
    })
}

/// Base64url without padding, as the token needs it.
fn base64url_unpadded(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI", None, None, "test")
    }

    /// The presigned URL inside a token.
    fn url_of(token: &Token) -> String {
        let encoded = token.expose().strip_prefix(PREFIX).expect("the prefix");
        let standard: String = encoded
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        let padded = format!("{standard}{}", "=".repeat((4 - standard.len() % 4) % 4));
        String::from_utf8(aws_smithy_types::base64::decode(padded).unwrap()).unwrap()
    }

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_for_the_cluster() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let token = token(&credentials(), "eu-west-1", "prod", now).unwrap();
        let encoded = token.expose().strip_prefix(PREFIX).unwrap();
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let url = url_of(&token);
        assert!(
            url.starts_with(
                "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
            ),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20261130%2Feu-west-1%2Fsts%2Faws4_request",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
            "X-Amz-Signature=",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
        assert_eq!(token.expires_at, now + USABLE_FOR);
        assert!(!format!("{token:?}").contains(PREFIX));
    }

    #[test]
    fn a_session_token_is_signed_into_the_url_and_china_has_its_own_host() {
        let now = SystemTime::now();
        let session = Credentials::new("ASIAEXAMPLE", "secret", Some("SESSION".into()), None, "t");
        let url = url_of(&token(&session, "cn-north-1", "prod", now).unwrap());
        assert!(
            url.starts_with("https://sts.cn-north-1.amazonaws.com.cn/"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Security-Token=SESSION"), "{url}");
    }

    #[test]
    fn hostile_cluster_names_and_regions_are_refused() {
        let now = SystemTime::now();
        for cluster in ["", "-x", "a/b", "a b", "a\nb", &"x".repeat(101)] {
            assert!(
                matches!(
                    token(&credentials(), "eu-west-1", cluster, now),
                    Err(TokenError::ClusterName(_))
                ),
                "{cluster:?}"
            );
        }
        for region in [
            "",
            "eu-west-1.evil.com",
            "EU-WEST-1",
            "eu-west-1/",
            "us-iso-east-1",
            "us-isob-east-1",
        ] {
            assert!(
                matches!(
                    token(&credentials(), region, "prod", now),
                    Err(TokenError::Region(_))
                ),
                "{region:?}"
            );
        }
    }
}
