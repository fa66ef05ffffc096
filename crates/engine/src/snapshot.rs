//! The snapshot: everything observed about one load balancer at one moment, as plain serde
//! data. Gathering (the AWS shell) writes it; everything after it is pure. It can be saved,
//! replayed offline, attached to a report, and used as a test fixture.
//!
//! Field names follow the AWS APIs where one exists, in snake_case. Anything that could not be
//! observed is recorded in [`Snapshot::gaps`] with the reason, never silently left out.
//! Not for: deciding anything; the rules do that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alarm::LbKind;

/// The version this elbmedic writes. Bumped on any change that an older reader would misread:
/// 2 added the `kubernetes` section.
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest version still read: a version-1 snapshot is one without a `kubernetes` section.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// Default idle timeout of both Classic LBs and ALBs, in seconds.
pub const DEFAULT_IDLE_TIMEOUT: u32 = 60;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: u32,
    /// When the snapshot was taken (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The account's alias (`iam:ListAccountAliases`), when the reading role may list it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_alias: Option<String>,
    pub load_balancer: LoadBalancer,
    /// For a Classic LB: one implicit group holding its instances and its health check.
    #[serde(default)]
    pub target_groups: Vec<TargetGroup>,
    /// The LB's subnets and every subnet a target sits in.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    #[serde(default)]
    pub network_acls: Vec<NetworkAcl>,
    /// The LB's security groups and those of every target interface.
    #[serde(default)]
    pub security_groups: Vec<SecurityGroup>,
    /// Managed prefix lists referenced by security group rules, resolved to CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_lists: Vec<PrefixList>,
    /// Metric series for the alarm window.
    #[serde(default)]
    pub metrics: Vec<MetricSeries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks: Option<EksCluster>,
    /// What elbmedic itself last changed on this load balancer, from the remediation ledger;
    /// `None` when no ledger was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    /// What CloudTrail recorded on the path before the alarm; `None` when it was not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// The alarm window's access logs, counted; `None` when they were not read (the first
    /// pass does not wait for them: they arrive minutes late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logs: Option<crate::access_log::AccessLogs>,
    /// The cluster behind the load balancer (schema version 2); `None` when it was not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<crate::kubernetes::Kubernetes>,
    /// Facts that could not be observed, and why.
    #[serde(default)]
    pub gaps: Vec<Gap>,
}

/// Changes to the load balancer and its path, as CloudTrail's `LookupEvents` returned them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    /// The window looked up (RFC 3339): from two hours before the alarm window to the alarm.
    pub since: String,
    pub until: String,
    #[serde(default)]
    pub events: Vec<ChangeEvent>,
    /// Lookups left for later (CloudTrail allows 2 a second): what was not seen yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_looked_up: Vec<String>,
}

/// One CloudTrail management event. Everything in it came from AWS and from whoever made the
/// call: it is data, rendered escaped, never a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub event_id: String,
    /// `CreateNetworkAclEntry`, `ModifyLoadBalancerAttributes`, ...
    pub event_name: String,
    /// RFC 3339.
    pub event_time: String,
    /// Who made the call: `userIdentity.arn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The resources the event names (its `Resources`), ids or ARNs.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The call's `requestParameters`, as recorded.
    #[serde(default)]
    pub request: serde_json::Value,
    /// The call's `errorCode` when it failed (`Client.UnauthorizedOperation`, ...): then it
    /// changed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The call only read (`readOnly`): it changed nothing either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

impl ChangeEvent {
    /// A call that succeeded and was not read-only: only these changed anything.
    pub fn changed_something(&self) -> bool {
        self.error_code.is_none() && !self.read_only
    }

    /// A call that would have changed something, but failed: an attempt, never a cause.
    pub fn failed_attempt(&self) -> bool {
        self.error_code.is_some() && !self.read_only
    }
}

/// elbmedic's own past changes to the load balancer, as its ledger recorded them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The last idle-timeout raise elbmedic applied; `None` when it never raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_raise: Option<IdleTimeoutRaise>,
}

