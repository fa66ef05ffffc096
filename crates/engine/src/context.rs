//! What every rule needs, computed once per diagnosis: the network analysis, metric
//! read-outs, target health, and who owns the load balancer in Kubernetes.

use crate::alarm::{Alarm, LbKind};
use crate::churn::Churn;
use crate::finding::Evidence;
use crate::netcheck::{self, NetworkAnalysis, SgOutcome};
use crate::snapshot::{Gap, GapFact, GapReason, HealthClass, MetricSeries, Placement, Snapshot};

/// The Kubernetes object whose controller owns the load balancer, read from its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A Service of type LoadBalancer (Classic LB by the cloud provider), `kubernetes.io/service-name`.
    Service {
        namespace: String,
        name: String,
    },
    /// One Ingress (AWS Load Balancer Controller), `ingress.k8s.aws/stack` = `NAMESPACE/NAME`.
    Ingress {
        namespace: String,
        name: String,
    },
    /// An IngressGroup: `ingress.k8s.aws/stack` = the group name.
    IngressGroup {
        group: String,
    },
    Unknown,
}

/// The legacy cloud provider's tag on a Classic LB: `NAMESPACE/NAME` of its Service.
const SERVICE_TAG: &str = "kubernetes.io/service-name";
/// The AWS Load Balancer Controller's tag on an NLB it made for a Service: `NAMESPACE/NAME`.
const SERVICE_STACK_TAG: &str = "service.k8s.aws/stack";
/// The AWS Load Balancer Controller's tag: `NAMESPACE/NAME` of one Ingress, or a group name.
const STACK_TAG: &str = "ingress.k8s.aws/stack";

impl Owner {
    pub fn from_tags(snapshot: &Snapshot) -> Self {
        Self::read_tags(snapshot).0
    }

    /// The owner the tags name, and the gap that says why a tag naming one was not taken: a
    /// value the API server could not hold as a name is no owner, so no `kubectl` command is
    /// ever built from it.
    pub fn read_tags(snapshot: &Snapshot) -> (Self, Option<Gap>) {
        use crate::kubernetes_name::{is_dns1035_label, is_label, is_subdomain};
        let tags = &snapshot.load_balancer.tags;
        let refused = |tag: &str, what: &str| {
            Some(Gap {
                fact: GapFact::KubernetesOwner,
                resource: Some(format!("tag {tag}")),
                reason: GapReason::Invalid,
                detail: format!("the value is not {what}, so it names no Kubernetes object and no kubectl command uses it"),
            })
        };
        let service = [SERVICE_TAG, SERVICE_STACK_TAG]
            .into_iter()
            .find_map(|tag| Some((tag, tags.get(tag)?)));
        if let Some((tag, value)) = service {
            return match value.split_once('/') {
                Some((namespace, name)) if is_label(namespace) && is_dns1035_label(name) => (
                    Self::Service {
                        namespace: namespace.into(),
                        name: name.into(),
                    },
                    None,
                ),
                _ => (
                    Self::Unknown,
                    refused(
                        tag,
                        "NAMESPACE/NAME with an RFC 1123 label and an RFC 1035 label",
                    ),
                ),
            };
        }
        if let Some(stack) = tags.get(STACK_TAG) {
            return match stack.split_once('/') {
                Some((namespace, name)) if is_label(namespace) && is_subdomain(name) => (
                    Self::Ingress {
                        namespace: namespace.into(),
                        name: name.into(),
                    },
                    None,
                ),
                None if stack.len() <= 63 && is_subdomain(stack) => (
                    Self::IngressGroup {
                        group: stack.clone(),
                    },
                    None,
                ),
                _ => (
                    Self::Unknown,
                    refused(
                        STACK_TAG,
                        "NAMESPACE/NAME (an RFC 1123 label and subdomain) nor an IngressGroup name",
                    ),
                ),
            };
        }
        (Self::Unknown, None)
    }

