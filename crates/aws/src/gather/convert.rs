//! SDK shapes to snapshot shapes. Pure functions over SDK output types, one per resource kind.

use std::collections::BTreeMap;

use elbmedic_engine::snapshot::{
    AccessLogConfig, HealthCheck, Interface, Listener, ListenerRule, LoadBalancer, NaclEntry,
    NetworkAcl, Placement, PortRange, SecurityGroup, SgRule, Subnet, Target, TargetGroup,
    TargetHealth, DEFAULT_IDLE_TIMEOUT,
};

use aws_sdk_elasticloadbalancing::types as elb;
use aws_sdk_elasticloadbalancingv2::types as elbv2;

/// A tag of any of the SDKs, as (key, value); `None` for one without a key.
pub trait SdkTag {
    fn key_value(&self) -> Option<(String, String)>;
}

impl SdkTag for aws_sdk_ec2::types::Tag {
    fn key_value(&self) -> Option<(String, String)> {
        Some((
            self.key()?.to_string(),
            self.value().unwrap_or_default().to_string(),
        ))
    }
}

impl SdkTag for aws_sdk_elasticloadbalancingv2::types::Tag {
    fn key_value(&self) -> Option<(String, String)> {
        Some((
            self.key()?.to_string(),
            self.value().unwrap_or_default().to_string(),
        ))
    }
}

impl SdkTag for aws_sdk_elasticloadbalancing::types::Tag {
    fn key_value(&self) -> Option<(String, String)> {
        Some((
            self.key().to_string(),
            self.value().unwrap_or_default().to_string(),
        ))
    }
}

/// Tags of any SDK as the snapshot keeps them: the one conversion.
pub fn tags<'a, T: SdkTag + 'a>(tags: impl IntoIterator<Item = &'a T>) -> BTreeMap<String, String> {
    tags.into_iter().filter_map(SdkTag::key_value).collect()
}

pub fn port(value: Option<i32>) -> Option<u16> {
    value.and_then(|v| u16::try_from(v).ok())
}

/// A CIDR association still in force: AWS lists disassociated blocks for a while after.
pub fn still_associated(state: Option<&str>) -> bool {
    !matches!(
        state,
        Some("disassociating" | "disassociated" | "failing" | "failed")
    )
}

pub fn subnet(s: &aws_sdk_ec2::types::Subnet) -> Option<Subnet> {
    Some(Subnet {
        id: s.subnet_id()?.to_string(),
        availability_zone: s.availability_zone().map(str::to_string),
        cidr_ipv4: s.cidr_block().map(str::to_string),
        cidr_ipv6: s
            .ipv6_cidr_block_association_set()
            .iter()
            .filter(|a| {
                still_associated(
                    a.ipv6_cidr_block_state()
                        .and_then(|s| s.state())
                        .map(|s| s.as_str()),
                )
            })
            .filter_map(|a| a.ipv6_cidr_block().map(str::to_string))
            .collect(),
        network_acl_id: None,
        tags: tags(s.tags()),
    })
}

pub fn network_acl(acl: &aws_sdk_ec2::types::NetworkAcl) -> Option<NetworkAcl> {
    Some(NetworkAcl {
        id: acl.network_acl_id()?.to_string(),
        is_default: acl.is_default().unwrap_or(false),
        entries: acl
            .entries()
            .iter()
            .filter_map(|e| {
                Some(NaclEntry {
                    rule_number: u16::try_from(e.rule_number()?).ok()?,
                    egress: e.egress().unwrap_or(false),
                    protocol: e.protocol().unwrap_or("-1").to_string(),
                    rule_action: e
                        .rule_action()
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                    cidr_block: e.cidr_block().map(str::to_string),
                    ipv6_cidr_block: e.ipv6_cidr_block().map(str::to_string),
                    port_range: e.port_range().and_then(|r| {
                        Some(PortRange {
                            from: port(r.from())?,
                            to: port(r.to())?,
                        })
                    }),
                })
            })
            .collect(),
    })
}

/// Subnet id -> NACL id, from the NACLs' associations.
pub fn nacl_associations(acls: &[aws_sdk_ec2::types::NetworkAcl]) -> BTreeMap<String, String> {
    acls.iter()
        .flat_map(|acl| {
            let id = acl.network_acl_id().unwrap_or_default().to_string();
            acl.associations()
                .iter()
                .filter_map(move |a| Some((a.subnet_id()?.to_string(), id.clone())))
        })
        .collect()
}

