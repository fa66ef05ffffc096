//! Builders for the exact commands a report hands the on-call engineer: AWS CLI changes, and
//! the Kubernetes side that keeps them. One place, so every rule quotes them the same way.

use crate::alarm::LbKind;
use crate::argv;
use crate::backends::Backends;
use crate::context::{Context, Owner};
use crate::finding::{Command, DurableFix};
use crate::kubernetes::IngressClassParams;
use crate::netcheck::Direction;
use crate::plan::Place;
use crate::shell::{Script, Word};
use crate::snapshot::PortRange;

/// The ALB's ARN as gathered; without it, a first line that looks it up and a placeholder
/// the engineer replaces (commands never run sub-commands: see [`crate::shell`]).
fn alb_arn(region: &str, name: &str, arn: Option<&str>) -> (Option<Vec<Word>>, String) {
    match arn {
        Some(arn) => (None, arn.to_string()),
        None => (
            Some(argv![
                "aws",
                "elbv2",
                "describe-load-balancers",
                "--region",
                region,
                "--names",
                name,
                "--query",
                "LoadBalancers[0].LoadBalancerArn",
                "--output",
                "text"
            ]),
            ALB_ARN_PLACEHOLDER.to_string(),
        ),
    }
}

/// Stands for an ARN that could not be read; the line before it prints the real one.
pub const ALB_ARN_PLACEHOLDER: &str = "ALB_ARN";

/// Stands for a listener's ARN that the line before it prints.
pub const LISTENER_ARN_PLACEHOLDER: &str = "LISTENER_ARN";

/// `first` (a look-up line, if any) followed by `line`.
fn script(first: Option<Vec<Word>>, line: Vec<Word>) -> Script {
    Script::lines(first.into_iter().chain([line]).collect())
}

/// The command that sets a load balancer's idle timeout (a fix, or a rollback).
pub fn idle_timeout_script(
    kind: LbKind,
    region: &str,
    name: &str,
    arn: Option<&str>,
    seconds: u32,
) -> Script {
    match kind {
        LbKind::Classic => Script::line(argv![
            "aws",
            "elb",
            "modify-load-balancer-attributes",
            "--region",
            region,
            "--load-balancer-name",
            name,
            "--load-balancer-attributes",
            format!("{{\"ConnectionSettings\":{{\"IdleTimeout\":{seconds}}}}}")
        ]),
        // Per TCP listener on an NLB: the listener's ARN is looked up, then set.
        LbKind::Network => {
            let (lookup, arn) = alb_arn(region, name, arn);
            let listeners = argv![
                "aws",
                "elbv2",
                "describe-listeners",
                "--region",
                region,
                "--load-balancer-arn",
                arn,
                "--query",
                "Listeners[?Protocol==`TCP`].ListenerArn",
                "--output",
                "text"
            ];
            let set = listener_idle_timeout_words(region, LISTENER_ARN_PLACEHOLDER, seconds);
            Script::lines(lookup.into_iter().chain([listeners, set]).collect())
        }
        LbKind::Application => {
            let (lookup, arn) = alb_arn(region, name, arn);
            script(
                lookup,
                argv![
                    "aws",
                    "elbv2",
                    "modify-load-balancer-attributes",
                    "--region",
                    region,
                    "--load-balancer-arn",
                    arn,
                    "--attributes",
                    format!("Key=idle_timeout.timeout_seconds,Value={seconds}")
                ],
            )
        }
    }
}

/// Turns on a Classic LB's connection draining, so a deregistered instance finishes its
/// in-flight requests (up to `seconds`).
pub fn enable_connection_draining(ctx: &Context<'_>, seconds: u32) -> Command {
    Command::new(
        format!(
            "Turn on connection draining ({seconds} s) now; the Service annotation below keeps it"
        ),
        classic_attributes(
            ctx,
            format!("{{\"ConnectionDraining\":{{\"Enabled\":true,\"Timeout\":{seconds}}}}}"),
        ),
    )
}

/// `aws elb modify-load-balancer-attributes` on the Classic LB with `attributes` (JSON).
pub fn classic_attributes(ctx: &Context<'_>, attributes: String) -> Script {
    Script::line(argv![
        "aws",
        "elb",
        "modify-load-balancer-attributes",
        "--region",
        ctx.region(),
        "--load-balancer-name",
        &ctx.snapshot.load_balancer.name,
        "--load-balancer-attributes",
        attributes
    ])
}