    /// The namespace and name of a Service or Ingress owner.
    pub fn namespaced(&self) -> Option<(&str, &str)> {
        match self {
            Self::Service { namespace, name } | Self::Ingress { namespace, name } => {
                Some((namespace, name))
            }
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Service { namespace, name } => format!("Service {namespace}/{name}"),
            Self::Ingress { namespace, name } => format!("Ingress {namespace}/{name}"),
            Self::IngressGroup { group } => format!("IngressGroup {group}"),
            Self::Unknown => "no Kubernetes owner found in the load balancer's tags".into(),
        }
    }
}

/// Counts of target health classes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSummary {
    pub total: usize,
    pub healthy: usize,
    pub unhealthy: usize,
    pub draining: usize,
    pub other: usize,
}

impl HealthSummary {
    /// Most targets pass their health checks: 5xx are not explained by health alone.
    pub fn mostly_healthy(&self) -> bool {
        self.total > 0 && self.healthy * 2 > self.total
    }
}

pub struct Context<'a> {
    pub alarm: &'a Alarm,
    pub snapshot: &'a Snapshot,
    pub network: NetworkAnalysis,
    pub owner: Owner,
    pub health: HealthSummary,
    pub cluster: Option<String>,
    /// Targets registering and deregistering, period by period.
    pub churn: Churn,
}

impl<'a> Context<'a> {
    pub fn new(alarm: &'a Alarm, snapshot: &'a Snapshot) -> Self {
        let mut health = HealthSummary::default();
        for (_, target) in snapshot.targets() {
            health.total += 1;
            match target.health.class() {
                HealthClass::Healthy => health.healthy += 1,
                HealthClass::Unhealthy => health.unhealthy += 1,
                HealthClass::Draining => health.draining += 1,
                _ => health.other += 1,
            }
        }
        Self {
            alarm,
            snapshot,
            network: netcheck::analyse(snapshot),
            owner: Owner::from_tags(snapshot),
            health,
            cluster: snapshot.cluster_name(),
            churn: Churn::of(snapshot),
        }
    }

    pub fn kind(&self) -> LbKind {
        self.snapshot.load_balancer.kind
    }

    pub fn region(&self) -> &str {
        &self.snapshot.region
    }

    /// The alarm window as RFC 3339 times for commands' `--start-time` and `--end-time`: the
    /// metrics' first and last points (the last one's period included), else the periods the
    /// alarm evaluated before its state change, else the quarter hour before the snapshot.
    pub fn window_times(&self) -> (String, String) {
        let points: Vec<i64> = self
            .snapshot
            .metrics
            .iter()
            .flat_map(|m| &m.points)
            .filter_map(|p| crate::alarm::parse_timestamp(&p.timestamp))
            .collect();
        let period = i64::from(self.alarm.period_seconds.unwrap_or(60).max(1));
        let (start, end) = match (points.iter().min(), points.iter().max()) {
            (Some(first), Some(last)) => (*first, last + period),
            _ => {
                let end = self
                    .alarm
                    .state_change_time
                    .as_deref()
                    .or(self.snapshot.captured_at.as_deref())
                    .and_then(crate::alarm::parse_timestamp)
                    .unwrap_or(0);
                let periods = i64::from(self.alarm.evaluation_periods.unwrap_or(15).max(5));
                (end - period * periods, end)
            }
        };
        let format = |at: i64| {
            chrono::DateTime::from_timestamp(at, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default()
        };
        (format(start), format(end))
    }

    /// Some NACL leg or security group drops traffic between the LB and its targets.
    pub fn paths_blocked(&self) -> bool {
        self.network
            .nacl_checks
            .iter()
            .any(|c| !c.outcome.allowed())
            || self
                .network
                .sg_checks
                .iter()
                .any(|c| matches!(c.outcome, SgOutcome::Denied { .. }))
    }

    /// Some path could not be evaluated: a NACL, subnet or security group is missing.
    pub fn network_incomplete(&self) -> bool {
        !self.network.unresolved.is_empty()
            || self
                .network
                .sg_checks
                .iter()
                .any(|c| matches!(c.outcome, SgOutcome::Unknown { .. }))
    }

    /// Targets that sit on no interface any more.
    pub fn stale_target_count(&self) -> usize {
        self.snapshot
            .targets()
            .filter(|(_, t)| t.placement == Placement::NoInterface)
            .count()
    }

    /// The series of one metric and statistic: the LB-wide one when there is one, else the
    /// first per-target-group series.
    pub fn series(&self, metric: &str, statistic: &str) -> Option<&'a MetricSeries> {
        let snapshot: &'a Snapshot = self.snapshot;
        let matching = |s: &&MetricSeries| {
            s.metric_name == metric
                && s.statistic.eq_ignore_ascii_case(statistic)
                && s.availability_zone.is_none()
        };
        let mut candidates = snapshot.metrics.iter().filter(matching);
        let first = candidates.next()?;
        if first.target_group.is_none() {
            return Some(first);
        }
        Some(
            candidates
                .find(|s| s.target_group.is_none())
                .unwrap_or(first),
        )
    }