fn sg_rule(p: &aws_sdk_ec2::types::IpPermission) -> SgRule {
    SgRule {
        ip_protocol: p.ip_protocol().unwrap_or("-1").to_string(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        ipv4_ranges: p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(str::to_string))
            .collect(),
        ipv6_ranges: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6().map(str::to_string))
            .collect(),
        prefix_list_ids: p
            .prefix_list_ids()
            .iter()
            .filter_map(|r| r.prefix_list_id().map(str::to_string))
            .collect(),
        security_groups: p
            .user_id_group_pairs()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        description: None,
    }
}

pub fn security_group(g: &aws_sdk_ec2::types::SecurityGroup) -> Option<SecurityGroup> {
    Some(SecurityGroup {
        id: g.group_id()?.to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().map(str::to_string),
        tags: tags(g.tags()),
        ingress: g.ip_permissions().iter().map(sg_rule).collect(),
        egress: g.ip_permissions_egress().iter().map(sg_rule).collect(),
    })
}

/// The interface an address of `eni` maps to.
fn eni_interface(
    eni: &aws_sdk_ec2::types::NetworkInterface,
    ip: &str,
    via_prefix: bool,
) -> Interface {
    Interface {
        private_ip: ip.to_string(),
        subnet_id: eni.subnet_id().unwrap_or_default().to_string(),
        eni_id: eni.network_interface_id().map(str::to_string),
        instance_id: eni
            .attachment()
            .and_then(|a| a.instance_id())
            .map(str::to_string),
        security_groups: eni
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        via_prefix,
    }
}

/// Every address an ENI holds (primary, secondary, IPv6), with the interface it maps to.
pub fn interface_addresses(eni: &aws_sdk_ec2::types::NetworkInterface) -> Vec<(String, Interface)> {
    let ipv4 = eni
        .private_ip_addresses()
        .iter()
        .filter_map(|a| a.private_ip_address())
        .chain(eni.private_ip_address());
    let ipv6 = eni.ipv6_addresses().iter().filter_map(|a| a.ipv6_address());
    ipv4.chain(ipv6)
        .map(|ip| (ip.to_string(), eni_interface(eni, ip, false)))
        .collect()
}

/// Delegated prefixes of an ENI (prefix delegation: IPv4 `/28`s, and the IPv6 `/80`s an IPv6
/// EKS cluster gives each node), each with a template interface whose address the caller
/// fills in.
pub fn interface_prefixes(eni: &aws_sdk_ec2::types::NetworkInterface) -> Vec<(String, Interface)> {
    let ipv4 = eni.ipv4_prefixes().iter().filter_map(|p| p.ipv4_prefix());
    let ipv6 = eni.ipv6_prefixes().iter().filter_map(|p| p.ipv6_prefix());
    ipv4.chain(ipv6)
        .map(|prefix| (prefix.to_string(), eni_interface(eni, "", true)))
        .collect()
}

/// An instance's primary interface: its address, subnet and the SGs of device 0.
pub fn instance_interface(i: &aws_sdk_ec2::types::Instance) -> Option<Interface> {
    let primary = i
        .network_interfaces()
        .iter()
        .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0));
    let groups: Vec<String> = match primary {
        Some(eni) if !eni.groups().is_empty() => eni
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        _ => i
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
    };
    Some(Interface {
        private_ip: i.private_ip_address()?.to_string(),
        subnet_id: i.subnet_id()?.to_string(),
        eni_id: primary
            .and_then(|n| n.network_interface_id())
            .map(str::to_string),
        instance_id: i.instance_id().map(str::to_string),
        security_groups: groups,
        via_prefix: false,
    })
}