/// One idle-timeout raise applied by `remediate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleTimeoutRaise {
    /// When it was applied (epoch seconds).
    pub at: i64,
    /// Seconds before and after; unknown in records written before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub kind: LbKind,
    pub name: String,
    /// Metric dimension value: `app/NAME/ID` for an ALB, the name for a Classic LB.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// `internet-facing` or `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    pub vpc_id: String,
    /// The VPC's CIDR blocks, IPv4 and IPv6, secondary ones included (remediation never
    /// opens anything outside them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_cidrs: Vec<String>,
    /// Subnet ids the LB has nodes in.
    pub subnets: Vec<String>,
    /// An NLB created without security groups has none, and can never get one.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// `ipv4`, `dualstack` or `dualstack-without-public-ipv4`; `None` when not read (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_type: Option<String>,
    /// Seconds. `None` when it could not be read (a gap says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
    /// Cross-zone load balancing, for a Classic LB and an NLB (off by default there). ALBs are
    /// always cross-zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_zone: Option<bool>,
    /// Classic LB connection draining: its timeout in seconds, 0 when it is off (the in-tree
    /// cloud provider's default unless the Service asks for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_draining_seconds: Option<u32>,
    /// Where the load balancer writes its access logs (ALB `access_logs.s3.*`, Classic LB
    /// `AccessLog`); `None` when the attributes were not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogConfig>,
    /// An ALB's attributes as `DescribeLoadBalancerAttributes` gave them: what the controller's
    /// `load-balancer-attributes` annotation must keep when one of them changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The LB's own node addresses when known (from its network interfaces); otherwise the
    /// engine assumes any address of the LB subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<LbNode>,
}

/// AWS allows 50 listeners per load balancer: the rules read no more.
pub const MAX_LISTENERS: usize = 50;

impl LoadBalancer {
    /// `internal`; otherwise (or unread) internet-facing, the wider set of clients.
    pub fn is_internal(&self) -> bool {
        self.scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("internal"))
    }

    /// The listener with this ARN, as read.
    pub fn listener(&self, arn: &str) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| l.arn.as_deref() == Some(arn))
    }

    /// Whether clients may reach it over IPv6 (`dualstack`, `dualstack-without-public-ipv4`).
    pub fn is_dual_stack(&self) -> bool {
        self.ip_address_type
            .as_deref()
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("dualstack"))
    }

    /// The EKS cluster the controllers' tags name: `elbv2.k8s.aws/cluster` (AWS Load Balancer
    /// Controller), else the key `kubernetes.io/cluster/NAME` (cloud provider). The one place
    /// that reads it, for the gather and the engine alike.
    pub fn cluster_from_tags(&self) -> Option<String> {
        self.tags
            .get("elbv2.k8s.aws/cluster")
            .cloned()
            .or_else(|| {
                self.tags
                    .keys()
                    .find_map(|k| k.strip_prefix("kubernetes.io/cluster/").map(str::to_string))
            })
            .filter(|c| !c.is_empty())
    }

    pub fn cross_zone_enabled(&self) -> bool {
        match self.kind {
            LbKind::Application => true,
            LbKind::Classic => self.cross_zone.unwrap_or(true),
            // Off by default on an NLB (`load_balancing.cross_zone.enabled`).
            LbKind::Network => self.cross_zone.unwrap_or(false),
        }
    }
}

/// A load balancer's access-log settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessLogConfig {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default)]
    pub prefix: String,
    /// Classic LB: minutes between log files (5 or 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit_interval_minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbNode {
    pub subnet_id: String,
    pub private_ip: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    pub protocol: String,
    pub port: u16,
    /// Classic LB: the instance port the listener forwards to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_protocol: Option<String>,
    /// ALB: the listener's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// ALB: the target groups the default action forwards to (ARNs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards_to: Vec<String>,
    /// ALB: the listener's other rules, which may forward elsewhere. `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<ListenerRule>>,
    /// NLB: the listener's attributes (`tcp.idle_timeout.seconds`); `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// An NLB TCP listener's default idle timeout, and the one TLS listeners are fixed at.
pub const NLB_TCP_IDLE_TIMEOUT: u32 = 350;
/// The range `tcp.idle_timeout.seconds` accepts.
pub const NLB_TCP_IDLE_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 60..=6000;
/// A UDP flow's idle timeout on an NLB (fixed).
pub const NLB_UDP_IDLE_TIMEOUT: u32 = 120;