pub fn set_idle_timeout(ctx: &Context<'_>, seconds: u32) -> Command {
    let lb = &ctx.snapshot.load_balancer;
    let command = idle_timeout_script(lb.kind, ctx.region(), &lb.name, lb.arn.as_deref(), seconds);
    let description = if command.words().len() > 1 {
        format!("Set the idle timeout to {seconds} s now (the first command prints the ARN to use for {ALB_ARN_PLACEHOLDER})")
    } else {
        format!("Set the idle timeout to {seconds} s now")
    };
    Command::new(description, command)
}

/// The AWS Load Balancer Controller's annotation that holds an ALB's attributes: one
/// comma-separated list.
const ALB_ATTRIBUTES_KEY: &str = "alb.ingress.kubernetes.io/load-balancer-attributes";

/// `kubectl -n NAMESPACE annotate service NAME --overwrite KEY=VALUE`: the cloud provider
/// reads a Classic LB's settings from its Service's annotations at every sync.
pub fn annotate_service(namespace: &str, name: &str, key: &str, value: &str) -> Script {
    Script::line(argv![
        "kubectl",
        "-n",
        namespace,
        "annotate",
        "service",
        name,
        "--overwrite",
        format!("{key}={value}")
    ])
}

/// The annotation that keeps an idle timeout, and what happens without it.
pub fn durable_idle_timeout(ctx: &Context<'_>, seconds: u32) -> DurableFix {
    const IDLE: &str = "idle_timeout.timeout_seconds";
    if let Some(params) = class_params_setting(ctx, IDLE) {
        return in_class_params(params, IDLE, &seconds.to_string());
    }
    let mut fix = annotation_for_idle_timeout(ctx, seconds);
    if ctx.kind() == LbKind::Application
        && ctx.snapshot.kubernetes.is_some()
        && crate::rules::classes_unread(ctx.snapshot)
    {
        fix.warning = format!("{} {}.", fix.warning, crate::rules::CLASSES_UNREAD);
    }
    fix
}

/// The annotation that keeps an idle timeout, by owner.
fn annotation_for_idle_timeout(ctx: &Context<'_>, seconds: u32) -> DurableFix {
    const CLB_KEY: &str = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout";
    const ALB_KEY: &str = ALB_ATTRIBUTES_KEY;
    match (&ctx.owner, ctx.kind()) {
        (Owner::Service { namespace, name }, _) => DurableFix {
            description: format!("Annotate Service {namespace}/{name} so the cloud provider keeps the new timeout"),
            command: Some(annotate_service(namespace, name, CLB_KEY, &seconds.to_string())),
            manifest: Some(format!("metadata:\n  annotations:\n    {CLB_KEY}: \"{seconds}\"")),
            warning: "Without the annotation the cloud provider writes IdleTimeout 60 back at the next sync of the Service (any update to it, or a controller restart).".into(),
        },
        (Owner::Ingress { namespace, name }, _) => DurableFix {
            description: format!(
                "Add idle_timeout.timeout_seconds={seconds} to the {ALB_KEY} annotation of Ingress {namespace}/{name}, merged with what it already holds"
            ),
            command: Some(merge_alb_attribute(namespace, name, "idle_timeout.timeout_seconds", &seconds.to_string())),
            manifest: Some(alb_attributes_manifest(ctx, "idle_timeout.timeout_seconds", &seconds.to_string())),
            warning: "The annotation holds a comma-separated list: `kubectl annotate --overwrite` with only this key would drop the other attributes, so the command merges it with the current value. If the annotation already names idle_timeout.timeout_seconds, the controller puts that value back at its next reconcile unless you change it there.".into(),
        },
        (Owner::IngressGroup { group }, _) => DurableFix {
            description: format!(
                "Set idle_timeout.timeout_seconds={seconds} in the {ALB_KEY} annotation of an Ingress of group {group}, merged with its current value"
            ),
            command: Some(Script::line(argv![
                "kubectl", "get", "ingress", "-A", "-o",
                format!("jsonpath={{range .items[?(@.metadata.annotations.alb\\.ingress\\.kubernetes\\.io/group\\.name==\"{group}\")]}}{{.metadata.namespace}}/{{.metadata.name}}: {{.metadata.annotations.alb\\.ingress\\.kubernetes\\.io/load-balancer-attributes}}{{\"\\n\"}}{{end}}")
            ])),
            manifest: Some(alb_attributes_manifest(ctx, "idle_timeout.timeout_seconds", &seconds.to_string())),
            warning: "The annotation may sit on any Ingress of the group and holds a comma-separated list: edit the one that carries it and keep its other attributes. If it names idle_timeout.timeout_seconds, the controller restores that value at its next reconcile.".into(),
        },
        (Owner::Unknown, LbKind::Classic) => DurableFix {
            description: "No owning Service was found in the tags; if a Service owns this load balancer, annotate it".into(),
            command: None,
            manifest: Some(format!("metadata:\n  annotations:\n    {CLB_KEY}: \"{seconds}\"")),
            warning: "If a Kubernetes Service owns this load balancer, the cloud provider resets the idle timeout at its next sync unless the annotation is set.".into(),
        },
        (Owner::Unknown, LbKind::Network) => DurableFix {
            description: "No owning Service was found in the tags; if a Service owns this load balancer, set the listener attribute there".into(),
            command: None,
            manifest: Some(format!("metadata:\n  annotations:\n    service.beta.kubernetes.io/aws-load-balancer-listener-attributes.TCP-PORT: tcp.idle_timeout.seconds={seconds}")),
            warning: "Replace PORT with the listener's port: the controller sets the attribute per listener.".into(),
        },
        (Owner::Unknown, LbKind::Application) => DurableFix {
            description: "No owning Ingress was found in the tags; if one owns this load balancer, set the attribute there".into(),
            command: None,
            manifest: Some(alb_attributes_manifest(ctx, "idle_timeout.timeout_seconds", &seconds.to_string())),
            warning: "Merge with the annotation's current value: it is a comma-separated list that --overwrite replaces whole.".into(),
        },
    }
}

