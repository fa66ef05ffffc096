//! The guardrails `remediate` checks on every action against freshly gathered state, and the
//! reconcile question "is it still needed?". A plan is never trusted as given: an action is
//! applied only if it is in the plan, still needed, and passes every guardrail here.

use std::collections::BTreeSet;

use super::durable::{idle_timeout_kept, idle_timeout_place};
use super::{cluster_refusal, policy_refusal, Action, NaclActionKind, Place, Policy};
use crate::backends::Backends;
use crate::context::Owner;
use crate::netcheck::nacl::{check_allow_number, evaluate, rule_number_for_allow, TCP};
use crate::netcheck::{AddrRange, Direction, FlowBox};
use crate::snapshot::{NetworkAcl, PortRange, Snapshot};

/// AWS's range for idle timeouts, Classic LB and ALB alike.
const IDLE_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 1..=4000;

/// The load balancer's own subnets.
fn lb_subnets(world: &Snapshot) -> BTreeSet<&str> {
    world
        .load_balancer
        .subnets
        .iter()
        .map(String::as_str)
        .collect()
}

/// The subnets its located targets live in.
fn target_subnets(world: &Snapshot) -> BTreeSet<&str> {
    world
        .targets()
        .filter_map(|(_, t)| t.interface())
        .map(|i| i.subnet_id.as_str())
        .collect()
}

/// The traffic a NACL allow entry admits: its direction, and TCP `ports` to or from `cidr`.
fn entry_traffic(egress: bool, cidr: &str, ports: PortRange) -> Option<(Direction, [FlowBox; 1])> {
    let addrs = AddrRange::parse(cidr)?;
    Some((Direction::of_egress(egress), [FlowBox { addrs, ports }]))
}

/// Target and health-check ports of this load balancer.
fn target_ports(world: &Snapshot) -> BTreeSet<u16> {
    world
        .targets()
        .flat_map(|(group, target)| {
            let health = group
                .health_check
                .as_ref()
                .map_or(target.port, |hc| hc.port_for(target.port));
            [target.port, health]
        })
        .collect()
}

/// Why `action` must not be applied to `world`; `None` when it may.
pub fn refusal(action: &Action, world: &Snapshot, policy: &Policy) -> Option<String> {
    if let Some(reason) = super::kind_refusal(world, action)
        .or_else(|| cluster_refusal(world, policy))
        .or_else(|| policy_refusal(action, policy))
    {
        return Some(reason);
    }
    let lb = &world.load_balancer;
    match action {
        Action::KeepIdleTimeout {
            cluster,
            place,
            seconds,
        } => keep_refusal(world, cluster, place, *seconds, policy),
        Action::EnableReadinessGates { cluster, place } => {
            gate_refusal(world, cluster, place, policy)
        }
        Action::RaiseIdleTimeout { to, .. } => {
            if !IDLE_TIMEOUT_RANGE.contains(to) {
                return Some(format!("{to} s is outside the AWS range of 1-4000 s"));
            }
            // A timeout already at or above `to` is not refused: it is simply not needed
            // (see `still_needed`), so a plan applied twice is a no-op the second time.
            lb.idle_timeout_seconds.is_none().then(|| {
                "the current idle timeout could not be read, so raising it cannot be checked".into()
            })
        }
        Action::RaiseListenerIdleTimeout {
            listener_arn,
            port,
            to,
            ..
        } => listener_refusal(world, listener_arn, *port, *to),
        Action::AllowNaclEntry { .. } => nacl_refusal(action, world, policy),
        Action::AllowSgIngress {
            group_id,
            source_group_id,
            port,
            ..
        } => {
            let on_targets = world
                .targets()
                .filter_map(|(_, t)| t.interface())
                .any(|i| i.security_groups.contains(group_id));
            if !on_targets && !lb.security_groups.contains(group_id) {
                return Some(format!("{group_id} is neither the load balancer's nor on one of its targets' interfaces"));
            }
            let Some(group) = world.security_group(group_id) else {
                return Some(format!("{group_id} could not be read"));
            };
            if group.vpc_id.as_deref().is_some_and(|v| v != lb.vpc_id) {
                return Some(format!(
                    "{group_id} is in another VPC than the load balancer"
                ));
            }
            if group.is_controller_managed() {
                return Some(format!("{group_id} is fully reconciled by a Kubernetes controller, which would revoke the rule; fix it through the Service or Ingress"));
            }
            if !lb.security_groups.contains(source_group_id) {
                return Some(format!(
                    "{source_group_id} is not a security group of this load balancer"
                ));
            }
            (!target_ports(world).contains(port)).then(|| {
                format!("TCP {port} is not a target or health-check port of this load balancer")
            })
        }
    }
}