/// What an NLB listener's idle timeout is, and whether it can be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowIdleTimeout {
    pub seconds: u32,
    /// Only a TCP (or TCP_UDP) listener's can be set; TLS and UDP ones are fixed.
    pub settable: bool,
    /// The value was read from the listener's attributes, not assumed from the default.
    pub observed: bool,
}

impl Listener {
    /// An NLB listener's idle timeout for TCP flows: a TCP listener's `tcp.idle_timeout.seconds`
    /// (only TCP listeners have the attribute), else the default; TLS and TCP_UDP listeners are
    /// fixed at 350 s for TCP flows, and UDP ones at 120 s.
    pub fn flow_idle_timeout(&self) -> FlowIdleTimeout {
        let protocol = self.protocol.trim().to_ascii_uppercase();
        match protocol.as_str() {
            "TLS" | "TCP_UDP" => FlowIdleTimeout {
                seconds: NLB_TCP_IDLE_TIMEOUT,
                settable: false,
                observed: true,
            },
            "UDP" => FlowIdleTimeout {
                seconds: NLB_UDP_IDLE_TIMEOUT,
                settable: false,
                observed: true,
            },
            // A protocol AWS does not have is not trusted to take an attribute.
            "TCP" => {
                let read = self
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("tcp.idle_timeout.seconds"))
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|v| NLB_TCP_IDLE_TIMEOUT_RANGE.contains(v));
                // A value that is missing, not a number or outside 60-6000 s is unknown: the
                // default is shown, and nothing is raised from it.
                FlowIdleTimeout {
                    seconds: read.unwrap_or(NLB_TCP_IDLE_TIMEOUT),
                    settable: true,
                    observed: read.is_some(),
                }
            }
            _ => FlowIdleTimeout {
                seconds: NLB_TCP_IDLE_TIMEOUT,
                settable: false,
                observed: false,
            },
        }
    }
}

/// One non-default rule of an ALB listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerRule {
    /// The rule's priority, as the API gives it (`"10"`).
    pub priority: String,
    /// Its conditions, one short line each (`path-pattern /api/*`).
    #[serde(default)]
    pub conditions: Vec<String>,
    /// The target groups it forwards to (ARNs).
    #[serde(default)]
    pub forwards_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// `instance`, `ip` or `lambda`.
    pub target_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Default port of the group; each target may have its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistration_delay_seconds: Option<u32>,
    /// `slow_start.duration_seconds`: a new target's share of requests ramps up over this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_seconds: Option<u32>,
    /// ALB: `HTTP1`, `HTTP2` or `GRPC`: what the load balancer speaks to the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// NLB: `preserve_client_ip.enabled`: targets see the clients' own addresses, so their
    /// security groups and NACLs must admit the clients. `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_client_ip: Option<bool>,
    /// `ipv4` or `ipv6` (an IPv6 group holds IPv6 pod addresses as IP targets); `None` when
    /// not read (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub targets: Vec<Target>,
}

impl TargetGroup {
    /// How a finding names the group among its resources: its ARN, else its name (a Classic
    /// LB's implicit group has no ARN).
    pub fn resource_id(&self) -> String {
        self.arn.clone().unwrap_or_else(|| self.name.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `traffic-port` or a number, as the API gives it (a JSON number is accepted too).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_text"
    )]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
    /// The success codes: HTTP codes (`200-399`), or gRPC codes (`0-99`, default `12`) on a
    /// gRPC target group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_codes: Option<String>,
}

impl HealthCheck {
    /// The port health checks go to, given the target's traffic port.
    pub fn port_for(&self, traffic_port: u16) -> u16 {
        self.port
            .as_deref()
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p > 0)
            .unwrap_or(traffic_port)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Instance id or IP address.
    pub id: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    pub health: TargetHealth,
    /// Where the target lives on the network.
    #[serde(default)]
    pub placement: Placement,
}

