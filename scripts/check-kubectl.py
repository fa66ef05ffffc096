#!/usr/bin/env python3
"""Runs every kubectl command of every scenario's report, as the report prints it, with the
real kubectl against the Kubernetes API stand-in (tests/support/kube_api.py), and checks that
kubectl accepts it: the standard is that every command a report prints is one the real
`kubectl` accepts as pasted.

- The commands: every line with `kubectl` in a report's commands (`"command"` fields: the fix's
  commands, its durable change, anything else so named) and in its text (`kubectl ...` between
  backquotes, in notes). A line is run with bash as the report prints it, pipelines included;
  placeholders the engineer fills in (POD, DEPLOYMENT, NAMESPACE) are replaced by an object of
  the scenario's cluster, and a line ending in `&` (port-forward) is run in the background
  until kubectl says it forwards.
- The cluster: one stand-in over TLS serves every scenario, each from its own world (under
  /clusters/NAME/): the objects of the scenario's snapshot (its `kubernetes` section, the load
  balancer's owner and the target groups' tags), the pods, ReplicaSets, EndpointSlices and
  Events behind them, and the load balancer controller in kube-system with its logs.
- The token: kubectl's exec credential plugin runs the real AWS CLI (`aws eks get-token`),
  and the stand-in checks its SigV4 signature.
- A command fails if kubectl exits non-zero (a `grep` of the pipeline may exit 1: no match),
  if any other stage of the pipeline fails, if bash or dash cannot parse it, if it prints
  `unknown flag`, `error:`, a usage text or a warning, if it runs over 20 s, or if a command
  that changes an object (annotate, label, patch, rollout restart) did not get a PATCH through.

A self-test first proves the check can fail: broken commands (an unknown flag, a missing
argument, an object the cluster lacks, a patch with a field the kind lacks...) must be caught,
and good ones (rollout restart, JSON patch) must pass.

Usage: check-kubectl.py ELBMEDIC_BINARY [--scenario NAME ...] [--keep DIR] [-v] [--jobs N]
Needs kubectl, openssl and the AWS CLI: ELBMEDIC_KUBECTL, ELBMEDIC_OPENSSL, ELBMEDIC_AWS_CLI, else
PATH (the AWS CLI of ~/.cache/elbmedic-awscli before PATH's). Without them the check skips with
a message; under CI=true it fails instead. Prints one line per command and a summary; exits 1
on any failure. Everything listens and connects on 127.0.0.1 only.
"""

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAND_IN = os.path.join(ROOT, "tests", "support", "kube_api.py")
SCENARIOS = os.path.join(ROOT, "events", "scenarios")
KEY_ID = "AKIDELBMEDICCHECK"
SECRET = "elbmedic/check/kubectl/not/a/real/secret"
TIMEOUT = 20
# How long a background line (`kubectl port-forward ... &`) has to say it forwards.
BACKGROUND_SECONDS = 10
KUBECTL_WORD = re.compile(r"(?<![\w./-])kubectl(?![\w-])")
PLACEHOLDERS = ("POD", "DEPLOYMENT", "NAMESPACE")
# What a command that changes an object prints on success.
WRITES = {"annotate": "annotated", "label": "labeled", "patch": "patched", "restart": "restarted"}
# kubectl's words for a rejected command, on standard error.
REJECTED = [
    (re.compile(r"unknown (shorthand )?flag"), "unknown flag"),
    (re.compile(r"(?i)\berror:"), "error"),
    (re.compile(r"Error from server"), "error from the server"),
    (re.compile(r"(?m)^Usage:|See 'kubectl .*(-h|--help)'"), "usage text"),
    (re.compile(r"(?m)^Warning:"), "warning"),
]
# ...and on standard output, which also carries the data a command shows (controller logs).
REJECTED_STDOUT = [
    (re.compile(r"unknown (shorthand )?flag"), "unknown flag"),
    (re.compile(r"<error: "), "error in kubectl describe"),
    (re.compile(r"(?m)^error: "), "error"),
    (re.compile(r"(?m)^Usage:"), "usage text"),
]


def find_tool(name, variable, *preferred):
    path = os.environ.get(variable)
    if path:
        return path if os.access(path, os.X_OK) else None
    for candidate in (*preferred, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_binary(binary, *args):
    out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if out.returncode not in (0, 3):
        raise RuntimeError(f"{binary} {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout


# --- The commands of a report. ---

class Command:
    def __init__(self, scenario, where, line):
        self.scenario, self.where, self.line = scenario, where, line
        self.run_as = line
        self.filled = {}


def kubectl_lines(text):
    lines, pending = [], ""
    for raw in text.split("\n"):
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line, pending = (pending + raw).strip(), ""
        if KUBECTL_WORD.search(line):
            lines.append(line)
    return lines


def collect(scenario, report):
    """Every kubectl line of the report, once each, with where it was found."""
    found = []

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "command" and isinstance(item, str):
                    found.extend((f"{path}.command", line) for line in kubectl_lines(item))
                else:
                    walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        elif isinstance(value, str):
            for span in re.findall(r"`([^`\n]+)`", value):
                if KUBECTL_WORD.match(span.strip()):
                    found.append((f"{path} (text)", span.strip()))

    walk(report, "")
    seen, commands, mentions = set(), [], []
    for where, line in found:
        if line in seen:
            continue
        seen.add(line)
        if where.endswith("(text)") and not names_an_object(line):
            mentions.append(Command(scenario, where, line))
        else:
            commands.append(Command(scenario, where, line))
    return commands, mentions


def names_an_object(line):
    """Whether a `kubectl ...` quoted in a report's text is a command to run rather than a
    mention of one (`kubectl annotate --overwrite` in a warning): it has a sub-command and
    something for it to act on (`top pods`, `logs deployment/x`)."""
    return any(len(sub) >= 2 for sub in subcommands(line))


def split_pipeline(line):
    """The stages of a pipeline: `|` outside quotes, braces and parentheses."""
    stages, current, depth, quote, i = [], "", 0, None, 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"' and i + 1 < len(line):
                current += line[i:i + 2]
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch == "\\" and i + 1 < len(line):
            current += line[i:i + 2]
            i += 2
            continue
        elif ch in "'\"":
            quote = ch
        elif ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        elif ch == "|" and depth == 0:
            if line[i + 1:i + 2] == "|" or line[i - 1:i] == "|":
                current += ch
                i += 1
                continue
            stages.append(current.strip())
            current = ""
            i += 1
            continue
        current += ch
        i += 1
    stages.append(current.strip())
    return stages


def program(stage):
    words = stage.lstrip("{( ").split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    if KUBECTL_WORD.search(stage):
        return "kubectl"
    return os.path.basename(words[0]) if words else ""


# --- The cluster of a scenario, as the API server would hold it. ---

def uid(*parts):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "elbmedic-check/" + "/".join(parts)))