/// The IngressClassParams that set `key` for this load balancer's Ingresses, if one does: its
/// value wins over every Ingress's annotation, so a durable change is made there.
fn class_params_setting<'a>(ctx: &Context<'a>, key: &str) -> Option<&'a IngressClassParams> {
    if crate::rules::classes_unread(ctx.snapshot) {
        return None;
    }
    let backends = Backends::of(ctx.snapshot, &ctx.owner)?;
    backends
        .class_params()
        .filter(|p| p.attribute(key).is_some())
}

/// `key` set to `value` in an IngressClassParams' `spec.loadBalancerAttributes`: a JSON patch
/// that replaces that one entry's value, after testing that the entry at its index is still
/// `key` (a list changed since the read fails the patch instead of changing another entry).
/// Nothing the cluster wrote is in the command.
fn in_class_params(params: &IngressClassParams, key: &str, value: &str) -> DurableFix {
    let index = params.attribute(key).map_or(0, |(index, _)| index);
    let at = format!("/spec/loadBalancerAttributes/{index}");
    let patch = serde_json::json!([
        {"op": "test", "path": format!("{at}/key"), "value": key},
        {"op": "replace", "path": format!("{at}/value"), "value": value},
    ]);
    let name = &params.name;
    DurableFix {
        description: format!(
            "Set {key} to {value} in spec.loadBalancerAttributes of IngressClassParams {name}: its value wins over the annotation of every Ingress of its class"
        ),
        // The name comes from the cluster (or a replayed snapshot): only a name the API server
        // could hold becomes a word of a command, never one that kubectl would read as an option.
        command: crate::kubernetes_name::is_subdomain(name).then(|| {
            Script::line(argv![
                "kubectl",
                "patch",
                "ingressclassparams",
                name,
                "--type=json",
                "-p",
                patch.to_string()
            ])
        }),
        manifest: Some(format!(
            "# Edit this entry where your manifest has it: the list is one field, so a manifest\n# holds every entry, and applying only this one would drop the others.\nspec:\n  loadBalancerAttributes:\n  - key: {key}\n    value: {}",
            yaml_quoted(value)
        )),
        warning: format!("IngressClassParams {name} applies to every Ingress of its class: each of their load balancers gets the new value. An Ingress's annotation cannot override it."),
    }
}

