#!/usr/bin/env python3
"""Wall-clock benchmark of the real `elbmedic diagnose --publish`, against moto behind a
loopback proxy that delays every AWS request.

The cluster behind each load balancer is read too, from the Kubernetes API stand-in
(tests/support/kube_api.py) behind a delay proxy of its own, with the same delay.

A diagnosis is a few dozen API calls in rounds that depend on each other. What the on-call
engineer waits for is the number of sequential rounds times the API's latency, so this runs the
real binary at 0 ms and at DELAY ms per request and prints, per load balancer kind, the median
wall time, the interquartile range, and the rounds: (median at DELAY - median at 0) / DELAY.
It also prints the gaps the report names, so a failing optional call (moto answers 500 to a
percentile query) shows that it failed fast instead of retrying.

Usage (the test virtualenv of scripts/test.sh has moto and boto3):
  $HOME/.cache/elbmedic-venv/bin/python scripts/bench-wall-clock.py [--runs 9] [--delay-ms 100]
      [--bin PATH_TO_elbmedic]   (default: $CARGO_TARGET_DIR or ~/.cache/elbmedic-target, debug)

Not part of CI's pass/fail: timings on a shared machine vary. Everything listens on 127.0.0.1.
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = "shop-prod"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that holds each request (the first client bytes after a
    response, or on a new connection) for `delay` seconds before passing it on."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.delay = 0.0
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.loop.run_until_complete(server.serve_forever())

    async def _handle(self, client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        state = {"new_request": True}

        async def to_upstream():
            while data := await client_reader.read(65536):
                if state["new_request"]:
                    state["new_request"] = False
                    if self.delay:
                        await asyncio.sleep(self.delay)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def to_client():
            while data := await up_reader.read(65536):
                state["new_request"] = True
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        await asyncio.gather(to_upstream(), to_client(), return_exceptions=True)


def clients(endpoint):
    kwargs = dict(region_name=REGION, endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s")
    return {name: boto3.client(name, **kwargs) for name in ["ec2", "elbv2", "elb", "cloudwatch", "sns", "eks"]}


def network(aws):
    ec2 = aws["ec2"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    public, private = [], []
    for zone, pub, priv in [("eu-west-1a", "10.0.0.0/24", "10.0.16.0/20"), ("eu-west-1b", "10.0.1.0/24", "10.0.32.0/20")]:
        public.append(ec2.create_subnet(VpcId=vpc, CidrBlock=pub, AvailabilityZone=zone)["Subnet"]["SubnetId"])
        private.append(ec2.create_subnet(VpcId=vpc, CidrBlock=priv, AvailabilityZone=zone)["Subnet"]["SubnetId"])
    lb_sg = ec2.create_security_group(GroupName="k8s-shop-lb", Description="lb", VpcId=vpc)["GroupId"]
    node_sg = ec2.create_security_group(GroupName="eks-cluster-sg-shop-prod", Description="nodes", VpcId=vpc)["GroupId"]
    ec2.create_tags(Resources=[node_sg], Tags=[{"Key": "aws:eks:cluster-name", "Value": CLUSTER},
                                               {"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}])
    ec2.authorize_security_group_ingress(GroupId=node_sg, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": lb_sg}]}])
    aws["eks"].create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                              resourcesVpcConfig={"subnetIds": private})
    return vpc, public, private, lb_sg, node_sg


def put_metrics(aws, namespace, dimension, series):
    now = time.time()
    data = []
    for metric, values in series.items():
        for i, value in enumerate(values):
            data.append({"MetricName": metric, "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
                         "Timestamp": now - 60 * (len(values) - i), "Value": value})
    aws["cloudwatch"].put_metric_data(Namespace=namespace, MetricData=data)


def alarm_event(namespace, metric, dimension):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
    message = {
        "AlarmName": f"bench-{metric}", "AlarmDescription": None, "AWSAccountId": ACCOUNT,
        "NewStateValue": "ALARM", "NewStateReason": "Threshold Crossed", "StateChangeTime": stamp,
        "Region": "EU (Ireland)", "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:bench-{metric}",
        "OldStateValue": "OK",
        "Trigger": {"MetricName": metric, "Namespace": namespace, "StatisticType": "Statistic", "Statistic": "SUM",
                    "Unit": None, "Dimensions": [{"value": dimension[1], "name": dimension[0]}], "Period": 60,
                    "EvaluationPeriods": 3, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 5.0,
                    "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": ""},
    }
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(message),
                                                            "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"}}]}


def alb_scenario(aws):
    vpc, public, private, lb_sg, _ = network(aws)
    elbv2 = aws["elbv2"]
    lb = elbv2.create_load_balancer(Name="k8s-shop-checkout", Subnets=public, SecurityGroups=[lb_sg],
                                    Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": CLUSTER},
                                          {"Key": "ingress.k8s.aws/stack", "Value": "shop/checkout"}])["LoadBalancers"][0]
    arn = lb["LoadBalancerArn"]
    tg = elbv2.create_target_group(Name="k8s-shop-checkout", Protocol="HTTP", Port=8080, VpcId=vpc,
                                   TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=arn, Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    ips = []
    for i, subnet in enumerate(private):
        eni = aws["ec2"].create_network_interface(SubnetId=subnet, Groups=[lb_sg])["NetworkInterface"]
        ips.append(eni["PrivateIpAddress"])
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": ip, "Port": 8080} for ip in ips])
    dimension = ("LoadBalancer", "app/" + arn.split(":loadbalancer/app/")[1])
    put_metrics(aws, "AWS/ApplicationELB", dimension, {
        "HTTPCode_ELB_504_Count": [0, 12, 14, 11], "TargetResponseTime": [0.2, 59.9, 59.8, 59.9],
        "RequestCount": [900, 950, 920, 910]})
    return alarm_event("AWS/ApplicationELB", "HTTPCode_ELB_504_Count", dimension)


def clb_scenario(aws):
    vpc, public, private, lb_sg, node_sg = network(aws)
    name = "a3f1c2e4b5d6978812345678abcdef01"
    aws["elb"].create_load_balancer(
        LoadBalancerName=name, Subnets=public, SecurityGroups=[lb_sg],
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstanceProtocol": "HTTP", "InstancePort": 31380}],
        Tags=[{"Key": "kubernetes.io/service-name", "Value": "shop/orders"},
              {"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}])
    image = aws["ec2"].describe_images()["Images"][0]["ImageId"]
    instances = []
    for subnet in private:
        run = aws["ec2"].run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet, SecurityGroupIds=[node_sg])
        instances.append(run["Instances"][0]["InstanceId"])
    aws["elb"].register_instances_with_load_balancer(LoadBalancerName=name, Instances=[{"InstanceId": i} for i in instances])
    put_metrics(aws, "AWS/ELB", ("LoadBalancerName", name), {
        "HTTPCode_ELB_5XX": [0, 12, 14, 11], "Latency": [0.2, 60.0, 60.0, 60.0], "RequestCount": [900, 950, 920, 910]})
    return alarm_event("AWS/ELB", "HTTPCode_ELB_5XX", ("LoadBalancerName", name))


KUBE_WORLD = {"objects": [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "checkout", "namespace": "shop"},
     "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                             "backend": {"service": {"name": "checkout", "port": {"number": 8080}}}}]}}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "checkout", "namespace": "shop"},
     "spec": {"selector": {"app": "checkout"}, "ports": [{"port": 8080}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "orders", "namespace": "shop"},
     "spec": {"type": "LoadBalancer", "selector": {"app": "orders"}, "ports": [{"port": 80, "nodePort": 31380}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "checkout", "namespace": "shop"},
     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "checkout"}},
              "template": {"metadata": {"labels": {"app": "checkout"}}, "spec": {"containers": [{"name": "app"}]}}}},
]}


def start_kube_api(scratch):
    """The Kubernetes API stand-in for the cluster, checking tokens signed with k/s."""
    world = os.path.join(scratch, "kube-world.json")
    with open(world, "w") as f:
        json.dump(KUBE_WORLD, f)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support", "kube_api.py")
    process = subprocess.Popen([sys.executable, script, "--world", world, "--cluster", CLUSTER, "--region", REGION,
                                "--access-key-id", "k", "--secret-access-key", "s"],
                               stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline().split()[1])
    return process, port


def run_once(binary, event_path, topic, env):
    start = time.perf_counter()
    out = subprocess.run([binary, "diagnose", "--event", event_path, "--publish", topic, "--format", "json"],
                         env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"elbmedic failed ({out.returncode}): {out.stderr.strip()}")
    return elapsed, json.loads(out.stdout)


def quartiles(values):
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--delay-ms", type=int, default=100)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/elbmedic-target"))
    parser.add_argument("--bin", default=os.path.join(target, "debug", "elbmedic"))
    args = parser.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin} does not exist: build it with `cargo build -p elbmedic`, or pass --bin")
    moto_server = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    moto_port = free_port()
    kube = None
    moto = subprocess.Popen([moto_server, "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", moto_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        proxy = DelayProxy(moto_port)
        direct = f"http://127.0.0.1:{moto_port}"
        aws = clients(direct)
        topic = aws["sns"].create_topic(Name="elbmedic-reports")["TopicArn"]
        scratch = tempfile.mkdtemp(prefix="elbmedic-bench-")
        kube, kube_port = start_kube_api(scratch)  # stopped in `finally`
        kube_proxy = DelayProxy(kube_port)
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_ACCESS_KEY_ID="k",
                   AWS_SECRET_ACCESS_KEY="s", AWS_EC2_METADATA_DISABLED="true", RUST_LOG="error",
                   KUBERNETES_READS="on", KUBERNETES_API_URL=f"http://127.0.0.1:{kube_proxy.port}")
        env.pop("AWS_PROFILE", None)
        rows = []
        for kind, build in [("ALB", alb_scenario), ("Classic LB", clb_scenario)]:
            urllib.request.urlopen(urllib.request.Request(f"{direct}/moto-api/reset", method="POST")).read()
            aws = clients(direct)
            topic = aws["sns"].create_topic(Name="elbmedic-reports")["TopicArn"]
            path = os.path.join(scratch, f"{kind.split()[0].lower()}.json")
            with open(path, "w") as f:
                json.dump(build(aws), f)
            medians = {}
            for delay in (0, args.delay_ms):
                proxy.delay = kube_proxy.delay = delay / 1000
                run_once(args.bin, path, topic, env)  # warm-up: page cache, connection setup
                times, report = [], None
                for _ in range(args.runs):
                    elapsed, report = run_once(args.bin, path, topic, env)
                    times.append(elapsed)
                low, median, high = quartiles(times)
                medians[delay] = median
                gaps = "; ".join(f"{g['fact']} {g['reason']}" for g in report.get("gaps", [])) or "none"
                rows.append((kind, delay, median, high - low, gaps, report["verdict"]["status"]))
            rounds = (medians[args.delay_ms] - medians[0]) / (args.delay_ms / 1000)
            rows.append((kind, "rounds", rounds, None, None, None))
        print(f"elbmedic diagnose --publish, {args.runs} runs each (binary {args.bin})\n")
        print(f"| load balancer | delay per request | median wall time | IQR | gaps in the report | verdict |")
        print("|---|---|---|---|---|---|")
        for kind, delay, value, iqr, gaps, verdict in rows:
            if delay == "rounds":
                print(f"| {kind} | **rounds** | **{value:.1f}** | | | |")
            else:
                print(f"| {kind} | {delay} ms | {value * 1000:.0f} ms | {iqr * 1000:.0f} ms | {gaps} | {verdict} |")
    finally:
        if kube is not None:
            kube.terminate()
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