/// Ties a NACL entry to its path. Replies (ephemeral ports) leave a target subnet towards
/// the LB subnets (egress on the target subnet's NACL) or arrive at an LB subnet from the
/// target subnets (ingress on the LB subnet's NACL); requests on the target port are the
/// mirror image. The CIDR must be exactly a far-side subnet's block.
fn path_refusal(
    kind: NaclActionKind,
    nacl_id: &str,
    egress: bool,
    cidr: &str,
    world: &Snapshot,
) -> Option<String> {
    let (lb_subnets, target_subnets) = (lb_subnets(world), target_subnets(world));
    // (the side whose NACL holds the entry, the far side whose CIDR it names)
    let (near, far, near_name, far_name) = match (kind, egress) {
        (NaclActionKind::Ephemeral, true) | (NaclActionKind::TargetPort, false) => (
            &target_subnets,
            &lb_subnets,
            "a target subnet",
            "load balancer",
        ),
        (NaclActionKind::Ephemeral, false) | (NaclActionKind::TargetPort, true) => (
            &lb_subnets,
            &target_subnets,
            "a load balancer subnet",
            "target",
        ),
    };
    let direction = if egress { "egress" } else { "ingress" };
    let what = match kind {
        NaclActionKind::Ephemeral => "replies on 1024-65535",
        NaclActionKind::TargetPort => "the target port",
    };
    let near_acl = world
        .subnets
        .iter()
        .filter(|s| near.contains(s.id.as_str()))
        .any(|s| s.network_acl_id.as_deref() == Some(nacl_id));
    if !near_acl {
        return Some(format!(
            "{direction} for {what} belongs on the NACL of {near_name}, and {nacl_id} is not one"
        ));
    }
    let far_cidr = world
        .subnets
        .iter()
        .filter(|s| far.contains(s.id.as_str()))
        .any(|s| s.cidr_ipv4.as_deref() == Some(cidr) || s.cidr_ipv6.iter().any(|c| c == cidr));
    (!far_cidr).then(|| {
        format!("{cidr} is not the CIDR block of a {far_name} subnet; {direction} entries for {what} name exactly the far side's subnets")
    })
}

/// The rule number must lie where the engine itself would put it, judged from the NACL's
/// entries as just read: after every explicit deny that overlaps the entry (unless
/// `OVERRIDE_EXPLICIT_DENY`), and before the entry that decides today.
fn window_refusal(
    nacl_id: &str,
    egress: bool,
    rule_number: u16,
    cidr: &str,
    ports: PortRange,
    world: &Snapshot,
    policy: &Policy,
) -> Option<String> {
    let Some(acl) = world.network_acl(nacl_id) else {
        return Some(format!(
            "{nacl_id}'s entries could not be read, so the rule number cannot be checked"
        ));
    };
    let (direction, flows) = entry_traffic(egress, cidr, ports)?;
    check_allow_number(
        acl,
        direction,
        TCP,
        &flows,
        rule_number,
        policy.override_explicit_deny,
    )
    .err()
    .map(|refusal| refusal.to_string())
}

