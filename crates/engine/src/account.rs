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
    /// A plan that names another account than the one this run reached, or none (its alarm's
    /// account counts too): forged or mangled, so nothing about it is read or applied.
    PlanNotForThisAccount {
        /// What the plan's load balancer (or its alarm) names; `None` when it names none.
        claimed: Option<String>,
        /// The account this run reached; `None` when it could not tell (no STS answer).
        reached: Option<String>,
    },
}

/// Who serves the account an alarm or a plan names, decided here for the diagnosis pipeline,
/// `Accounts` and the remediation pipeline alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The deployment's own account (named, or no account named): its own clients.
    Own,
    /// A member account in `ALLOWED_ACCOUNTS`: reached through its role.
    Member(String),
    /// Another account than a member, while the own account is not known yet: read with the
    /// own clients, and scoped again once the own account is known (beside the gather).
    OwnIfSame(String),
}

/// The scope of `named` (the account an alarm or a plan names, if any) for a deployment whose
/// own account is `own` (if known) and whose members `is_member` tells; an account that is
/// neither the own one nor a member is refused.
pub fn scope(
    named: Option<&str>,
    own: Option<&str>,
    is_member: impl Fn(&str) -> bool,
) -> Result<Scope, AccountRefusal> {
    let Some(named) = named.filter(|named| Some(*named) != own) else {
        return Ok(Scope::Own);
    };
    if is_member(named) {
        return Ok(Scope::Member(named.to_string()));
    }
    match own {
        Some(own) => Err(AccountRefusal::NotAllowed {
            account: named.to_string(),
            own: own.to_string(),
        }),
        None => Ok(Scope::OwnIfSame(named.to_string())),
    }
}

/// Whether a plan is for the account this run reached: its load balancer must name exactly
/// that account, and its alarm, when it names one, too. The account elbmedic acts in is
/// always the one it reached (its own, or a member role's), never what a message says.
pub fn plan_scope(
    plan_account: Option<&str>,
    alarm_account: Option<&str>,
    reached: Option<&str>,
) -> Result<(), AccountRefusal> {
    let refused = |claimed: Option<&str>| AccountRefusal::PlanNotForThisAccount {
        claimed: claimed.map(str::to_string),
        reached: reached.map(str::to_string),
    };
    let Some(reached) = reached else {
        return Err(refused(plan_account));
    };
    match (plan_account, alarm_account) {
        (Some(plan), None) if plan == reached => Ok(()),
        (Some(plan), Some(alarm)) if plan == reached && alarm == reached => Ok(()),
        (Some(plan), Some(alarm)) if plan == reached => Err(refused(Some(alarm))),
        (claimed, _) => Err(refused(claimed)),
    }
}

impl AccountRefusal {
    pub fn account(&self) -> &str {
        match self {
            Self::NotAllowed { account, .. } | Self::RoleNotAssumed { account, .. } => account,
            Self::PlanNotForThisAccount {
                reached, claimed, ..
            } => reached
                .as_deref()
                .or(claimed.as_deref())
                .unwrap_or_default(),
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
            Self::PlanNotForThisAccount { claimed, reached } => {
                let acts_in = match reached {
                    Some(reached) => format!("this run acts in {reached}"),
                    None => "the account this run acts in is unknown".into(),
                };
                match claimed {
                    Some(claimed) => format!("the plan names account {claimed}, but {acts_in}: refused, nothing was read or applied"),
                    None => format!("the plan names no account ({acts_in}): refused, nothing was read or applied"),
                }
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
            Self::PlanNotForThisAccount { .. } => "A plan is applied only in the account it was made for, which is the one its alarm came from. Approve with the command of the report that proposed it, unchanged, or by its plan id; if you did, report this message: it was altered.".to_string(),
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
    fn the_own_account_a_member_or_a_refusal() {
        let member = |a: &str| a == "222222222222";
        let own = Some("111111111111");
        assert_eq!(scope(None, own, member), Ok(Scope::Own));
        assert_eq!(scope(own, own, member), Ok(Scope::Own));
        assert_eq!(
            scope(Some("222222222222"), own, member),
            Ok(Scope::Member("222222222222".into()))
        );
        assert_eq!(
            scope(Some("333333333333"), own, member),
            Err(AccountRefusal::NotAllowed {
                account: "333333333333".into(),
                own: "111111111111".into()
            })
        );
        // Not known yet: read with the own clients, and checked again once it is.
        assert_eq!(
            scope(Some("333333333333"), None, member),
            Ok(Scope::OwnIfSame("333333333333".into()))
        );
        assert_eq!(
            scope(Some("222222222222"), None, member),
            Ok(Scope::Member("222222222222".into()))
        );
    }

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

    /// Trust round two, defect 3: the account is the one reached, never the message's word.
    #[test]
    fn a_plan_is_for_the_reached_account_only() {
        let own = Some("111122223333");
        assert_eq!(plan_scope(own, own, own), Ok(()));
        assert_eq!(plan_scope(own, None, own), Ok(()));
        for (plan, alarm, reached) in [
            (None, None, own),
            (None, own, own),
            (Some("000000000000"), None, own),
            (Some("000000000000"), Some("000000000000"), own),
            (own, Some("000000000000"), own),
            (Some("000000000000"), own, own),
            (own, own, None),
        ] {
            let refusal = plan_scope(plan, alarm, reached).unwrap_err();
            assert!(
                refusal
                    .headline()
                    .contains("refused, nothing was read or applied"),
                "{plan:?} {alarm:?} {reached:?}: {}",
                refusal.headline()
            );
        }
        let claimed = plan_scope(Some("000000000000"), None, own).unwrap_err();
        assert!(claimed
            .headline()
            .contains("names account 000000000000, but this run acts in 111122223333"));
        let none = plan_scope(None, own, own).unwrap_err();
        assert!(
            none.headline().contains("names no account"),
            "{}",
            none.headline()
        );
    }
}
