//! Building AWS scenarios on moto through the SDK, as an EKS cluster and its load balancer
//! controllers would leave them, and running the real `elbmedic` binary against them.

#![allow(dead_code)]

pub mod kube_api;
pub mod moto;
pub mod runtime_api;
pub mod trail;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::types::{Filter, IpPermission, PortRange, RuleAction, Tag, UserIdGroupPair};
use aws_smithy_types::DateTime;

pub const REGION: &str = "eu-west-1";
pub const CLUSTER: &str = "shop-prod";

pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub eks: aws_sdk_eks::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub config: aws_config::SdkConfig,
    /// The account these clients act in.
    pub account: String,
}

impl Aws {
    /// The clients of moto's default account, 123456789012 (the central account in the
    /// organization tests).
    pub async fn new(url: &str) -> Self {
        let credentials =
            aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "tests");
        Self::with_credentials(url, credentials, "123456789012").await
    }

    /// The clients of another account on the same moto: moto gives an assumed role's
    /// credentials that role's account (so MOTO_ACCOUNT_ID must stay unset).
    pub async fn in_account(url: &str, account: &str) -> Self {
        let [(_, key), (_, secret), (_, token)] = account_credentials(url, account).await;
        let credentials =
            aws_sdk_ec2::config::Credentials::new(key, secret, Some(token), None, "tests");
        Self::with_credentials(url, credentials, account).await
    }

    async fn with_credentials(
        url: &str,
        credentials: aws_sdk_ec2::config::Credentials,
        account: &str,
    ) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(url)
            .credentials_provider(credentials)
            .load()
            .await;
        Self {
            ec2: aws_sdk_ec2::Client::new(&config),
            elb: aws_sdk_elasticloadbalancing::Client::new(&config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            eks: aws_sdk_eks::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            // moto has no per-bucket host names.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(true)
                    .build(),
            ),
            config,
            account: account.to_string(),
        }
    }
}

/// Credentials acting in `account` on the moto at `url`, as the environment variables a
/// process reads them from.
pub async fn account_credentials(url: &str, account: &str) -> [(&'static str, String); 3] {
    let central = Aws::new(url).await;
    let assumed = aws_sdk_sts::Client::new(&central.config)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/elbmedic-test-setup"))
        .role_session_name("elbmedic-test-setup")
        .send()
        .await
        .unwrap();
    let c = assumed.credentials().unwrap();
    [
        ("AWS_ACCESS_KEY_ID", c.access_key_id().to_string()),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key().to_string()),
        ("AWS_SESSION_TOKEN", c.session_token().to_string()),
    ]
}

/// The egress entries of the network ACL `acl`.
pub async fn egress_entries(aws: &Aws, acl: &str) -> Vec<aws_sdk_ec2::types::NetworkAclEntry> {
    let out = aws
        .ec2
        .describe_network_acls()
        .network_acl_ids(acl)
        .send()
        .await
        .unwrap();
    out.network_acls()[0]
        .entries()
        .iter()
        .filter(|e| e.egress() == Some(true))
        .cloned()
        .collect()
}

pub struct Subnet {
    pub id: String,
    pub cidr: String,
    pub zone: String,
}

/// A VPC as an EKS cluster has it: public subnets for load balancers, private ones for nodes
/// and pods, one NACL for each kind, the cluster's node security group.
pub struct Network {
    pub vpc: String,
    pub public: Vec<Subnet>,
    pub private: Vec<Subnet>,
    pub public_acl: String,
    pub private_acl: String,
    pub lb_sg: String,
    pub node_sg: String,
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// One NACL entry; the parameters mirror CreateNetworkAclEntry's.
#[allow(clippy::too_many_arguments)]
pub async fn nacl_entry(
    aws: &Aws,
    acl: &str,
    number: i32,
    egress: bool,
    protocol: &str,
    allow: bool,
    cidr: &str,
    ports: Option<(i32, i32)>,
) {
    let mut request = aws
        .ec2
        .create_network_acl_entry()
        .network_acl_id(acl)
        .rule_number(number)
        .egress(egress)
        .protocol(protocol)
        .rule_action(if allow {
            RuleAction::Allow
        } else {
            RuleAction::Deny
        });
    request = match cidr.contains(':') {
        true => request.ipv6_cidr_block(cidr),
        false => request.cidr_block(cidr),
    };
    if let Some((from, to)) = ports {
        request = request.port_range(PortRange::builder().from(from).to(to).build());
    }
    request.send().await.expect("create NACL entry");
}

async fn associate(aws: &Aws, subnet: &str, acl: &str) {
    let current = aws
        .ec2
        .describe_network_acls()
        .filters(
            Filter::builder()
                .name("association.subnet-id")
                .values(subnet)
                .build(),
        )
        .send()
        .await
        .expect("describe NACLs");
    let association = current
        .network_acls()
        .iter()
        .flat_map(|a| a.associations())
        .find(|a| a.subnet_id() == Some(subnet))
        .and_then(|a| a.network_acl_association_id())
        .expect("subnet association")
        .to_string();
    aws.ec2
        .replace_network_acl_association()
        .association_id(association)
        .network_acl_id(acl)
        .send()
        .await
        .expect("associate NACL");
}

/// Allows TCP `port` into `group` from the security group `source`.
pub async fn allow_from_group(aws: &Aws, group: &str, source: &str, port: i32) {
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
                .build(),
        )
        .send()
        .await
        .expect("authorize ingress");
}