/// The command that puts back what keeping the idle timeout at `place` replaced: `before`,
/// the field as it was (`None`: absent, so the field is removed). For an IngressClassParams,
/// `before` is its whole attribute list as JSON (the CRD holds it as one field). `None` when
/// the place's names are not Kubernetes names or `before` is not what the kind holds.
pub fn put_back(place: &Place, before: Option<&str>) -> Option<Script> {
    use crate::kubernetes_name::{is_label, is_subdomain};
    use crate::plan::durable::{ALB_ATTRIBUTES, CLB_IDLE};
    if !is_subdomain(place.name()) || !place.namespace().is_none_or(is_label) {
        return None;
    }
    let (_, _, resource) = place.api();
    let annotate = |key: &str| {
        let namespace = place.namespace().unwrap_or_default();
        let mut words = argv![
            "kubectl",
            "-n",
            namespace,
            "annotate",
            resource,
            place.name()
        ];
        match before {
            Some(value) => words.extend(argv!["--overwrite", format!("{key}={value}")]),
            None => words.extend(argv![format!("{key}-")]),
        }
        Script::line(words)
    };
    match place {
        Place::Service { .. } => Some(annotate(CLB_IDLE)),
        Place::Ingress { .. } => Some(annotate(ALB_ATTRIBUTES)),
        Place::IngressClassParams { name } => {
            let list: serde_json::Value = serde_json::from_str(before?).ok()?;
            list.is_array().then(|| {
                let patch = serde_json::json!({"spec": {"loadBalancerAttributes": list}});
                Script::line(argv![
                    "kubectl",
                    "patch",
                    "ingressclassparams",
                    name,
                    "--type=merge",
                    "-p",
                    patch.to_string()
                ])
            })
        }
        Place::Namespace { name } => {
            let label = crate::rollout::READINESS_GATE_LABEL;
            let change = match before {
                Some(value) => argv!["--overwrite", format!("{label}={value}")],
                None => argv![format!("{label}-")],
            };
            let mut words = argv!["kubectl", "label", "namespace", name];
            words.extend(change);
            Some(Script::line(words))
        }
    }
}

/// AWS's default value of each ALB attribute: an attribute at its default needs no place in the
/// annotation, one that differs was set by an annotation or by hand and must stay.
const ALB_ATTRIBUTE_DEFAULTS: &[(&str, &str)] = &[
    ("access_logs.s3.enabled", "false"),
    ("access_logs.s3.bucket", ""),
    ("access_logs.s3.prefix", ""),
    ("connection_logs.s3.enabled", "false"),
    ("connection_logs.s3.bucket", ""),
    ("connection_logs.s3.prefix", ""),
    ("health_check_logs.s3.enabled", "false"),
    ("health_check_logs.s3.bucket", ""),
    ("health_check_logs.s3.prefix", ""),
    ("client_keep_alive.seconds", "3600"),
    ("deletion_protection.enabled", "false"),
    ("idle_timeout.timeout_seconds", "60"),
    ("ipv6.deny_all_igw_traffic", "false"),
    ("load_balancing.cross_zone.enabled", "true"),
    ("routing.http.desync_mitigation_mode", "defensive"),
    ("routing.http.drop_invalid_header_fields.enabled", "false"),
    ("routing.http.preserve_host_header.enabled", "false"),
    (
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
        "false",
    ),
    ("routing.http.xff_client_port.enabled", "false"),
    ("routing.http.xff_header_processing.mode", "append"),
    ("routing.http2.enabled", "true"),
    ("waf.fail_open.enabled", "false"),
    ("zonal_shift.config.enabled", "false"),
];

/// The `load-balancer-attributes` annotation as it will be: the attributes this load balancer
/// has today that differ from AWS's defaults (set by the annotation or by hand), with `key`
/// set to `value`. Pasting only the changed key would drop the others, since the annotation is
/// one list. Without the attributes, a comment says to merge instead of a value to paste.
fn alb_attributes_manifest(ctx: &Context<'_>, key: &str, value: &str) -> String {
    const ALB_KEY: &str = ALB_ATTRIBUTES_KEY;
    let today = &ctx.snapshot.load_balancer.attributes;
    if today.is_empty() {
        return format!(
            "# {ALB_KEY} is one comma-separated list: add {key}={value}\n# to the keys it already holds (the command above merges them). This load balancer's\n# attributes were not read, so the whole list cannot be shown here."
        );
    }
    let kept = today.iter().filter(|(k, v)| {
        k.as_str() != key
            && ALB_ATTRIBUTE_DEFAULTS
                .iter()
                .find(|(d, _)| d == k)
                .is_none_or(|(_, default)| default != v)
    });
    let list: Vec<String> = kept
        .map(|(k, v)| format!("{k}={v}"))
        .chain(std::iter::once(format!("{key}={value}")))
        // On one line, as a command's value is: no attribute can add a line to the YAML.
        .map(|pair| crate::shell::data(&pair).intended())
        .collect();
    format!(
        "# Every attribute this load balancer has today that differs from AWS's default, and the change:\nmetadata:\n  annotations:\n    {ALB_KEY}: {}",
        yaml_scalar(&list.join(","))
    )
}

