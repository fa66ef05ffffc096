//! The alarm's region as a code (`eu-west-1`). CloudWatch's `Region` field is a display name
//! (`EU (Ireland)`), so the code comes from the alarm ARN, else the SNS topic ARN, else a
//! table of display names.

use super::formats::is_region_code;

/// Region from the first source that yields a valid code.
pub fn resolve(
    alarm_arn: Option<&str>,
    topic_arn: Option<&str>,
    display: Option<&str>,
) -> Option<String> {
    alarm_arn
        .and_then(region_from_arn)
        .or_else(|| topic_arn.and_then(region_from_arn))
        .or_else(|| {
            display
                .and_then(region_from_display_name)
                .map(str::to_string)
        })
        .or_else(|| display.filter(|d| is_region_code(d)).map(str::to_string))
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:...` -> REGION, when it looks like a region code.
fn region_from_arn(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    if parts.next()? != "arn" {
        return None;
    }
    let region = parts.nth(2)?;
    is_region_code(region).then(|| region.to_string())
}

/// The display names CloudWatch puts in alarm messages. Older messages say `EU (...)`,
/// newer ones `Europe (...)`; both are listed.
const DISPLAY_NAMES: &[(&str, &str)] = &[
    ("us east (n. virginia)", "us-east-1"),
    ("us east (ohio)", "us-east-2"),
    ("us west (n. california)", "us-west-1"),
    ("us west (oregon)", "us-west-2"),
    ("africa (cape town)", "af-south-1"),
    ("asia pacific (hong kong)", "ap-east-1"),
    ("asia pacific (taipei)", "ap-east-2"),
    ("asia pacific (hyderabad)", "ap-south-2"),
    ("asia pacific (jakarta)", "ap-southeast-3"),
    ("asia pacific (malaysia)", "ap-southeast-5"),
    ("asia pacific (melbourne)", "ap-southeast-4"),
    ("asia pacific (mumbai)", "ap-south-1"),
    ("asia pacific (new zealand)", "ap-southeast-6"),
    ("asia pacific (osaka)", "ap-northeast-3"),
    ("asia pacific (seoul)", "ap-northeast-2"),
    ("asia pacific (singapore)", "ap-southeast-1"),
    ("asia pacific (sydney)", "ap-southeast-2"),
    ("asia pacific (thailand)", "ap-southeast-7"),
    ("asia pacific (tokyo)", "ap-northeast-1"),
    ("canada (central)", "ca-central-1"),
    ("canada west (calgary)", "ca-west-1"),
    ("china (beijing)", "cn-north-1"),
    ("china (ningxia)", "cn-northwest-1"),
    ("eu (frankfurt)", "eu-central-1"),
    ("eu (zurich)", "eu-central-2"),
    ("eu (ireland)", "eu-west-1"),
    ("eu (london)", "eu-west-2"),
    ("eu (paris)", "eu-west-3"),
    ("eu (milan)", "eu-south-1"),
    ("eu (spain)", "eu-south-2"),
    ("eu (stockholm)", "eu-north-1"),
    ("israel (tel aviv)", "il-central-1"),
    ("mexico (central)", "mx-central-1"),
    ("middle east (bahrain)", "me-south-1"),
    ("middle east (uae)", "me-central-1"),
    ("south america (sao paulo)", "sa-east-1"),
    ("aws govcloud (us-east)", "us-gov-east-1"),
    ("aws govcloud (us-west)", "us-gov-west-1"),
    ("aws govcloud (us)", "us-gov-west-1"),
];

/// `US East (N. Virginia)` -> `us-east-1`; case, spacing, `Europe`/`EU` and `São`/`Sao` tolerant.
pub fn region_from_display_name(display: &str) -> Option<&'static str> {
    let normalised = display
        .trim()
        .to_lowercase()
        .replace('ã', "a")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let normalised = normalised
        .strip_prefix("europe ")
        .map(|rest| format!("eu {rest}"))
        .unwrap_or(normalised);
    DISPLAY_NAMES
        .iter()
        .find(|(name, _)| *name == normalised)
        .map(|(_, code)| *code)
}