/// The healthy network. `node_rule_ports` are opened on the node SG from the LB SG.
/// A new NACL in `vpc`, associated with nothing; its id.
pub async fn new_network_acl(aws: &Aws, vpc: &str) -> String {
    aws.ec2
        .create_network_acl()
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .network_acl()
        .unwrap()
        .network_acl_id()
        .unwrap()
        .to_string()
}

/// The ARN of the ALB named `name`.
pub async fn alb_arn(aws: &Aws, name: &str) -> String {
    aws.elbv2
        .describe_load_balancers()
        .names(name)
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string()
}

pub async fn network(aws: &Aws, node_rule_ports: &[i32]) -> Network {
    let vpc = aws
        .ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let mut public = Vec::new();
    let mut private = Vec::new();
    for (zone, public_cidr, private_cidr) in [
        ("eu-west-1a", "10.0.0.0/24", "10.0.16.0/20"),
        ("eu-west-1b", "10.0.1.0/24", "10.0.32.0/20"),
    ] {
        for (cidr, list) in [(public_cidr, &mut public), (private_cidr, &mut private)] {
            let subnet = aws
                .ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(cidr)
                .availability_zone(zone)
                .send()
                .await
                .unwrap();
            list.push(Subnet {
                id: subnet.subnet().unwrap().subnet_id().unwrap().to_string(),
                cidr: cidr.into(),
                zone: zone.into(),
            });
        }
    }
    let public_acl = new_network_acl(aws, &vpc).await;
    let private_acl = new_network_acl(aws, &vpc).await;
    nacl_entry(
        aws,
        &public_acl,
        100,
        false,
        "6",
        true,
        "0.0.0.0/0",
        Some((443, 443)),
    )
    .await;
    nacl_entry(
        aws,
        &public_acl,
        110,
        false,
        "6",
        true,
        "0.0.0.0/0",
        Some((80, 80)),
    )
    .await;
    nacl_entry(
        aws,
        &public_acl,
        120,
        false,
        "6",
        true,
        "0.0.0.0/0",
        Some((1024, 65535)),
    )
    .await;
    nacl_entry(aws, &public_acl, 100, true, "-1", true, "0.0.0.0/0", None).await;
    nacl_entry(
        aws,
        &private_acl,
        100,
        false,
        "-1",
        true,
        "10.0.0.0/16",
        None,
    )
    .await;
    nacl_entry(
        aws,
        &private_acl,
        110,
        false,
        "6",
        true,
        "0.0.0.0/0",
        Some((1024, 65535)),
    )
    .await;
    nacl_entry(aws, &private_acl, 100, true, "-1", true, "0.0.0.0/0", None).await;
    for subnet in &public {
        associate(aws, &subnet.id, &public_acl).await;
    }
    for subnet in &private {
        associate(aws, &subnet.id, &private_acl).await;
    }
    let lb_sg = aws
        .ec2
        .create_security_group()
        .group_name("k8s-shop-checkout-lb")
        .description("load balancer")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let node_sg = aws
        .ec2
        .create_security_group()
        .group_name("eks-cluster-sg-shop-prod")
        .description("nodes")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    aws.ec2
        .create_tags()
        .resources(&node_sg)
        .tags(tag("aws:eks:cluster-name", CLUSTER))
        .tags(tag(&format!("kubernetes.io/cluster/{CLUSTER}"), "owned"))
        .send()
        .await
        .unwrap();
    for port in node_rule_ports {
        allow_from_group(aws, &node_sg, &lb_sg, *port).await;
    }
    aws.eks
        .create_cluster()
        .name(CLUSTER)
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids(&private[0].id)
                .subnet_ids(&private[1].id)
                .build(),
        )
        .send()
        .await
        .expect("create EKS cluster");
    Network {
        vpc,
        public,
        private,
        public_acl,
        private_acl,
        lb_sg,
        node_sg,
    }
}

