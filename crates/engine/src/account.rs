//! The organization deployment's account rules, pure: which member role serves an account,
//! what its STS session is called, and why an alarm's account could not be reached. The
//! shell assumes the roles; the report explains a refusal from here.

use crate::alarm::formats::{is_account_id, partition_of};

/// The StackSet that rolls the member roles out (`infra/member-role.yaml`); reports name it.
pub const MEMBER_STACK_SET: &str = "elbmedic-member-roles";

/// Why an alarm's account cannot be read (or changed) from this deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRefusal {
    /// The account is not in `ALLOWED_ACCOUNTS`.
    NotAllowed { account: String, own: String },
    /// The member role could not be assumed: missing, not trusting this deployment, or STS
    /// refused; `error` is STS's code and message.
    RoleNotAssumed {
        account: String,
        role_arn: String,
        error: String,
    },
}

impl AccountRefusal {
    pub fn account(&self) -> &str {
        match self {
            Self::NotAllowed { account, .. } | Self::RoleNotAssumed { account, .. } => account,
        }
    }

    /// One line for a report's headline (after the alarm's name).
    pub fn headline(&self) -> String {
        match self {
            Self::NotAllowed { account, .. } => {
                format!("account {account} is not one this deployment serves (ALLOWED_ACCOUNTS)")
            }
            Self::RoleNotAssumed {
                account, role_arn, ..
            } => {
                format!("account {account} could not be read: role {role_arn} was not assumed")
            }
        }
    }

    /// What the engineer does about it.
    pub fn next_step(&self) -> String {
        match self {
            Self::NotAllowed { account, own } => format!(
                "elbmedic runs in account {own} and serves only the accounts in ALLOWED_ACCOUNTS. To diagnose {account} from here: add it to the central stack's AllowedAccounts parameter and deploy the StackSet {MEMBER_STACK_SET} (infra/member-role.yaml) to it. Or run `elbmedic diagnose --event FILE` with credentials for {account}."
            ),
            Self::RoleNotAssumed { account, role_arn, error } => format!(
                "STS answered: {error}. Deploy the StackSet {MEMBER_STACK_SET} (infra/member-role.yaml) to account {account} (add its OU, or the account, to the StackSet's instances). If {role_arn} exists, its trust policy must allow this deployment's role, with MEMBER_EXTERNAL_ID as the external id; a remediation role exists only where the StackSet's EnableRemediation parameter is true."
            ),
        }
    }
}

/// The ARN of `role_name` in `account`, in the partition of `region`.
pub fn member_role_arn(region: &str, account: &str, role_name: &str) -> Option<String> {
    is_account_id(account).then(|| {
        format!(
            "arn:{}:iam::{account}:role/{role_name}",
            partition_of(region)
        )
    })
}

/// STS allows 2-64 characters of `[\w+=,.@-]` in a session name: `elbmedic-` and the alarm's
/// name with every other character made `-`, so the member account's CloudTrail shows which
/// alarm the session read for.
pub fn session_name(alarm_name: &str) -> String {
    let clean: String = alarm_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("elbmedic-{clean}");
    name.truncate(64);
    name
}

/// An IAM role name as IAM accepts it: 1-64 characters of `[\w+=,.@-]`.
pub fn is_role_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// An STS external id: 2-1224 characters of `[\w+=,.@:/-]`.
pub fn is_external_id(text: &str) -> bool {
    (2..=1224).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c))
}

/// An account alias as IAM allows it (3-63 of lower-case letters, digits and inner hyphens);
/// anything else from an AWS answer is dropped rather than put in a subject.
pub fn clean_alias(alias: &str) -> Option<String> {
    let ok = (3..=63).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !alias.starts_with('-')
        && !alias.ends_with('-');
    ok.then(|| alias.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_what_sts_accepts_whatever_the_alarm_is_called() {
        assert_eq!(session_name("shop 5xx"), "elbmedic-shop-5xx");
        let long = session_name(&"é<script>|`rm -rf`".repeat(20));
        assert_eq!(long.len(), 64);
        assert!(long
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)));
        assert_eq!(session_name(""), "elbmedic-");
        assert!(session_name("").len() >= 2);
    }

    #[test]
    fn role_arns_follow_the_partition_and_need_an_account_id() {
        assert_eq!(
            member_role_arn("cn-north-1", "210987654321", "elbmedic-member-read").as_deref(),
            Some("arn:aws-cn:iam::210987654321:role/elbmedic-member-read")
        );
        assert_eq!(member_role_arn("eu-west-1", "2109876543", "r"), None);
        assert_eq!(member_role_arn("eu-west-1", "21098765432x", "r"), None);
    }

    #[test]
    fn names_ids_and_aliases_are_validated() {
        assert!(is_role_name("elbmedic-member-read"));
        assert!(!is_role_name("a/b"));
        assert!(!is_role_name(&"a".repeat(65)));
        assert!(is_external_id("elbmedic-3f2a:org/1"));
        assert!(!is_external_id("x"));
        assert!(!is_external_id("has space"));
        assert_eq!(
            clean_alias("prod-payments").as_deref(),
            Some("prod-payments")
        );
        for bad in ["<!channel>", "Prod", "-x-", "ab", "a b c"] {
            assert_eq!(clean_alias(bad), None, "{bad}");
        }
    }

    #[test]
    fn refusals_name_the_account_and_the_stack_set() {
        let refusal = AccountRefusal::RoleNotAssumed {
            account: "210987654321".into(),
            role_arn: "arn:aws:iam::210987654321:role/elbmedic-member-read".into(),
            error: "AccessDenied: not authorized to perform sts:AssumeRole".into(),
        };
        assert!(refusal.headline().contains("210987654321"));
        assert!(refusal.next_step().contains(MEMBER_STACK_SET));
        let outside = AccountRefusal::NotAllowed {
            account: "210987654321".into(),
            own: "123456789012".into(),
        };
        assert!(outside.next_step().contains("ALLOWED_ACCOUNTS"));
    }
}