    /// Total over the window of a `Sum` metric; `None` when the metric was not observed.
    pub fn sum(&self, metric: &str) -> Option<f64> {
        self.series(metric, "Sum")
            .map(|s| s.points.iter().map(|p| p.value).sum())
    }

    /// Whether the `Sum` of `metric` has periods with a value, and every one of them *ended*
    /// by `at`: evidence from before a fix, which cannot argue for more of it. A period that
    /// straddles `at` counts as after: its data points may be on either side.
    pub fn only_before(&self, metric: &str, at: i64) -> bool {
        let Some(series) = self.series(metric, "Sum") else {
            return false;
        };
        let period = i64::from(series.period_seconds.unwrap_or(60));
        let starts: Vec<i64> = series
            .points
            .iter()
            .filter(|p| p.value > 0.0)
            .filter_map(|p| crate::alarm::parse_timestamp(&p.timestamp))
            .collect();
        !starts.is_empty() && starts.iter().all(|start| start + period <= at)
    }

    /// The last change CloudTrail recorded that opened something on the path, and when: a
    /// fix, when the path is open now. Only calls that can only open count, with their request
    /// recorded (a record CloudTrail dropped may hide a failure): a NACL allow entry created or
    /// replaced, a NACL association replaced, a security group rule authorized. A deleted NACL
    /// entry, a modified or revoked rule, a deny may as well have closed something.
    pub fn last_path_change(&self) -> Option<(&'a crate::snapshot::ChangeEvent, i64)> {
        let opens = |e: &crate::snapshot::ChangeEvent| match e.event_name.as_str() {
            "CreateNetworkAclEntry" | "ReplaceNetworkAclEntry" => {
                e.request
                    .get("ruleAction")
                    .and_then(serde_json::Value::as_str)
                    == Some("allow")
            }
            "ReplaceNetworkAclAssociation"
            | "AuthorizeSecurityGroupIngress"
            | "AuthorizeSecurityGroupEgress" => e.request.is_object(),
            _ => false,
        };
        let snapshot: &'a Snapshot = self.snapshot;
        snapshot
            .changes
            .as_ref()?
            .events
            .iter()
            .filter(|e| e.changed_something() && opens(e))
            .filter_map(|e| Some((e, crate::alarm::parse_timestamp(&e.event_time)?)))
            .max_by_key(|(_, at)| *at)
    }

    /// Largest data point of a metric and statistic.
    pub fn max(&self, metric: &str, statistic: &str) -> Option<f64> {
        self.series(metric, statistic).and_then(|s| {
            s.points
                .iter()
                .map(|p| p.value)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        })
    }