def stamp(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def short_hash(*parts, n=10):
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().lower().translate(str.maketrans("01", "xz"))[:n]


class World:
    """The objects of one cluster, built up from a snapshot and a report."""

    def __init__(self, now):
        self.now = now
        self.objects = {}
        self.logs = {}

    def add(self, api_version, kind, name, namespace=None, **body):
        key = (kind, namespace, name)
        if key in self.objects:
            return self.objects[key]
        metadata = {"name": name, "uid": uid(kind, namespace or "", name), "resourceVersion": "1",
                    "creationTimestamp": stamp(self.now - 14 * 86400)}
        if namespace:
            metadata["namespace"] = namespace
        metadata.update(body.pop("metadata", {}))
        obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}
        self.objects[key] = obj
        return obj

    def get(self, kind, namespace, name):
        return self.objects.get((kind, namespace, name))

    def of(self, kind, namespace=None):
        return [o for (k, ns, _), o in self.objects.items()
                if k == kind and (namespace is None or ns == namespace)]

    def namespace(self, name, labels=None):
        return self.add("v1", "Namespace", name,
                        metadata={"labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
                        spec={"finalizers": ["kubernetes"]}, status={"phase": "Active"})

    def event(self, obj, kind, reason, message, source, count, first, last, type_="Normal"):
        namespace = obj["metadata"].get("namespace", "default")
        name = f"{obj['metadata']['name']}.{short_hash(kind, reason, message, n=16)}"
        self.add("v1", "Event", name, namespace,
                 involvedObject={"kind": obj["kind"], "namespace": namespace,
                                 "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
                                 "apiVersion": obj["apiVersion"]},
                 reason=reason, message=message, type=type_, count=count,
                 source={"component": source}, firstTimestamp=first, lastTimestamp=last,
                 reportingComponent=source, reportingInstance="")

    def document(self):
        return {"objects": list(self.objects.values()), "logs": self.logs}


def container(name, ports=(("http", 8080),), pre_stop=None, probe=True, image=None):
    c = {"name": name, "image": image or f"111122223333.dkr.ecr.eu-west-1.amazonaws.com/{name}:1.8.2",
         "ports": [{"name": p, "containerPort": n, "protocol": "TCP"} for p, n in ports],
         "imagePullPolicy": "IfNotPresent", "resources": {},
         "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    if probe:
        c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": ports[0][1] if ports else 8080,
                                           "scheme": "HTTP"}, "periodSeconds": 5,
                               "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    if pre_stop:
        c["lifecycle"] = {"preStop": pre_stop}
    return c


def workload(world, kind, namespace, name, labels, containers, replicas, ready, grace=30,
             max_unavailable="25%", max_surge="25%", rs_name=None):
    """A Deployment (or other workload), its current ReplicaSet; returns the pod template."""
    template = {"metadata": {"labels": dict(labels)},
                "spec": {"containers": containers, "restartPolicy": "Always",
                         "terminationGracePeriodSeconds": grace, "dnsPolicy": "ClusterFirst"}}
    status = {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas,
              "availableReplicas": ready, "observedGeneration": 3}
    spec = {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "template": template,
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    if kind == "Deployment":
        spec["strategy"] = {"type": "RollingUpdate",
                            "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": max_surge}}
    owner = world.add("apps/v1", kind, name, namespace, spec=spec, status=status,
                      metadata={"generation": 3, "labels": dict(labels),
                                "annotations": {"deployment.kubernetes.io/revision": "3"}})
    if kind != "Deployment":
        return owner, None
    template_hash = (rs_name or "").rsplit("-", 1)[-1] if rs_name else short_hash(namespace, name, n=10)
    rs_labels = {**labels, "pod-template-hash": template_hash}
    rs = world.add("apps/v1", "ReplicaSet", rs_name or f"{name}-{template_hash}", namespace,
                   spec={"replicas": replicas, "selector": {"matchLabels": rs_labels},
                         "template": {**template, "metadata": {"labels": rs_labels}}},
                   status={"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
                           "fullyLabeledReplicas": replicas, "observedGeneration": 1},
                   metadata={"labels": rs_labels, "generation": 1,
                             "annotations": {"deployment.kubernetes.io/revision": "3",
                                             "deployment.kubernetes.io/desired-replicas": str(replicas)},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name,
                                                  "uid": owner["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]})
    return owner, rs


def pod(world, namespace, name, labels, containers, ip, node, owner=None, phase="Running",
        ready=True, restarts=0, created=None, gates=()):
    created = created or stamp(world.now - 3 * 86400)
    conditions = [{"type": t, "status": "True" if (ready or t == "PodScheduled") else "False",
                   "lastTransitionTime": created}
                  for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
    conditions += [{"type": g, "status": "True" if ready else "False", "lastTransitionTime": created}
                   for g in gates]
    statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
                 "restartCount": restarts, "started": phase == "Running",
                 "state": {"running": {"startedAt": created}} if phase == "Running" and ready
                 else {"waiting": {"reason": "CrashLoopBackOff"}} if phase == "Running"
                 else {"waiting": {"reason": "ContainerCreating"}}}
                for c in containers]
    metadata = {"labels": dict(labels), "creationTimestamp": created}
    if owner:
        metadata["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                        "controller": True, "blockOwnerDeletion": True}]
    return world.add("v1", "Pod", name, namespace, metadata=metadata,
                     spec={"containers": containers, "nodeName": node, "restartPolicy": "Always",
                           "terminationGracePeriodSeconds": 30, "serviceAccountName": "default",
                           "readinessGates": [{"conditionType": g} for g in gates]},
                     status={"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
                             "hostIP": "10.0.21.17", "startTime": created,
                             "conditions": conditions, "containerStatuses": statuses,
                             "qosClass": "BestEffort"})


def selected(world, namespace, selector):
    return [p for p in world.of("Pod", namespace)
            if selector and all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]


def service(world, namespace, name, kind="ClusterIP", selector=None, ports=None, hostname=None,
            annotations=None):
    n = int(hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:4], 16)
    spec = {"type": kind, "selector": selector if selector is not None else {"app": name},
            "clusterIP": f"172.20.{n % 250}.{n // 250 % 250 + 1}", "sessionAffinity": "None",
            "ports": []}
    for i, p in enumerate(ports or [{"name": "http", "port": 80, "target_port": 8080}]):
        target = p.get("target_port", p["port"])
        port = {"name": p.get("name") or f"port-{i}", "port": int(p["port"]), "protocol": "TCP",
                "targetPort": int(target) if str(target).isdigit() else target}
        if kind in ("NodePort", "LoadBalancer"):
            port["nodePort"] = 30000 + (n + i) % 2767
        spec["ports"].append(port)
    spec.update({"clusterIPs": [spec["clusterIP"]], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"})
    if kind in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = "Cluster"
    status = {"loadBalancer": {"ingress": [{"hostname": hostname}]} if hostname and kind == "LoadBalancer" else {}}
    return world.add("v1", "Service", name, namespace, spec=spec, status=status,
                     metadata={"annotations": dict(annotations or {})})


def backend_workload(world, svc, replicas=3):
    """The Deployment and pods behind a Service the snapshot names but does not describe."""
    namespace, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    selector = svc["spec"].get("selector") or {}
    if not selector or selected(world, namespace, selector):
        return
    ports = [(p.get("name") or "http", p["targetPort"] if isinstance(p["targetPort"], int) else 8080)
             for p in svc["spec"]["ports"][:1]]
    containers = [container(name, ports)]
    _, rs = workload(world, "Deployment", namespace, name, selector, containers, replicas, replicas)
    for i in range(replicas):
        n = int(hashlib.sha256(f"{namespace}/{name}/{i}".encode()).hexdigest()[:4], 16)
        pod(world, namespace, f"{rs['metadata']['name']}-{short_hash(name, str(i), n=5)}",
            rs["spec"]["selector"]["matchLabels"], containers, f"10.0.{100 + n % 100}.{n // 100 % 250 + 2}",
            f"ip-10-0-{21 + i}-17.eu-west-1.compute.internal", owner=rs)


def endpoints(world, svc):
    """Endpoints and the EndpointSlice of a Service, from the pods it selects."""
    namespace, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    pods = [p for p in selected(world, namespace, svc["spec"].get("selector") or {})
            if p["status"].get("podIP")]
    ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                    for c in p["status"]["conditions"])]

    def target(port, p):
        t = port["targetPort"]
        if isinstance(t, int):
            return t
        for c in p["spec"]["containers"]:
            for cp in c.get("ports", []):
                if cp.get("name") == t:
                    return cp["containerPort"]
        return 8080

    ports = svc["spec"]["ports"]
    address = lambda p: {"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                         "targetRef": {"kind": "Pod", "namespace": namespace,
                                       "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}}
    subset = {"ports": [{"name": port["name"], "port": target(port, pods[0]) if pods else 8080,
                         "protocol": "TCP"} for port in ports]}
    if ready:
        subset["addresses"] = [address(p) for p in ready]
    if len(ready) < len(pods):
        subset["notReadyAddresses"] = [address(p) for p in pods if p not in ready]
    world.add("v1", "Endpoints", name, namespace, subsets=[subset] if pods else [],
              metadata={"labels": {"app": name}})
    world.add("discovery.k8s.io/v1", "EndpointSlice", f"{name}-{short_hash(namespace, name, n=5)}",
              namespace, addressType="IPv4",
              metadata={"labels": {"kubernetes.io/service-name": name,
                                   "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                             "uid": svc["metadata"]["uid"], "controller": True,
                                             "blockOwnerDeletion": True}]},
              endpoints=[{"addresses": [p["status"]["podIP"]], "nodeName": p["spec"]["nodeName"],
                          "conditions": {"ready": p in ready, "serving": p in ready, "terminating": False},
                          "targetRef": {"kind": "Pod", "namespace": namespace,
                                        "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}}
                         for p in pods],
              ports=[{"name": port["name"], "port": target(port, pods[0]) if pods else 8080,
                      "protocol": "TCP"} for port in ports])


def load_balancer_controller(world, lb, groups):
    labels = {"app.kubernetes.io/name": "aws-load-balancer-controller",
              "app.kubernetes.io/instance": "aws-load-balancer-controller"}
    containers = [container("aws-load-balancer-controller", (("webhook-server", 9443), ("metrics-server", 8080)),
                            image="public.ecr.aws/eks/aws-load-balancer-controller:v2.11.0")]
    world.namespace("kube-system")
    _, rs = workload(world, "Deployment", "kube-system", "aws-load-balancer-controller", labels,
                     containers, 2, 2)
    log = [
        {"level": "info", "logger": "controllers.ingress", "msg": "successfully deployed model",
         "ingressGroup": lb.get("owner", "")},
        {"level": "error", "logger": "controller-runtime.manager.controller.targetGroupBinding",
         "msg": "Reconciler error", "name": groups[0] if groups else "", "namespace": "shop",
         "error": "expected targetGroup to be registered with targets"},
        {"level": "info", "logger": "controllers.ingress", "msg": "deregistering targets",
         "arn": lb.get("arn", ""), "targets": ["10.0.35.77:8080"]},
        {"level": "info", "logger": "backend-sg-provider", "msg": "resolved securityGroup",
         "securityGroupID": "sg-0c5e7a9b1d3f24680"},
        {"level": "info", "logger": "controllers.service", "msg": "networking reconciled"},
    ]
    text = "".join(json.dumps({"ts": stamp(world.now - 600 + 60 * i), **entry}) + "\n"
                   for i, entry in enumerate(log))
    for i in range(2):
        p = pod(world, "kube-system", f"{rs['metadata']['name']}-{short_hash('lbc', str(i), n=5)}",
                rs["spec"]["selector"]["matchLabels"], containers, f"10.0.2{i}.41",
                f"ip-10-0-{21 + i}-17.eu-west-1.compute.internal", owner=rs)
        world.logs[f"kube-system/{p['metadata']['name']}"] = text


ALB_DEFAULTS = {
    "access_logs.s3.enabled": "false", "deletion_protection.enabled": "false",
    "idle_timeout.timeout_seconds": "60", "routing.http2.enabled": "true",
    "client_keep_alive.seconds": "3600", "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "routing.http.xff_client_port.enabled": "false", "routing.http.xff_header_processing.mode": "append",
    "waf.fail_open.enabled": "false", "zonal_shift.config.enabled": "false",
}


def owner_of(report, snapshot):
    """(kind, namespace, name) of the load balancer's owner, from the report or the tags."""
    text = (report.get("load_balancer") or {}).get("owner") or ""
    m = re.fullmatch(r"(Ingress|Service) ([a-z0-9-]+)/([a-z0-9.-]+)", text)
    if m:
        return m.groups()
    tags = snapshot.get("load_balancer", {}).get("tags", {})
    stack = tags.get("ingress.k8s.aws/stack", "")
    if "/" in stack:
        return ("Ingress", *stack.split("/", 1))
    service_name = tags.get("kubernetes.io/service-name", "")
    if "/" in service_name:
        return ("Service", *service_name.split("/", 1))
    return None


def build_world(report, snapshot, now):
    world = World(now)
    lb = dict(report.get("load_balancer") or {})
    lb.setdefault("dns_name", snapshot.get("load_balancer", {}).get("dns_name"))
    k8s = snapshot.get("kubernetes") or {}
    world.namespace("default")
    for ns in k8s.get("namespaces", []):
        world.namespace(ns["name"], ns.get("labels"))
    owner = owner_of(report, snapshot)
    if owner:
        world.namespace(owner[1])
    world.add("networking.k8s.io/v1", "IngressClass", "alb",
              metadata={"labels": {"app.kubernetes.io/name": "aws-load-balancer-controller"}},
              spec={"controller": "ingress.k8s.aws/alb"})
    # The snapshot's classes and the IngressClassParams they name, as elbmedic read them.
    for c in k8s.get("ingress_classes", []):
        if c["name"] == "alb":
            continue
        spec = {"controller": "ingress.k8s.aws/alb"}
        if c.get("params"):
            spec["parameters"] = {"apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": c["params"]}
        world.add("networking.k8s.io/v1", "IngressClass", c["name"], spec=spec)
    for p in k8s.get("ingress_class_params", []):
        spec = {"loadBalancerAttributes": p.get("load_balancer_attributes", [])}
        if p.get("group"):
            spec["group"] = {"name": p["group"]}
        world.add("elbv2.k8s.aws/v1beta1", "IngressClassParams", p["name"], spec=spec)
    # The snapshot's own objects first: they are what elbmedic read from the cluster.
    for s in k8s.get("services", []):
        world.namespace(s["namespace"])
        service(world, s["namespace"], s["name"], s.get("type", "ClusterIP"), s.get("selector") or {},
                s.get("ports"), lb.get("dns_name"), s.get("annotations"))
    workloads = {}
    for w in k8s.get("workloads", []):
        grace = w.get("termination_grace_period_seconds", 30)
        containers = []
        for c in w.get("containers", []):
            pre_stop = None
            if c.get("pre_stop", {}).get("sleep_seconds"):
                pre_stop = {"exec": {"command": ["sleep", str(c["pre_stop"]["sleep_seconds"])]}}
            containers.append(container(c["name"], [tuple(p) for p in c.get("ports", [])] or (("http", 8080),),
                                        pre_stop, c.get("readiness_probe", True)))
        rs_names = {p["owner"]["name"] for p in k8s.get("pods", [])
                    if (p.get("owner") or {}).get("kind") == "ReplicaSet"
                    and p["owner"]["name"].startswith(w["name"] + "-")
                    and p["namespace"] == w["namespace"]}
        owner_obj, rs = workload(world, w["kind"], w["namespace"], w["name"], w.get("pod_labels", {}),
                                 containers, w.get("replicas", 1), w.get("ready_replicas", 0), grace,
                                 str(w.get("max_unavailable", "25%")), str(w.get("max_surge", "25%")),
                                 min(rs_names) if rs_names else None)
        workloads[(w["namespace"], w["name"])] = (rs or owner_obj, containers)
    for p in k8s.get("pods", []):
        owned = (p.get("owner") or {}).get("name", "")
        parent, containers = next(((o, c) for (ns, n), (o, c) in workloads.items()
                                   if ns == p["namespace"] and (o["metadata"]["name"] == owned
                                                                or owned.startswith(n + "-"))),
                                  (None, [container(p["name"].rsplit("-", 2)[0])]))
        pod(world, p["namespace"], p["name"], p.get("labels", {}), containers, p.get("ip"),
            p.get("node") or "ip-10-0-21-17.eu-west-1.compute.internal", parent,
            p.get("phase", "Running"), p.get("ready", True), p.get("restarts", 0),
            p.get("created_at"), p.get("readiness_gates", []))
    for i in k8s.get("ingresses", []):
        ingress(world, i["namespace"], i["name"], i.get("class"), i.get("annotations", {}),
                [(b["service"], b.get("port", "80")) for b in i.get("backends", [])], lb)
    # Then what the load balancer's tags and the report say about the owner.
    tgs = snapshot.get("target_groups", [])
    if owner and owner[0] == "Service":
        service(world, owner[1], owner[2], "LoadBalancer", None,
                [{"name": "http", "port": 80, "target_port": 8080}], lb.get("dns_name"))
    elif owner and owner[0] == "Ingress":
        backends = []
        for tg in tgs:
            resource = tg.get("tags", {}).get("ingress.k8s.aws/resource", "")
            prefix = f"{owner[1]}/{owner[2]}-"
            if resource.startswith(prefix) and ":" in resource:
                backends.append(tuple(resource[len(prefix):].rsplit(":", 1)))
        annotations = {"alb.ingress.kubernetes.io/scheme": "internet-facing",
                       "alb.ingress.kubernetes.io/target-type": (tgs[0].get("target_type") if tgs else None) or "ip"}
        # The load balancer's attributes that differ from AWS's defaults, as the annotation set them.
        attributes = snapshot.get("load_balancer", {}).get("attributes", {})
        changed = [f"{k}={v}" for k, v in attributes.items()
                   if k in ALB_DEFAULTS and ALB_DEFAULTS[k] != v
                   or k.startswith("access_logs.s3.") and attributes.get("access_logs.s3.enabled") == "true"]
        if changed:
            annotations["alb.ingress.kubernetes.io/load-balancer-attributes"] = ",".join(changed)
        ingress(world, owner[1], owner[2], "alb", annotations, backends or [(owner[2], "80")], lb)
    # Every backend an Ingress names is a Service with pods, as in a working cluster.
    for ing in world.of("Ingress"):
        namespace = ing["metadata"]["namespace"]
        for rule in ing["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                ref = path["backend"]["service"]
                port = ref["port"].get("number") or 80
                service(world, namespace, ref["name"], "NodePort" if ing["metadata"].get("annotations", {}).get(
                    "alb.ingress.kubernetes.io/target-type") == "instance" else "ClusterIP",
                    None, [{"name": "http", "port": port, "target_port": 8080}])
    for svc in world.of("Service"):
        backend_workload(world, svc)
        endpoints(world, svc)
    # TargetGroupBindings: the snapshot's, else one per target group the controller made.
    for b in k8s.get("target_group_bindings", []):
        binding(world, b["namespace"], b["name"], b["target_group_arn"], b.get("service"),
                b.get("service_port"), b.get("target_type", "ip"))
    if owner and not k8s.get("target_group_bindings"):
        for tg in tgs:
            if not tg.get("name", "").startswith("k8s-"):
                continue
            resource = tg.get("tags", {}).get("ingress.k8s.aws/resource", "")
            svc_name, port = owner[2], "80"
            prefix = f"{owner[1]}/{owner[2]}-"
            if resource.startswith(prefix) and ":" in resource:
                svc_name, port = resource[len(prefix):].rsplit(":", 1)
            binding(world, owner[1], tg["name"], tg["arn"], svc_name, port, tg.get("target_type", "ip"))
    for e in k8s.get("events", []):
        ref = e.get("object", {})
        obj = world.get(ref.get("kind"), ref.get("namespace"), ref.get("name"))
        if obj:
            world.event(obj, ref["kind"], e["reason"], e.get("message", ""), e.get("source", ""),
                        e.get("count", 1), e.get("first_at"), e.get("last_at"), e.get("type", "Normal"))
    # Pods the kubelet stopped during a rollout, for `kubectl get events --field-selector reason=Killing`.
    for p in [p for p in world.of("Pod") if p["metadata"].get("namespace") != "kube-system"][:2]:
        for c in p["spec"]["containers"]:
            world.event(p, "Pod", "Killing", f"Stopping container {c['name']}", "kubelet", 1,
                        stamp(now - 7200), stamp(now - 7200))
    load_balancer_controller(world, lb, [tg["name"] for tg in tgs])
    return world


def ingress(world, namespace, name, class_name, annotations, backends, lb):
    world.namespace(namespace)
    paths = [{"path": "/" if i == 0 else f"/{svc}", "pathType": "Prefix",
              "backend": {"service": {"name": svc, "port": {"number": int(port)} if str(port).isdigit()
                                      else {"name": port}}}}
             for i, (svc, port) in enumerate(backends)]
    return world.add("networking.k8s.io/v1", "Ingress", name, namespace,
                     metadata={"annotations": dict(annotations), "generation": 1},
                     spec={"ingressClassName": class_name or "alb", "rules": [{"http": {"paths": paths}}]},
                     status={"loadBalancer": {"ingress": [{"hostname": lb.get("dns_name")}]}
                             if lb.get("dns_name") else {}})


def binding(world, namespace, name, arn, svc, port, target_type):
    port = int(port) if str(port).isdigit() else port
    return world.add("elbv2.k8s.aws/v1beta1", "TargetGroupBinding", name, namespace,
                     metadata={"labels": {"ingress.k8s.aws/stack-name": name.split("-")[2] if name.count("-") > 2 else name,
                                          "ingress.k8s.aws/stack-namespace": namespace},
                               "finalizers": ["elbv2.k8s.aws/resources"], "generation": 1},
                     spec={"targetGroupARN": arn, "targetType": target_type,
                           "serviceRef": {"name": svc, "port": port}, "ipAddressType": "ipv4",
                           "networking": {"ingress": [{"from": [{"securityGroup": {"groupID": "sg-0c5e7a9b1d3f24680"}}],
                                                       "ports": [{"protocol": "TCP", "port": 8080}]}]}},
                     status={"observedGeneration": 1})


def fill_placeholders(command, world, owner):
    """Replaces POD, DEPLOYMENT and NAMESPACE as the engineer would, with the owner's."""
    words = command.line.split()
    namespace = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-n", "--namespace")),
                     owner[1] if owner else "default")
    if namespace == "NAMESPACE":
        namespace = owner[1] if owner else "default"
    backends = []
    if owner:
        svc = world.get("Service", owner[1], owner[2])
        if svc:
            backends = selected(world, owner[1], svc["spec"].get("selector"))
        ing = world.get("Ingress", owner[1], owner[2])
        for rule in (ing or {}).get("spec", {}).get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                s = world.get("Service", owner[1], path["backend"]["service"]["name"])
                if s:
                    backends += selected(world, owner[1], s["spec"].get("selector"))
    pods = [p for p in backends + world.of("Pod", namespace)
            if p["metadata"].get("namespace") == namespace and p["status"]["phase"] == "Running"]
    values = {"NAMESPACE": namespace}
    if pods:
        values["POD"] = pods[0]["metadata"]["name"]
        for ref in pods[0]["metadata"].get("ownerReferences", []):
            rs = world.get(ref["kind"], namespace, ref["name"])
            for up in (rs or {}).get("metadata", {}).get("ownerReferences", []):
                values["DEPLOYMENT"] = up["name"]
    values.setdefault("DEPLOYMENT", next((d["metadata"]["name"] for d in world.of("Deployment", namespace)), "DEPLOYMENT"))
    line = command.line
    for word in PLACEHOLDERS:
        pattern = re.compile(rf"(?<![\w.-]){word}(?![\w.-])")
        if pattern.search(line) and values.get(word, word) != word:
            line = pattern.sub(values[word], line)
            command.filled[word] = values[word]
    command.run_as = line


# --- The stand-in and the client side. ---

def certificates(openssl, scratch):
    ca, ca_key = os.path.join(scratch, "ca.pem"), os.path.join(scratch, "ca-key.pem")
    cert, key = os.path.join(scratch, "cert.pem"), os.path.join(scratch, "key.pem")
    csr, ext = os.path.join(scratch, "server.csr"), os.path.join(scratch, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=elbmedic-check-ca",
         "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
         "-extfile", ext, "-out", cert],
    ):
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)
    return ca, cert, key


class StandIn:
    def __init__(self, scratch, worlds, cluster, region, ca, cert, key):
        self.worlds = worlds
        empty = os.path.join(scratch, "empty-world.json")
        with open(empty, "w") as f:
            json.dump({"objects": []}, f)
        self.process = subprocess.Popen(
            [sys.executable, STAND_IN, "--world", empty, "--worlds", worlds, "--cluster", cluster,
             "--region", region, "--access-key-id", KEY_ID, "--secret-access-key", SECRET,
             "--cert", cert, "--key", key],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the stand-in did not start: {line!r}")
        self.port = int(line.split()[1])
        with open(ca, "rb") as f:
            self.ca = base64.b64encode(f.read()).decode()
        self.cluster, self.region = cluster, region

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)

    def kubeconfig(self, path, name, aws):
        with open(path, "w") as f:
            f.write(
                "apiVersion: v1\nkind: Config\n"
                f"clusters:\n- name: {self.cluster}\n  cluster:\n"
                f"    server: https://127.0.0.1:{self.port}/clusters/{name}\n"
                f"    certificate-authority-data: {self.ca}\n"
                f"contexts:\n- name: {self.cluster}\n  context: {{cluster: {self.cluster}, user: elbmedic-check}}\n"
                f"current-context: {self.cluster}\n"
                "users:\n- name: elbmedic-check\n  user:\n    exec:\n"
                "      apiVersion: client.authentication.k8s.io/v1beta1\n"
                f"      command: {json.dumps(aws)}\n"
                f"      args: [eks, get-token, --cluster-name, {self.cluster}, --region, {self.region}]\n"
                "      interactiveMode: Never\n")

    def requests(self, name):
        try:
            with open(os.path.join(self.worlds, f"{name}.json.requests.jsonl")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


def environment(scratch, kubeconfig, kubectl):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "KUBE")) and k not in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
    home = os.path.join(scratch, "home")
    os.makedirs(home, exist_ok=True)
    env.update({
        "KUBECONFIG": kubeconfig, "KUBECACHEDIR": os.path.join(scratch, "kube-cache"), "HOME": home,
        "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.path.join(home, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "no-aws-credentials"),
        "NO_PROXY": "127.0.0.1", "LC_ALL": "C.UTF-8",
        # The kubectl on PATH first, as the engineer's shell finds it.
        "PATH": os.path.dirname(kubectl) + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
    })
    return env


def kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def problems_in(stdout, stderr):
    found = [f"{what}: {first_match(pattern, stderr)}" for pattern, what in REJECTED if pattern.search(stderr)]
    found += [f"{what} (stdout): {first_match(pattern, stdout)}" for pattern, what in REJECTED_STDOUT
              if pattern.search(stdout)]
    return found


def first_match(pattern, text):
    m = pattern.search(text)
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start:end if end >= 0 else None].strip()[:200]


# Port-forwards listen on the same local ports across scenarios: one at a time.
BACKGROUND_LOCK = threading.Lock()


def run_line(command, env, stand_in, world_name):
    """Runs one line; returns (ok, problems, details)."""
    line = command.run_as
    problems = []
    for shell in ("bash", "sh"):
        parsed = subprocess.run([shell, "-n", "-c", line], capture_output=True, text=True, timeout=10)
        if parsed.returncode != 0:
            problems.append(f"{shell} cannot parse it: {parsed.stderr.strip()}")
    if problems:
        return problems, ""
    before = len(stand_in.requests(world_name))
    if line.rstrip().endswith("&") and not line.rstrip().endswith("&&"):
        with BACKGROUND_LOCK:
            problems, details = run_background(line, env)
    else:
        problems, details = run_foreground(line, env)
    if problems:
        return problems, details
    verb = next((WRITES_AS.get(tuple(sub[:n])) for sub in subcommands(line) for n in (1, 2)
                 if WRITES_AS.get(tuple(sub[:n]))), None)
    if verb:
        patches = [r for r in stand_in.requests(world_name)[before:] if r.get("method") == "PATCH"]
        if not any(r["status"] == 200 and r["query"].get("dryRun") != "All" for r in patches):
            problems.append(f"kubectl {verb} sent no PATCH the API server accepted "
                            f"({[r['status'] for r in patches]})")
        elif WRITES[verb] not in details:
            problems.append(f"kubectl did not say the object was {WRITES[verb]}")
    return problems, details


# kubectl's flags that take a value as the next word, ahead of a sub-command's operands.
VALUE_FLAGS = {"-n", "--namespace", "-l", "--selector", "-o", "--output", "-c", "--container",
               "--context", "--cluster", "--user", "--kubeconfig", "-p", "--patch", "--type",
               "--field-selector", "--since", "--sort-by", "-f", "--filename"}


def operands(words):
    """The words of a kubectl invocation that are not flags or their values."""
    found, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--":
            break
        elif word in VALUE_FLAGS:
            skip = True
        elif not word.startswith("-"):
            found.append(word)
    return found


def subcommands(line):
    """The operands of each kubectl in the line (`["annotate", "ingress", ...]`)."""
    found = []
    for stage in split_pipeline(line):
        try:
            words = shlex.split(stage.rstrip("&").strip(" {}();"))
        except ValueError:
            continue
        for at, word in enumerate(words):
            if word == "kubectl":
                found.append(operands(words[at + 1:]))
    return found


WRITES_AS = {("annotate",): "annotate", ("label",): "label", ("patch",): "patch",
             ("rollout", "restart"): "restart"}


def run_foreground(line, env):
    status_file = tempfile.NamedTemporaryFile(prefix="pipestatus-", delete=False)
    status_file.close()
    # The line as printed, then where each stage of its pipeline ended.
    script = line + '\n__elbmedic_status=("${PIPESTATUS[@]}")\necho "${__elbmedic_status[*]}" > "$ELBMEDIC_PIPESTATUS"\n'
    process = subprocess.Popen(["bash", "-c", script], env={**env, "ELBMEDIC_PIPESTATUS": status_file.name},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        kill(process)
        stdout, stderr = process.communicate()
        os.unlink(status_file.name)
        return [f"still running after {TIMEOUT} s"], stdout + stderr
    with open(status_file.name) as f:
        statuses = [int(s) for s in f.read().split()]
    os.unlink(status_file.name)
    details = stdout + stderr
    problems = problems_in(stdout, stderr)
    stages = split_pipeline(line)
    if len(statuses) != len(stages):
        problems.append(f"{len(stages)} pipeline stages but exit statuses {statuses}")
        return problems, details
    for stage, code in zip(stages, statuses):
        name = program(stage)
        if code == 0 or (name in ("grep", "egrep", "fgrep") and code == 1):
            continue
        problems.append(f"{name or repr(stage)} exited {code}")
    return problems, details


def run_background(line, env):
    """A line ending in `&`: run as printed, in a shell that waits for it; it passes once
    kubectl says it forwards (or exits 0), and is stopped then."""
    process = subprocess.Popen(["bash", "-c", line + "\nwait\n"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    output, lock = [], threading.Lock()

    def read():
        for text in process.stdout:
            with lock:
                output.append(text)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.time() + BACKGROUND_SECONDS
    forwarding = False
    while time.time() < deadline and process.poll() is None:
        with lock:
            forwarding = any(t.startswith("Forwarding from") for t in output)
        if forwarding:
            time.sleep(0.5)  # anything it says right after
            break
        time.sleep(0.1)
    exited = process.poll()
    kill(process)
    process.wait()
    reader.join(timeout=5)
    details = "".join(output)
    problems = problems_in("", details)
    if "port-forward" in line and not any(t.startswith("Forwarding from") for t in output):
        problems.append("kubectl port-forward did not start forwarding")
    elif exited not in (None, 0):
        problems.append(f"exited {exited}")
    return problems, details


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# --- The check must be able to fail. ---

SELF_TEST = [  # (what is broken, the line, what the check must say)
    ("an unknown flag", "kubectl -n shop get pods --no-such-flag", "unknown flag"),
    ("a missing argument", "kubectl -n shop annotate ingress", "error"),
    ("an object the cluster lacks", "kubectl -n shop describe service no-such-service", "NotFound"),
    ("kubectl failing before a grep", "kubectl -n shop get pods --selector | grep -i web", "kubectl exited 1"),
    ("a patch with a field Deployments lack", "kubectl -n shop patch deployment web --type strategic -p "
     "'{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"lifecycle\":{\"preStp\":{}}}]}}}}'",
     'unknown field "spec.template.spec.containers[0].lifecycle.preStp"'),
    ("a patch with a value of the wrong type", "kubectl -n shop patch deployment web --type strategic -p "
     "'{\"spec\":{\"template\":{\"spec\":{\"terminationGracePeriodSeconds\":\"30\"}}}}'", "expected integer"),
    ("a strategic merge patch of a custom resource", "kubectl -n shop patch targetgroupbinding web-tgb "
     "--type strategic -p '{\"spec\":{\"targetType\":\"instance\"}}'", "unknown format"),
    ("an annotation without --overwrite",
     "kubectl -n shop annotate ingress web alb.ingress.kubernetes.io/scheme=internal", "--overwrite is false"),
    ("a shell syntax error", "kubectl -n shop get pods | | grep web", "cannot parse"),
    ("a port-forward to a pod that is not there", "kubectl -n shop port-forward nothing-here 18080:8080 &",
     "not found"),
    ("a failing command after kubectl", "kubectl -n shop get pods -o name | false", "false exited 1"),
]


GOOD = [
    "kubectl -n shop get pods -o wide | grep -c web-no-such-pod",
    "kubectl -n shop rollout restart deployment/web",
    "kubectl -n shop patch deployment web --type strategic -p "
    "'{\"spec\":{\"strategy\":{\"rollingUpdate\":{\"maxUnavailable\":0}}}}'",
    "kubectl -n shop patch deployment web --type json -p "
    "'[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":2}]'",
    "kubectl -n shop annotate targetgroupbinding web-tgb --overwrite example.com/checked=yes",
]


def self_test_world(now):
    world = World(now)
    world.namespace("shop")
    svc = service(world, "shop", "web", selector={"app": "web"})
    backend_workload(world, svc, replicas=1)
    endpoints(world, svc)
    ingress(world, "shop", "web", "alb", {"alb.ingress.kubernetes.io/scheme": "internet-facing"},
            [("web", "80")], {})
    binding(world, "shop", "web-tgb", "arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/web/0123",
            "web", 80, "ip")
    return world


def self_test(stand_in, scratch, aws, kubectl, now):
    write_world(stand_in, "self-test", self_test_world(now))
    kubeconfig = os.path.join(scratch, "self-test.kubeconfig")
    stand_in.kubeconfig(kubeconfig, "self-test", aws)
    env = environment(scratch, kubeconfig, kubectl)
    # Ones that must pass, so that a broken harness does not pass the self-test by failing all;
    # and the writes the reports may print that no scenario prints today.
    good_failed = 0
    for line in GOOD:
        problems, details = run_line(Command("self-test", "", line), env, stand_in, "self-test")
        if problems:
            print(f"FAIL self-test: a good command failed: {line}: {problems}\n{indent(details)}")
            good_failed += 1
    failures = good_failed

    def one(case):
        name, line, expected = case
        found, details = run_line(Command("self-test", "", line), env, stand_in, "self-test")
        return name, line, expected, found, details

    caught = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for name, line, expected, found, details in pool.map(one, SELF_TEST):
            if found and expected in "\n".join(found) + details:
                caught += 1
            else:
                print(f"FAIL self-test: {name} was not caught as {expected!r}: {line}: {found}\n{indent(details)}")
                failures += 1
    print(f"self-test: {caught} of {len(SELF_TEST)} broken commands caught, "
          f"{len(GOOD) - good_failed} of {len(GOOD)} good ones passed")
    return failures


def write_world(stand_in, name, world):
    path = os.path.join(stand_in.worlds, f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(world.document(), f)
    os.replace(path + ".tmp", path)


def indent(text, limit=1500):
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + " [...]"
    return "\n".join("       | " + t for t in text.splitlines())


def check_scenario(name, report, snapshot, stand_in, scratch, aws, kubectl, now):
    world = build_world(report, snapshot, now)
    owner = owner_of(report, snapshot)
    commands, mentions = collect(name, report)
    for command in commands:
        fill_placeholders(command, world, owner)
    write_world(stand_in, name, world)
    kubeconfig = os.path.join(scratch, f"{name}.kubeconfig")
    stand_in.kubeconfig(kubeconfig, name, aws)
    env = environment(scratch, kubeconfig, kubectl)
    results = []
    # One at a time within a scenario: a change (annotate, patch) is seen by the next read.
    for command in commands:
        started = time.time()
        problems, details = run_line(command, env, stand_in, name)
        results.append((command, problems, details, time.time() - started))
    return results, mentions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--scenario", action="append", help="only these scenarios")
    parser.add_argument("--keep", metavar="DIR", help="keep the worlds, kubeconfigs and request logs here")
    parser.add_argument("-v", "--verbose", action="store_true", help="print what each command printed")
    parser.add_argument("--jobs", type=int, default=max(2, (os.cpu_count() or 2) + 1))
    args = parser.parse_args()
    started = time.time()
    strict = os.environ.get("CI") == "true"
    home = os.path.expanduser("~")
    kubectl = find_tool("kubectl", "ELBMEDIC_KUBECTL")
    aws = find_tool("aws", "ELBMEDIC_AWS_CLI", os.path.join(home, ".cache", "elbmedic-awscli", "bin", "aws"))
    openssl = find_tool("openssl", "ELBMEDIC_OPENSSL")
    missing = [n for n, p in (("kubectl", kubectl), ("the AWS CLI", aws), ("openssl", openssl)) if not p]
    if missing:
        message = f"no {', '.join(missing)} on this machine: the reports' kubectl commands were not run"
        if strict:
            print(f"FAIL: {message} (CI=true)", file=sys.stderr)
            return 1
        print(f"SKIPPED: {message}; scripts/test.sh installs Debian's kubectl and the AWS CLI")
        return 0
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=30)
    print(f"kubectl: {kubectl} ({version.stdout.splitlines()[0] if version.stdout else version.stderr.strip()})")
    print(f"token: {aws} eks get-token")
    names = [line.split()[0] for line in run_binary(args.binary, "demo", "--list").splitlines() if line.strip()]
    if args.scenario:
        unknown = set(args.scenario) - set(names)
        if unknown:
            print(f"no scenario {sorted(unknown)}; the binary has {names}", file=sys.stderr)
            return 2
        names = [n for n in names if n in args.scenario]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        reports = dict(zip(names, pool.map(
            lambda n: json.loads(run_binary(args.binary, "demo", "--scenario", n, "--format", "json")), names)))
    snapshots = {}
    for name in names:
        path = os.path.join(SCENARIOS, name, "snapshot.json")
        snapshots[name] = json.load(open(path)) if os.path.exists(path) else {}
    busy = sorted({int(p) for r in reports.values() for c in collect("", r)[0]
                   for p in re.findall(r"port-forward \S+ (\d+):", c.line) if not port_free(int(p))})
    if busy:
        print(f"FAIL: local port {', '.join(map(str, busy))} is in use on this machine, and the reports' "
              "kubectl port-forward listens there: free it and run again", file=sys.stderr)
        return 1
    scratch = args.keep or tempfile.mkdtemp(prefix="elbmedic-kubectl-")
    os.makedirs(scratch, exist_ok=True)
    worlds = os.path.join(scratch, "worlds")
    os.makedirs(worlds, exist_ok=True)
    ca, cert, key = certificates(openssl, scratch)
    # One stand-in per (cluster, region); the scenarios all share one today.
    identities = {}
    for name in names:
        snap = snapshots[name]
        cluster = (reports[name].get("load_balancer") or {}).get("cluster") \
            or (snap.get("eks") or {}).get("name") or "shop-prod"
        region = (reports[name].get("alarm") or {}).get("region") or snap.get("region") or "eu-west-1"
        identities.setdefault((cluster, region), []).append(name)
    stand_ins = {}
    failures = 0
    broken_harness = 0
    counts = {}
    try:
        for (cluster, region) in identities:
            stand_ins[(cluster, region)] = StandIn(scratch, worlds, cluster, region, ca, cert, key)
        now = time.time()
        first = next(iter(stand_ins.values()))
        jobs = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            checked_harness = pool.submit(self_test, first, scratch, aws, kubectl, now)
            for (cluster, region), members in identities.items():
                for name in members:
                    jobs.append((name, pool.submit(check_scenario, name, reports[name], snapshots[name],
                                                   stand_ins[(cluster, region)], scratch, aws, kubectl, now)))
            for name, job in jobs:
                results, mentions = job.result()
                counts[name] = len(results)
                for mention in mentions:
                    print(f"skip {name:30}       {mention.line}  (a mention in {mention.where}, not a command)")
                for command, problems, details, seconds in results:
                    filled = "".join(f" [{k}={v}]" for k, v in command.filled.items())
                    state = "FAIL" if problems else "ok"
                    print(f"{state:4} {name:30} {seconds:4.1f}s  {command.line}{filled}")
                    if problems:
                        failures += 1
                        print(f"       from {command.where}")
                        for p in problems:
                            print(f"     - {p}")
                        print(indent(details))
                    elif args.verbose:
                        print(indent(details))
            broken_harness = checked_harness.result()
    finally:
        for s in stand_ins.values():
            s.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    total = sum(counts.values())
    print("commands per scenario: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    print(f"{total - failures} of {total} kubectl commands from {len(names)} reports accepted by "
          f"{os.path.basename(kubectl)} against the stand-in ({time.time() - started:.1f} s)"
          + (f"; the self-test failed {broken_harness} times" if broken_harness else ""))
    return 1 if failures or broken_harness else 0


if __name__ == "__main__":
    sys.exit(main())
