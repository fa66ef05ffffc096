//! `nacl-blocks-target-port` and `nacl-blocks-ephemeral-ports`: a network ACL on the way
//! between the load balancer's nodes and its targets drops the requests (target or
//! health-check port) or the replies (the nodes' ephemeral ports 1024-65535).
//!
//! NACLs are stateless, so the reply needs its own allow entry in the opposite direction; the
//! nodes use the whole 1024-65535 range, so an entry copied from a Linux guide (32768-65535)
//! drops part of the replies. Findings are grouped per NACL, leg and deciding entry, and the
//! fix is an allow entry numbered so that it decides before the entry that drops.

use std::collections::{BTreeMap, BTreeSet};

use super::{list_some, Check, CheckStatus, RuleOutput};
use crate::action::{Action, NaclActionKind};
use crate::context::Context;
use crate::finding::{Command, DurableFix, Evidence, Finding, FindingCode, Fix, Severity};
use crate::fixes;
use crate::netcheck::nacl::{overlapping_denies, rule_number_for_allow, TCP};
use crate::netcheck::{AddrRange, Family, FlowBox, Leg, NaclCheck, NaclRuleRef};
use crate::snapshot::{NaclEntry, PortRange};

pub fn blocks_target_port(ctx: &Context<'_>) -> RuleOutput {
    run(ctx, false)
}

pub fn blocks_ephemeral_ports(ctx: &Context<'_>) -> RuleOutput {
    run(ctx, true)
}

/// Drops that share a NACL and a leg (so a direction): one finding, whichever entries drop.
struct Group<'a> {
    nacl_id: &'a str,
    leg: Leg,
    /// The entries that drop, in rule order (the implicit deny last).
    rules: BTreeSet<NaclRuleRef>,
    /// Replies on the ephemeral ports (else the target or health-check port).
    replies: bool,
    checks: Vec<&'a NaclCheck>,
    dropped_ports: BTreeSet<PortRange>,
    targets: BTreeSet<&'a str>,
    subnets: BTreeSet<&'a str>,
    /// Subnets on the far side, whose CIDRs the allow entry names.
    far_subnets: BTreeSet<&'a str>,
    /// Ports the allow entry opens.
    fix_ports: BTreeSet<PortRange>,
    /// The address families whose traffic is dropped: the allow names only their CIDRs.
    families: BTreeSet<Family>,
}

impl Group<'_> {
    /// `IPv6 ` (or `IPv4 and IPv6 `) where the family must be named: an IPv6 path, or a
    /// dual-stack load balancer; empty in a VPC of one family, where it says nothing.
    fn family_label(&self, ctx: &Context<'_>) -> String {
        Family::named(
            self.families.contains(&Family::Ipv4),
            self.families.contains(&Family::Ipv6),
            ctx.snapshot.load_balancer.is_dual_stack(),
        )
        .map(|f| format!("{f} "))
        .unwrap_or_default()
    }
}

fn run(ctx: &Context<'_>, replies: bool) -> RuleOutput {
    let name = if replies {
        "NACLs: replies on ephemeral ports 1024-65535"
    } else {
        "NACLs: target and health-check ports"
    };
    let relevant: Vec<&NaclCheck> = ctx
        .network
        .nacl_checks
        .iter()
        .filter(|c| c.leg.is_reply() == replies)
        .collect();
    let mut groups: BTreeMap<(&str, Leg), Group<'_>> = BTreeMap::new();
    for check in &relevant {
        let mut drops = check.outcome.drops().peekable();
        if drops.peek().is_none() {
            continue;
        }
        let group = groups
            .entry((check.nacl_id.as_str(), check.leg))
            .or_insert_with(|| Group {
                nacl_id: &check.nacl_id,
                leg: check.leg,
                rules: BTreeSet::new(),
                replies,
                checks: Vec::new(),
                dropped_ports: BTreeSet::new(),
                targets: BTreeSet::new(),
                subnets: BTreeSet::new(),
                far_subnets: BTreeSet::new(),
                fix_ports: BTreeSet::new(),
                families: BTreeSet::new(),
            });
        group.families.extend(check.peer.iter().map(|p| p.family));
        for drop in drops {
            group.rules.insert(drop.rule);
            group.dropped_ports.insert(drop.flows.ports);
        }
        group.checks.push(check);
        group.targets.extend(check.targets.iter().map(|t| &**t));
        group.subnets.insert(&check.subnet_id);
        group.far_subnets.insert(if check.leg.on_lb_subnet() {
            &check.target_subnet
        } else {
            &check.lb_subnet
        });
        group.fix_ports.insert(check.ports);
    }
    let mut out = RuleOutput::default();
    if relevant.is_empty() {
        out.checked.push(Check::new(
            name,
            CheckStatus::NotApplicable,
            "no path between the load balancer and a located target crosses a NACL",
        ));
        return out;
    }
    let failing = relevant.iter().filter(|c| !c.outcome.allowed()).count();
    let pairs: BTreeSet<(&str, &str)> = relevant
        .iter()
        .map(|c| (c.lb_subnet.as_str(), c.target_subnet.as_str()))
        .collect();
    out.checked.push(if failing == 0 {
        Check::new(
            name,
            CheckStatus::Ok,
            format!(
                "{} legs across {} subnet pairs: all allowed",
                relevant.len(),
                pairs.len()
            ),
        )
    } else {
        Check::new(
            name,
            CheckStatus::Problem,
            format!(
                "{failing} of {} legs across {} subnet pairs drop traffic",
                relevant.len(),
                pairs.len()
            ),
        )
    });
    out.findings
        .extend(groups.values().map(|group| finding(ctx, group)));
    out
}

