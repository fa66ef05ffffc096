//! Builders for the exact commands a report hands the on-call engineer: AWS CLI changes, and
//! the Kubernetes side that keeps them. One place, so every rule quotes them the same way.

use crate::alarm::LbKind;
use crate::context::{Context, Owner};
use crate::finding::{Command, DurableFix};
use crate::netcheck::Direction;
use crate::snapshot::{PortRange, SecurityGroup};

/// Quotes a value for a POSIX shell when it needs it.
pub fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The ALB's ARN, or a sub-command that looks it up by name.
fn alb_arn(ctx: &Context<'_>) -> String {
    let lb = &ctx.snapshot.load_balancer;
    lb.arn.clone().unwrap_or_else(|| {
        format!(
            "\"$(aws elbv2 describe-load-balancers {} --names {} --query 'LoadBalancers[0].LoadBalancerArn' --output text)\"",
            ctx.region_flag(),
            shell_quote(&lb.name)
        )
    })
}

pub fn set_idle_timeout(ctx: &Context<'_>, seconds: u32) -> Command {
    let lb = &ctx.snapshot.load_balancer;
    let command = match lb.kind {
        LbKind::Classic => format!(
            "aws elb modify-load-balancer-attributes {} --load-balancer-name {} --load-balancer-attributes '{{\"ConnectionSettings\":{{\"IdleTimeout\":{seconds}}}}}'",
            ctx.region_flag(),
            shell_quote(&lb.name)
        ),
        LbKind::Application => format!(
            "aws elbv2 modify-load-balancer-attributes {} --load-balancer-arn {} --attributes Key=idle_timeout.timeout_seconds,Value={seconds}",
            ctx.region_flag(),
            alb_arn(ctx)
        ),
    };
    Command::new(format!("Set the idle timeout to {seconds} s now"), command)
}

/// The annotation that keeps an idle timeout, and what happens without it.
pub fn durable_idle_timeout(ctx: &Context<'_>, seconds: u32) -> DurableFix {
    const CLB_KEY: &str = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout";
    const ALB_KEY: &str = "alb.ingress.kubernetes.io/load-balancer-attributes";
    match (&ctx.owner, ctx.kind()) {
        (Owner::Service { namespace, name }, _) => DurableFix {
            description: format!("Annotate Service {namespace}/{name} so the cloud provider keeps the new timeout"),
            command: Some(format!(
                "kubectl -n {} annotate service {} --overwrite {CLB_KEY}={}",
                shell_quote(namespace), shell_quote(name), shell_quote(&seconds.to_string())
            )),
            manifest: Some(format!("metadata:\n  annotations:\n    {CLB_KEY}: \"{seconds}\"")),
            warning: "Without the annotation the cloud provider writes IdleTimeout 60 back at the next sync of the Service (any update to it, or a controller restart).".into(),
        },
        (Owner::Ingress { namespace, name }, _) => DurableFix {
            description: format!(
                "Add idle_timeout.timeout_seconds={seconds} to the {ALB_KEY} annotation of Ingress {namespace}/{name}, merged with what it already holds"
            ),
            command: Some(merge_alb_attribute(namespace, name, "idle_timeout.timeout_seconds", &seconds.to_string())),
            manifest: Some(format!("metadata:\n  annotations:\n    {ALB_KEY}: idle_timeout.timeout_seconds={seconds}")),
            warning: "The annotation holds a comma-separated list: `kubectl annotate --overwrite` with only this key would drop the other attributes, so the command merges it with the current value. If the annotation already names idle_timeout.timeout_seconds, the controller puts that value back at its next reconcile unless you change it there.".into(),
        },
        (Owner::IngressGroup { group }, _) => DurableFix {
            description: format!(
                "Set idle_timeout.timeout_seconds={seconds} in the {ALB_KEY} annotation of an Ingress of group {group}, merged with its current value"
            ),
            command: Some(format!(
                "kubectl get ingress -A -o jsonpath='{{range .items[?(@.metadata.annotations.alb\\.ingress\\.kubernetes\\.io/group\\.name==\"{group}\")]}}{{.metadata.namespace}}/{{.metadata.name}}: {{.metadata.annotations.alb\\.ingress\\.kubernetes\\.io/load-balancer-attributes}}{{\"\\n\"}}{{end}}'"
            )),
            manifest: Some(format!("metadata:\n  annotations:\n    {ALB_KEY}: idle_timeout.timeout_seconds={seconds}")),
            warning: "The annotation may sit on any Ingress of the group and holds a comma-separated list: edit the one that carries it and keep its other attributes. If it names idle_timeout.timeout_seconds, the controller restores that value at its next reconcile.".into(),
        },
        (Owner::Unknown, LbKind::Classic) => DurableFix {
            description: "No owning Service was found in the tags; if a Service owns this load balancer, annotate it".into(),
            command: None,
            manifest: Some(format!("metadata:\n  annotations:\n    {CLB_KEY}: \"{seconds}\"")),
            warning: "If a Kubernetes Service owns this load balancer, the cloud provider resets the idle timeout at its next sync unless the annotation is set.".into(),
        },
        (Owner::Unknown, LbKind::Application) => DurableFix {
            description: "No owning Ingress was found in the tags; if one owns this load balancer, set the attribute there".into(),
            command: None,
            manifest: Some(format!("metadata:\n  annotations:\n    {ALB_KEY}: idle_timeout.timeout_seconds={seconds}")),
            warning: "Merge with the annotation's current value: it is a comma-separated list that --overwrite replaces whole.".into(),
        },
    }
}