impl Target {
    /// `10.0.1.5:8080`, or `[2600:1f18::5]:8080` for an IPv6 target, as access logs write it.
    pub fn endpoint(&self) -> String {
        if self.id.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{}]:{}", self.id, self.port)
        } else {
            format!("{}:{}", self.id, self.port)
        }
    }

    pub fn interface(&self) -> Option<&Interface> {
        match &self.placement {
            Placement::Interface(interface) => Some(interface),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetHealth {
    /// As the API says it: `healthy`, `unhealthy`, `draining`, `initial`, `unused`,
    /// `unavailable`, or a Classic LB's `InService` / `OutOfService`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Health states folded into what the rules need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthClass {
    Healthy,
    Unhealthy,
    Draining,
    /// Registration or the first health checks in progress.
    Initial,
    /// Registered in a zone the LB does not serve, or the group is not used.
    Unused,
    /// Health checks disabled, or state unknown.
    Unknown,
}

impl TargetHealth {
    pub fn class(&self) -> HealthClass {
        match self.state.trim().to_ascii_lowercase().as_str() {
            "healthy" | "inservice" => HealthClass::Healthy,
            "unhealthy" | "outofservice" | "unhealthy.draining" => HealthClass::Unhealthy,
            "draining" => HealthClass::Draining,
            "initial" => HealthClass::Initial,
            "unused" => HealthClass::Unused,
            _ => HealthClass::Unknown,
        }
    }
}

/// Where a target's address was found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Placement {
    /// On a network interface (an instance's primary ENI, or the ENI holding a pod IP).
    Interface(Interface),
    /// Looked for and found on no interface: a pod IP left behind.
    NoInterface,
    /// Not looked up (a gap says why, if it failed).
    #[default]
    Unobserved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub private_ip: String,
    pub subnet_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eni_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub security_groups: Vec<String>,
    /// True when the IP sits in a delegated prefix of the ENI rather than as a secondary IP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub via_prefix: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidr_ipv6: Vec<String>,
    /// The NACL associated with the subnet (the VPC's default one if none explicitly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_acl_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAcl {
    pub id: String,
    #[serde(default)]
    pub is_default: bool,
    pub entries: Vec<NaclEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaclEntry {
    /// 1-32766; 32767 is the `*` entry that AWS lists as the implicit deny.
    pub rule_number: u16,
    pub egress: bool,
    /// `-1` (all), `6` (TCP), `17` (UDP), another protocol number; names and JSON numbers
    /// are tolerated.
    #[serde(deserialize_with = "text")]
    pub protocol: String,
    /// `allow` or `deny`.
    pub rule_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_cidr_block: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortRange>,
}

/// A NACL protocol as AWS writes it (`-1`, a number, or a name) as its number.
pub fn protocol_number(text: &str) -> Option<i16> {
    let text = text.trim();
    for (name, number) in [
        ("-1", -1),
        ("all", -1),
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("icmpv6", 58),
    ] {
        if text.eq_ignore_ascii_case(name) {
            return Some(number);
        }
    }
    text.parse().ok()
}

impl NaclEntry {
    /// Whether AWS could hold this entry: rule 1-32766 (32767 and 32768 are the IPv4 and IPv6
    /// `*` entries), allow or deny, a protocol AWS knows, one valid CIDR of its family and a
    /// port range that is not reversed. An entry outside these was not recorded from AWS; read
    /// as it is, it would be skipped and a path called open.
    pub fn as_aws_holds_it(&self) -> Result<(), NotAnAwsEntry> {
        if !(1..=32768).contains(&self.rule_number) {
            return Err(NotAnAwsEntry::RuleNumber);
        }
        let action = self.rule_action.trim();
        if !action.eq_ignore_ascii_case("allow") && !action.eq_ignore_ascii_case("deny") {
            return Err(NotAnAwsEntry::Action);
        }
        if !protocol_number(&self.protocol).is_some_and(|p| (-1..=255).contains(&p)) {
            return Err(NotAnAwsEntry::Protocol);
        }
        match (&self.cidr_block, &self.ipv6_cidr_block) {
            (Some(v4), None) if v4.trim().parse::<ipnet::Ipv4Net>().is_ok() => {}
            (None, Some(v6)) if v6.trim().parse::<ipnet::Ipv6Net>().is_ok() => {}
            _ => return Err(NotAnAwsEntry::Cidr),
        }
        if self.port_range.is_some_and(|r| r.from > r.to) {
            return Err(NotAnAwsEntry::ReversedPorts);
        }
        Ok(())
    }
}

/// Why a NACL entry is not one AWS could hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAnAwsEntry {
    #[error("the rule number is outside 1-32766 (and the `*` entries 32767-32768)")]
    RuleNumber,
    #[error("the action is neither allow nor deny")]
    Action,
    #[error("the protocol is not -1, a protocol number 0-255 or a name AWS uses")]
    Protocol,
    #[error("it needs exactly one valid CIDR: an IPv4 cidr_block or an IPv6 ipv6_cidr_block")]
    Cidr,
    #[error("its port range is reversed")]
    ReversedPorts,
}

/// What a snapshot holds that AWS does not allow. Ids are shown on one line, at most 64
/// characters: a forged id cannot add lines of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeyondAws {
    #[error("idle timeout {0} s (AWS allows 1-4000 s)")]
    IdleTimeout(u32),
    #[error("NACL {nacl}, rule {rule_number}: {why}")]
    Entry {
        nacl: String,
        rule_number: u16,
        why: NotAnAwsEntry,
    },
    #[error(
        "NACL {nacl} has rule {rule_number} twice in one direction (AWS numbers each entry once)"
    )]
    DuplicateRule { nacl: String, rule_number: u16 },
    #[error("NACL {nacl} has {count} {direction} entries (AWS allows at most {MAX_NACL_ENTRIES_PER_DIRECTION} in a direction, the `*` entries included)")]
    TooManyEntries {
        nacl: String,
        count: usize,
        direction: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    pub const EPHEMERAL: PortRange = PortRange {
        from: 1024,
        to: 65535,
    };
    pub const ALL: PortRange = PortRange { from: 0, to: 65535 };

    pub fn single(port: u16) -> Self {
        Self {
            from: port,
            to: port,
        }
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub ingress: Vec<SgRule>,
    #[serde(default)]
    pub egress: Vec<SgRule>,
}

impl SecurityGroup {
    /// Whether a Kubernetes controller fully reconciles this group, so that rules added by
    /// hand are revoked: the cloud provider's `k8s-elb-*`, and the AWS Load Balancer
    /// Controller's managed frontend group.
    pub fn is_controller_managed(&self) -> bool {
        self.name.starts_with("k8s-elb-")
            || self
                .tags
                .get("ingress.k8s.aws/resource")
                .map(String::as_str)
                == Some("ManagedLBSecurityGroup")
    }
}

/// One `IpPermission`: a protocol and port range, and the peers it admits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgRule {
    /// `-1`, `tcp`, `udp`, `icmp`, or a number.
    #[serde(deserialize_with = "text")]
    pub ip_protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv4_ranges: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_ranges: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_list_ids: Vec<String>,
    /// Security groups referenced (`UserIdGroupPairs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixList {
    pub id: String,
    pub cidrs: Vec<String>,
}

