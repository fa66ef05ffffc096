//! Turning SDK errors into gaps: denied, throttled, not found, timed out, or failed. The detail
//! keeps AWS's own code and message (never credentials: the SDK does not put them in errors).

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use elbmedic_engine::snapshot::{Gap, GapFact, GapReason};

/// Why a call failed, as a gap reason and a one-line detail.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> (GapReason, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::TimeoutError(_) = error {
        return (GapReason::Timeout, "the call timed out".into());
    }
    if lacks_credentials(error) {
        return (
            GapReason::AccessDenied,
            "no AWS credentials could be loaded: set a profile (AWS_PROFILE), environment variables, or run with a role".into(),
        );
    }
    let code = error.code().unwrap_or_default();
    let reason = reason_of_code(code);
    let detail = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        // An answer without an error code: say its status, not its raw dump (headers vary
        // from call to call and are nobody's business in a report).
        _ => match error.raw_response().map(|r| r.status().as_u16()) {
            Some(status) => format!("HTTP {status} from the service, with no readable error"),
            None => DisplayErrorContext(error).to_string(),
        },
    };
    (reason, one_line(&detail))
}

/// Whether the call failed because no credentials could be resolved: a `CredentialsError`
/// somewhere in the error's source chain (never its text).
fn lacks_credentials(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        next = error.source();
    }
    false
}

/// A call AWS answered with an error: its code, which callers decide on (`None` when the
/// answer had none), and the one-line detail a report shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct CallFailed {
    pub code: Option<String>,
    pub detail: String,
}

impl CallFailed {
    pub fn of<E>(error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self {
            code: error.code().map(str::to_string),
            detail: classify(error).1,
        }
    }

    /// Whether AWS answered with `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// AWS error codes by family, across the services elbmedic calls.
pub fn reason_of_code(code: &str) -> GapReason {
    match code {
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "AuthFailure"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException" => GapReason::AccessDenied,
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown" => GapReason::Throttled,
        c if c.contains("NotFound")
            || c.starts_with("InvalidGroup.NotFound")
            || c.contains(".NotFound") =>
        {
            GapReason::NotFound
        }
        _ => GapReason::Error,
    }
}

fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 400 {
        flat.chars().take(400).collect::<String>() + "..."
    } else {
        flat
    }
}

/// A gap for a failed call.
pub fn gap<E>(fact: GapFact, resource: Option<&str>, error: &SdkError<E, HttpResponse>) -> Gap
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (reason, detail) = classify(error);
    Gap {
        fact,
        resource: resource.map(str::to_string),
        reason,
        detail,
    }
}

/// A gap for a call that did not finish before the gather's deadline.
pub fn deadline_gap(fact: GapFact, resource: Option<&str>) -> Gap {
    Gap {
        fact,
        resource: resource.map(str::to_string),
        reason: GapReason::Timeout,
        detail: "not finished before the gather's deadline".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_reasons() {
        assert_eq!(
            reason_of_code("UnauthorizedOperation"),
            GapReason::AccessDenied
        );
        assert_eq!(reason_of_code("AccessDenied"), GapReason::AccessDenied);
        assert_eq!(reason_of_code("Throttling"), GapReason::Throttled);
        assert_eq!(reason_of_code("RequestLimitExceeded"), GapReason::Throttled);
        assert_eq!(reason_of_code("LoadBalancerNotFound"), GapReason::NotFound);
        assert_eq!(
            reason_of_code("InvalidSubnetID.NotFound"),
            GapReason::NotFound
        );
        assert_eq!(
            reason_of_code("ResourceNotFoundException"),
            GapReason::NotFound
        );
        assert_eq!(reason_of_code("InternalError"), GapReason::Error);
    }

    /// A credential chain that resolves nothing: the SDK's own error, recognised by its type
    /// in the source chain, not by the words of its message.
    #[tokio::test]
    async fn no_credentials_is_access_denied_with_the_way_out() {
        #[derive(Debug)]
        struct Nothing;
        impl aws_credential_types::provider::ProvideCredentials for Nothing {
            fn provide_credentials<'a>(
                &'a self,
            ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                    CredentialsError::not_loaded("no provider in the chain answered"),
                ))
            }
        }
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Nothing)
            .build();
        let error = aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .unwrap_err();
        let (reason, detail) = classify(&error);
        assert_eq!(reason, GapReason::AccessDenied, "{detail}");
        assert!(
            detail.starts_with("no AWS credentials could be loaded"),
            "{detail}"
        );
    }
}