/// A Classic LB health check target (`HTTP:8080/healthz`, `TCP:31380`).
pub fn classic_health_check(h: &aws_sdk_elasticloadbalancing::types::HealthCheck) -> HealthCheck {
    let target = h.target();
    let (protocol, rest) = target.split_once(':').unwrap_or((target, ""));
    let (port, path) = match rest.split_once('/') {
        Some((port, path)) => (port, Some(format!("/{path}"))),
        None => (rest, None),
    };
    HealthCheck {
        protocol: Some(protocol.to_string()).filter(|p| !p.is_empty()),
        port: Some(port.to_string()).filter(|p| !p.is_empty()),
        path,
        timeout_seconds: u32::try_from(h.timeout()).ok(),
        interval_seconds: u32::try_from(h.interval()).ok(),
        success_codes: None,
    }
}

pub fn alb_health(h: Option<&aws_sdk_elasticloadbalancingv2::types::TargetHealth>) -> TargetHealth {
    TargetHealth {
        state: h
            .and_then(|h| h.state())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        reason: h.and_then(|h| h.reason()).map(|r| r.as_str().to_string()),
        description: h.and_then(|h| h.description()).map(str::to_string),
    }
}

pub fn classic_health(s: &aws_sdk_elasticloadbalancing::types::InstanceState) -> TargetHealth {
    TargetHealth {
        state: s.state().unwrap_or("unknown").to_string(),
        reason: s
            .reason_code()
            .filter(|r| !r.is_empty() && *r != "N/A")
            .map(str::to_string),
        description: s
            .description()
            .filter(|d| !d.is_empty() && *d != "N/A")
            .map(str::to_string),
    }
}

/// Where a load balancer sits, as either ELB API describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub arn: Option<String>,
    pub dns_name: Option<String>,
    pub scheme: Option<String>,
    pub vpc_id: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub ip_address_type: Option<String>,
}

impl Described {
    pub fn apply(self, lb: &mut LoadBalancer) {
        lb.arn = self.arn.or(lb.arn.take());
        lb.dns_name = self.dns_name;
        lb.scheme = self.scheme;
        lb.vpc_id = self.vpc_id;
        lb.subnets = self.subnets;
        lb.security_groups = self.security_groups;
        lb.ip_address_type = self.ip_address_type;
    }
}

pub fn alb_described(lb: &elbv2::LoadBalancer) -> Described {
    Described {
        arn: lb.load_balancer_arn().map(str::to_string),
        dns_name: lb.dns_name().map(str::to_string),
        scheme: lb.scheme().map(|s| s.as_str().to_string()),
        vpc_id: lb.vpc_id().unwrap_or_default().to_string(),
        subnets: lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_string))
            .collect(),
        security_groups: lb.security_groups().to_vec(),
        ip_address_type: lb.ip_address_type().map(|t| t.as_str().to_string()),
    }
}

pub fn classic_described(d: &elb::LoadBalancerDescription) -> Described {
    Described {
        arn: None,
        dns_name: d.dns_name().map(str::to_string),
        scheme: d.scheme().map(str::to_string),
        vpc_id: d.vpc_id().unwrap_or_default().to_string(),
        subnets: d.subnets().to_vec(),
        security_groups: d.security_groups().to_vec(),
        ip_address_type: None,
    }
}

/// The ALB's idle timeout; unset means the AWS default (moto reports it only once set).
pub fn alb_idle_timeout(attributes: &[elbv2::LoadBalancerAttribute]) -> u32 {
    attributes
        .iter()
        .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
        .and_then(|a| a.value())
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_IDLE_TIMEOUT)
}

/// An ALB's attributes as keys and values, bounded: AWS has a few dozen, each short.
pub fn alb_attributes(
    attributes: &[elbv2::LoadBalancerAttribute],
) -> std::collections::BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|a| {
            Some((
                a.key()?.to_string(),
                a.value().unwrap_or_default().to_string(),
            ))
        })
        .filter(|(key, value)| key.len() <= 128 && value.len() <= 1024)
        .take(100)
        .collect()
}

/// An ALB's access-log settings, from its attributes.
pub fn alb_access_log(attributes: &[elbv2::LoadBalancerAttribute]) -> AccessLogConfig {
    let value = |key: &str| {
        attributes
            .iter()
            .find(|a| a.key() == Some(key))
            .and_then(|a| a.value())
            .unwrap_or_default()
    };
    AccessLogConfig {
        enabled: value("access_logs.s3.enabled") == "true",
        bucket: Some(value("access_logs.s3.bucket").to_string()).filter(|b| !b.is_empty()),
        prefix: value("access_logs.s3.prefix").to_string(),
        emit_interval_minutes: Some(5),
    }
}