/// Makes `net` dual-stack as an IPv6 EKS cluster's VPC is: an Amazon-provided /56 on the VPC,
/// a /64 on each subnet (public first, then private), and IPv6 twins of the NACLs' IPv4
/// entries (numbered one above each), except those `skip` names (NACL, rule number of the
/// IPv4 twin). Returns the subnets' IPv6 blocks, public then private.
pub async fn dual_stack(aws: &Aws, net: &Network, skip: &[(&str, i32)]) -> Vec<String> {
    let association = aws
        .ec2
        .associate_vpc_cidr_block()
        .vpc_id(&net.vpc)
        .amazon_provided_ipv6_cidr_block(true)
        .send()
        .await
        .expect("associate an IPv6 block");
    let block: ipnet::Ipv6Net = association
        .ipv6_cidr_block_association()
        .and_then(|a| a.ipv6_cidr_block())
        .unwrap()
        .parse()
        .unwrap();
    let mut sixty_fours = block.subnets(64).unwrap();
    let mut blocks = Vec::new();
    for subnet in net.public.iter().chain(&net.private) {
        let cidr = sixty_fours.next().unwrap().to_string();
        aws.ec2
            .associate_subnet_cidr_block()
            .subnet_id(&subnet.id)
            .ipv6_cidr_block(&cidr)
            .send()
            .await
            .expect("associate a subnet's IPv6 block");
        blocks.push(cidr);
    }
    // Groups made before the VPC had an IPv6 block let only IPv4 out.
    for group in [&net.lb_sg, &net.node_sg] {
        aws.ec2
            .authorize_security_group_egress()
            .group_id(group)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ipv6_ranges(
                        aws_sdk_ec2::types::Ipv6Range::builder()
                            .cidr_ipv6("::/0")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("allow IPv6 out");
    }
    for acl in [&net.public_acl, &net.private_acl] {
        let entries = aws
            .ec2
            .describe_network_acls()
            .network_acl_ids(acl)
            .send()
            .await
            .unwrap()
            .network_acls()[0]
            .entries()
            .to_vec();
        for e in entries {
            let (Some(number), Some(v4)) = (e.rule_number(), e.cidr_block()) else {
                continue;
            };
            if number >= 32767 || skip.contains(&(acl.as_str(), number)) {
                continue;
            }
            let twin = if v4 == "0.0.0.0/0" {
                "::/0".to_string()
            } else {
                block.to_string()
            };
            let ports = e.port_range().and_then(|p| Some((p.from()?, p.to()?)));
            let allow = e.rule_action() == Some(&RuleAction::Allow);
            let protocol = e.protocol().unwrap_or("-1");
            nacl_entry(
                aws,
                acl,
                number + 1,
                e.egress() == Some(true),
                protocol,
                allow,
                &twin,
                ports,
            )
            .await;
        }
    }
    blocks
}

/// A dual-stack ALB in front of an IPv6 cluster's pods: an `ipv6` IP target group whose
/// targets are the pods' IPv6 addresses, one ENI each in the private subnets (their
/// `private` IPv6 blocks). Returns the `app/NAME/ID` dimension and the pod addresses.
pub async fn ipv6_alb(
    aws: &Aws,
    net: &Network,
    name: &str,
    private: &[String],
) -> (String, Vec<String>) {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, IpAddressType, TargetDescription, TargetGroupIpAddressTypeEnum,
        TargetTypeEnum,
    };
    let lb = aws
        .elbv2
        .create_load_balancer()
        .name(name)
        .subnets(&net.public[0].id)
        .subnets(&net.public[1].id)
        .security_groups(&net.lb_sg)
        .ip_address_type(IpAddressType::Dualstack)
        .send()
        .await
        .expect("create the dual-stack ALB");
    let arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    tag_load_balancer(
        aws,
        &arn,
        &[
            ("elbv2.k8s.aws/cluster", CLUSTER),
            ("ingress.k8s.aws/stack", "shop/checkout"),
        ],
    )
    .await;
    let group = aws
        .elbv2
        .create_target_group()
        .name(format!("{name}-tg"))
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(8080)
        .vpc_id(&net.vpc)
        .target_type(TargetTypeEnum::Ip)
        .ip_address_type(TargetGroupIpAddressTypeEnum::Ipv6)
        .health_check_path("/healthz")
        .send()
        .await
        .expect("create the ipv6 target group");
    let tg_arn = group.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let mut pods = Vec::new();
    for (i, block) in private.iter().enumerate() {
        let block: ipnet::Ipv6Net = block.parse().unwrap();
        // A pod address deep in the /64, as the VPC CNI hands them out of a node's /80.
        let pod = std::net::Ipv6Addr::from(
            u128::from(block.network()) | (0x8f3a_0000_0000_00a1 + i as u128),
        );
        aws.ec2
            .create_network_interface()
            .subnet_id(&net.private[i].id)
            .ipv6_addresses(
                aws_sdk_ec2::types::InstanceIpv6Address::builder()
                    .ipv6_address(pod.to_string())
                    .build(),
            )
            .groups(&net.node_sg)
            .send()
            .await
            .expect("create an ENI with the pod's IPv6 address");
        aws.elbv2
            .register_targets()
            .target_group_arn(&tg_arn)
            .targets(
                TargetDescription::builder()
                    .id(pod.to_string())
                    .port(8080)
                    .build(),
            )
            .send()
            .await
            .expect("register the pod");
        pods.push(pod.to_string());
    }
    aws.elbv2
        .create_listener()
        .load_balancer_arn(&arn)
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&tg_arn)
                .build(),
        )
        .send()
        .await
        .expect("create listener");
    (arn.split("loadbalancer/").nth(1).unwrap().to_string(), pods)
}

/// An ALB as the AWS Load Balancer Controller makes it for Ingress shop/checkout, with IP
/// targets. Pod IPs in `on_enis` get an ENI each in the private subnets; `stale` ones none.
/// Returns the `app/NAME/ID` dimension.
/// Tags a load balancer as its controller does (`add_tags` replaces a key's value).
pub async fn tag_load_balancer(aws: &Aws, arn: &str, tags: &[(&str, &str)]) {
    let mut request = aws.elbv2.add_tags().resource_arns(arn);
    for (key, value) in tags {
        request = request.tags(
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key(*key)
                .value(*value)
                .build(),
        );
    }
    request.send().await.unwrap();
}