/// A shell snippet that sets one key of the ALB attributes annotation, keeping the others.
fn merge_alb_attribute(namespace: &str, name: &str, key: &str, value: &str) -> String {
    let (ns, ing) = (shell_quote(namespace), shell_quote(name));
    format!(
        "cur=$(kubectl -n {ns} get ingress {ing} -o jsonpath='{{.metadata.annotations.alb\\.ingress\\.kubernetes\\.io/load-balancer-attributes}}')\n\
         keep=$(printf '%s' \"$cur\" | tr ',' '\\n' | grep -v '^{key}=' | grep -v '^$' | paste -sd, -)\n\
         kubectl -n {ns} annotate ingress {ing} --overwrite alb.ingress.kubernetes.io/load-balancer-attributes=\"${{keep:+$keep,}}{key}={value}\""
    )
}

pub fn create_nacl_entry(
    region: &str,
    nacl_id: &str,
    direction: Direction,
    rule_number: u16,
    ports: PortRange,
    cidr: &str,
) -> String {
    let flag = if cidr.contains(':') {
        "--ipv6-cidr-block"
    } else {
        "--cidr-block"
    };
    format!(
        "aws ec2 create-network-acl-entry --region {region} --network-acl-id {nacl_id} --{} --rule-number {rule_number} --protocol tcp --port-range From={},To={} {flag} {cidr} --rule-action allow",
        direction.as_str(),
        ports.from,
        ports.to
    )
}

pub fn authorize_sg(
    region: &str,
    direction: Direction,
    group_id: &str,
    port: u16,
    peer_group: &str,
    description: &str,
) -> String {
    format!(
        "aws ec2 authorize-security-group-{} --region {region} --group-id {group_id} --ip-permissions 'IpProtocol=tcp,FromPort={port},ToPort={port},UserIdGroupPairs=[{{GroupId={peer_group},Description=\"{}\"}}]'",
        direction.as_str(),
        description.replace(['\'', '"'], "")
    )
}

/// Security groups a Kubernetes controller fully reconciles: rules added by hand are revoked.
pub fn is_controller_managed(group: &SecurityGroup) -> bool {
    group.name.starts_with("k8s-elb-")
        || group
            .tags
            .get("ingress.k8s.aws/resource")
            .map(String::as_str)
            == Some("ManagedLBSecurityGroup")
}

/// `describe-target-health` (ALB) or `describe-instance-health` (Classic LB).
pub fn describe_health(ctx: &Context<'_>, target_group_arn: Option<&str>) -> Command {
    let lb = &ctx.snapshot.load_balancer;
    match (lb.kind, target_group_arn) {
        (LbKind::Classic, _) => Command::new(
            "See the health of every instance",
            format!("aws elb describe-instance-health {} --load-balancer-name {}", ctx.region_flag(), shell_quote(&lb.name)),
        ),
        (LbKind::Application, Some(arn)) => Command::new(
            "See the health of every target, with reasons",
            format!("aws elbv2 describe-target-health {} --target-group-arn {arn}", ctx.region_flag()),
        ),
        (LbKind::Application, None) => Command::new(
            "See the health of every target, with reasons",
            format!(
                "for tg in $(aws elbv2 describe-target-groups {} --load-balancer-arn {} --query 'TargetGroups[].TargetGroupArn' --output text); do aws elbv2 describe-target-health {} --target-group-arn \"$tg\"; done",
                ctx.region_flag(), alb_arn(ctx), ctx.region_flag()
            ),
        ),
    }
}

/// `kubectl` commands that show the pods behind the owner.
pub fn show_backends(ctx: &Context<'_>) -> Option<Command> {
    match &ctx.owner {
        Owner::Service { namespace, name } => Some(Command::new(
            "See the Service's endpoints and pods",
            format!("kubectl -n {ns} describe service {n} && kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={n} -o wide", ns = shell_quote(namespace), n = shell_quote(name)),
        )),
        Owner::Ingress { namespace, name } => Some(Command::new(
            "See the Ingress, its backends and their pods",
            format!("kubectl -n {ns} describe ingress {n} && kubectl -n {ns} get pods -o wide", ns = shell_quote(namespace), n = shell_quote(name)),
        )),
        Owner::IngressGroup { group } => Some(Command::new(
            "See the target group bindings of the group",
            format!("kubectl get targetgroupbindings -A -o wide  # IngressGroup {group}"),
        )),
        Owner::Unknown => None,
    }
}