/// A CIDR remediation may open: parseable, never everything, inside the VPC.
fn cidr_refusal(cidr: &str, vpc_cidrs: &[String]) -> Option<String> {
    let Some(range) = AddrRange::parse(cidr).filter(|_| cidr.contains('/')) else {
        return Some(format!("{cidr:?} is not a CIDR block"));
    };
    if cidr.ends_with("/0") {
        return Some(format!("{cidr} would open everything; elbmedic never does"));
    }
    if vpc_cidrs.is_empty() {
        return Some(
            "the VPC's CIDR blocks could not be read, so the CIDR cannot be checked".into(),
        );
    }
    let inside = vpc_cidrs
        .iter()
        .filter_map(|c| AddrRange::parse(c))
        .any(|vpc| vpc.contains(&range));
    (!inside).then(|| {
        format!(
            "{cidr} is outside the VPC's CIDR blocks ({})",
            vpc_cidrs.join(", ")
        )
    })
}

/// Whether the observed state still lacks what `action` adds (the reconcile question).
pub fn still_needed(action: &Action, world: &Snapshot) -> bool {
    match action {
        // Never lowered: a value kept there at or above `seconds` is in place.
        Action::KeepIdleTimeout { place, seconds, .. } => world
            .kubernetes
            .as_ref()
            .and_then(|cluster| idle_timeout_kept(place, cluster))
            .and_then(|kept| kept.trim().parse::<u32>().ok())
            .is_none_or(|kept| kept < *seconds),
        Action::EnableReadinessGates { place, .. } => world
            .kubernetes
            .as_ref()
            .and_then(|cluster| cluster.namespaces.iter().find(|n| n.name == place.name()))
            .is_none_or(|namespace| !namespace.injects_readiness_gates()),
        Action::RaiseIdleTimeout { to, .. } => world
            .load_balancer
            .idle_timeout_seconds
            .is_none_or(|current| current < *to),
        Action::RaiseListenerIdleTimeout {
            listener_arn, to, ..
        } => world
            .load_balancer
            .listener(listener_arn)
            .is_none_or(|l| l.flow_idle_timeout().seconds < *to),
        Action::AllowNaclEntry {
            nacl_id,
            egress,
            cidr,
            ports,
            ..
        } => {
            let (Some(acl), Some((direction, flows))) = (
                world.network_acl(nacl_id),
                entry_traffic(*egress, cidr, *ports),
            ) else {
                return true;
            };
            !evaluate(acl, direction, TCP, &flows).allowed()
        }
        Action::AllowSgIngress {
            group_id,
            source_group_id,
            port,
            ..
        } => {
            let Some(group) = world.security_group(group_id) else {
                return true;
            };
            !group.ingress.iter().any(|rule| {
                let protocol = rule.ip_protocol.trim();
                let port = i32::from(*port);
                let covers = protocol == "-1"
                    || (matches!(protocol, "tcp" | "6")
                        && rule.from_port.unwrap_or(0) <= port
                        && port <= rule.to_port.unwrap_or(65535));
                covers && rule.security_groups.contains(source_group_id)
            })
        }
    }
}

/// An NLB listener's idle timeout may be raised only on a TCP listener of the alarmed load
/// balancer itself, as read again, on its own port, within AWS's 60-6000 s, and only when its
/// current value was read (a forged plan can name any ARN).
fn listener_refusal(world: &Snapshot, listener_arn: &str, port: u16, to: u32) -> Option<String> {
    let lb = &world.load_balancer;
    let Some(lb_arn) = lb.arn.as_deref() else {
        return Some(
            "the load balancer's ARN could not be read, so the listener cannot be tied to it"
                .into(),
        );
    };
    let own_prefix = format!("{}/", lb_arn.replacen(":loadbalancer/", ":listener/", 1));
    let shown = crate::untrusted::clipped(listener_arn, 160);
    if !listener_arn.starts_with(&own_prefix) {
        return Some(format!("listener {shown} is not a listener of {}", lb.name));
    }
    let Some(listener) = lb.listener(listener_arn) else {
        return Some(format!(
            "listener {shown} is not among the load balancer's listeners as read now"
        ));
    };
    let timeout = listener.flow_idle_timeout();
    if listener.port != port {
        return Some(format!(
            "listener {shown} serves port {}, not {port}",
            listener.port
        ));
    }
    if !timeout.settable {
        return Some(format!(
            "a {} listener's idle timeout is fixed",
            listener.protocol
        ));
    }
    if !timeout.observed {
        return Some("the listener's current idle timeout could not be read, so raising it cannot be checked".into());
    }
    (!crate::snapshot::NLB_TCP_IDLE_TIMEOUT_RANGE.contains(&to))
        .then(|| format!("{to} s is outside the AWS range of 60-6000 s"))
}