pub async fn alb(aws: &Aws, net: &Network, name: &str, on_enis: &[&str], stale: &[&str]) -> String {
    elbv2_lb(aws, net, name, false, on_enis, stale, true).await
}

/// An NLB as the AWS Load Balancer Controller makes it for Service shop/mqtt: TCP 1883 to IP
/// targets on 8080. The `LoadBalancer` dimension it answers (`net/NAME/ID`; moto writes `app/`
/// into every ELBv2 ARN, whatever the type).
pub async fn nlb(aws: &Aws, net: &Network, name: &str, on_enis: &[&str], stale: &[&str]) -> String {
    let id = elbv2_lb(aws, net, name, true, on_enis, stale, true).await;
    format!(
        "net/{}",
        id.trim_start_matches("app/").trim_start_matches("net/")
    )
}

/// An NLB made before NLBs had security groups (none can be added now), whose target group
/// preserves the client's address (`preserve_client_ip.enabled=true`, as for instance
/// targets by default): the targets' own groups then judge every client.
pub async fn nlb_preserving_client_ip(
    aws: &Aws,
    net: &Network,
    name: &str,
    on_enis: &[&str],
) -> String {
    let id = elbv2_lb(aws, net, name, true, on_enis, &[], false).await;
    let groups = aws
        .elbv2
        .describe_target_groups()
        .names(format!("{name}-tg"))
        .send()
        .await
        .unwrap();
    let tg_arn = groups.target_groups()[0].target_group_arn().unwrap();
    aws.elbv2
        .modify_target_group_attributes()
        .target_group_arn(tg_arn)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                .key("preserve_client_ip.enabled")
                .value("true")
                .build(),
        )
        .send()
        .await
        .expect("preserve the client's address");
    format!(
        "net/{}",
        id.trim_start_matches("app/").trim_start_matches("net/")
    )
}

async fn elbv2_lb(
    aws: &Aws,
    net: &Network,
    name: &str,
    network: bool,
    on_enis: &[&str],
    stale: &[&str],
    with_security_groups: bool,
) -> String {
    use aws_sdk_elasticloadbalancingv2::types::{LoadBalancerTypeEnum, ProtocolEnum};
    let (kind, protocol, stack) = match network {
        true => (
            LoadBalancerTypeEnum::Network,
            ProtocolEnum::Tcp,
            ("service.k8s.aws/stack", "shop/mqtt"),
        ),
        false => (
            LoadBalancerTypeEnum::Application,
            ProtocolEnum::Http,
            ("ingress.k8s.aws/stack", "shop/checkout"),
        ),
    };
    let lb = aws
        .elbv2
        .create_load_balancer()
        .name(name)
        .subnets(&net.public[0].id)
        .subnets(&net.public[1].id)
        .set_security_groups(with_security_groups.then(|| vec![net.lb_sg.clone()]))
        .r#type(kind)
        .send()
        .await
        .expect("create the load balancer");
    let arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    tag_load_balancer(aws, &arn, &[("elbv2.k8s.aws/cluster", CLUSTER), stack]).await;
    let mut group = aws
        .elbv2
        .create_target_group()
        .name(format!("{name}-tg"))
        .protocol(protocol.clone())
        .port(8080)
        .vpc_id(&net.vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip);
    if !network {
        group = group.health_check_path("/healthz");
    }
    let group = group.send().await.expect("create target group");
    let tg_arn = group.target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    for (i, ip) in on_enis.iter().enumerate() {
        let subnet = &net.private[i % net.private.len()];
        aws.ec2
            .create_network_interface()
            .subnet_id(&subnet.id)
            .private_ip_address(*ip)
            .groups(&net.node_sg)
            .send()
            .await
            .expect("create ENI");
    }
    for ip in on_enis.iter().chain(stale) {
        aws.elbv2
            .register_targets()
            .target_group_arn(&tg_arn)
            .targets(
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(*ip)
                    .port(8080)
                    .build(),
            )
            .send()
            .await
            .expect("register target");
    }
    aws.elbv2
        .create_listener()
        .load_balancer_arn(&arn)
        .protocol(protocol)
        .port(if network { 1883 } else { 80 })
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&tg_arn)
                .build(),
        )
        .send()
        .await
        .expect("create listener");
    arn.split("loadbalancer/").nth(1).unwrap().to_string()
}