/// What elbmedic reads of a Classic LB's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicAttributes {
    /// The idle timeout; the default when unset.
    pub idle_timeout: u32,
    pub cross_zone: Option<bool>,
    /// Connection draining's timeout, 0 when it is off.
    pub draining_seconds: Option<u32>,
    pub access_log: Option<AccessLogConfig>,
}

pub fn classic_attributes(attributes: Option<&elb::LoadBalancerAttributes>) -> ClassicAttributes {
    ClassicAttributes {
        idle_timeout: attributes
            .and_then(|a| a.connection_settings())
            .and_then(|c| u32::try_from(c.idle_timeout()).ok())
            .unwrap_or(DEFAULT_IDLE_TIMEOUT),
        cross_zone: attributes
            .and_then(|a| a.cross_zone_load_balancing())
            .map(|c| c.enabled()),
        draining_seconds: attributes.and_then(|a| a.connection_draining()).map(|d| {
            if d.enabled() {
                d.timeout()
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(300)
            } else {
                0
            }
        }),
        access_log: attributes
            .and_then(|a| a.access_log())
            .map(|log| AccessLogConfig {
                enabled: log.enabled(),
                bucket: log.s3_bucket_name().map(str::to_string),
                prefix: log.s3_bucket_prefix().unwrap_or_default().to_string(),
                emit_interval_minutes: log.emit_interval().and_then(|m| u32::try_from(m).ok()),
            }),
    }
}

pub fn alb_listener(l: &elbv2::Listener) -> Listener {
    Listener {
        protocol: l
            .protocol()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        port: port(l.port()).unwrap_or(0),
        instance_port: None,
        instance_protocol: None,
        arn: l.listener_arn().map(str::to_string),
        forwards_to: forwarded_groups(l.default_actions()),
        rules: None,
        attributes: None,
    }
}

/// The target groups a list of actions forwards to: a simple forward's group, or each group of
/// a weighted forward.
fn forwarded_groups(actions: &[elbv2::Action]) -> Vec<String> {
    let mut groups = Vec::new();
    for action in actions {
        if action.r#type() != Some(&elbv2::ActionTypeEnum::Forward) {
            continue;
        }
        groups.extend(action.target_group_arn().map(str::to_string));
        if let Some(config) = action.forward_config() {
            groups.extend(
                config
                    .target_groups()
                    .iter()
                    .filter_map(|g| g.target_group_arn().map(str::to_string)),
            );
        }
    }
    groups.sort();
    groups.dedup();
    groups
}

/// A listener's rule other than its default one (that one is the listener's own action).
pub fn alb_rule(rule: &elbv2::Rule) -> Option<ListenerRule> {
    if rule.is_default() == Some(true) {
        return None;
    }
    let conditions = rule
        .conditions()
        .iter()
        .map(|c| {
            let field = c.field().unwrap_or("condition");
            let mut values: Vec<&str> = c.values().iter().map(String::as_str).collect();
            if let Some(path) = c.path_pattern_config() {
                values.extend(path.values().iter().map(String::as_str));
            }
            if let Some(host) = c.host_header_config() {
                values.extend(host.values().iter().map(String::as_str));
            }
            format!("{field} {}", values.join(","))
        })
        .collect();
    Some(ListenerRule {
        priority: rule.priority().unwrap_or("?").to_string(),
        conditions,
        forwards_to: forwarded_groups(rule.actions()),
    })
}

pub fn classic_listener(l: &elb::Listener) -> Listener {
    Listener {
        protocol: l.protocol().to_string(),
        port: port(Some(l.load_balancer_port())).unwrap_or(0),
        instance_port: port(Some(l.instance_port())),
        instance_protocol: l.instance_protocol().map(str::to_string),
        arn: None,
        forwards_to: Vec::new(),
        rules: None,
        attributes: None,
    }
}

