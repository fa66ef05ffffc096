//! `elbmedic alarms`: the one command that attaches elbmedic's alarms (infra/alarms.yaml) to a
//! load balancer. Users know their LB by name; CloudWatch wants the ALB as `app/NAME/ID`, so
//! the LB is looked up first (live.rs) and the deploy command is built here, without I/O.

use anyhow::{bail, Result};

/// The load balancer, as the alarms template wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmedLb {
    /// `app/NAME/ID`: the end of the ALB's ARN, its CloudWatch `LoadBalancer` dimension.
    Application { name: String, dimension: String },
    /// `net/NAME/ID`: the NLB's `LoadBalancer` dimension.
    Network { name: String, dimension: String },
    /// The Classic LB's name, its `LoadBalancerName` dimension.
    Classic { name: String },
}

impl AlarmedLb {
    /// From an ALB's or NLB's ARN (`arn:aws:elasticloadbalancing:R:A:loadbalancer/app/NAME/ID`,
    /// `.../net/NAME/ID`) and the type `DescribeLoadBalancers` gives, which wins: the dimension
    /// CloudWatch wants is `net/NAME/ID` for an NLB whatever a stand-in writes in the ARN.
    pub fn from_elbv2_arn(arn: &str, described_type: Option<&str>) -> Result<Self> {
        let Some((_, dimension)) = arn.split_once(":loadbalancer/") else {
            bail!("{arn} is not a load balancer ARN");
        };
        let parts: Vec<&str> = dimension.split('/').collect();
        let network = match (described_type, parts.first()) {
            (Some("network"), _) | (None, Some(&"net")) => true,
            (Some("application"), _) | (None, Some(&"app")) => false,
            (Some(other), _) => bail!("{arn} is a load balancer of type {other}: elbmedic's alarms cover ALBs, NLBs and Classic LBs"),
            _ => bail!("{arn} is not an Application or Network Load Balancer ARN"),
        };
        let valid =
            |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        match parts.as_slice() {
            [_, name, id] if valid(name) && valid(id) => {
                let (name, id) = (name.to_string(), id.to_string());
                Ok(match network {
                    true => Self::Network {
                        dimension: format!("net/{name}/{id}"),
                        name,
                    },
                    false => Self::Application {
                        dimension: format!("app/{name}/{id}"),
                        name,
                    },
                })
            }
            _ => bail!("{arn} is not an Application or Network Load Balancer ARN"),
        }
    }

    /// From an ALB's ARN alone.
    #[cfg(test)]
    pub fn from_alb_arn(arn: &str) -> Result<Self> {
        Self::from_elbv2_arn(arn, None)
    }

    fn name(&self) -> &str {
        match self {
            Self::Application { name, .. }
            | Self::Network { name, .. }
            | Self::Classic { name } => name,
        }
    }
}

/// The region and account of an SNS topic ARN. The region must be the LB's: alarms notify
/// same-region topics.
fn topic_place(topic: &str) -> Result<(&str, &str)> {
    match elbmedic_engine::alarm::formats::topic_arn(topic) {
        Some(parsed) => Ok((parsed.region, parsed.account)),
        None => bail!("--topic {topic:?} is not an SNS topic ARN; use the AlarmTopicArn output of the elbmedic stack"),
    }
}