/// A Classic LB as the cloud provider makes it for Service shop/orders, HTTP to NodePort
/// 31380, with `instances` nodes in the private subnets.
pub async fn clb(aws: &Aws, net: &Network, name: &str, instances: usize) {
    aws.elb
        .create_load_balancer()
        .load_balancer_name(name)
        .listeners(
            aws_sdk_elasticloadbalancing::types::Listener::builder()
                .protocol("HTTP")
                .load_balancer_port(80)
                .instance_protocol("HTTP")
                .instance_port(31380)
                .build()
                .unwrap(),
        )
        .subnets(&net.public[0].id)
        .subnets(&net.public[1].id)
        .security_groups(&net.lb_sg)
        .tags(
            aws_sdk_elasticloadbalancing::types::Tag::builder()
                .key("kubernetes.io/service-name")
                .value("shop/orders")
                .build()
                .unwrap(),
        )
        .tags(
            aws_sdk_elasticloadbalancing::types::Tag::builder()
                .key(format!("kubernetes.io/cluster/{CLUSTER}"))
                .value("owned")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create Classic LB");
    let image = aws.ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    for i in 0..instances {
        let subnet = &net.private[i % net.private.len()];
        let run = aws
            .ec2
            .run_instances()
            .image_id(&image)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnet.id)
            .security_group_ids(&net.node_sg)
            .send()
            .await
            .expect("run instance");
        let id = run.instances()[0].instance_id().unwrap().to_string();
        aws.elb
            .register_instances_with_load_balancer()
            .load_balancer_name(name)
            .instances(
                aws_sdk_elasticloadbalancing::types::Instance::builder()
                    .instance_id(id)
                    .build(),
            )
            .send()
            .await
            .expect("register instance");
    }
}

/// Puts one data point a minute, ending a minute before `now`, under the real namespace.
pub async fn put_metric(
    aws: &Aws,
    namespace: &str,
    dimension: (&str, &str),
    metric: &str,
    values: &[f64],
    now: i64,
) {
    let minutes: Vec<&[f64]> = values.iter().map(std::slice::from_ref).collect();
    put_samples(aws, namespace, &[dimension], metric, &minutes, now).await;
}

/// Raw samples of `metric` under several dimensions, `minutes[i]` all in the i-th of the last
/// `minutes.len()` minutes: several samples in one minute give it a Minimum and a Maximum.
pub async fn put_samples(
    aws: &Aws,
    namespace: &str,
    dimensions: &[(&str, &str)],
    metric: &str,
    minutes: &[&[f64]],
    now: i64,
) {
    let count = minutes.len() as i64;
    let data: Vec<aws_sdk_cloudwatch::types::MetricDatum> = minutes
        .iter()
        .enumerate()
        .flat_map(|(i, samples)| {
            // The samples of one minute stay in that clock minute (the gather's periods are
            // aligned to whole minutes): `now` at :59 must not push the second one over.
            let minute = (now - 60 * (count - i as i64)).div_euclid(60) * 60;
            samples.iter().enumerate().map(move |(j, v)| {
                let mut datum = aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name(metric)
                    .timestamp(DateTime::from_secs(minute + j as i64))
                    .value(*v);
                for (name, value) in dimensions {
                    datum = datum.dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name(*name)
                            .value(*value)
                            .build(),
                    );
                }
                datum.build()
            })
        })
        .collect();
    aws.cloudwatch
        .put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("put metric data");
}

/// A bucket of the test region; one that exists already is kept (tests write several log
/// files into one).
pub async fn create_bucket(aws: &Aws, name: &str) {
    let _ = aws
        .s3
        .create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await;
}

/// The report topic with an SQS queue subscribed to it, as an on-call pipeline would have.
pub async fn report_topic(aws: &Aws) -> (String, String) {
    subscribed_topic(aws, "elbmedic-reports", "oncall").await
}

/// Turns on the ALB's access logs into `bucket` (created here) under `prefix`, and writes
/// one log object for `lines`, as the load balancer does: under
/// `PREFIX/AWSLogs/ACCOUNT/elasticloadbalancing/REGION/YYYY/MM/DD/`, named with the ALB's id and
/// the file's end time (`at`, rounded up to 5 minutes), gzipped in two members (a real file
/// often holds several). `node` tells apart the files of the load balancer's nodes for the
/// same 5 minutes.
pub async fn access_logs(
    aws: &Aws,
    alb_id: &str,
    bucket: &str,
    prefix: &str,
    at: i64,
    lines: &[String],
    node: u8,
) {
    let account = &aws.account;
    let arn = format!("arn:aws:elasticloadbalancing:{REGION}:{account}:loadbalancer/{alb_id}");
    enable_access_logs(aws, &arn, bucket, prefix).await;
    put_access_log(aws, alb_id, bucket, prefix, at, lines, node).await;
}

/// Turns on a load balancer's access logs to `bucket` (made here), as its attributes say.
pub async fn enable_access_logs(aws: &Aws, arn: &str, bucket: &str, prefix: &str) {
    create_bucket(aws, bucket).await;
    let attribute = |key: &str, value: &str| {
        aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
            .key(key)
            .value(value)
            .build()
    };
    aws.elbv2
        .modify_load_balancer_attributes()
        .load_balancer_arn(arn)
        .attributes(attribute("access_logs.s3.enabled", "true"))
        .attributes(attribute("access_logs.s3.bucket", bucket))
        .attributes(attribute("access_logs.s3.prefix", prefix))
        .send()
        .await
        .expect("turn access logs on");
}