/// Data points of one metric and statistic over the alarm window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub metric_name: String,
    /// `Sum`, `Maximum`, `p99`, ...
    pub statistic: String,
    /// Target group dimension when the series is per target group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
    /// `AvailabilityZone` dimension when the series is per zone: the zone of the load
    /// balancer node that handled the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u32>,
    pub points: Vec<DataPoint>,
}

impl MetricSeries {
    /// The 5xx the load balancer generated (`Sum`), in the metric each kind reports them in.
    pub fn is_elb_5xx_sum(&self) -> bool {
        matches!(
            self.metric_name.as_str(),
            "HTTPCode_ELB_5XX_Count" | "HTTPCode_ELB_5XX"
        ) && self.statistic.eq_ignore_ascii_case("Sum")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataPoint {
    /// RFC 3339.
    pub timestamp: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EksCluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_security_group_id: Option<String>,
}

/// A fact that could not be observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// What is missing, as a stable kind: see [`GapFact`].
    pub fact: GapFact,
    /// The resource concerned (subnet id, SG id, metric name, ...), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub reason: GapReason,
    /// The error or explanation, as received (never credentials).
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapFact {
    LoadBalancer,
    LbAttributes,
    Listeners,
    TargetGroups,
    TargetHealth,
    TargetPlacement,
    Subnets,
    NetworkAcls,
    SecurityGroups,
    PrefixList,
    Metrics,
    EksCluster,
    RemediationHistory,
    RecentChanges,
    AccessLogs,
    /// Derived, never gathered: a tag that should name the Kubernetes owner holds no valid name.
    KubernetesOwner,
    /// The cluster behind the load balancer: its API server, or one resource in it.
    KubernetesApi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapReason {
    AccessDenied,
    Throttled,
    NotFound,
    Timeout,
    Unsupported,
    Error,
    /// The value observed is not one AWS or Kubernetes could hold (a malformed name).
    Invalid,
}

impl std::fmt::Display for GapFact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LoadBalancer => "the load balancer",
            Self::LbAttributes => "load balancer attributes",
            Self::Listeners => "listeners",
            Self::TargetGroups => "target groups",
            Self::TargetHealth => "target health",
            Self::TargetPlacement => "target placement",
            Self::Subnets => "subnets",
            Self::NetworkAcls => "network ACLs",
            Self::SecurityGroups => "security groups",
            Self::PrefixList => "prefix lists",
            Self::Metrics => "metrics",
            Self::RecentChanges => "recent changes (CloudTrail)",
            Self::AccessLogs => "access logs (S3)",
            Self::EksCluster => "the EKS cluster",
            Self::RemediationHistory => "elbmedic's remediation history",
            Self::KubernetesOwner => "the Kubernetes owner",
            Self::KubernetesApi => "the cluster (Kubernetes API)",
        })
    }
}

