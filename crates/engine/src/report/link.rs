//! Where a report's HTML page is kept in `REPORT_BUCKET`, and the link that opens it: the S3
//! console's page of the object, which needs a console login, so a forwarded email or a chat
//! message never hands the report to someone outside the account. Never a public or presigned
//! URL.

use super::Report;

/// The object key: by day, then by time, load balancer and alarm, so a listing reads as a log;
/// `unique` (the invocation's request id and record) keeps two reports of one moment apart.
/// Only `[a-z0-9._-]` and `/`: nothing in it needs quoting in a URL or a shell.
pub fn object_key(report: &Report, now: i64, unique: &str) -> String {
    let time = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    let lb = report
        .load_balancer
        .as_ref()
        .map_or("no-load-balancer", |lb| lb.name.as_str());
    let tag = crate::stable_hash::stable_hash(&format!("{}|{unique}", report.alarm.name));
    format!(
        "reports/{}/{}-{}-{}-{:08x}.html",
        time.format("%Y/%m/%d"),
        time.format("%H%M%SZ"),
        slug(lb, 40),
        slug(&report.alarm.name, 60),
        tag & 0xffff_ffff
    )
}

/// The S3 console's page of an object, in the console of the region's partition.
pub fn console_url(bucket: &str, region: &str, key: &str) -> String {
    let console = if region.starts_with("cn-") {
        "https://console.amazonaws.cn"
    } else if region.starts_with("us-gov-") {
        "https://console.amazonaws-us-gov.com"
    } else {
        "https://console.aws.amazon.com"
    };
    format!(
        "{console}/s3/object/{}?region={}&prefix={}",
        percent(bucket),
        percent(region),
        percent(key)
    )
}

/// Lowercase letters, digits, `.`, `_` and `-` of `text`, every other run of characters one
/// `-`, at most `max` characters.
fn slug(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    if out.is_empty() {
        "unnamed".into()
    } else {
        out
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let scenario = crate::scenarios::find("alb-idle-timeout").unwrap();
        let (alarm, lb) = scenario.alarm().unwrap();
        Report::diagnosed(&alarm, &lb, &scenario.world().unwrap())
    }

    #[test]
    fn keys_carry_nothing_that_needs_quoting() {
        let mut report = report();
        report.alarm.name = "../../etc/passwd $(curl evil) <!channel> ÄÖ".into();
        let key = object_key(&report, 1_700_000_000, "req-1#1");
        assert!(key.starts_with("reports/2023/11/14/221320Z-"), "{key}");
        assert!(key.ends_with(".html"));
        assert!(
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/Z".contains(c)),
            "{key}"
        );
        assert!(!key.contains(".."), "{key}");
        // Another record of the same moment gets another key.
        assert_ne!(key, object_key(&report, 1_700_000_000, "req-1#2"));
    }

    #[test]
    fn console_urls_need_a_login_and_follow_the_partition() {
        let url = console_url("reports", "eu-west-1", "reports/2023/11/14/a b.html");
        assert_eq!(
            url,
            "https://console.aws.amazon.com/s3/object/reports?region=eu-west-1&prefix=reports%2F2023%2F11%2F14%2Fa%20b.html"
        );
        assert!(console_url("r", "cn-north-1", "k").starts_with("https://console.amazonaws.cn/"));
        assert!(console_url("r", "us-gov-west-1", "k")
            .starts_with("https://console.amazonaws-us-gov.com/"));
        assert!(!url.contains("X-Amz-"), "never presigned");
    }
}