/// One log object of the load balancer whose metric dimension is `lb_id`, under AWS's key
/// layout, for the five minutes holding `at`, gzipped in two members as AWS writes them.
#[allow(clippy::too_many_arguments)]
pub async fn put_access_log(
    aws: &Aws,
    lb_id: &str,
    bucket: &str,
    prefix: &str,
    at: i64,
    lines: &[String],
    node: u8,
) {
    let account = &aws.account;
    let alb_id = lb_id;
    let end = (at.div_euclid(300) + 1) * 300;
    let time = chrono::DateTime::from_timestamp(end, 0).unwrap();
    let key = format!(
        "{prefix}/AWSLogs/{account}/elasticloadbalancing/{REGION}/{}/{account}_elasticloadbalancing_{REGION}_{}_{}_10.0.1.{node}_2x9k3l4m.log.gz",
        time.format("%Y/%m/%d"),
        alb_id.replace('/', "."),
        time.format("%Y%m%dT%H%MZ"),
    );
    let mut body = Vec::new();
    for half in lines.chunks(lines.len().div_ceil(2).max(1)) {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gzip, (half.join("\n") + "\n").as_bytes()).unwrap();
        body.extend(gzip.finish().unwrap());
    }
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .expect("put the log object");
}

/// An ALB access-log line (AWS's field order) for a response at `at` to a request made at
/// `created`, from `target`.
pub fn alb_log_line(
    alb_id: &str,
    at: i64,
    created: i64,
    target: &str,
    elb: &str,
    target_status: &str,
) -> String {
    let time = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S.123456Z")
            .to_string()
    };
    format!(
        "http {} {alb_id} 192.0.2.10:51234 {target} 0.000 -1 -1 {elb} {target_status} 312 0 \"GET http://shop.example.com:80/checkout HTTP/1.1\" \"curl/8.4.0\" - - arn:aws:elasticloadbalancing:{REGION}:123456789012:targetgroup/tg/0123456789abcdef \"Root=1-6561a0b2-0a1b2c3d4e5f60718293a4b5\" \"-\" \"-\" 0 {} \"forward\" \"-\" \"-\" \"{target}\" \"{target_status}\" \"-\" \"-\" TID_0a1b2c3d4e5f",
        time(at),
        time(created)
    )
}

/// A new SQS queue: (URL, ARN).
pub async fn queue(aws: &Aws, name: &str) -> (String, String) {
    let url = aws
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let arn = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap();
    (url, arn)
}

/// A topic with an SQS queue subscribed to it: (topic ARN, queue URL).
pub async fn subscribed_topic(aws: &Aws, topic: &str, queue_name: &str) -> (String, String) {
    let topic = aws
        .sns
        .create_topic()
        .name(topic)
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let (queue, queue_arn) = queue(aws, queue_name).await;
    aws.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();
    (topic, queue)
}

/// The JSON report delivered to the queue (SNS wraps it in its notification envelope).
pub async fn published_report(aws: &Aws, queue: &str) -> serde_json::Value {
    let envelope = published_envelope(aws, queue).await;
    let inner = envelope["Message"]
        .as_str()
        .expect("SNS envelope with Message");
    serde_json::from_str(inner).expect("the sqs copy is the JSON report")
}

/// The next SNS notification on `queue`: its `Subject`, `MessageId` and `Message`.
pub async fn published_envelope(aws: &Aws, queue: &str) -> serde_json::Value {
    for _ in 0..20 {
        if let Some(body) = next_message(aws, queue, 1).await {
            return serde_json::from_str(&body).unwrap();
        }
    }
    panic!("no report arrived on the queue");
}

/// The follow-up `diagnose` queued on `queue`, once its delay is over, as Lambda delivers it:
/// an SQS event of one record from `queue_arn`.
pub async fn queued_follow_up(aws: &Aws, queue: &str, queue_arn: &str) -> serde_json::Value {
    for _ in 0..10 {
        if let Some(body) = next_message(aws, queue, 1).await {
            return serde_json::json!({"Records": [{
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "receiptHandle": "AQEB",
                "body": body, "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn, "awsRegion": REGION,
            }]});
        }
    }
    panic!("no follow-up arrived on {queue}");
}

/// The next message's body on `queue`, waiting up to `wait_seconds`; deleted once read.
pub async fn next_message(aws: &Aws, queue: &str, wait_seconds: i32) -> Option<String> {
    let received = aws
        .sqs
        .receive_message()
        .queue_url(queue)
        .wait_time_seconds(wait_seconds)
        .send()
        .await
        .unwrap();
    let message = received.messages().first()?;
    aws.sqs
        .delete_message()
        .queue_url(queue)
        .receipt_handle(message.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    Some(message.body().unwrap().to_string())
}

/// An SNS Lambda event carrying a CloudWatch alarm on `metric` of the given load balancer.
pub fn alarm_event(
    namespace: &str,
    metric: &str,
    dimension: (&str, &str),
    statistic: &str,
    now: i64,
) -> String {
    let time = chrono::DateTime::from_timestamp(now, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string();
    let message = serde_json::json!({
        "AlarmName": format!("e2e-{metric}"),
        "AlarmDescription": null,
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed",
        "StateChangeTime": time,
        "Region": "EU (Ireland)",
        "AlarmArn": format!("arn:aws:cloudwatch:{REGION}:123456789012:alarm:e2e-{metric}"),
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": metric, "Namespace": namespace, "StatisticType": "Statistic", "Statistic": statistic,
            "Unit": null, "Dimensions": [{"value": dimension.1, "name": dimension.0}],
            "Period": 60, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 5.0,
            "TreatMissingData": "notBreaching"
        }
    });
    serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification",
        "TopicArn": format!("arn:aws:sns:{REGION}:123456789012:elbmedic-alarms"),
        "Subject": "ALARM", "Message": message.to_string()
    }}]})
    .to_string()
}

