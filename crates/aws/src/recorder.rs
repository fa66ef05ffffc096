//! Records every AWS operation the clients perform, with when it started and ended, through
//! an SDK interceptor. From the log come the call count and the number of sequential rounds
//! (the longest chain of calls each starting after the previous one ended), measured rather
//! than assumed; later the same log proves the IAM policy against the code.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// One operation: `ec2:DescribeSubnets`, with its time span and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub ok: bool,
}

impl Call {
    /// `ec2:DescribeSubnets`, as IAM names it. Most actions are named as their operation;
    /// S3's listing is the exception (ListObjectsV2 needs `s3:ListBucket`).
    pub fn action(&self) -> String {
        let prefix = iam_prefix(&self.service);
        match (prefix, self.operation.as_str()) {
            ("s3", "ListObjectsV2") => "s3:ListBucket".into(),
            (prefix, operation) => format!("{prefix}:{operation}"),
        }
    }
}

/// The IAM service prefix of an SDK service name.
fn iam_prefix(service: &str) -> &str {
    match service.to_ascii_lowercase().as_str() {
        "ec2" => "ec2",
        "elasticloadbalancing"
        | "elasticloadbalancingv2"
        | "elastic load balancing"
        | "elastic load balancing v2" => "elasticloadbalancing",
        "eks" => "eks",
        "cloudwatch" => "cloudwatch",
        "sns" => "sns",
        "dynamodb" => "dynamodb",
        "cloudtrail" => "cloudtrail",
        "sts" => "sts",
        "sqs" => "sqs",
        "s3" => "s3",
        "iam" => "iam",
        _ => service,
    }
}

/// The shared log of calls.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Every distinct IAM action ever called: small and bounded, and kept across
    /// [`CallLog::clear`] so the whole life of a function can be checked against its policy.
    seen: Arc<Mutex<BTreeSet<String>>>,
}

impl CallLog {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.clear();
        }
    }

    /// Sequential rounds: the longest chain of calls where each starts after the previous ended.
    pub fn rounds(&self) -> usize {
        let mut calls = self.calls();
        calls.sort_by_key(|c| c.ended.unwrap_or(c.started));
        let mut depth: Vec<usize> = Vec::with_capacity(calls.len());
        for (i, call) in calls.iter().enumerate() {
            let before = (0..i)
                .filter(|&j| calls[j].ended.is_some_and(|end| end <= call.started))
                .map(|j| depth[j])
                .max()
                .unwrap_or(0);
            depth.push(before + 1);
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// Every distinct IAM action called since the clients were built, clears included.
    pub fn actions_ever(&self) -> BTreeSet<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The distinct IAM actions called, sorted.
    pub fn actions(&self) -> Vec<String> {
        let mut actions: Vec<String> = self.calls().iter().map(Call::action).collect();
        actions.sort();
        actions.dedup();
        actions
    }
}

/// The interceptor; one per client, all writing to one [`CallLog`].
#[derive(Debug, Clone)]
pub struct Recorder {
    log: CallLog,
}

/// Index of this attempt's entry in the log, carried through the config bag.
#[derive(Debug, Clone)]
struct CallIndex(usize);

impl Storable for CallIndex {
    type Storer = StoreReplace<Self>;
}

impl Recorder {
    pub fn new(log: CallLog) -> Self {
        Self { log }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "elbmedic-call-recorder"
    }

    /// Opens the call's entry. Client interceptors run before the operation's configuration
    /// is applied, so the operation's name is filled in when the call ends.
    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(mut calls) = self.log.calls.lock() {
            calls.push(Call {
                service: "unknown".into(),
                operation: "unknown".into(),
                started: Instant::now(),
                ended: None,
                ok: false,
            });
            cfg.interceptor_state()
                .store_put(CallIndex(calls.len() - 1));
        }
        Ok(())
    }

    /// Closes the entry: end time, outcome and the operation's name (runs on every outcome).
    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let ok = context.output_or_error().is_some_and(|r| r.is_ok());
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let index = cfg.load::<CallIndex>().cloned();
        if let (Some(CallIndex(index)), Ok(mut calls)) = (index, self.log.calls.lock()) {
            if let Some(call) = calls.get_mut(index) {
                call.ended = Some(Instant::now());
                call.ok = ok;
                call.service = service;
                call.operation = operation;
                if let Ok(mut seen) = self.log.seen.lock() {
                    seen.insert(call.action());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(start_ms: u64, end_ms: u64, base: Instant) -> Call {
        Call {
            service: "ec2".into(),
            operation: "DescribeSubnets".into(),
            started: base + Duration::from_millis(start_ms),
            ended: Some(base + Duration::from_millis(end_ms)),
            ok: true,
        }
    }

    #[test]
    fn rounds_are_the_longest_chain_of_sequential_calls() {
        let base = Instant::now();
        let log = CallLog::default();
        // Round 1: two concurrent calls; round 2: one after them; round 3: two pages in a row.
        log.calls.lock().unwrap().extend([
            call(0, 10, base),
            call(1, 12, base),
            call(13, 20, base),
            call(21, 25, base),
            call(26, 30, base),
            call(14, 19, base),
        ]);
        assert_eq!(log.rounds(), 4);
        assert_eq!(log.actions(), ["ec2:DescribeSubnets"]);
    }
}