/// Why a NACL allow entry must not be applied: off the path, outside the numbers, the VPC's
/// CIDRs, the ports or the window the engine itself would choose from.
fn nacl_refusal(action: &Action, world: &Snapshot, policy: &Policy) -> Option<String> {
    let Action::AllowNaclEntry {
        kind,
        nacl_id,
        egress,
        cidr,
        ports,
        rule_number,
        ..
    } = action
    else {
        return None;
    };
    let lb = &world.load_balancer;
    let path_subnets: BTreeSet<&str> = lb_subnets(world)
        .into_iter()
        .chain(target_subnets(world))
        .collect();
    let on_path = world
        .subnets
        .iter()
        .filter(|s| path_subnets.contains(s.id.as_str()))
        .any(|s| s.network_acl_id.as_deref() == Some(nacl_id.as_str()));
    if !on_path {
        return Some(format!(
            "{nacl_id} is not associated with a subnet of this load balancer or its targets"
        ));
    }
    if !(1..=32766).contains(rule_number) {
        return Some(format!("rule number {rule_number} is outside 1-32766"));
    }
    if let Some(reason) = cidr_refusal(cidr, &lb.vpc_cidrs) {
        return Some(reason);
    }
    let port_refusal = match kind {
        NaclActionKind::Ephemeral if *ports != PortRange::EPHEMERAL => Some(format!(
            "ephemeral entries open exactly TCP 1024-65535, not {ports}"
        )),
        NaclActionKind::TargetPort
            if ports.from != ports.to || !target_ports(world).contains(&ports.from) =>
        {
            Some(format!(
                "TCP {ports} is not a target or health-check port of this load balancer"
            ))
        }
        _ => None,
    };
    port_refusal
        .or_else(|| path_refusal(*kind, nacl_id, *egress, cidr, world))
        .or_else(|| window_refusal(nacl_id, *egress, *rule_number, cidr, *ports, world, policy))
}

/// Why keeping `seconds` at `place` in `cluster` must not be applied to `world` (read just
/// now, the cluster included): a plan names only its own load balancer's cluster and the one
/// object that keeps its idle timeout, never one that Argo CD, Flux or Helm re-applies
/// (unless `OVERRIDE_GITOPS`), and never a value below the load balancer's own.
fn keep_refusal(
    world: &Snapshot,
    cluster: &str,
    place: &Place,
    seconds: u32,
    policy: &Policy,
) -> Option<String> {
    let Some(section) = world.kubernetes.as_ref() else {
        return Some("the cluster could not be read now, so the object cannot be checked".into());
    };
    let own = world.cluster_name();
    if own.as_deref() != Some(cluster) {
        return Some(format!(
            "the plan names cluster {cluster}, but this load balancer's is {}",
            own.as_deref().unwrap_or("none")
        ));
    }
    let chosen = match idle_timeout_place(world, &Owner::from_tags(world)) {
        Ok(chosen) => chosen,
        Err(reason) => return Some(reason.to_string()),
    };
    if &chosen != place {
        return Some(format!(
            "the plan names {}, but this load balancer's idle timeout is kept at {}: a plan may change only its own owner, group or class",
            place.describe(),
            chosen.describe()
        ));
    }
    if let Some(current) = world
        .load_balancer
        .idle_timeout_seconds
        .filter(|c| *c > seconds)
    {
        return Some(format!(
            "the load balancer's idle timeout is {current} s: keeping {seconds} s would make the controller lower it"
        ));
    }
    gitops_refusal(section, place, policy)
}

