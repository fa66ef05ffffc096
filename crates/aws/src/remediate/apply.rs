//! One action against AWS: the write call, what counts as success (a duplicate does), the
//! NACL rule-number collision (read again, then done or renumber), quotas as refusals, and
//! the dry-run probe where EC2 offers an honest one.

use aws_sdk_ec2::types::{IpPermission, PortRange as Ec2PortRange, RuleAction, UserIdGroupPair};
use elbmedic_engine::alarm::LbKind;
use elbmedic_engine::plan::guardrails::{nacl_entry_in_place, renumbered, still_needed};
use elbmedic_engine::plan::outcome::{rollback, Step, StepStatus};
use elbmedic_engine::plan::{Action, PlanTarget, Policy};
use elbmedic_engine::snapshot::{PortRange, Snapshot};

use crate::clients::Clients;
use crate::errors::CallFailed;
use crate::gather::convert;

/// Renumbering after collisions stops after this many tries: each collision means another
/// run is writing to the same NACL, and three in a row means something is wrong.
const NACL_ATTEMPTS: usize = 3;

/// Why a NACL could not be read again after a collision.
#[derive(Debug, thiserror::Error)]
enum RereadFailed {
    #[error(transparent)]
    Call(#[from] CallFailed),
    #[error("{0} is gone")]
    Gone(String),
}

/// Applies `action` (or, in a dry run, checks it as far as AWS allows) against `world`, the
/// state gathered just before. A change in the cluster also gives what to watch once it is
/// audited ([`super::in_cluster::settle`]).
pub async fn apply(
    clients: &Clients,
    writer: &Writer,
    action: &Action,
    world: &Snapshot,
    target: &PlanTarget,
    policy: &Policy,
    dry_run: bool,
) -> (Step, Option<super::in_cluster::Watch>) {
    let step = match action {
        Action::KeepIdleTimeout { .. } | Action::EnableReadinessGates { .. } => {
            return super::in_cluster::change(writer, action, world, target, policy, dry_run).await
        }
        Action::RaiseIdleTimeout { to, .. } => {
            raise_idle_timeout(clients, action, *to, world, target, dry_run).await
        }
        Action::RaiseListenerIdleTimeout { .. } => {
            raise_listener_idle_timeout(clients, action, world, target, dry_run).await
        }
        Action::AllowNaclEntry { .. } => {
            match dry_run {
                // moto's CreateNetworkAclEntry ignores DryRun and creates the entry, so a dry
                // run never sends it; the guardrails and the fresh state were checked.
                true => Step::new(action, StepStatus::WouldApply, "passes every guardrail against the current state; the write permission is not probed (EC2's DryRun is not used for NACL entries)"),
                false => create_nacl_entry(clients, action, world, target, policy).await,
            }
        }
        Action::AllowSgIngress { .. } => authorize_sg(clients, action, target, dry_run).await,
    };
    (step, None)
}

pub use super::in_cluster::Writer;

async fn raise_idle_timeout(
    clients: &Clients,
    action: &Action,
    to: u32,
    world: &Snapshot,
    target: &PlanTarget,
    dry_run: bool,
) -> Step {
    let lb = &world.load_balancer;
    let before = lb.idle_timeout_seconds.unwrap_or_default();
    if dry_run {
        return Step::new(action, StepStatus::WouldApply, format!("would raise it from {before} s to {to} s; the ELB APIs have no dry-run, so the write permission is not probed"));
    }
    let seconds = i32::try_from(to).unwrap_or(i32::MAX);
    let result = match lb.kind {
        // Refused by the guardrails before: an NLB's idle timeout is per listener.
        LbKind::Network => {
            let per_listener = "an NLB's idle timeout is per TCP listener, not the load balancer's";
            return Step::new(action, StepStatus::Refused, per_listener);
        }
        LbKind::Classic => clients
            .elb
            .modify_load_balancer_attributes()
            .load_balancer_name(&lb.name)
            .load_balancer_attributes(
                aws_sdk_elasticloadbalancing::types::LoadBalancerAttributes::builder()
                    .connection_settings(
                        aws_sdk_elasticloadbalancing::types::ConnectionSettings::builder()
                            .idle_timeout(seconds)
                            .build()
                            .expect("idle_timeout is set"),
                    )
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| CallFailed::of(&e)),
        LbKind::Application => match &lb.arn {
            None => {
                let unread = "the load balancer's ARN could not be read";
                return Step::new(action, StepStatus::Failed, unread);
            }
            Some(arn) => clients
                .elbv2
                .modify_load_balancer_attributes()
                .load_balancer_arn(arn)
                .attributes(
                    aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
                        .key("idle_timeout.timeout_seconds")
                        .value(to.to_string())
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| CallFailed::of(&e)),
        },
    };
    match result {
        Ok(()) => {
            let applied = Action::RaiseIdleTimeout { from: before, to };
            let mut step = Step::new(&applied, StepStatus::Applied, "idle timeout raised");
            step.before = Some(format!("idle timeout {before} s"));
            step.after = Some(format!("idle timeout {to} s"));
            step.rollback = rollback(&applied, target, None);
            step
        }
        Err(failed) => Step::new(action, StepStatus::Failed, failed.detail),
    }
}

/// Raises one NLB TCP listener's `tcp.idle_timeout.seconds`, from the value read just before
/// (under the load balancer's lock), and reads it back: AWS answers the call with the
/// listener's attributes as they now are.
async fn raise_listener_idle_timeout(
    clients: &Clients,
    action: &Action,
    world: &Snapshot,
    target: &PlanTarget,
    dry_run: bool,
) -> Step {
    let Action::RaiseListenerIdleTimeout {
        listener_arn,
        port,
        to,
        ..
    } = action
    else {
        return Step::new(
            action,
            StepStatus::Refused,
            "not a listener idle-timeout raise",
        );
    };
    let before = world
        .load_balancer
        .listener(listener_arn)
        .map(|l| l.flow_idle_timeout().seconds)
        .unwrap_or_default();
    if dry_run {
        return Step::new(action, StepStatus::WouldApply, format!("would raise TCP listener {port} from {before} s to {to} s; the ELB APIs have no dry-run, so the write permission is not probed"));
    }
    let key = "tcp.idle_timeout.seconds";
    let sent = clients
        .elbv2
        .modify_listener_attributes()
        .listener_arn(listener_arn)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::ListenerAttribute::builder()
                .key(key)
                .value(to.to_string())
                .build(),
        )
        .send()
        .await;
    match sent {
        Ok(out) => {
            let now = convert::listener_attributes(out.attributes());
            if now.get(key).map(String::as_str) != Some(to.to_string().as_str()) {
                let shown = now.get(key).map_or("nothing", String::as_str);
                return Step::new(
                    action,
                    StepStatus::Failed,
                    format!("AWS accepted the call but the listener reads {key}={shown}"),
                );
            }
            let applied = Action::RaiseListenerIdleTimeout {
                listener_arn: listener_arn.clone(),
                port: *port,
                from: before,
                to: *to,
            };
            let mut step = Step::new(
                &applied,
                StepStatus::Applied,
                "listener idle timeout raised and read back",
            );
            step.before = Some(format!("TCP listener {port} idle timeout {before} s"));
            step.after = Some(format!("TCP listener {port} idle timeout {to} s"));
            step.rollback = rollback(&applied, target, None);
            step
        }
        Err(e) => Step::new(action, StepStatus::Failed, CallFailed::of(&e).detail),
    }
}