/// The `aws cloudformation deploy` command for infra/alarms.yaml, one stack per LB.
/// `lb_account` is the account the LB was found in: when the topic is another account's (the
/// organization's central deployment), the command says what that needs.
pub fn deploy_command(
    lb: &AlarmedLb,
    topic: &str,
    region: &str,
    lb_account: Option<&str>,
) -> Result<String> {
    let (topic_region, topic_account) = topic_place(topic)?;
    if topic_region != region {
        bail!("the topic is in {topic_region} but the load balancer is in {region}: CloudWatch alarms notify topics in their own region, so deploy elbmedic in {region} too");
    }
    let (kind, dimension, label) = match lb {
        AlarmedLb::Application { dimension, .. } => ("application", dimension.as_str(), "ALB"),
        AlarmedLb::Network { dimension, .. } => ("network", dimension.as_str(), "NLB"),
        AlarmedLb::Classic { name } => ("classic", name.as_str(), "Classic LB"),
    };
    let name = lb.name();
    let central = match lb_account.filter(|a| *a != topic_account) {
        Some(account) => format!(
            "# The topic is the central elbmedic deployment's, in account {topic_account}. Run this with\n\
             # credentials for account {account}, where the load balancer is; the central stack's\n\
             # AllowedAccounts must list {account} (its topic policy admits only those accounts' alarms),\n\
             # and the StackSet elbmedic-member-roles must cover {account}. The CloudWatch console warns\n\
             # that it cannot verify a topic of another account; the alarms notify it all the same.\n"
        ),
        None => String::new(),
    };
    Ok(format!(
        "{central}# Alarms for the {label} {name} in {region}: 5xx, 504 and connection errors, to {topic}\n\
         aws cloudformation deploy --region {region} \\\n  \
         --template-file infra/alarms.yaml \\\n  \
         --stack-name elbmedic-alarms-{name} \\\n  \
         --parameter-overrides LoadBalancerType={kind} LoadBalancer={dimension} AlarmTopicArn={topic}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:elbmedic-AlarmTopic-1A2B3C";

    #[test]
    fn an_alb_is_alarmed_by_its_dimension() {
        let lb = AlarmedLb::from_alb_arn("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/k8s-shop-checkout-6f1e2d3c4b/50dc6c495c0c9188").unwrap();
        let command = deploy_command(&lb, TOPIC, "eu-west-1", Some("123456789012")).unwrap();
        assert!(!command.contains("central"), "{command}");
        assert!(command.contains("LoadBalancerType=application LoadBalancer=app/k8s-shop-checkout-6f1e2d3c4b/50dc6c495c0c9188 AlarmTopicArn=arn:aws:sns:eu-west-1:123456789012:elbmedic-AlarmTopic-1A2B3C"), "{command}");
        assert!(command.contains("--stack-name elbmedic-alarms-k8s-shop-checkout-6f1e2d3c4b"));
    }

    #[test]
    fn a_classic_lb_is_alarmed_by_its_name() {
        let lb = AlarmedLb::Classic {
            name: "a1b2c3".into(),
        };
        let command = deploy_command(&lb, TOPIC, "eu-west-1", None).unwrap();
        assert!(command.contains("LoadBalancerType=classic LoadBalancer=a1b2c3 "));
    }

    /// A member account's LB with the central topic: the same command, and what it needs.
    #[test]
    fn a_member_accounts_lb_is_alarmed_to_the_central_topic() {
        let lb = AlarmedLb::Classic {
            name: "a1b2c3".into(),
        };
        let command = deploy_command(&lb, TOPIC, "eu-west-1", Some("210987654321")).unwrap();
        assert!(command.contains("central elbmedic deployment's, in account 123456789012"));
        assert!(command.contains("credentials for account 210987654321"));
        assert!(command.contains("AllowedAccounts must list 210987654321"));
        assert!(command.contains(&format!("AlarmTopicArn={TOPIC}")));
    }

    #[test]
    fn bad_inputs_say_what_to_do() {
        let nlb = AlarmedLb::from_alb_arn(
            "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/net/edge/0123456789abcdef",
        )
        .unwrap();
        assert_eq!(
            nlb,
            AlarmedLb::Network {
                name: "edge".into(),
                dimension: "net/edge/0123456789abcdef".into()
            }
        );
        // The described type wins over the ARN's prefix; another type is refused.
        let typed = AlarmedLb::from_elbv2_arn(
            "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/edge/0123456789abcdef",
            Some("network"),
        )
        .unwrap();
        assert!(
            matches!(typed, AlarmedLb::Network { dimension, .. } if dimension == "net/edge/0123456789abcdef")
        );
        let gateway = AlarmedLb::from_elbv2_arn(
            "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/gwy/edge/0123456789abcdef",
            Some("gateway"),
        );
        assert!(gateway.unwrap_err().to_string().contains("type gateway"));
        let hostile = AlarmedLb::from_alb_arn(
            "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/a;b/0123456789abcdef",
        );
        assert!(hostile.is_err());
        let lb = AlarmedLb::Classic { name: "x".into() };
        let other_region = deploy_command(&lb, TOPIC, "us-east-1", None).unwrap_err();
        assert!(other_region
            .to_string()
            .contains("deploy elbmedic in us-east-1"));
        let not_a_topic = deploy_command(&lb, "alarms", "eu-west-1", None).unwrap_err();
        assert!(not_a_topic.to_string().contains("AlarmTopicArn"));
    }
}