/// A target group as described, before its health and attributes are read.
pub fn alb_target_group(group: &elbv2::TargetGroup) -> TargetGroup {
    let seconds = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
    TargetGroup {
        name: group.target_group_name().unwrap_or_default().to_string(),
        arn: group.target_group_arn().map(str::to_string),
        target_type: group
            .target_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_else(|| "instance".into()),
        protocol: group.protocol().map(|p| p.as_str().to_string()),
        port: port(group.port()),
        health_check: Some(HealthCheck {
            protocol: group
                .health_check_protocol()
                .map(|p| p.as_str().to_string()),
            port: group.health_check_port().map(str::to_string),
            path: group.health_check_path().map(str::to_string),
            timeout_seconds: seconds(group.health_check_timeout_seconds()),
            interval_seconds: seconds(group.health_check_interval_seconds()),
            success_codes: group
                .matcher()
                .and_then(|m| m.grpc_code().or(m.http_code()))
                .map(str::to_string),
        }),
        deregistration_delay_seconds: None,
        slow_start_seconds: None,
        protocol_version: group.protocol_version().map(str::to_string),
        preserve_client_ip: None,
        ip_address_type: group.ip_address_type().map(|t| t.as_str().to_string()),
        tags: BTreeMap::new(),
        targets: Vec::new(),
    }
}

/// A target group's deregistration delay and slow start, from its attributes.
pub fn group_attributes(attributes: &[elbv2::TargetGroupAttribute]) -> GroupAttributes {
    let value = |key: &str| {
        attributes
            .iter()
            .find(|a| a.key() == Some(key))
            .and_then(|a| a.value())
            .map(str::trim)
    };
    let seconds = |key: &str| value(key).and_then(|v| v.parse().ok());
    GroupAttributes {
        deregistration_delay_seconds: seconds("deregistration_delay.timeout_seconds"),
        slow_start_seconds: seconds("slow_start.duration_seconds"),
        preserve_client_ip: value("preserve_client_ip.enabled").and_then(|v| v.parse().ok()),
    }
}

/// What the rules read of a target group's attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupAttributes {
    pub deregistration_delay_seconds: Option<u32>,
    pub slow_start_seconds: Option<u32>,
    /// An NLB group's `preserve_client_ip.enabled`.
    pub preserve_client_ip: Option<bool>,
}

/// An NLB listener's attributes as keys and values, bounded like the load balancer's.
pub fn listener_attributes(
    attributes: &[elbv2::ListenerAttribute],
) -> std::collections::BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|a| Some((a.key()?.to_string(), a.value()?.to_string())))
        .filter(|(key, value)| key.len() <= 128 && value.len() <= 1024)
        .take(64)
        .collect()
}

/// The `TargetGroup` dimension of CloudWatch, `targetgroup/NAME/ID`, from the group's ARN.
pub fn target_group_dimension(arn: &str) -> Option<String> {
    let (_, rest) = arn.split_once(":targetgroup/")?;
    Some(format!("targetgroup/{rest}"))
}

/// A registered target and its health; the group's port when the target names none.
pub fn alb_target(d: &elbv2::TargetHealthDescription, group_port: Option<u16>) -> Option<Target> {
    let target = d.target()?;
    Some(Target {
        id: target.id()?.to_string(),
        port: port(target.port()).or(group_port).unwrap_or(0),
        availability_zone: target.availability_zone().map(str::to_string),
        health: alb_health(d.target_health()),
        placement: Placement::Unobserved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_health_check_targets_are_split() {
        let h = aws_sdk_elasticloadbalancing::types::HealthCheck::builder()
            .target("HTTP:32001/healthz/ready")
            .interval(10)
            .timeout(5)
            .healthy_threshold(2)
            .unhealthy_threshold(6)
            .build()
            .unwrap();
        let hc = classic_health_check(&h);
        assert_eq!(hc.protocol.as_deref(), Some("HTTP"));
        assert_eq!(hc.port.as_deref(), Some("32001"));
        assert_eq!(hc.path.as_deref(), Some("/healthz/ready"));
        let tcp = aws_sdk_elasticloadbalancing::types::HealthCheck::builder()
            .target("TCP:31380")
            .interval(10)
            .timeout(5)
            .healthy_threshold(2)
            .unhealthy_threshold(6)
            .build()
            .unwrap();
        assert_eq!(classic_health_check(&tcp).port.as_deref(), Some("31380"));
        assert_eq!(classic_health_check(&tcp).path, None);
    }
}