fn finding(ctx: &Context<'_>, group: &Group<'_>) -> Finding {
    let (nacl_id, leg, replies) = (group.nacl_id, group.leg, group.replies);
    let rule = rules_text(&group.rules);
    let direction = leg.direction();
    let side = if leg.on_lb_subnet() {
        "load balancer subnets"
    } else {
        "target subnets"
    };
    let ports: Vec<String> = group
        .dropped_ports
        .iter()
        .map(ToString::to_string)
        .collect();
    let all_targets = ctx.network.targets_checked;
    let severity = if group.targets.len() >= all_targets {
        Severity::Critical
    } else {
        Severity::High
    };
    let family = group.family_label(ctx);
    let title = if replies {
        format!(
            "NACL {nacl_id} drops {family}replies from targets to the load balancer on ports {} ({} of the {side}, {rule})",
            ports.join(", "), direction.as_str()
        )
    } else {
        format!(
            "NACL {nacl_id} drops {family}load balancer traffic to target port {} ({} of the {side}, {rule})",
            ports.join(", "), direction.as_str()
        )
    };
    let affected = format!(
        "{} of {} targets are behind it ({})",
        group.targets.len(),
        all_targets,
        list_some(
            &group
                .targets
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
            5
        )
    );
    let why_rule = why_rule(&group.rules);
    let explanation = if replies {
        format!(
            "Load balancer nodes connect to targets from source ports 1024-65535, so every reply travels back to one of those ports. \
             NACLs are stateless: the reply is checked again, by the {} entries of the {side}' NACL, and here it is dropped. \
             The connection never completes: the load balancer counts a target connection error and, after 10 s, answers 504; health checks fail the same way. {why_rule} {affected}.",
            direction.as_str()
        )
    } else {
        format!(
            "Requests and health checks from the load balancer nodes to the targets cross the {} entries of the {side}' NACL, and are dropped there. \
             Targets behind it fail their health checks and connections time out (504 after 10 s). {why_rule} {affected}.",
            direction.as_str()
        )
    };
    let evidence = evidence(ctx, group);
    let mut resources = vec![nacl_id.to_string()];
    resources.extend(group.subnets.iter().map(|s| s.to_string()));
    let (fix, remedies) = fix(ctx, group);
    Finding {
        code: if replies {
            FindingCode::NaclBlocksEphemeralPorts
        } else {
            FindingCode::NaclBlocksTargetPort
        },
        severity,
        confidence: None,
        confidence_reason: None,
        title,
        explanation,
        evidence,
        fix,
        resources,
        remedies,
    }
}