/// The entry a NACL action creates.
struct NaclEntryRequest<'a> {
    nacl_id: &'a str,
    egress: bool,
    rule_number: u16,
    cidr: &'a str,
    ports: PortRange,
}

async fn send_nacl_entry(clients: &Clients, entry: NaclEntryRequest<'_>) -> Result<(), CallFailed> {
    let NaclEntryRequest {
        nacl_id,
        egress,
        rule_number,
        cidr,
        ports,
    } = entry;
    let request = clients
        .ec2
        .create_network_acl_entry()
        .network_acl_id(nacl_id)
        .rule_number(i32::from(rule_number))
        .protocol("6")
        .rule_action(RuleAction::Allow)
        .egress(egress)
        .port_range(
            Ec2PortRange::builder()
                .from(i32::from(ports.from))
                .to(i32::from(ports.to))
                .build(),
        );
    let request = if cidr.contains(':') {
        request.ipv6_cidr_block(cidr)
    } else {
        request.cidr_block(cidr)
    };
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| CallFailed::of(&e))
}

/// Reads one NACL again, into `world`'s copy of it.
async fn reread_nacl(
    clients: &Clients,
    nacl_id: &str,
    world: &mut Snapshot,
) -> Result<(), RereadFailed> {
    let out = clients
        .ec2
        .describe_network_acls()
        .network_acl_ids(nacl_id)
        .send()
        .await
        .map_err(|e| CallFailed::of(&e))?;
    let fresh = out
        .network_acls()
        .iter()
        .find_map(convert::network_acl)
        .ok_or_else(|| RereadFailed::Gone(nacl_id.to_string()))?;
    world.network_acls.retain(|a| a.id != nacl_id);
    world.network_acls.push(fresh);
    Ok(())
}