/// Why labelling the namespace at `place` for readiness gates must not be applied to `world`:
/// only a namespace of this load balancer's own backends, in its own cluster, read now.
fn gate_refusal(world: &Snapshot, cluster: &str, place: &Place, policy: &Policy) -> Option<String> {
    let Some(section) = world.kubernetes.as_ref() else {
        return Some(
            "the cluster could not be read now, so the namespace cannot be checked".into(),
        );
    };
    let own = world.cluster_name();
    if own.as_deref() != Some(cluster) {
        return Some(format!(
            "the plan names cluster {cluster}, but this load balancer's is {}",
            own.as_deref().unwrap_or("none")
        ));
    }
    let Place::Namespace { name } = place else {
        return Some(format!("{} is not a namespace", place.describe()));
    };
    let Some(backends) = Backends::of(world, &Owner::from_tags(world)) else {
        return Some("the load balancer's backends in the cluster are not known".into());
    };
    let serves = backends.pods.iter().any(|p| &p.namespace == name)
        || backends.services.iter().any(|s| &s.namespace == name);
    if !serves {
        return Some(format!(
            "namespace {name} holds none of this load balancer's pods or Services: a plan may label only its own"
        ));
    }
    if !section.namespaces.iter().any(|n| &n.name == name) {
        return Some(format!("namespace {name} was not read now"));
    }
    gitops_refusal(section, place, policy)
}

/// An object that Argo CD, Flux or Helm re-applies is changed where they keep it, not in the
/// cluster, unless `OVERRIDE_GITOPS`: the refusal names the application, Kustomization or
/// release.
pub(crate) fn gitops_refusal(
    section: &crate::kubernetes::Kubernetes,
    place: &Place,
    policy: &Policy,
) -> Option<String> {
    match section.managed_by(place).flatten() {
        Some(manager) if !policy.override_gitops => Some(format!(
            "{} (OVERRIDE_GITOPS=true changes it anyway, until their next sync)",
            crate::ownership::where_to_change(manager, &place.describe())
        )),
        _ => None,
    }
}

/// Whether the entry now at the action's rule number is the one the action adds: after a
/// `NetworkAclEntryAlreadyExists`, that means a concurrent run added it first.
pub fn nacl_entry_in_place(action: &Action, acl: &NetworkAcl) -> bool {
    let Action::AllowNaclEntry {
        egress,
        rule_number,
        cidr,
        ports,
        ..
    } = action
    else {
        return false;
    };
    acl.entries.iter().any(|e| {
        e.egress == *egress
            && e.rule_number == *rule_number
            && e.rule_action.eq_ignore_ascii_case("allow")
            && matches!(e.protocol.trim(), "6" | "tcp")
            && (e.cidr_block.as_deref() == Some(cidr.as_str())
                || e.ipv6_cidr_block.as_deref() == Some(cidr.as_str()))
            && e.port_range == Some(*ports)
    })
}