/// One sentence per dropping entry; with several, each decides a part.
fn why_rule(rules: &BTreeSet<NaclRuleRef>) -> String {
    let alone = rules.len() == 1;
    rules
        .iter()
        .map(|rule| match (rule, alone) {
            (NaclRuleRef::ImplicitDeny, true) => {
                "No entry allows this traffic, so the implicit deny (*) drops it.".to_string()
            }
            (NaclRuleRef::ImplicitDeny, false) => {
                "No entry allows the rest of it, so the implicit deny (*) drops it.".to_string()
            }
            (NaclRuleRef::Entry { rule_number }, true) => format!(
                "Entry {rule_number} denies it explicitly, before any entry that would allow it."
            ),
            (NaclRuleRef::Entry { rule_number }, false) => format!(
                "Entry {rule_number} denies part of it explicitly, before any entry that would allow it."
            ),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per subnet and deciding entry, with every far-side block it drops (at most 8),
/// and the metrics.
fn evidence(ctx: &Context<'_>, group: &Group<'_>) -> Vec<Evidence> {
    let mut by_subnet: BTreeMap<&str, Vec<&NaclCheck>> = BTreeMap::new();
    for check in &group.checks {
        by_subnet
            .entry(check.subnet_id.as_str())
            .or_default()
            .push(check);
    }
    let lines: Vec<Evidence> = group
        .rules
        .iter()
        .flat_map(|rule| {
            by_subnet
                .values()
                .filter_map(move |checks| nacl_evidence(ctx, checks, *rule))
        })
        .collect();
    let total = lines.len();
    let mut evidence: Vec<Evidence> = lines.into_iter().take(8).collect();
    if total > 8 {
        evidence.push(Evidence::observation(format!(
            "... and {} more subnets drop the same way",
            total - 8
        )));
    }
    for metric in [
        "HTTPCode_ELB_504_Count",
        "TargetConnectionErrorCount",
        "HTTPCode_ELB_5XX",
        "BackendConnectionErrors",
    ] {
        evidence.extend(ctx.metric_evidence(metric, "Sum", ""));
    }
    evidence
}

/// "rule 50 and the implicit deny (*)": the entries that drop, for titles.
fn rules_text(rules: &BTreeSet<NaclRuleRef>) -> String {
    let names: Vec<String> = rules.iter().map(ToString::to_string).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn nacl_evidence(ctx: &Context<'_>, checks: &[&NaclCheck], rule: NaclRuleRef) -> Option<Evidence> {
    let check = checks.first()?;
    let dropped: Vec<&FlowBox> = checks
        .iter()
        .flat_map(|c| {
            c.outcome
                .drops()
                .filter(|d| d.rule == rule)
                .map(|d| &d.flows)
        })
        .collect();
    let ports: BTreeSet<PortRange> = dropped.iter().map(|f| f.ports).collect();
    let ports = ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let peer: Vec<String> =
        crate::netcheck::addr::merge_ranges(dropped.iter().map(|f| f.addrs).collect())
            .iter()
            .flat_map(AddrRange::to_cidrs)
            .collect();
    let zone = ctx
        .snapshot
        .subnet(&check.subnet_id)
        .and_then(|s| s.availability_zone.clone())
        .unwrap_or_default();
    let allowed: BTreeSet<u16> = checks
        .iter()
        .flat_map(|c| c.outcome.allowing_rules())
        .collect();
    let partly = if allowed.is_empty() {
        String::new()
    } else {
        format!(
            "; the rest allowed by rule {}",
            allowed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let direction = check.leg.direction();
    let towards = if direction.is_egress() { "to" } else { "from" };
    Some(Evidence::NaclRule {
        nacl_id: check.nacl_id.clone(),
        subnet_id: check.subnet_id.clone(),
        direction,
        rule,
        leg: check.leg,
        ports: dropped.first()?.ports,
        peer_cidrs: peer.clone(),
        summary: format!(
            "{} {} at subnet {} ({zone}): {rule} drops TCP {ports} {towards} {}{partly}",
            check.nacl_id,
            direction.as_str(),
            check.subnet_id,
            list_some(&peer, 4)
        ),
    })
}

/// The allow entries a fix adds, numbered against the NACL as it will be, with the explicit
/// denies they stay behind and those they would be put in front of.
#[derive(Default)]
struct NewEntries {
    commands: Vec<Command>,
    remedies: Vec<Action>,
    notes: Vec<String>,
    kept_denies: BTreeSet<u16>,
    overridden: BTreeSet<u16>,
}

fn new_entries(
    ctx: &Context<'_>,
    group: &Group<'_>,
    cidrs: &[String],
    fix_ports: &[PortRange],
) -> NewEntries {
    let (nacl_id, replies) = (group.nacl_id, group.replies);
    let region = ctx.region();
    let direction = group.leg.direction();
    let towards = if direction.is_egress() { "to" } else { "from" };
    let mut new = NewEntries::default();
    let NewEntries {
        commands,
        remedies,
        notes,
        kept_denies,
        overridden,
    } = &mut new;
    let Some(acl) = ctx.snapshot.network_acl(nacl_id) else {
        return new;
    };
    // Number each new entry against the NACL as it will be, so the entries do not collide.
    let mut working = acl.clone();
    for cidr in cidrs {
        let Some(addrs) = AddrRange::parse(cidr) else {
            continue;
        };
        for ports in fix_ports {
            let flows = [FlowBox {
                addrs,
                ports: *ports,
            }];
            // The report offers the entry in front of a deny that decides everything, so
            // the engineer sees the command; the plan refuses it without the override.
            match rule_number_for_allow(&working, direction, TCP, &flows, true) {
                Ok((number, in_front_of_deny)) => {
                    match in_front_of_deny {
                        Some(deny) => {
                            overridden.insert(deny);
                        }
                        None => kept_denies.extend(
                            overlapping_denies(&working, direction, TCP, &flows)
                                .into_iter()
                                .filter(|d| group.rules.contains(&NaclRuleRef::Entry { rule_number: *d })),
                        ),
                    }
                    commands.push(Command::new(
                        format!("Allow TCP {ports} {towards} {cidr} on {nacl_id} ({})", direction.as_str()),
                        fixes::create_nacl_entry(region, nacl_id, direction, number, *ports, cidr),
                    ));
                    remedies.push(Action::AllowNaclEntry {
                        kind: if replies { NaclActionKind::Ephemeral } else { NaclActionKind::TargetPort },
                        nacl_id: nacl_id.to_string(),
                        egress: direction.is_egress(),
                        rule_number: number,
                        cidr: cidr.clone(),
                        ports: *ports,
                        in_front_of_deny,
                    });
                    working.entries.push(NaclEntry {
                        rule_number: number,
                        egress: direction.is_egress(),
                        protocol: "6".into(),
                        rule_action: "allow".into(),
                        cidr_block: (!cidr.contains(':')).then(|| cidr.clone()),
                        ipv6_cidr_block: cidr.contains(':').then(|| cidr.clone()),
                        port_range: Some(*ports),
                    });
                }
                Err(reason) => notes.push(format!("No entry can be added for TCP {ports} {towards} {cidr} on {nacl_id}: {reason}. Renumber the NACL's entries first.")),
            }
        }
    }
    let count = acl
        .entries
        .iter()
        .filter(|e| e.egress == direction.is_egress() && e.rule_number < 32767)
        .count();
    if count + commands.len() > 20 {
        notes.push(format!(
            "{nacl_id} already has {count} {} entries; the default quota is 20 per direction (40 at most), so adding {} may need a quota increase or merged entries.",
            direction.as_str(), commands.len()
        ));
    }
    new
}

/// The commands, and the same changes as remediation actions.
fn fix(ctx: &Context<'_>, group: &Group<'_>) -> (Fix, Vec<Action>) {
    let (nacl_id, leg, replies) = (group.nacl_id, group.leg, group.replies);
    let region = ctx.region();
    let direction = leg.direction();
    let towards = if direction.is_egress() { "to" } else { "from" };
    let fix_ports: Vec<PortRange> = if replies {
        vec![PortRange::EPHEMERAL]
    } else {
        group.fix_ports.iter().copied().collect()
    };
    let cidrs: Vec<String> = group
        .far_subnets
        .iter()
        .filter_map(|id| ctx.snapshot.subnet(id))
        .flat_map(|s| {
            s.cidr_ipv4
                .iter()
                .chain(&s.cidr_ipv6)
                .cloned()
                .collect::<Vec<_>>()
        })
        // Only the families whose traffic is dropped: the other one already passes.
        .filter(|cidr| AddrRange::parse(cidr).is_some_and(|a| group.families.contains(&a.family)))
        .collect();
    let NewEntries {
        commands,
        remedies,
        mut notes,
        kept_denies,
        overridden,
    } = new_entries(ctx, group, &cidrs, &fix_ports);
    let delete =
        |rule_number: u16| fixes::delete_nacl_entry(region, nacl_id, direction, rule_number);
    for deny in overridden.iter().rev() {
        notes.insert(0, format!(
            "Rule {deny} is an explicit deny someone wrote on purpose: check why with its owner before putting an allow in front of it. \
             The alternative is to narrow or delete it: {}",
            delete(*deny)
        ));
    }
    for deny in kept_denies.difference(&overridden) {
        notes.push(format!(
            "Rule {deny} is an explicit deny someone wrote on purpose, and it drops part of this traffic: the new entries go after it, so it keeps dropping what it covers. \
             If it should not, narrow or delete it with its owner: {}",
            delete(*deny)
        ));
    }
    let far = if leg.on_lb_subnet() {
        "target subnets"
    } else {
        "load balancer subnets"
    };
    let what = if replies {
        "TCP 1024-65535".to_string()
    } else {
        format!(
            "TCP {}",
            fix_ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let order = if overridden.is_empty() && !kept_denies.is_empty() {
        format!(
            "numbered after the explicit deny {} so it keeps deciding, and before the implicit deny (*)",
            kept_denies.iter().map(|d| format!("rule {d}")).collect::<Vec<_>>().join(", ")
        )
    } else {
        format!("numbered to decide before {}", rules_text(&group.rules))
    };
    let fix = Fix {
        summary: format!(
            "Add {} allow entries to {nacl_id} for {what} {towards} the {far}' CIDRs ({}), {order}. Nothing broader: not 0.0.0.0/0, no other port.",
            direction.as_str(),
            list_some(&cidrs, 4)
        ),
        commands,
        durable: Some(DurableFix {
            description: "Neither EKS load balancer controller manages NACLs, so Kubernetes will not revert these entries.".into(),
            command: None,
            manifest: None,
            warning: "Record the entries in whatever manages the VPC (Terraform, CloudFormation, eksctl), or its next apply removes them.".into(),
        }),
        notes,
    };
    (fix, remedies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::run as run_rule;
    use crate::testkit::{healthy_alb, scenario_snapshot};

    #[test]
    fn implicit_deny_on_node_subnet_egress_gives_exact_entries() {
        let out = run_rule(
            blocks_ephemeral_ports,
            "nacl-ephemeral-node-subnets",
            &scenario_snapshot("nacl-ephemeral-node-subnets"),
        );
        assert_eq!(out.findings.len(), 1);
        let f = &out.findings[0];
        assert_eq!(f.code, FindingCode::NaclBlocksEphemeralPorts);
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.title.contains("ports 1024-32767"), "{}", f.title);
        assert!(f.title.contains("implicit deny"));
        let commands: Vec<&str> = f.fix.commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(commands.len(), 3, "one per LB subnet CIDR: {commands:#?}");
        for (command, cidr) in commands
            .iter()
            .zip(["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"])
        {
            assert!(command.contains("--egress"));
            assert!(command.contains("--port-range From=1024,To=65535"));
            assert!(command.contains(&format!("--cidr-block {cidr} ")));
            assert!(!command.contains("0.0.0.0/0"));
        }
        // Distinct, conventional rule numbers.
        assert!(commands[0].contains("--rule-number 120"));
        assert!(commands[1].contains("--rule-number 130"));
        assert!(commands[2].contains("--rule-number 140"));
        assert!(out.checked[0].status == CheckStatus::Problem);
    }

    #[test]
    fn explicit_deny_is_named_and_the_allow_goes_just_below_it() {
        let out = run_rule(
            blocks_ephemeral_ports,
            "nacl-ephemeral-lb-subnets",
            &scenario_snapshot("nacl-ephemeral-lb-subnets"),
        );
        let f = &out.findings[0];
        assert!(f.title.contains("rule 90"));
        assert_eq!(
            f.severity,
            Severity::High,
            "only one of three targets is affected"
        );
        assert_eq!(f.fix.commands.len(), 1);
        let command = &f.fix.commands[0].command;
        assert!(command.contains("--ingress --rule-number 89"), "{command}");
        assert!(command.contains("--cidr-block 10.0.48.0/20"));
        assert!(f.fix.notes[0].contains("explicit deny"));
        assert!(f.fix.notes[0].contains("delete-network-acl-entry"));
    }

    #[test]
    fn target_port_drop_is_its_own_code() {
        let out = run_rule(
            blocks_target_port,
            "nacl-blocks-target-port",
            &scenario_snapshot("nacl-blocks-target-port"),
        );
        let f = &out.findings[0];
        assert_eq!(f.code, FindingCode::NaclBlocksTargetPort);
        assert!(f.title.contains("target port 31380"));
        assert!(
            f.fix
                .commands
                .iter()
                .all(|c| c.command.contains("From=31380,To=31380")),
            "{:#?}",
            f.fix.commands
        );
        // Each new entry goes just below the deny, without colliding with the previous one.
        for (command, number) in f.fix.commands.iter().zip([89, 88, 87]) {
            assert!(
                command
                    .command
                    .contains(&format!("--rule-number {number} ")),
                "{}",
                command.command
            );
        }
        assert!(run_rule(
            blocks_ephemeral_ports,
            "nacl-blocks-target-port",
            &scenario_snapshot("nacl-blocks-target-port")
        )
        .findings
        .is_empty());
    }

    #[test]
    fn open_paths_give_no_findings_and_an_ok_check() {
        for rule in [blocks_target_port, blocks_ephemeral_ports] {
            let out = run_rule(rule, "no-known-cause", &healthy_alb());
            assert!(out.findings.is_empty());
            assert_eq!(out.checked[0].status, CheckStatus::Ok);
        }
    }
}