/// Turns an alarm event into the event of a composite alarm that this alarm fired: the child
/// metric alarm is created on the server (as DescribeAlarms then finds it), and the composite's
/// message names it in TriggeringChildren and its rule, as CloudWatch sends it.
pub async fn composite_of(aws: &Aws, child_event: &str) -> String {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
    let event: serde_json::Value = serde_json::from_str(child_event).unwrap();
    let child: serde_json::Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    let trigger = &child["Trigger"];
    let name = child["AlarmName"].as_str().unwrap();
    let mut put = aws
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace(trigger["Namespace"].as_str().unwrap())
        .metric_name(trigger["MetricName"].as_str().unwrap())
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold);
    for dimension in trigger["Dimensions"].as_array().unwrap() {
        put = put.dimensions(
            Dimension::builder()
                .name(dimension["name"].as_str().unwrap())
                .value(dimension["value"].as_str().unwrap())
                .build(),
        );
    }
    put.send().await.unwrap();
    // The child fired the composite: it is in ALARM when elbmedic reads it.
    aws.cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("threshold crossed")
        .send()
        .await
        .unwrap();
    let child_arn = child["AlarmArn"].as_str().unwrap();
    let message = serde_json::json!({
        "AlarmName": "e2e-ingress-composite",
        "AlarmDescription": "any 5xx alarm of the ingress",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": format!("{child_arn} transitioned to ALARM at {}", child["StateChangeTime"]),
        "StateChangeTime": child["StateChangeTime"],
        "Region": "EU (Ireland)",
        "AlarmArn": format!("arn:aws:cloudwatch:{REGION}:123456789012:alarm:e2e-ingress-composite"),
        "OldStateValue": "OK",
        "AlarmRule": format!("ALARM(\"{name}\") OR ALARM(\"e2e-other\")"),
        "TriggeringChildren": [{"Arn": child_arn, "State": {"Value": "ALARM", "Timestamp": child["StateChangeTime"]}}]
    });
    let mut composite = event.clone();
    composite["Records"][0]["Sns"]["Message"] = serde_json::json!(message.to_string());
    composite.to_string()
}

/// `event` as raised in `account`: the alarm's AWSAccountId and ARNs (a composite's children
/// too) name it; the topic stays the central one, as a member account's alarm notifies it.
pub fn in_member_account(event: &str, account: &str) -> String {
    let mut event: serde_json::Value = serde_json::from_str(event).unwrap();
    let message = event["Records"][0]["Sns"]["Message"].as_str().unwrap();
    let moved = message
        .replace(
            "\"AWSAccountId\":\"123456789012\"",
            &format!("\"AWSAccountId\":\"{account}\""),
        )
        .replace(":123456789012:alarm:", &format!(":{account}:alarm:"));
    assert_ne!(moved, message, "the event names the default account");
    event["Records"][0]["Sns"]["Message"] = serde_json::json!(moved);
    event.to_string()
}