/// The action renumbered against `acl` as it is now, after its number was taken by another
/// entry, in the window the guardrails accept; `None` when that window has no free number.
pub fn renumbered(action: &Action, acl: &NetworkAcl, policy: &Policy) -> Option<Action> {
    let Action::AllowNaclEntry {
        egress,
        cidr,
        ports,
        ..
    } = action
    else {
        return None;
    };
    let (direction, flows) = entry_traffic(*egress, cidr, *ports)?;
    let (number, _) =
        rule_number_for_allow(acl, direction, TCP, &flows, policy.override_explicit_deny).ok()?;
    let mut moved = action.clone();
    if let Action::AllowNaclEntry { rule_number, .. } = &mut moved {
        *rule_number = number;
    }
    Some(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::diagnose;
    use crate::plan::{plan, Policy};
    use crate::rules::testing::scenario_alarm;
    use crate::snapshot::{NaclEntry, SgRule};
    use crate::testkit::scenario_snapshot;

    fn planned(name: &str) -> (Snapshot, Vec<Action>) {
        let world = scenario_snapshot(name);
        let policy = Policy {
            override_explicit_deny: true,
            ..Policy::default()
        };
        let actions = plan(
            &world,
            &diagnose(&scenario_alarm(name), &world).findings,
            &policy,
            0,
            None,
        )
        .actions;
        (world, actions)
    }

    #[test]
    fn planned_actions_pass_and_are_needed_until_applied() {
        let policy = Policy {
            override_explicit_deny: true,
            ..Policy::default()
        };
        for name in [
            "nacl-ephemeral-node-subnets",
            "nacl-ephemeral-lb-subnets",
            "nacl-blocks-target-port",
            "sg-node-missing-lb-rule",
            "alb-idle-timeout",
            "nlb-idle-timeout-resets",
        ] {
            let (mut world, actions) = planned(name);
            assert!(!actions.is_empty(), "{name}");
            for action in &actions {
                assert_eq!(refusal(action, &world, &policy), None, "{name}: {action:?}");
                assert!(still_needed(action, &world), "{name}: {action:?}");
            }
            // Apply them to the observed state, as AWS would.
            for action in &actions {
                match action {
                    Action::EnableReadinessGates { .. } => {}
                    Action::RaiseIdleTimeout { to, .. } => {
                        world.load_balancer.idle_timeout_seconds = Some(*to)
                    }
                    Action::RaiseListenerIdleTimeout {
                        listener_arn, to, ..
                    } => {
                        let listener = world
                            .load_balancer
                            .listeners
                            .iter_mut()
                            .find(|l| l.arn.as_ref() == Some(listener_arn))
                            .unwrap();
                        listener.attributes =
                            Some([("tcp.idle_timeout.seconds".to_string(), to.to_string())].into());
                    }
                    Action::AllowNaclEntry {
                        nacl_id,
                        egress,
                        rule_number,
                        cidr,
                        ports,
                        ..
                    } => {
                        let acl = world
                            .network_acls
                            .iter_mut()
                            .find(|a| &a.id == nacl_id)
                            .unwrap();
                        acl.entries.push(NaclEntry {
                            rule_number: *rule_number,
                            egress: *egress,
                            protocol: "6".into(),
                            rule_action: "allow".into(),
                            cidr_block: Some(cidr.clone()),
                            ipv6_cidr_block: None,
                            port_range: Some(*ports),
                        });
                    }
                    Action::AllowSgIngress {
                        group_id,
                        source_group_id,
                        port,
                        ..
                    } => {
                        let group = world
                            .security_groups
                            .iter_mut()
                            .find(|g| &g.id == group_id)
                            .unwrap();
                        group.ingress.push(SgRule {
                            ip_protocol: "tcp".into(),
                            from_port: Some(i32::from(*port)),
                            to_port: Some(i32::from(*port)),
                            ipv4_ranges: vec![],
                            ipv6_ranges: vec![],
                            prefix_list_ids: vec![],
                            security_groups: vec![source_group_id.clone()],
                            description: None,
                        });
                    }
                    Action::KeepIdleTimeout { .. } => unreachable!("these worlds hold no cluster"),
                }
            }
            assert!(
                actions.iter().all(|a| !still_needed(a, &world)),
                "{name}: applied actions are no longer needed"
            );
            // The paths must be open now. (An idle-timeout finding rests on the window's past
            // 504s, which a raise does not erase.)
            let after = diagnose(&scenario_alarm(name), &world);
            let network_codes = [
                "nacl-blocks-ephemeral-ports",
                "nacl-blocks-target-port",
                "sg-blocks-target-port",
            ];
            assert!(
                after
                    .findings
                    .iter()
                    .all(|f| !network_codes.contains(&f.code.as_str())),
                "{name}: still {:?}",
                after.findings.iter().map(|f| f.code).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn forged_actions_are_refused_with_the_reason() {
        let (world, actions) = planned("nacl-ephemeral-node-subnets");
        let Action::AllowNaclEntry { nacl_id, .. } = &actions[0] else {
            panic!()
        };
        let policy = Policy::default();
        let entry = |cidr: &str, ports: PortRange, kind: NaclActionKind, nacl: &str| {
            Action::AllowNaclEntry {
                kind,
                nacl_id: nacl.into(),
                egress: true,
                rule_number: 120,
                cidr: cidr.into(),
                ports,
                in_front_of_deny: None,
            }
        };
        let forged = [
            (
                entry(
                    "0.0.0.0/0",
                    PortRange::EPHEMERAL,
                    NaclActionKind::Ephemeral,
                    nacl_id,
                ),
                "open everything",
            ),
            (
                entry(
                    "192.168.0.0/24",
                    PortRange::EPHEMERAL,
                    NaclActionKind::Ephemeral,
                    nacl_id,
                ),
                "outside the VPC",
            ),
            (
                entry(
                    "10.0.0.0/24",
                    PortRange::single(22),
                    NaclActionKind::TargetPort,
                    nacl_id,
                ),
                "not a target or health-check port",
            ),
            (
                entry(
                    "10.0.0.0/24",
                    PortRange { from: 1, to: 65535 },
                    NaclActionKind::Ephemeral,
                    nacl_id,
                ),
                "exactly TCP 1024-65535",
            ),
            (
                entry(
                    "10.0.0.0/24",
                    PortRange::EPHEMERAL,
                    NaclActionKind::Ephemeral,
                    "acl-0000000000unrelated",
                ),
                "not associated",
            ),
            (
                Action::RaiseIdleTimeout { from: 60, to: 3600 },
                "MAX_IDLE_TIMEOUT",
            ),
            (
                Action::RaiseIdleTimeout { from: 60, to: 30 },
                "never lowers",
            ),
            (
                Action::AllowSgIngress {
                    group_id: "sg-elsewhere".into(),
                    source_group_id: "sg-0a1f2e3d4c5b60792".into(),
                    port: 8080,
                    description: String::new(),
                },
                "neither the load balancer's",
            ),
            (
                Action::AllowSgIngress {
                    group_id: "sg-0c5e7a9b1d3f24680".into(),
                    source_group_id: "sg-0c5e7a9b1d3f24680".into(),
                    port: 8080,
                    description: String::new(),
                },
                "not a security group of this load balancer",
            ),
            (
                Action::AllowSgIngress {
                    group_id: "sg-0a1f2e3d4c5b60791".into(),
                    source_group_id: "sg-0a1f2e3d4c5b60792".into(),
                    port: 8080,
                    description: String::new(),
                },
                "fully reconciled",
            ),
        ];
        for (action, expected) in forged {
            let reason =
                refusal(&action, &world, &policy).unwrap_or_else(|| panic!("{action:?} passed"));
            assert!(reason.contains(expected), "{action:?}: {reason}");
        }
        let mut foreign = world.clone();
        foreign
            .security_groups
            .iter_mut()
            .find(|g| g.id == "sg-0c5e7a9b1d3f24680")
            .unwrap()
            .vpc_id = Some("vpc-other".into());
        let sg = Action::AllowSgIngress {
            group_id: "sg-0c5e7a9b1d3f24680".into(),
            source_group_id: "sg-0a1f2e3d4c5b60792".into(),
            port: 8080,
            description: String::new(),
        };
        assert!(refusal(&sg, &foreign, &policy)
            .unwrap()
            .contains("another VPC"));
        let off_list = Policy {
            allowed_actions: [crate::plan::ActionKind::RaiseIdleTimeout]
                .into_iter()
                .collect(),
            ..Policy::default()
        };
        assert!(refusal(&actions[0], &world, &off_list)
            .unwrap()
            .contains("ALLOWED_ACTIONS"));
    }
}