/// A YAML plain scalar when it is one, else a double-quoted one: a value that starts with an
/// indicator or holds `: ` or ` #` would otherwise change the document's meaning.
fn yaml_scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && !text.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`~ ".contains(c))
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.ends_with([' ', ':'])
        && text.chars().all(|c| !c.is_control());
    if plain {
        text.to_string()
    } else {
        yaml_quoted(text)
    }
}

/// A double-quoted YAML scalar: always a string (`"120"`, where a plain 120 is a number).
fn yaml_quoted(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '\\' => vec!['\\', '\\'],
            '"' => vec!['\\', '"'],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// One line that sets one key of the ALB attributes annotation and keeps the others: it
/// reads the current list, drops the key, appends it with the new value, and writes the
/// list back. A pipeline, not a sub-command, so every value in it stays an argument.
fn merge_alb_attribute(namespace: &str, name: &str, key: &str, value: &str) -> Script {
    merge_listed_attribute("ingress", namespace, name, ALB_ATTRIBUTES_KEY, key, value)
}

/// `key=value` merged into the comma-separated list that the annotation `annotation` of a
/// `resource` (`ingress`, `service`) holds: the other pairs are kept, as the controller
/// reconciles only the keys the list names.
pub fn merge_listed_attribute(
    resource: &str,
    namespace: &str,
    name: &str,
    annotation: &str,
    key: &str,
    value: &str,
) -> Script {
    let path = format!(
        "jsonpath={{.metadata.annotations.{}}}",
        annotation.replace('.', "\\.")
    );
    let mut words = argv!["kubectl", "-n", namespace, "get", resource, name, "-o", path];
    words.push(Word::Op("|"));
    words.extend(argv!["tr", ",", "\\n"]);
    // `a=1, b=2` is as valid to the controller as `a=1,b=2`: trim each pair before matching.
    words.push(Word::Op("|"));
    words.extend(argv!["sed", "-e", "s/^ *//", "-e", "s/ *$//"]);
    words.push(Word::Op("|"));
    words.extend(argv!["grep", "-v", "-e", format!("^{key}="), "-e", "^$"]);
    words.push(Word::Op("|"));
    words.extend([Word::Op("{"), Word::from("cat"), Word::Op(";")]);
    words.extend(argv!["echo", format!("{key}={value}")]);
    words.extend([Word::Op(";"), Word::Op("}"), Word::Op("|")]);
    words.extend(argv!["paste", "-sd,", "-"]);
    // One NUL-less item, the newline dropped: xargs then treats no quote in a value as syntax.
    words.push(Word::Op("|"));
    words.extend(argv!["tr", "-d", "\\n"]);
    words.push(Word::Op("|"));
    words.extend(argv![
        "xargs",
        "-0",
        "-I",
        "VALUE",
        "kubectl",
        "-n",
        namespace,
        "annotate",
        resource,
        name,
        "--overwrite",
        format!("{annotation}=VALUE")
    ]);
    Script::line(words)
}

/// `aws elbv2 modify-listener-attributes` setting an NLB TCP listener's idle timeout.
pub fn nlb_listener_idle_timeout(region: &str, listener_arn: &str, seconds: u32) -> Script {
    Script::line(listener_idle_timeout_words(region, listener_arn, seconds))
}

fn listener_idle_timeout_words(region: &str, listener_arn: &str, seconds: u32) -> Vec<Word> {
    argv![
        "aws",
        "elbv2",
        "modify-listener-attributes",
        "--region",
        region,
        "--listener-arn",
        listener_arn,
        "--attributes",
        format!("Key=tcp.idle_timeout.seconds,Value={seconds}")
    ]
}

/// `aws elbv2 modify-target-group-attributes` setting one attribute.
pub fn target_group_attribute(region: &str, group_arn: &str, key: &str, value: &str) -> Script {
    Script::line(argv![
        "aws",
        "elbv2",
        "modify-target-group-attributes",
        "--region",
        region,
        "--target-group-arn",
        group_arn,
        "--attributes",
        format!("Key={key},Value={value}")
    ])
}

/// The AWS Load Balancer Controller's annotation holding an NLB group's attributes.
pub const NLB_GROUP_ATTRIBUTES_KEY: &str =
    "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes";

/// The controller's annotation holding one NLB listener's attributes; `None` for a protocol
/// an NLB does not have (the protocol comes from a snapshot, and the key is printed).
pub fn nlb_listener_attributes_key(protocol: &str, port: u16) -> Option<String> {
    let protocol = protocol.trim().to_ascii_uppercase();
    ["TCP", "TLS", "UDP", "TCP_UDP"]
        .contains(&protocol.as_str())
        .then(|| format!("service.beta.kubernetes.io/aws-load-balancer-listener-attributes.{protocol}-{port}"))
}

/// A Service annotation set durably, when the AWS Load Balancer Controller owns the NLB:
/// the list's other pairs are kept. Without a known Service, the manifest alone.
pub fn nlb_service_attribute(
    ctx: &Context<'_>,
    annotation: &str,
    key: &str,
    value: &str,
    what: &str,
) -> DurableFix {
    let manifest = Some(format!(
        "metadata:\n  annotations:\n    {annotation}: {key}={value}"
    ));
    let by_controller = ctx
        .snapshot
        .load_balancer
        .tags
        .contains_key("service.k8s.aws/stack");
    match (&ctx.owner, by_controller) {
        (Owner::Service { namespace, name }, true) => DurableFix {
            description: format!(
                "Set {key}={value} in the {annotation} annotation of Service {namespace}/{name}, merged with what it holds, so the AWS Load Balancer Controller keeps {what}"
            ),
            command: Some(merge_listed_attribute("service", namespace, name, annotation, key, value)),
            manifest,
            warning: "The annotation holds a comma-separated list: the command keeps its other pairs. The controller reconciles only the keys it names: if it already names this one, its value comes back at the next reconcile of the Service; if not, the AWS change stays, but the manifest no longer says what AWS holds.".into(),
        },
        (Owner::Service { namespace, name }, false) => DurableFix {
            description: format!(
                "Service {namespace}/{name} owns this NLB through the cloud provider, which does not manage {what}: the AWS-side change stays; move the Service to the AWS Load Balancer Controller to keep it in the manifest"
            ),
            command: None,
            manifest,
            warning: "The annotation takes effect only under the AWS Load Balancer Controller.".into(),
        },
        _ => DurableFix {
            description: format!(
                "No owning Service was found in the tags; if one owns this NLB, set {what} in its {annotation} annotation"
            ),
            command: None,
            manifest,
            warning: "Merge with the annotation's current value: it is a comma-separated list that --overwrite replaces whole.".into(),
        },
    }
}

/// `aws ec2 create-network-acl-entry` for one allow entry.
pub fn create_nacl_entry(
    region: &str,
    nacl_id: &str,
    direction: Direction,
    rule_number: u16,
    ports: PortRange,
    cidr: &str,
) -> Script {
    let flag = if cidr.contains(':') {
        "--ipv6-cidr-block"
    } else {
        "--cidr-block"
    };
    Script::line(argv![
        "aws",
        "ec2",
        "create-network-acl-entry",
        "--region",
        region,
        "--network-acl-id",
        nacl_id,
        Word::Fixed(direction.flag()),
        "--rule-number",
        rule_number,
        "--protocol",
        "tcp",
        "--port-range",
        format!("From={},To={}", ports.from, ports.to),
        Word::Fixed(flag),
        cidr,
        "--rule-action",
        "allow"
    ])
}

/// `aws ec2 delete-network-acl-entry`: the rollback of an entry, or the removal of a deny.
pub fn delete_nacl_entry(
    region: &str,
    nacl_id: &str,
    direction: Direction,
    rule_number: u16,
) -> Script {
    Script::line(argv![
        "aws",
        "ec2",
        "delete-network-acl-entry",
        "--region",
        region,
        "--network-acl-id",
        nacl_id,
        Word::Fixed(direction.flag()),
        "--rule-number",
        rule_number
    ])
}

/// `aws ec2 authorize-security-group-ingress|egress` (or `revoke-`, for rollbacks) of TCP
/// `port` from or to the group `peer_group`.
pub fn security_group_rule(
    verb: &str,
    region: &str,
    direction: Direction,
    group_id: &str,
    port: u16,
    peer_group: &str,
    description: Option<&str>,
) -> Script {
    // The shorthand syntax has its own quoting; ids and the description are kept to the
    // characters it passes through unquoted.
    let plain = |text: &str| -> String {
        text.chars()
            .filter(|c| c.is_ascii_alphanumeric() || " -_./:@+=".contains(*c))
            .collect()
    };
    let pair = match description {
        Some(text) => format!(
            "GroupId={},Description=\"{}\"",
            plain(peer_group),
            plain(text)
        ),
        None => format!("GroupId={}", plain(peer_group)),
    };
    Script::line(argv![
        "aws",
        "ec2",
        format!("{verb}-security-group-{}", direction.as_str()),
        "--region",
        region,
        "--group-id",
        group_id,
        "--ip-permissions",
        format!("IpProtocol=tcp,FromPort={port},ToPort={port},UserIdGroupPairs=[{{{pair}}}]")
    ])
}

/// `describe-target-health` per target group (ALB) or `describe-instance-health` (Classic
/// LB), with the ARNs as gathered.
pub fn describe_health(ctx: &Context<'_>, target_group_arn: Option<&str>) -> Command {
    let lb = &ctx.snapshot.load_balancer;
    let region = ctx.region();
    let health = |arn: &str| {
        argv![
            "aws",
            "elbv2",
            "describe-target-health",
            "--region",
            region,
            "--target-group-arn",
            arn
        ]
    };
    match lb.kind {
        LbKind::Classic => Command::new(
            "See the health of every instance",
            Script::line(argv![
                "aws",
                "elb",
                "describe-instance-health",
                "--region",
                region,
                "--load-balancer-name",
                &lb.name
            ]),
        ),
        LbKind::Application | LbKind::Network => {
            let arns: Vec<&str> = match target_group_arn {
                Some(arn) => vec![arn],
                None => ctx
                    .snapshot
                    .target_groups
                    .iter()
                    .filter_map(|g| g.arn.as_deref())
                    .collect(),
            };
            if arns.is_empty() {
                let (lookup, arn) = alb_arn(region, &lb.name, lb.arn.as_deref());
                return Command::new(
                    "List the target groups (then run aws elbv2 describe-target-health --target-group-arn for each)",
                    script(lookup, argv!["aws", "elbv2", "describe-target-groups", "--region", region, "--load-balancer-arn", arn]),
                );
            }
            Command::new(
                "See the health of every target, with reasons",
                Script::lines(arns.into_iter().map(health).collect()),
            )
        }
    }
}

/// A Service's selector and ready endpoints: what decides which pods get traffic.
pub fn service_endpoints(description: &str, namespace: &str, service: &str) -> Command {
    Command::new(
        description,
        Script::lines(vec![
            argv!["kubectl", "-n", namespace, "describe", "service", service],
            argv![
                "kubectl",
                "-n",
                namespace,
                "get",
                "endpointslices",
                "-l",
                format!("kubernetes.io/service-name={service}"),
                "-o",
                "wide"
            ],
        ]),
    )
}

/// The namespace every `kubectl` line names: the owner's, else the placeholder `NAMESPACE`.
/// A line without `-n` runs in the kubeconfig's current namespace (`default` after
/// `aws eks update-kubeconfig`), where the object is not found.
pub fn namespace_of<'c>(ctx: &'c Context<'_>) -> &'c str {
    ctx.owner
        .namespaced()
        .map_or("NAMESPACE", |(namespace, _)| namespace)
}

/// `kubectl -n NAMESPACE port-forward POD PORT:PORT &`: a pod's port on 127.0.0.1.
pub fn port_forward(ctx: &Context<'_>, port: u16) -> Vec<Word> {
    let mut line = argv![
        "kubectl",
        "-n",
        namespace_of(ctx),
        "port-forward",
        "POD",
        format!("{port}:{port}")
    ];
    line.push(Word::Op("&"));
    line
}

/// `kubectl` commands that show the pods behind the owner.
pub fn show_backends(ctx: &Context<'_>) -> Option<Command> {
    match &ctx.owner {
        Owner::Service { namespace, name } => Some(service_endpoints(
            "See the Service's endpoints and pods",
            namespace,
            name,
        )),
        Owner::Ingress { namespace, name } => Some(Command::new(
            "See the Ingress, its backends and their pods",
            Script::lines(vec![
                argv!["kubectl", "-n", namespace, "describe", "ingress", name],
                argv!["kubectl", "-n", namespace, "get", "pods", "-o", "wide"],
            ]),
        )),
        Owner::IngressGroup { group } => Some(Command::new(
            format!("See the target group bindings (IngressGroup {group})"),
            Script::line(argv![
                "kubectl",
                "get",
                "targetgroupbindings",
                "-A",
                "-o",
                "wide"
            ]),
        )),
        Owner::Unknown => None,
    }
}

/// Ingress annotations that keep an ALB target-group setting (the controller owns those
/// settings and rewrites them from the annotations): a `kubectl annotate` for an Ingress owner,
/// the manifest for any other.
pub fn ingress_annotations(ctx: &Context<'_>, pairs: &[(&str, &str)], what: &str) -> DurableFix {
    let manifest = format!(
        "metadata:\n  annotations:\n{}",
        pairs
            .iter()
            .map(|(k, v)| format!("    {k}: \"{v}\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let warning = "The load balancer controller owns the target group: a change made with the AWS CLI is undone at its next reconcile, and a protocol change replaces the target group. Change the annotation, on the Ingress or on the backend Service (a Service's annotation wins for its own backend).".to_string();
    match &ctx.owner {
        Owner::Ingress { namespace, name } => {
            let mut line = argv!["kubectl", "-n", namespace, "annotate", "ingress", name, "--overwrite"];
            line.extend(pairs.iter().map(|(k, v)| Word::from(format!("{k}={v}"))));
            DurableFix {
                description: format!("Annotate Ingress {namespace}/{name}: {what}"),
                command: Some(Script::line(line)),
                manifest: Some(manifest),
                warning,
            }
        }
        other => DurableFix {
            description: format!(
                "Set the annotation on the Ingress or Service that owns this load balancer ({}): {what}",
                other.describe()
            ),
            command: None,
            manifest: Some(manifest),
            warning,
        },
    }
}

/// The target groups of the load balancer by ARN, for `--target-group-arns`.
pub fn describe_target_groups(ctx: &Context<'_>, arns: &[&str]) -> Command {
    let mut line = argv![
        "aws",
        "elbv2",
        "describe-target-groups",
        "--region",
        ctx.region(),
        "--target-group-arns"
    ];
    line.extend(arns.iter().map(|a| crate::shell::data(a)));
    Command::new(
        "See the target groups' protocol, port and health check",
        Script::line(line),
    )
}

#[cfg(test)]
mod tests {
    use super::alb_attributes_manifest;
    use crate::context::Context;
    use crate::rules::testing::scenario_alarm;
    use crate::testkit::scenario_snapshot;

    /// Trust round two, defect 11: the annotation is one list, so the manifest shows it whole,
    /// today's keys that differ from AWS's defaults kept and only the changed key changed.
    #[test]
    fn the_attributes_manifest_keeps_todays_keys() {
        let name = "alb-idle-timeout";
        let alarm = scenario_alarm(name);
        let mut world = scenario_snapshot(name);
        let ctx = Context::new(&alarm, &world);
        let manifest = alb_attributes_manifest(&ctx, "idle_timeout.timeout_seconds", "120");
        let line = manifest.lines().last().unwrap();
        assert_eq!(
            line,
            "    alb.ingress.kubernetes.io/load-balancer-attributes: access_logs.s3.bucket=shop-prod-lb-logs,access_logs.s3.enabled=true,access_logs.s3.prefix=checkout,deletion_protection.enabled=true,routing.http2.enabled=false,idle_timeout.timeout_seconds=120"
        );
        // A value that would change the YAML's meaning is quoted; without attributes, only a
        // comment is shown: nothing that pasted would drop the other keys.
        world
            .load_balancer
            .attributes
            .insert("access_logs.s3.prefix".into(), "a: b #c\n- x".into());
        let ctx = Context::new(&alarm, &world);
        let manifest = alb_attributes_manifest(&ctx, "idle_timeout.timeout_seconds", "120");
        assert!(
            manifest.ends_with("access_logs.s3.prefix=a: b #c - x,deletion_protection.enabled=true,routing.http2.enabled=false,idle_timeout.timeout_seconds=120\""),
            "{manifest}"
        );
        world.load_balancer.attributes.clear();
        let ctx = Context::new(&alarm, &world);
        let manifest = alb_attributes_manifest(&ctx, "idle_timeout.timeout_seconds", "120");
        assert!(manifest.lines().all(|l| l.starts_with('#')), "{manifest}");
    }
}