impl std::fmt::Display for GapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AccessDenied => "access denied",
            Self::Throttled => "throttled",
            Self::NotFound => "not found",
            Self::Timeout => "timed out",
            Self::Unsupported => "not supported here",
            Self::Error => "failed",
            Self::Invalid => "not valid",
        })
    }
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.fact)?;
        if let Some(resource) = &self.resource {
            write!(f, " ({resource})")?;
        }
        write!(f, ": {}: {}", self.reason, self.detail)
    }
}

impl Snapshot {
    /// The gap that kept the load balancer itself from being read (not found, denied, timed
    /// out): then nothing about it was observed. A failed tag read alone does not count.
    pub fn unread_load_balancer(&self) -> Option<&Gap> {
        if !self.load_balancer.vpc_id.is_empty() {
            return None;
        }
        self.gaps
            .iter()
            .find(|g| g.fact == GapFact::LoadBalancer && g.resource.as_deref() != Some("tags"))
    }

    /// The EKS cluster: as gathered, else from the controllers' tags on the load balancer.
    pub fn cluster_name(&self) -> Option<String> {
        match &self.eks {
            Some(eks) => Some(eks.name.clone()),
            None => self.load_balancer.cluster_from_tags(),
        }
    }

    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }
    pub fn network_acl(&self, id: &str) -> Option<&NetworkAcl> {
        self.network_acls.iter().find(|a| a.id == id)
    }
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.id == id)
    }
    pub fn prefix_list(&self, id: &str) -> Option<&PrefixList> {
        self.prefix_lists.iter().find(|p| p.id == id)
    }
    /// All series of one metric (any statistic, any target group).
    pub fn series<'a>(
        &'a self,
        metric: &'a str,
        statistic: &'a str,
    ) -> impl Iterator<Item = &'a MetricSeries> {
        self.metrics
            .iter()
            .filter(move |s| s.metric_name == metric && s.statistic.eq_ignore_ascii_case(statistic))
    }
    /// All targets with the group they belong to.
    pub fn targets(&self) -> impl Iterator<Item = (&TargetGroup, &Target)> {
        self.target_groups
            .iter()
            .flat_map(|group| group.targets.iter().map(move |target| (group, target)))
    }
}

/// A string field that hand-written snapshots sometimes give as a number (`"protocol": 6`).
fn text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, found {other}"
        ))),
    }
}

