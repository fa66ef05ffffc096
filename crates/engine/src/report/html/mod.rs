//! The report as one self-contained HTML page: inline CSS and SVG, no script, nothing
//! fetched (its Content-Security-Policy forbids it), so it opens from an S3 console link or a
//! file alike. The path diagram comes first after the verdict: where the packet dies, seen
//! before it is read. Every piece of text from an alarm, a tag or AWS is escaped as data.

mod chart;
mod diagram;

use std::fmt::Write;

use super::escape::{html as esc, html_block};
use super::Report;
use crate::finding::{Finding, Fix};

/// No script, no fetch, no frame: styles inline and images as `data:` only.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// One report as a page.
pub fn render_html(report: &Report) -> String {
    render_html_page(std::slice::from_ref(report))
}

/// Every report of an event on one page, one article each.
pub fn render_html_page(reports: &[Report]) -> String {
    let title = match reports {
        [one] => one.subject(),
        many => format!("[elbmedic] {} reports", many.len()),
    };
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    for report in reports {
        article(report, &mut out);
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn article(report: &Report, out: &mut String) {
    let (label, headline) = report.headline();
    let status = report.verdict.status.as_str();
    let _ = write!(
        out,
        "<article>\n<header class=\"verdict {status}\">\n<p class=\"label\">{}</p>\n<h1>{}</h1>\n",
        esc(label),
        esc(headline)
    );
    if let Some(first) = &report.follow_up_of {
        let _ = writeln!(
            out,
            "<p>Follow-up to &quot;{}&quot;: evidence that arrived after it. The first report's findings stand.</p>",
            esc(&first.subject)
        );
    }
    out.push_str("</header>\n");
    facts(report, out);
    if let Some(section) = &report.remediation {
        let mut text = String::new();
        super::remediation::render_text(section, &mut text);
        let _ = write!(
            out,
            "<section>\n<h2>Remediation</h2>\n<pre>{}</pre>\n</section>\n",
            html_block(text.trim())
        );
    }
    if let Some(picture) = &report.picture {
        diagram::render(&picture.paths, out);
        chart::render_all(&picture.charts, out);
    }
    if !report.findings.is_empty() {
        let _ = write!(
            out,
            "<section class=\"findings\">\n<h2>Findings ({})</h2>\n\
             <p class=\"hint\">Click a command to select all of it, then copy.</p>\n",
            report.findings.len()
        );
        for (index, finding) in report.findings.iter().enumerate() {
            render_finding(index + 1, finding, out);
        }
        out.push_str("</section>\n");
    }
    list("Next steps", &report.next_steps, out);
    list(
        "Recent changes (CloudTrail; none explains a finding)",
        &report.recent_changes,
        out,
    );
    if !report.checked.is_empty() {
        out.push_str("<section>\n<h2>What was checked</h2>\n<ul class=\"checks\">\n");
        for check in &report.checked {
            let status = check.status.as_str();
            let _ = writeln!(
                out,
                "<li><span class=\"status {status}\">[{status}]</span> {}: {}</li>",
                esc(&check.name),
                esc(&check.detail)
            );
        }
        out.push_str("</ul>\n</section>\n");
    }
    let gaps: Vec<String> = report.gaps.iter().map(ToString::to_string).collect();
    list("Not observed", &gaps, out);
    let _ = write!(
        out,
        "<footer>{}</footer>\n</article>\n",
        esc(&report.generator)
    );
}

/// The header's facts: account, load balancer, owner, settings, the alarm.
fn facts(report: &Report, out: &mut String) {
    let alarm = &report.alarm;
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(account) = alarm.account_line() {
        rows.push(("Account", account));
    }
    if let Some(lb) = &report.load_balancer {
        rows.push((
            "Load balancer",
            format!("{} ({}) in {}", lb.name, lb.kind.display(), alarm.region),
        ));
        if let Some(arn) = &lb.arn {
            rows.push(("ARN", arn.clone()));
        }
        if let Some(owner) = lb.owner_line() {
            rows.push(("Owner", owner));
        }
        if let Some(timeout) = lb.idle_timeout_seconds {
            rows.push(("Idle timeout", format!("{timeout} s")));
        }
        if let Some(group) = &lb.target_group {
            rows.push(("Target group", group.clone()));
        }
    }
    rows.push(("Alarm", super::text::alarm_line(alarm)));
    if let Some(reason) = &alarm.reason {
        rows.push(("Reason", super::escape::quoted(reason)));
    }
    out.push_str("<dl class=\"facts\">\n");
    for (label, value) in rows {
        let _ = writeln!(out, "<dt>{label}</dt><dd>{}</dd>", esc(&value));
    }
    out.push_str("</dl>\n");
}

fn list(title: &str, items: &[String], out: &mut String) {
    if items.is_empty() {
        return;
    }
    let _ = write!(out, "<section>\n<h2>{}</h2>\n<ul>\n", esc(title));
    for item in items {
        let _ = writeln!(out, "<li>{}</li>", esc(item));
    }
    out.push_str("</ul>\n</section>\n");
}

fn render_finding(number: usize, finding: &Finding, out: &mut String) {
    let severity = finding.severity.as_str();
    let _ = write!(
        out,
        "<details class=\"finding\" open id=\"finding-{number}\">\n<summary>\
         <span class=\"sev {severity}\">{}</span> <code>{}</code> {}</summary>\n",
        severity.to_uppercase(),
        finding.code,
        esc(&finding.title)
    );
    if let Some(confidence) = finding.confidence {
        let reason = finding.confidence_reason.as_deref().unwrap_or_default();
        let _ = writeln!(
            out,
            "<p><strong>Confidence: {}.</strong> {}</p>",
            confidence.as_str(),
            esc(reason)
        );
    }
    let _ = writeln!(out, "<p>{}</p>", esc(&finding.explanation));
    if !finding.evidence.is_empty() {
        out.push_str("<h4>Evidence</h4>\n<ul>\n");
        for evidence in &finding.evidence {
            let _ = writeln!(out, "<li>{}</li>", esc(evidence.summary()));
        }
        out.push_str("</ul>\n");
    }
    render_fix(&finding.fix, out);
    out.push_str("</details>\n");
}

fn render_fix(fix: &Fix, out: &mut String) {
    let _ = writeln!(out, "<h4>Fix</h4>\n<p>{}</p>", esc(&fix.summary));
    for command in &fix.commands {
        let _ = writeln!(
            out,
            "<p class=\"hint\"># {}</p>\n<pre class=\"cmd\">{}</pre>",
            esc(&command.description),
            html_block(&command.command)
        );
    }
    if let Some(durable) = &fix.durable {
        let _ = writeln!(
            out,
            "<h4>Make it durable</h4>\n<p>{}</p>",
            esc(&durable.description)
        );
        if let Some(command) = &durable.command {
            let _ = writeln!(out, "<pre class=\"cmd\">{}</pre>", html_block(command));
        }
        if let Some(manifest) = &durable.manifest {
            let _ = writeln!(out, "<pre class=\"cmd\">{}</pre>", html_block(manifest));
        }
        let _ = writeln!(
            out,
            "<p class=\"warning\">Warning: {}</p>",
            esc(&durable.warning)
        );
    }
    if !fix.notes.is_empty() {
        out.push_str("<h4>Notes</h4>\n<ul>\n");
        for note in &fix.notes {
            let _ = writeln!(out, "<li>{}</li>", esc(note));
        }
        out.push_str("</ul>\n");
    }
}

/// The page's only style sheet. No text below 12 px; nothing wider than a 1,280 px window.
const STYLE: &str = "
*{box-sizing:border-box}
body{margin:0;padding:24px;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;background:#fff}
main{max-width:1200px;margin:0 auto}
article+article{margin-top:48px;border-top:4px double #d0d7de;padding-top:24px}
h1{font-size:21px;margin:2px 0 0;overflow-wrap:anywhere}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 4px}
h4{font-size:14px;margin:12px 0 4px}
p,li,dd{overflow-wrap:anywhere}
.verdict{border-left:6px solid #8c959f;padding:10px 16px;background:#f6f8fa;border-radius:6px}
.verdict .label{font-weight:700;letter-spacing:.04em;font-size:13px;margin:0}
.verdict.cause-found{border-color:#cf222e;background:#ffebe9}
.verdict.no-known-cause{border-color:#bf8700;background:#fff8c5}
.verdict.recovered{border-color:#1a7f37;background:#dafbe1}
.verdict.unsupported,.verdict.load-balancer-not-read{border-color:#8250df;background:#fbefff}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 16px;margin:12px 0}
dl.facts dt{font-weight:600;color:#57606a}
dl.facts dd{margin:0}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:13px;margin:6px 0 8px;padding:0;list-style:none}
.swatch{display:inline-block;width:14px;height:14px;border-radius:3px;vertical-align:-2px;margin-right:5px;border:2px solid #8c959f;background:#f6f8fa}
.swatch.pass{background:#dafbe1;border-color:#1a7f37}
.swatch.drop{background:#ffebe9;border-color:#cf222e}
.swatch.degraded{background:#fff8c5;border-color:#bf8700}
.swatch.unknown{background:#fff8c5;border-color:#9a6700;border-style:dashed}
.swatch.not-crossed{border-style:dashed}
.swatch.c0{background:#0969da;border-color:#0969da}
.swatch.c1{background:#cf222e;border-color:#cf222e}
.swatch.c2{background:#8250df;border-color:#8250df}
.swatch.c3{background:#bf8700;border-color:#bf8700}
.swatch.c4{background:#1a7f37;border-color:#1a7f37}
.swatch.limit{background:#fff;border-color:#cf222e;border-style:dashed}
.zone{margin:10px 0 18px}
.row{margin:6px 0 14px}
.row p{margin:2px 0;font-size:13px}
.row p.dies{color:#a40e26;font-weight:600;font-size:14px}
svg{max-width:100%;height:auto;display:block}
svg text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:12px;fill:#1f2328}
svg text.strong{font-weight:700}
svg text.head{font-weight:600;fill:#57606a}
svg text.mark{fill:#fff;font-weight:700}
svg .hop rect{stroke-width:2;fill:#f6f8fa;stroke:#8c959f}
svg .hop.pass rect{fill:#dafbe1;stroke:#1a7f37}
svg .hop.drop rect{fill:#ffebe9;stroke:#cf222e;stroke-width:3}
svg .hop.degraded rect{fill:#fff8c5;stroke:#bf8700}
svg .hop.unknown rect{fill:#fff8c5;stroke:#9a6700;stroke-dasharray:5 3}
svg .hop.not-crossed rect{stroke-dasharray:3 3}
svg .hop.unreached{opacity:.4}
svg .hop circle{fill:#cf222e}
svg line.edge{stroke:#57606a;stroke-width:2}
svg line.edge.unreached{stroke:#afb8c1;stroke-dasharray:4 4}
svg polygon.arrow{fill:#57606a}
svg polygon.arrow.unreached{fill:#afb8c1}
svg line.axis{stroke:#8c959f;stroke-width:1}
svg line.limit{stroke:#cf222e;stroke-width:1.5;stroke-dasharray:6 4}
svg text.limit{fill:#a40e26}
svg polyline{fill:none;stroke-width:2}
svg .c0{stroke:#0969da;fill:#0969da}
svg .c1{stroke:#cf222e;fill:#cf222e}
svg .c2{stroke:#8250df;fill:#8250df}
svg .c3{stroke:#bf8700;fill:#bf8700}
svg .c4{stroke:#1a7f37;fill:#1a7f37}
svg polyline.c0,svg polyline.c1,svg polyline.c2,svg polyline.c3,svg polyline.c4{fill:none}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:16px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;font-size:14px}
.chart-legend{list-style:none;padding:0;margin:4px 0 0;font-size:13px;display:flex;flex-wrap:wrap;gap:4px 14px}
details.finding{border:1px solid #d0d7de;border-radius:6px;margin:10px 0;padding:8px 12px}
details.finding>summary{cursor:pointer;font-weight:600;overflow-wrap:anywhere}
.sev{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;font-weight:700;color:#fff;background:#57606a}
.sev.critical{background:#cf222e}
.sev.high{background:#bc4c00}
.sev.medium{background:#9a6700}
.sev.low{background:#0969da}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 10px;white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0 10px}
pre.cmd{user-select:all;-webkit-user-select:all;cursor:copy}
.hint{font-size:13px;color:#57606a;margin:6px 0 2px}
.warning{color:#9a6700}
.status{font-weight:600}
.status.problem{color:#cf222e}
.status.incomplete{color:#9a6700}
.status.ok{color:#1a7f37}
footer{margin-top:32px;font-size:13px;color:#57606a}
";