async fn create_nacl_entry(
    clients: &Clients,
    action: &Action,
    world: &Snapshot,
    target: &PlanTarget,
    policy: &Policy,
) -> Step {
    let Action::AllowNaclEntry { nacl_id, .. } = action else {
        return Step::new(action, StepStatus::Failed, "not a NACL action");
    };
    let mut attempt = action.clone();
    let mut fresh = world.clone();
    for _ in 0..NACL_ATTEMPTS {
        let Action::AllowNaclEntry {
            rule_number,
            egress,
            cidr,
            ports,
            ..
        } = &attempt
        else {
            break;
        };
        let number = *rule_number;
        let entry = NaclEntryRequest {
            nacl_id,
            egress: *egress,
            rule_number: number,
            cidr,
            ports: *ports,
        };
        match send_nacl_entry(clients, entry).await {
            Ok(()) => {
                let mut step = Step::new(
                    &attempt,
                    StepStatus::Applied,
                    format!("entry {number} created"),
                );
                step.before = Some(format!("{nacl_id}: no entry {number}"));
                step.after = Some(format!("{nacl_id}: {}", attempt.describe()));
                step.rollback = rollback(&attempt, target, None);
                return step;
            }
            Err(failed) if failed.is("NetworkAclEntryAlreadyExists") => {
                if let Err(message) = reread_nacl(clients, nacl_id, &mut fresh).await {
                    return Step::new(&attempt, StepStatus::Failed, format!("rule {number} was taken, and reading {nacl_id} again failed: {message}"));
                }
                let Some(acl) = fresh.network_acl(nacl_id) else {
                    break;
                };
                if nacl_entry_in_place(&attempt, acl) {
                    return Step::new(
                        &attempt,
                        StepStatus::InPlace,
                        format!("entry {number} was added by a concurrent run"),
                    );
                }
                if !still_needed(&attempt, &fresh) {
                    return Step::new(
                        &attempt,
                        StepStatus::InPlace,
                        "another entry now allows this traffic",
                    );
                }
                match renumbered(&attempt, acl, policy) {
                    Some(next) => attempt = next,
                    None => {
                        return Step::new(&attempt, StepStatus::Refused, format!("rule {number} is taken and {nacl_id} has no free rule number that would decide this traffic first"));
                    }
                }
            }
            Err(failed) if failed.is("NetworkAclEntryLimitExceeded") => {
                return Step::new(&attempt, StepStatus::Refused, format!("{nacl_id} is at its entry quota (20 per direction by default, 40 at most): {failed}. Consolidate entries or raise the quota, then apply the command by hand"));
            }
            Err(failed) => return Step::new(&attempt, StepStatus::Failed, failed.detail),
        }
    }
    Step::new(
        &attempt,
        StepStatus::Failed,
        format!("{nacl_id}: the rule number collided {NACL_ATTEMPTS} times; other runs keep writing to this NACL"),
    )
}

async fn authorize_sg(
    clients: &Clients,
    action: &Action,
    target: &PlanTarget,
    dry_run: bool,
) -> Step {
    let Action::AllowSgIngress {
        group_id,
        source_group_id,
        port,
        description,
    } = action
    else {
        return Step::new(action, StepStatus::Failed, "not a security group action");
    };
    let permission = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(i32::from(*port))
        .to_port(i32::from(*port))
        .user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(source_group_id)
                .description(description)
                .build(),
        )
        .build();
    let sent = clients
        .ec2
        .authorize_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(permission)
        .dry_run(dry_run)
        .send()
        .await;
    let applied = |detail: &str| {
        let mut step = Step::new(action, StepStatus::Applied, detail);
        step.before = Some(format!("{group_id}: no TCP {port} from {source_group_id}"));
        step.after = Some(format!("{group_id}: TCP {port} from {source_group_id}"));
        step.rollback = rollback(action, target, None);
        step
    };
    match sent.map_err(|e| CallFailed::of(&e)) {
        Ok(_) if dry_run => Step::new(action, StepStatus::WouldApply, "EC2 accepted a dry run"),
        Ok(_) => applied("rule added"),
        Err(failed) if dry_run && failed.is("DryRunOperation") => Step::new(
            action,
            StepStatus::WouldApply,
            "EC2's DryRun confirms the permission to add it",
        ),
        Err(failed) if failed.is("InvalidPermission.Duplicate") => Step::new(
            action,
            StepStatus::InPlace,
            "the rule exists (AWS answered InvalidPermission.Duplicate)",
        ),
        Err(failed) if failed.is("RulesPerSecurityGroupLimitExceeded") => Step::new(
            action,
            StepStatus::Refused,
            format!("{group_id} is at its rule quota (60 inbound by default): {failed}"),
        ),
        Err(failed) => Step::new(action, StepStatus::Failed, failed.detail),
    }
}