    /// The load balancer's own 5xx (`HTTPCode_ELB_5XX_Count`, a Classic LB's
    /// `HTTPCode_ELB_5XX`), LB-wide: not a zone's, not a target group's.
    pub fn elb_5xx_series(&self) -> Option<&'a MetricSeries> {
        self.snapshot.metrics.iter().find(|s| {
            s.is_elb_5xx_sum() && s.availability_zone.is_none() && s.target_group.is_none()
        })
    }

    /// Total over the window of the load balancer's own 5xx.
    pub fn elb_5xx(&self) -> Option<f64> {
        self.elb_5xx_series()
            .map(|s| s.points.iter().map(|p| p.value).sum())
    }

    /// In how many of the periods with load-balancer 5xx `metric` (`statistic`) was above
    /// `threshold`, out of how many such periods: (overlap, 5xx periods). `None` when either
    /// series was not observed.
    pub fn co_occurrence(
        &self,
        metric: &str,
        statistic: &str,
        threshold: f64,
    ) -> Option<(usize, usize)> {
        let errors = self.elb_5xx_series()?;
        let other = self.series(metric, statistic)?;
        let mut periods = 0;
        let mut overlap = 0;
        for point in errors.points.iter().filter(|p| p.value > 0.0) {
            periods += 1;
            if other
                .points
                .iter()
                .any(|o| o.timestamp == point.timestamp && o.value > threshold)
            {
                overlap += 1;
            }
        }
        Some((overlap, periods))
    }

    /// A metric as evidence: its data points and a sentence about them.
    pub fn metric_evidence(&self, metric: &str, statistic: &str, unit: &str) -> Option<Evidence> {
        let series = self.series(metric, statistic)?;
        let values: Vec<f64> = series.points.iter().map(|p| p.value).collect();
        let shown: Vec<String> = values.iter().map(|v| format_value(*v)).collect();
        let period = series
            .period_seconds
            .map(|p| format!(", {p} s periods"))
            .unwrap_or_default();
        let read = if values.is_empty() {
            // CloudWatch returns no point for a period without data: that is not a zero.
            "no data points in the window (no data, which is not zero)".to_string()
        } else if statistic.eq_ignore_ascii_case("Sum") {
            format!(
                "{}; {} in the window",
                shown.join(", "),
                format_value(values.iter().sum())
            )
        } else {
            let max = values.iter().copied().fold(f64::MIN, f64::max);
            format!("{}; max {}{unit}", shown.join(", "), format_value(max))
        };
        Some(Evidence::Metric {
            metric: metric.into(),
            statistic: series.statistic.clone(),
            period_seconds: series.period_seconds,
            values,
            summary: format!("{metric} ({}{period}): {read}", series.statistic),
        })
    }
}

/// `1 target`, `3 targets`: a count with its noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Trims a float for display: `60`, `59.99`, `0.41`.
pub fn format_value(value: f64) -> String {
    if value.fract().abs() < 1e-9 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Context;
    use crate::rules::testing::scenario_alarm;
    use crate::testkit::scenario_snapshot;

    /// An NLB the load balancer controller made for a Service names it in its own tag; a
    /// value that is no Service name names no owner.
    #[test]
    fn an_nlbs_service_is_its_owner() {
        use super::Owner;
        let mut world = scenario_snapshot("alb-idle-timeout");
        world.load_balancer.tags.clear();
        world
            .load_balancer
            .tags
            .insert("service.k8s.aws/stack".into(), "shop/mqtt".into());
        assert_eq!(
            Owner::from_tags(&world),
            Owner::Service {
                namespace: "shop".into(),
                name: "mqtt".into()
            }
        );
        world
            .load_balancer
            .tags
            .insert("service.k8s.aws/stack".into(), "shop/--all".into());
        let (owner, gap) = Owner::read_tags(&world);
        assert_eq!(owner, Owner::Unknown);
        assert!(gap
            .unwrap()
            .resource
            .unwrap()
            .contains("service.k8s.aws/stack"));
    }

    /// Trust round two, defect 10: an empty series read "(Sum, 60 s periods): ; 0 in the
    /// window", a zero that was never observed.
    #[test]
    fn an_empty_series_says_it_has_no_data_not_zero() {
        let name = "alb-idle-timeout";
        let alarm = scenario_alarm(name);
        let mut world = scenario_snapshot(name);
        for series in &mut world.metrics {
            series.points.clear();
        }
        let ctx = Context::new(&alarm, &world);
        for (metric, statistic) in [
            ("TargetConnectionErrorCount", "Sum"),
            ("TargetResponseTime", "Maximum"),
        ] {
            let summary = ctx
                .metric_evidence(metric, statistic, " s")
                .unwrap()
                .summary()
                .to_string();
            assert_eq!(
                summary,
                format!("{metric} ({statistic}, 60 s periods): no data points in the window (no data, which is not zero)")
            );
        }
    }
}