/// Sets `alias` as the account alias of `aws`'s account.
pub async fn account_alias(aws: &Aws, alias: &str) {
    aws_sdk_iam::Client::new(&aws.config)
        .create_account_alias()
        .account_alias(alias)
        .send()
        .await
        .unwrap();
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Writes `contents` to a scratch file for one test and returns its path.
pub fn scratch(test: &str, name: &str, contents: &str) -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

pub fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// An SNS alarm event on an ALB metric (Sum).
pub fn alb_event(metric: &str, id: &str, now: i64) -> String {
    alarm_event(
        "AWS/ApplicationELB",
        metric,
        ("LoadBalancer", id),
        "SUM",
        now,
    )
}

/// An NLB alarm's SNS event, on its `net/NAME/ID` dimension.
pub fn nlb_event(metric: &str, id: &str, now: i64) -> String {
    alarm_event("AWS/NetworkELB", metric, ("LoadBalancer", id), "SUM", now)
}

/// An NLB's window of idle-flow resets: 800 resets against about 900 new flows.
pub async fn nlb_idle_resets(aws: &Aws, id: &str, now: i64) {
    let dim = ("LoadBalancer", id);
    put_metric(
        aws,
        "AWS/NetworkELB",
        dim,
        "TCP_ELB_Reset_Count",
        &[0.0, 412.0, 388.0],
        now,
    )
    .await;
    put_metric(
        aws,
        "AWS/NetworkELB",
        dim,
        "NewFlowCount",
        &[310.0, 296.0, 322.0],
        now,
    )
    .await;
}

/// ALB metric series for the alarm window, RequestCount included.
pub async fn alb_metrics(
    aws: &Aws,
    id: &str,
    now: i64,
    e504: &[f64],
    trt_max: &[f64],
    tce: &[f64],
    e5xx: &[f64],
) {
    let dim = ("LoadBalancer", id);
    put_metric(
        aws,
        "AWS/ApplicationELB",
        dim,
        "HTTPCode_ELB_504_Count",
        e504,
        now,
    )
    .await;
    put_metric(
        aws,
        "AWS/ApplicationELB",
        dim,
        "HTTPCode_ELB_5XX_Count",
        e5xx,
        now,
    )
    .await;
    put_metric(
        aws,
        "AWS/ApplicationELB",
        dim,
        "TargetResponseTime",
        trt_max,
        now,
    )
    .await;
    put_metric(
        aws,
        "AWS/ApplicationELB",
        dim,
        "TargetConnectionErrorCount",
        tce,
        now,
    )
    .await;
    put_metric(
        aws,
        "AWS/ApplicationELB",
        dim,
        "RequestCount",
        &[900.0, 950.0, 1000.0],
        now,
    )
    .await;
}

/// The ARN of the (only, or first) target group moto holds.
pub async fn first_target_group(aws: &Aws) -> String {
    aws.elbv2
        .describe_target_groups()
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string()
}

/// A rollout on the (only) ALB's target group, as CloudWatch records it: its healthy-host
/// count moves in each of the last minutes (Minimum and Maximum per minute). Returns the
/// group's ARN.
pub async fn healthy_hosts_moving(aws: &Aws, id: &str, now: i64) -> String {
    let group = first_target_group(aws).await;
    let group_dimension = format!(
        "targetgroup/{}",
        group.split_once(":targetgroup/").unwrap().1
    );
    put_samples(
        aws,
        "AWS/ApplicationELB",
        &[("TargetGroup", &group_dimension), ("LoadBalancer", id)],
        "HealthyHostCount",
        &[&[2.0], &[2.0, 1.0], &[1.0, 2.0]],
        now,
    )
    .await;
    group
}

/// The ALB the scenarios build, and the pod IPs registered in it.
pub const ALB: &str = "k8s-shop-checkout-6f1e2d3c4b";
/// The NLB the AWS Load Balancer Controller made for Service shop/mqtt.
pub const NLB: &str = "k8s-shop-mqtt-5e4d3c2b1a";
pub const PODS: [&str; 2] = ["10.0.18.41", "10.0.37.152"];

/// The article's trap on moto: the node subnets' NACL lets replies out only to 32768-65535,
/// and the ALB's 504s and connection errors show it. Returns (network, `app/NAME/ID`, now).
pub async fn ephemeral_replies_denied(aws: &Aws) -> (Network, String, i64) {
    let net = network(aws, &[8080]).await;
    deny_low_ephemeral_egress(aws, &net).await;
    let id = alb(aws, &net, ALB, &PODS, &[]).await;
    let now = now();
    let errors = [0.0, 31.0, 40.0];
    alb_metrics(aws, &id, now, &errors, &[0.4, 0.5, 0.4], &errors, &errors).await;
    (net, id, now)
}

/// Egress of the node subnets only to 443 and the Linux ephemeral range 32768-65535: replies
/// to LB nodes on 1024-32767 fall to the implicit deny.
pub async fn deny_low_ephemeral_egress(aws: &Aws, net: &Network) {
    aws.ec2
        .delete_network_acl_entry()
        .network_acl_id(&net.private_acl)
        .rule_number(100)
        .egress(true)
        .send()
        .await
        .unwrap();
    nacl_entry(
        aws,
        &net.private_acl,
        100,
        true,
        "6",
        true,
        "0.0.0.0/0",
        Some((443, 443)),
    )
    .await;
    nacl_entry(
        aws,
        &net.private_acl,
        110,
        true,
        "6",
        true,
        "0.0.0.0/0",
        Some((32768, 65535)),
    )
    .await;
}

/// A Classic LB `name` with 2 instances whose latency reaches its 60 s idle timeout, and the
/// HTTPCode_ELB_5XX alarm event on it.
pub async fn clb_idle_scenario(aws: &Aws, name: &str) -> (Network, String) {
    let net = network(aws, &[31380]).await;
    clb(aws, &net, name, 2).await;
    let now = now();
    let dimension = ("LoadBalancerName", name);
    put_metric(
        aws,
        "AWS/ELB",
        dimension,
        "Latency",
        &[12.3, 60.0, 60.0],
        now,
    )
    .await;
    put_metric(
        aws,
        "AWS/ELB",
        dimension,
        "HTTPCode_ELB_5XX",
        &[0.0, 7.0, 12.0],
        now,
    )
    .await;
    let event = alarm_event("AWS/ELB", "HTTPCode_ELB_5XX", dimension, "SUM", now);
    (net, event)
}

/// The Kubernetes API stand-in for the cluster the moto worlds name, taking the tokens moto's
/// test credentials sign; its files under the test target's scratch directory `name`.
pub fn moto_cluster(name: &str, world: &serde_json::Value) -> kube_api::KubeApi {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let who = kube_api::Identity {
        cluster: CLUSTER,
        region: REGION,
        access_key_id: "testing",
        secret_access_key: "testing",
    };
    kube_api::KubeApi::start(&dir, world, &who, None)
}