fn optional_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, found {other}"
        ))),
    }
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("invalid snapshot JSON at line {line}, column {column}: {message}")]
    Invalid {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("snapshot schema_version {found} is not supported (this elbmedic reads versions {OLDEST_READABLE_VERSION} to {SCHEMA_VERSION}); record it again with this version")]
    Version { found: u64 },
    #[error("the snapshot holds what AWS does not allow ({0}): it was not recorded from AWS, so it is not diagnosed")]
    BeyondAws(#[from] BeyondAws),
    #[error("the snapshot's kubernetes section holds {0}: it was not read by elbmedic, so it is not diagnosed")]
    BeyondBounds(#[from] crate::kubernetes::BeyondBounds),
}

/// Entries AWS lets one NACL hold in one direction: 40 rules (the highest quota; 20 by
/// default) and the `*` entries for IPv4 and IPv6 that DescribeNetworkAcls lists.
pub const MAX_NACL_ENTRIES_PER_DIRECTION: usize = 42;

impl Snapshot {
    /// Whether the snapshot stays within what AWS can hold. A snapshot from AWS always does;
    /// a replayed or forwarded one may not, and evaluating thousands of NACL entries costs
    /// time that grows with their square.
    pub fn within_aws_limits(&self) -> Result<(), BeyondAws> {
        if let Some(seconds) = self.load_balancer.idle_timeout_seconds {
            if !(1..=4000).contains(&seconds) {
                return Err(BeyondAws::IdleTimeout(seconds));
            }
        }
        for acl in &self.network_acls {
            // An error is one line: a forged id cannot add lines of its own.
            let name: String = acl
                .id
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            for entry in &acl.entries {
                if let Err(why) = entry.as_aws_holds_it() {
                    return Err(BeyondAws::Entry {
                        nacl: name,
                        rule_number: entry.rule_number,
                        why,
                    });
                }
                if !seen.insert((entry.egress, entry.rule_number)) {
                    return Err(BeyondAws::DuplicateRule {
                        nacl: name,
                        rule_number: entry.rule_number,
                    });
                }
            }
            for egress in [false, true] {
                let count = acl.entries.iter().filter(|e| e.egress == egress).count();
                if count > MAX_NACL_ENTRIES_PER_DIRECTION {
                    return Err(BeyondAws::TooManyEntries {
                        nacl: name,
                        count,
                        direction: if egress { "egress" } else { "ingress" },
                    });
                }
            }
        }
        Ok(())
    }
}

/// Whether this elbmedic reads snapshots of `version`.
pub fn readable(version: u64) -> bool {
    (u64::from(OLDEST_READABLE_VERSION)..=u64::from(SCHEMA_VERSION)).contains(&version)
}

/// Reads a snapshot. A version mismatch is reported as such, not as whatever field it broke.
pub fn from_json(text: &str) -> Result<Snapshot, SnapshotError> {
    let invalid = |e: serde_json::Error| SnapshotError::Invalid {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let version_of = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("schema_version").and_then(serde_json::Value::as_u64))
    };
    match serde_json::from_str::<Snapshot>(text) {
        Ok(snapshot) if readable(u64::from(snapshot.schema_version)) => {
            snapshot.within_aws_limits()?;
            if let Some(cluster) = &snapshot.kubernetes {
                cluster.within_bounds()?;
            }
            Ok(snapshot)
        }
        Ok(snapshot) => Err(SnapshotError::Version {
            found: u64::from(snapshot.schema_version),
        }),
        // Parse errors of another version's snapshot are misleading: say it is the version.
        Err(error) => match version_of(text) {
            Some(found) if !readable(found) => Err(SnapshotError::Version { found }),
            Some(_) => Err(invalid(error)),
            None if error.is_syntax() || error.is_eof() => Err(invalid(error)),
            None => Err(SnapshotError::Invalid {
                line: 1,
                column: 1,
                message: "no numeric \"schema_version\"; is this an elbmedic snapshot?".into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_accepted_where_the_api_uses_strings() {
        let world = from_json(
            r#"{"schema_version": 1, "region": "eu-west-1",
                "load_balancer": {"kind": "classic", "name": "x", "id": "x", "vpc_id": "vpc-1", "subnets": []},
                "target_groups": [{"name": "x", "target_type": "instance", "health_check": {"port": 8080}, "targets": []}],
                "network_acls": [{"id": "acl-1", "entries": [{"rule_number": 100, "egress": true, "protocol": 6, "rule_action": "allow", "cidr_block": "0.0.0.0/0"}]}],
                "security_groups": [{"id": "sg-1", "ingress": [{"ip_protocol": -1}]}]}"#,
        )
        .unwrap();
        assert_eq!(world.network_acls[0].entries[0].protocol, "6");
        assert_eq!(world.security_groups[0].ingress[0].ip_protocol, "-1");
        assert_eq!(
            world.target_groups[0]
                .health_check
                .as_ref()
                .unwrap()
                .port_for(80),
            8080
        );
    }

    /// Version 2 adds the cluster; version 1 still reads (without it); anything else, or a
    /// cluster section beyond the reads' bounds, is refused.
    #[test]
    fn versions_one_and_two_read_and_the_cluster_section_is_bounded() {
        let with = |version: u32, kubernetes: &str| {
            format!(
                r#"{{"schema_version": {version}, "region": "eu-west-1",
                    "load_balancer": {{"kind": "application", "name": "x", "id": "app/x/1", "vpc_id": "vpc-1", "subnets": []}}
                    {kubernetes}}}"#
            )
        };
        assert!(from_json(&with(1, "")).unwrap().kubernetes.is_none());
        let cluster = r#", "kubernetes": {"cluster": "prod", "pods": [{"namespace": "shop", "name": "web-1", "phase": "Running", "ready": true}]}"#;
        let read = from_json(&with(2, cluster)).unwrap();
        assert_eq!(read.kubernetes.unwrap().pods[0].name, "web-1");
        assert!(matches!(
            from_json(&with(3, "")),
            Err(SnapshotError::Version { found: 3 })
        ));
        let pods =
            vec![r#"{"namespace": "a", "name": "p"}"#; crate::kubernetes::MAX_PODS + 1].join(",");
        let flood = format!(r#", "kubernetes": {{"cluster": "prod", "pods": [{pods}]}}"#);
        let err = from_json(&with(2, &flood)).unwrap_err();
        assert!(matches!(err, SnapshotError::BeyondBounds(_)), "{err}");
    }

    #[test]
    fn version_mismatch_and_bad_json_are_told_apart() {
        let err = from_json(r#"{"schema_version": 7, "region": 1}"#).unwrap_err();
        assert!(matches!(err, SnapshotError::Version { found: 7 }), "{err}");
        let err = from_json("{\n  \"schema_version\": 1,\n  oops").unwrap_err();
        assert!(
            matches!(err, SnapshotError::Invalid { line: 3, .. }),
            "{err}"
        );
        let err = from_json(r#"{"hello": 1}"#).unwrap_err();
        assert!(
            err.to_string().contains("is this an elbmedic snapshot"),
            "{err}"
        );
        let err = from_json(r#"{"schema_version": 1, "region": "x"}"#).unwrap_err();
        assert!(
            err.to_string().contains("missing field `load_balancer`"),
            "{err}"
        );
    }

    /// The outside review: NACL entries AWS could not hold were skipped, and the path called
    /// open. A replayed snapshot holding one is refused, naming it.
    #[test]
    fn entries_aws_could_not_hold_are_refused() {
        let scenario = crate::scenarios::find("nacl-ephemeral-lb-subnets").unwrap();
        let good: serde_json::Value = serde_json::from_str(scenario.snapshot).unwrap();
        assert!(from_json(&good.to_string()).is_ok());
        let edits: [(&str, serde_json::Value, &str); 7] = [
            (
                "cidr_block",
                serde_json::json!("10.0.48.0/33"),
                "exactly one valid CIDR",
            ),
            (
                "cidr_block",
                serde_json::json!("x"),
                "exactly one valid CIDR",
            ),
            ("protocol", serde_json::json!("999"), "the protocol"),
            (
                "rule_action",
                serde_json::json!("maybe"),
                "neither allow nor deny",
            ),
            (
                "port_range",
                serde_json::json!({"from": 65535, "to": 1024}),
                "reversed",
            ),
            ("rule_number", serde_json::json!(0), "rule number"),
            (
                "rule_number",
                serde_json::json!(32767),
                "twice in one direction",
            ),
        ];
        for (field, value, expected) in edits {
            let mut world = good.clone();
            let entries = world["network_acls"][0]["entries"].as_array_mut().unwrap();
            let deny = entries
                .iter_mut()
                .find(|e| e["rule_action"] == "deny" && e["rule_number"] != 32767)
                .unwrap();
            deny[field] = value;
            let error = from_json(&world.to_string()).unwrap_err().to_string();
            assert!(error.contains(expected), "{field}: {error}");
        }
        let mut world = good.clone();
        world["load_balancer"]["idle_timeout_seconds"] = serde_json::json!(0);
        let error = from_json(&world.to_string()).unwrap_err().to_string();
        assert!(error.contains("AWS allows 1-4000 s"), "{error}");
    }
}
