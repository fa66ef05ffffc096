//! One call to the API server, as the reads make it: paged (`limit`, `continue`) up to a
//! bound, retried on 429 and 5xx as the AWS SDK retries (three attempts, backing off), and
//! stopped at the read's deadline. A call that fails for good is a gap that names its fix.

use std::time::Duration;

use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use elbmedic_engine::snapshot::{Gap, GapFact, GapReason};

/// One page of a list.
const PAGE: u32 = 500;
/// Attempts per call, as the SDK's standard retry mode makes them.
const ATTEMPTS: u32 = 3;
/// The first back-off; it doubles per attempt.
const BACK_OFF: Duration = Duration::from_millis(200);
/// Pages per list at most: a server that answers `continue` forever stops here.
const MAX_PAGES: usize = 20;

/// A list, paged, and whether it stopped at its bound.
pub(crate) struct Listed<K> {
    pub items: Vec<K>,
    pub truncated: bool,
}

/// Every item of `api` that `keep` accepts, up to `bound` kept ones (the bound counts what is
/// kept, so a filter never hides a kept item behind ones it drops).
pub(crate) async fn list_where<K>(
    api: Api<K>,
    bound: usize,
    resource: &str,
    deadline: Instant,
    keep: impl Fn(&K) -> bool,
) -> Result<Listed<K>, Gap>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    for _ in 0..MAX_PAGES {
        let page = call(deadline, resource, || api.list(&params)).await?;
        items.extend(page.items.into_iter().filter(|item| keep(item)));
        let more = page.metadata.continue_.filter(|token| !token.is_empty());
        if items.len() > bound || (items.len() == bound && more.is_some()) {
            items.truncate(bound);
            return Ok(Listed {
                items,
                truncated: true,
            });
        }
        match more {
            Some(token) => params = params.continue_token(&token),
            None => {
                return Ok(Listed {
                    items,
                    truncated: false,
                })
            }
        }
    }
    Ok(Listed {
        items,
        truncated: true,
    })
}

pub(crate) async fn list<K>(
    api: Api<K>,
    bound: usize,
    resource: &str,
    deadline: Instant,
) -> Result<Listed<K>, Gap>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    list_where(api, bound, resource, deadline, |_| true).await
}

pub(crate) async fn get<K>(
    api: Api<K>,
    name: &str,
    resource: &str,
    deadline: Instant,
) -> Result<Option<K>, Gap>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    call(deadline, resource, || api.get_opt(name)).await
}

/// `attempt` until it succeeds, fails for good, or the deadline passes.
async fn call<T, F, Fut>(deadline: Instant, resource: &str, attempt: F) -> Result<T, Gap>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut wait = BACK_OFF;
    for tried in 1..=ATTEMPTS {
        let error = match tokio::time::timeout_at(deadline, attempt()).await {
            Err(_) => return Err(past_deadline(resource)),
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
        };
        if tried == ATTEMPTS || !retryable(&error) || Instant::now() + wait >= deadline {
            return Err(gap_of(&error, resource));
        }
        tracing::debug!(
            resource,
            tried,
            "retrying a throttled or failed Kubernetes call"
        );
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    unreachable!("the last attempt returns")
}

/// Throttling and server errors pass; the SDK retries the same.
fn retryable(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 429 || (500..600).contains(&status.code))
}

fn past_deadline(resource: &str) -> Gap {
    Gap {
        fact: GapFact::KubernetesApi,
        resource: Some(resource.to_string()),
        reason: GapReason::Timeout,
        detail: "not read before the gather's deadline".into(),
    }
}

/// A failed call as a gap that names its fix.
pub(crate) fn gap_of(error: &kube::Error, resource: &str) -> Gap {
    let (reason, detail) = match error {
        kube::Error::Api(status) if status.code == 401 => (
            GapReason::AccessDenied,
            "the API server did not accept elbmedic's token (401): give the function's role an EKS access entry (infra/: AccessEntry, with the Kubernetes group elbmedic-read) and make the cluster's authentication mode include API".to_string(),
        ),
        kube::Error::Api(status) if status.code == 403 => (
            GapReason::AccessDenied,
            format!(
                "{} (403): bind the ClusterRole elbmedic-read of infra/ to the access entry's group; it may get, list and watch {resource}",
                one_line(&status.message)
            ),
        ),
        kube::Error::Api(status) if status.code == 404 => (
            GapReason::NotFound,
            format!("{resource}: not served by this cluster (404): {}", one_line(&status.message)),
        ),
        kube::Error::Api(status) if status.code == 429 => (
            GapReason::Throttled,
            format!("{resource}: the API server is throttling (429), after {ATTEMPTS} attempts"),
        ),
        kube::Error::Api(status) => (
            GapReason::Error,
            format!("{resource}: the API server answered {} ({})", status.code, one_line(&status.message)),
        ),
        other if in_chain::<rustls::Error>(other) => (
            GapReason::Error,
            format!(
                "the API server's certificate is not one the cluster's CA signed (TLS: {}); elbmedic trusts only the certificateAuthority of DescribeCluster",
                one_line(&other.to_string())
            ),
        ),
        other if timed_out(other) => (
            GapReason::Timeout,
            "the API server did not answer in time".to_string(),
        ),
        other => (
            GapReason::Error,
            format!(
                "the API server could not be reached ({}): a private endpoint needs the function in the cluster's VPC (FunctionSubnetIds), and the cluster security group must admit 443 from it",
                one_line(&other.to_string())
            ),
        ),
    };
    Gap {
        fact: GapFact::KubernetesApi,
        resource: Some(resource.to_string()),
        reason,
        detail,
    }
}

/// Every error in `error`'s chain. `io::Error::source` skips the error it wraps (it answers
/// that error's own source), so a wrapped one is visited through `get_ref`.
fn chain<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut found = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        found.push(error);
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    found
}

/// Whether an error of type `E` is somewhere in `error`'s chain.
fn in_chain<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    chain(error).iter().any(|e| e.downcast_ref::<E>().is_some())
}

fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    chain(error).iter().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
    })
}

fn one_line(text: &str) -> String {
    crate::clipped(text, 300)
}
