#!/usr/bin/env python3
"""A stand-in for an EKS cluster's Kubernetes API server, on 127.0.0.1 only, for the tests.

No kube-apiserver can run here (none is packaged for Debian or PyPI), so this serves what
elbmedic reads, and what the kubectl commands its reports print do, in the API's own wire
formats; it is proven with the real `kubectl` (scripts/check-kubectl.py runs every kubectl line
of every scenario's report against it):
- reads (GET) of the kinds elbmedic's ClusterRole allows, namespaced and cluster-wide, one
  object or a list, with `labelSelector`, `fieldSelector`, `limit` and `continue`; as a
  `meta.k8s.io/v1` Table when the client asks for one (kubectl get's columns, the priority-1
  columns of `-o wide`, `includeObject`);
- legacy discovery (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`), which kubectl needs;
- both `v1` Events and `events.k8s.io/v1` Events;
- PATCH (kubectl annotate, label, patch, rollout restart): JSON merge patch, strategic merge
  patch (lists merged by their keys: containers by name...; refused with a 415 on custom
  resources, as the API server does) and JSON patch. The body must have its content type's
  shape; a field the kind does not have is a 400 with `fieldValidation=Strict` (kubectl
  patch's default) and a `Warning` header otherwise; a value of the wrong type is a 400. The
  patched object is written back to the world file (not under `dryRun`) and answered.
  Server-side apply (`application/apply-patch+yaml`, `fieldManager` required, `force`) keeps
  `managedFields` as the API server does (tests/support/field_manager.py): a conflict with
  another manager is a 409 that names it, and fields the manager stops applying are removed;
  an ordinary patch takes the fields it changes for its manager (`fieldManager`, else the
  User-Agent's program). An apply to an object that does not exist is a 404 here (the API
  server would create it). `metadata.resourceVersion` in a body must be the object's (409).
  The world's "admission" webhooks deny changes, dry runs included: [{"webhook": NAME,
  "kind": KIND, "name": optional, "namespace": optional, "message": TEXT, "code": 403|422}];
- subresources: `pods/log` (plain text from the world's "logs"), and `pods/exec` and
  `pods/portforward` over WebSocket as kubectl dials them: exec answers on the
  `v5.channel.k8s.io`/`v4.channel.k8s.io` channels (stdout from the world's "exec", then the
  exit status); port-forward's SPDY tunnel is accepted and held open (pings answered), but no
  connection is forwarded. SPDY upgrades (kubectl's fallback) are not served;
- `metrics.k8s.io/v1beta1` PodMetrics (`kubectl top pods`), made from the world's running pods;
- authentication as EKS does it: the bearer token is `k8s-aws-v1.` + base64url (no padding)
  of a presigned STS GetCallerIdentity URL. The URL must name the partition's regional STS
  host, sign `host;x-k8s-aws-id` with this cluster's name, be at most 15 minutes old, and
  carry a SigV4 signature that this file recomputes with the test credentials (its own
  implementation, independent of the signer under test). Anything else is a 401.
- authorization as RBAC answers it: a (verb, group, resource) the world denies is a 403 with
  the API server's message. Verbs are get, list, watch (then refused: no watches are served),
  patch, and create for pods/exec and pods/portforward; a subresource is named as RBAC names
  it (`pods/log`). Other methods (POST, PUT, DELETE) are a 405.

Usage: kube_api.py --world WORLD.json --cluster NAME --region REGION
                   --access-key-id AKID --secret-access-key SECRET [--cert PEM --key PEM]
                   [--worlds DIR]
Prints `PORT <n>` on its first line once it listens. The world file holds
{"objects": [...], "deny": [["list", "", "pods"], ...], "delay_seconds": 0,
 "throttle": {"RESOURCE": N} (the first N requests for it answered 429, as the API server's
 priority and fairness does),
 "logs": {"NAMESPACE/POD[/CONTAINER]": "text"}, "exec": {"COMMAND ARG...": "stdout"}};
it is read again on every request, so a test can change it while the server runs. With
`--worlds DIR`, a path under `/clusters/NAME/` is served from DIR/NAME.json (one server for
many clusters: a kubeconfig's server URL may end in such a prefix). Every request is appended
to WORLD.requests.jsonl (method, path, query, status; a PATCH's content type and body), tokens
excluded.
"""
import argparse
import base64
import copy
import datetime
import hashlib
import hmac
import json
import os
import re
import ssl
import sys
import threading
import time
import uuid
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import field_manager

TOKEN_PREFIX = "k8s-aws-v1."
MAX_TOKEN_BYTES = 4096
TOKEN_LIFETIME_SECONDS = 15 * 60
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# What aws-iam-authenticator accepts in the presigned URL's query.
ALLOWED_PARAMETERS = {
    "Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
    "X-Amz-Expires", "X-Amz-Security-Token", "X-Amz-Signature", "X-Amz-SignedHeaders",
}

# (group, version) -> [(resource, kind, namespaced)]
RESOURCES = {
    ("", "v1"): [
        ("pods", "Pod", True),
        ("services", "Service", True),
        ("endpoints", "Endpoints", True),
        ("events", "Event", True),
        ("namespaces", "Namespace", False),
    ],
    ("apps", "v1"): [
        ("deployments", "Deployment", True),
        ("replicasets", "ReplicaSet", True),
        ("statefulsets", "StatefulSet", True),
        ("daemonsets", "DaemonSet", True),
    ],
    ("networking.k8s.io", "v1"): [
        ("ingresses", "Ingress", True),
        ("ingressclasses", "IngressClass", False),
    ],
    ("discovery.k8s.io", "v1"): [("endpointslices", "EndpointSlice", True)],
    ("events.k8s.io", "v1"): [("events", "Event", True)],
    ("elbv2.k8s.aws", "v1beta1"): [
        ("targetgroupbindings", "TargetGroupBinding", True),
        ("ingressclassparams", "IngressClassParams", False),
    ],
    ("metrics.k8s.io", "v1beta1"): [
        ("pods", "PodMetrics", True),
        ("nodes", "NodeMetrics", False),
    ],
}

# Groups served by CustomResourceDefinitions (no strategic merge patch) and by an aggregated
# API that only reads (metrics-server).
CUSTOM_GROUPS = {"elbv2.k8s.aws"}
READ_ONLY_GROUPS = {"metrics.k8s.io"}

# (group, resource) -> [(subresource, kind, verbs)], as discovery lists them.
SUBRESOURCES = {
    ("", "pods"): [
        ("log", "Pod", ["get"]),
        ("exec", "PodExecOptions", ["create", "get"]),
        ("portforward", "PodPortForwardOptions", ["create", "get"]),
    ],
}

# What kubectl's users type: `kubectl get svc`.
SHORT_NAMES = {
    "pods": ["po"], "services": ["svc"], "endpoints": ["ep"], "events": ["ev"],
    "namespaces": ["ns"], "deployments": ["deploy"], "replicasets": ["rs"],
    "statefulsets": ["sts"], "daemonsets": ["ds"], "ingresses": ["ing"],
}

def sts_host(region):
    if region.startswith("cn-"):
        suffix = "amazonaws.com.cn"
    elif region.startswith("eusc-"):
        suffix = "amazonaws.eu"
    else:
        suffix = "amazonaws.com"
    return f"sts.{region}.{suffix}"


def quote(text):
    return urllib.parse.quote(text, safe="-_.~")


def signing_key(secret, date, region, service):
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def token_problem(token, cluster, region, access_key_id, secret, now):
    """Why `token` is not a valid EKS token for `cluster`; None when it is."""
    if not token.startswith(TOKEN_PREFIX):
        return "not a k8s-aws-v1 token"
    if len(token) > MAX_TOKEN_BYTES:
        return "token longer than 4 KiB"
    encoded = token[len(TOKEN_PREFIX):]
    if "=" in encoded or not re.fullmatch(r"[A-Za-z0-9_-]+", encoded):
        return "not base64url without padding"
    try:
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except Exception:
        return "undecodable"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or parts.netloc != sts_host(region) or parts.path != "/":
        return f"not the partition's regional STS endpoint: {parts.scheme}://{parts.netloc}"
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    if len(query) != len(pairs):
        return "a query parameter appears twice"
    if query.get("Action") != "GetCallerIdentity" or query.get("Version") != "2011-06-15":
        return "not GetCallerIdentity"
    # aws-iam-authenticator's allow-list of parameters, and its range for X-Amz-Expires.
    unknown = set(query) - ALLOWED_PARAMETERS
    if unknown:
        return f"parameters the API server does not allow: {sorted(unknown)}"
    expires = query.get("X-Amz-Expires", "")
    if not expires.isdigit() or not 0 <= int(expires) <= 900:
        return "X-Amz-Expires missing or outside 0-900"
    if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return "not SigV4"
    signed = query.get("X-Amz-SignedHeaders", "").split(";")
    if "x-k8s-aws-id" not in signed or "host" not in signed:
        return "x-k8s-aws-id is not signed"
    try:
        stamp = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    except (KeyError, ValueError):
        return "no X-Amz-Date"
    age = now - stamp.replace(tzinfo=datetime.timezone.utc).timestamp()
    if age > TOKEN_LIFETIME_SECONDS or age < -300:
        return f"expired (signed {int(age)} s ago)"
    credential = query.get("X-Amz-Credential", "").split("/")
    if len(credential) != 5 or credential[0] != access_key_id:
        return "unknown access key"
    key_id, date, scope_region, service, terminator = credential
    if (scope_region, service, terminator) != (region, "sts", "aws4_request"):
        return "credential scope is not this region's STS"
    if date != query["X-Amz-Date"][:8]:
        return "credential date differs from X-Amz-Date"
    headers = {"host": parts.netloc, "x-k8s-aws-id": cluster}
    unknown = [h for h in signed if h not in headers]
    if unknown:
        return f"signs headers the server does not send: {unknown}"
    canonical_query = "&".join(
        f"{quote(k)}={quote(v)}"
        for k, v in sorted(pairs)
        if k != "X-Amz-Signature"
    )
    canonical_headers = "".join(f"{h}:{headers[h]}\n" for h in signed)
    scope = f"{date}/{region}/sts/aws4_request"
    key = signing_key(secret, date, region, "sts")
    expected = []
    # STS accepts the empty body's hash and UNSIGNED-PAYLOAD alike in a presigned URL.
    for payload in (EMPTY_SHA256, "UNSIGNED-PAYLOAD"):
        request = "\n".join(
            ["GET", "/", canonical_query, canonical_headers, ";".join(signed), payload]
        )
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                query["X-Amz-Date"],
                scope,
                hashlib.sha256(request.encode()).hexdigest(),
            ]
        )
        expected.append(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest())
    if query.get("X-Amz-Signature") not in expected:
        return "signature does not match (another cluster, secret or request)"
    return None


def label_matches(labels, selector):
    """Kubernetes label selector semantics: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (..)`,
    `k notin (..)`, all of them ANDed."""
    if not selector:
        return True
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", selector):
        term = term.strip()
        if not term:
            continue
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            present = key in labels and labels[key] in values
            if (op == "in") != present:
                return False
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", term)
        if m:
            key, op, value = m.groups()
            if (labels.get(key) == value) != (op != "!="):
                return False
            continue
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def field_matches(obj, selector):
    if not selector:
        return True
    for term in selector.split(","):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", term.strip())
        if not m:
            return False
        path, op, value = m.groups()
        actual = field(obj, path)
        actual = "" if actual is None else str(actual)
        if (actual == value) != (op != "!="):
            return False
    return True


def status(code, reason, message, details=None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return code, body


def qualified(resource, group):
    """`deployments.apps`, as the API server names a resource in its messages."""
    return f"{resource}.{group}" if group else resource


def not_found(resource, group, name):
    return status(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                  {"name": name, "group": group, "kind": resource} if group else
                  {"name": name, "kind": resource})


# --- Tables: what `kubectl get` prints, computed by the server as the API server does. ---

def parse_time(text):
    if not isinstance(text, str) or len(text) < 19:
        return None
    try:
        stamp = datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(text, now):
    stamp = parse_time(text)
    return "<unknown>" if stamp is None else human_duration(now - stamp)


def column(name, priority=0, kind="string", fmt="", description=""):
    return {"name": name, "type": kind, "format": fmt, "description": description or name,
            "priority": priority}


def listed(values, most=3, empty="<none>"):
    values = [v for v in values if v not in (None, "")]
    if not values:
        return empty
    text = ",".join(values[:most])
    return text + (f" + {len(values) - most} more..." if len(values) > most else "")


def selector_text(selector):
    if not selector:
        return "<none>"
    labels = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str)) or "<none>"


def pod_row(o, now):
    spec, st = o.get("spec", {}), o.get("status", {})
    containers = spec.get("containers", [])
    statuses = st.get("containerStatuses", [])
    reason = st.get("reason") or st.get("phase") or "Unknown"
    for c in statuses:
        state = c.get("state", {})
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if o.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    ready = sum(1 for c in statuses if c.get("ready"))
    gates = [g.get("conditionType") for g in spec.get("readinessGates", [])]
    met = {c.get("type") for c in st.get("conditions", []) if c.get("status") == "True"}
    return [o["metadata"]["name"], f"{ready}/{len(containers)}", reason,
            str(sum(c.get("restartCount", 0) for c in statuses)),
            since(o["metadata"].get("creationTimestamp"), now),
            st.get("podIP") or "<none>", spec.get("nodeName") or "<none>", "<none>",
            f"{sum(1 for g in gates if g in met)}/{len(gates)}" if gates else "<none>"]


def service_row(o, now):
    spec = o.get("spec", {})
    kind = spec.get("type", "ClusterIP")
    ingress = o.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    external = listed([i.get("hostname") or i.get("ip") for i in ingress],
                      empty="<pending>" if kind == "LoadBalancer" else "<none>")
    ports = ",".join(
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
        else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports", [])) or "<none>"
    return [o["metadata"]["name"], kind, spec.get("clusterIP") or "<none>", external, ports,
            since(o["metadata"].get("creationTimestamp"), now), selector_text(spec.get("selector"))]


def workload_row(o, now):
    spec, st = o.get("spec", {}), o.get("status", {})
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    row = [o["metadata"]["name"]]
    if o["kind"] == "Deployment":
        row += [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
                str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0))]
    else:
        row += [str(spec.get("replicas", 1)), str(st.get("replicas", 0)), str(st.get("readyReplicas", 0))]
    return row + [since(o["metadata"].get("creationTimestamp"), now),
                  ",".join(c.get("name", "") for c in containers),
                  ",".join(c.get("image", "") for c in containers),
                  selector_text(spec.get("selector"))]


def event_row(o, now):
    regarding = o.get("involvedObject") or o.get("regarding") or {}
    source = o.get("source", {})
    last = o.get("lastTimestamp") or o.get("eventTime") or o.get("metadata", {}).get("creationTimestamp")
    return [since(last, now), o.get("type", ""), o.get("reason", ""),
            f"{regarding.get('kind', '').lower()}/{regarding.get('name', '')}",
            regarding.get("fieldPath", ""),
            ", ".join(v for v in (source.get("component"), source.get("host")) if v),
            o.get("message") or o.get("note", ""),
            since(o.get("firstTimestamp") or last, now), str(o.get("count", 1)),
            o["metadata"]["name"]]


def ingress_row(o, now):
    spec = o.get("spec", {})
    hosts = [r.get("host") for r in spec.get("rules", []) if r.get("host")]
    addresses = [i.get("hostname") or i.get("ip")
                 for i in o.get("status", {}).get("loadBalancer", {}).get("ingress", [])]
    return [o["metadata"]["name"], spec.get("ingressClassName") or "<none>", listed(hosts, 4, "*"),
            ",".join(a for a in addresses if a), "80, 443" if spec.get("tls") else "80",
            since(o["metadata"].get("creationTimestamp"), now)]


def endpoints_row(o, now):
    pairs = [f"{a.get('ip')}:{p.get('port')}" for s in o.get("subsets", [])
             for p in s.get("ports", []) for a in s.get("addresses", [])]
    return [o["metadata"]["name"], listed(pairs), since(o["metadata"].get("creationTimestamp"), now)]


def endpoint_slice_row(o, now):
    ports = [str(p.get("port")) for p in o.get("ports") or [] if p.get("port") is not None]
    addresses = [a for e in o.get("endpoints") or [] for a in e.get("addresses", [])]
    return [o["metadata"]["name"], o.get("addressType", ""), listed(ports, empty="<unset>"),
            listed(addresses, empty="<unset>"), since(o["metadata"].get("creationTimestamp"), now)]


def binding_row(o, now):
    spec = o.get("spec", {})
    ref = spec.get("serviceRef", {})
    return [o["metadata"]["name"], ref.get("name", ""), str(ref.get("port", "")),
            spec.get("targetType", ""), spec.get("targetGroupARN", ""),
            since(o["metadata"].get("creationTimestamp"), now)]


def default_row(o, now):
    return [o["metadata"]["name"], since(o["metadata"].get("creationTimestamp"), now)]


NAME = column("Name", fmt="name", description="Name must be unique within a namespace.")
AGE = column("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created.")
WORKLOAD_WIDE = [column("Containers", 1), column("Images", 1), column("Selector", 1)]
# kind -> (columns, row)
TABLES = {
    "Pod": ([NAME, column("Ready"), column("Status"), column("Restarts"), AGE, column("IP", 1),
             column("Node", 1), column("Nominated Node", 1), column("Readiness Gates", 1)], pod_row),
    "Service": ([NAME, column("Type"), column("Cluster-IP"), column("External-IP"), column("Port(s)"),
                 AGE, column("Selector", 1)], service_row),
    "Deployment": ([NAME, column("Ready"), column("Up-to-date"), column("Available"), AGE]
                   + WORKLOAD_WIDE, workload_row),
    "ReplicaSet": ([NAME, column("Desired"), column("Current"), column("Ready"), AGE]
                   + WORKLOAD_WIDE, workload_row),
    "StatefulSet": ([NAME, column("Desired"), column("Current"), column("Ready"), AGE]
                    + WORKLOAD_WIDE, workload_row),
    "Event": ([column("Last Seen"), column("Type"), column("Reason"), column("Object"),
               column("Subobject", 1), column("Source", 1), column("Message"),
               column("First Seen", 1), column("Count", 1), column("Name", 1, fmt="name")], event_row),
    "Ingress": ([NAME, column("Class"), column("Hosts"), column("Address"), column("Ports"), AGE],
                ingress_row),
    "Endpoints": ([NAME, column("Endpoints"), AGE], endpoints_row),
    "EndpointSlice": ([NAME, column("AddressType"), column("Ports"), column("Endpoints"), AGE],
                      endpoint_slice_row),
    # The CRD's additionalPrinterColumns (aws-load-balancer-controller).
    "TargetGroupBinding": ([NAME, column("SERVICE-NAME"), column("SERVICE-PORT"),
                            column("TARGET-TYPE"), column("ARN", 1), column("AGE", kind="date")],
                           binding_row),
}


def table(objects, include, metadata, now):
    """A meta.k8s.io/v1 Table of `objects` (all of one kind)."""
    kind = objects[0]["kind"] if objects else None
    columns, row = TABLES.get(kind, ([NAME, AGE], default_row))
    rows = []
    for o in objects:
        entry = {"cells": row(o, now)}
        if include == "Object":
            entry["object"] = o
        elif include != "None":
            entry["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": o.get("metadata", {})}
        rows.append(entry)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": columns, "rows": rows}


def pod_metrics(world, now):
    """metrics-server's PodMetrics of every running pod (the world's own, if it has any)."""
    given = [o for o in world.get("objects", []) if o.get("kind") == "PodMetrics"]
    if given:
        return given
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    metrics = []
    for pod in world.get("objects", []):
        if pod.get("kind") != "Pod" or pod.get("status", {}).get("phase") != "Running":
            continue
        seed = int(hashlib.sha256(pod["metadata"]["name"].encode()).hexdigest()[:6], 16)
        metrics.append({
            "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": pod["metadata"]["name"],
                         "namespace": pod["metadata"].get("namespace"),
                         "labels": pod["metadata"].get("labels", {}), "creationTimestamp": stamp},
            "timestamp": stamp, "window": "15.021s",
            "containers": [{"name": c.get("name"),
                            "usage": {"cpu": f"{5 + seed % 400}m", "memory": f"{65536 + seed % 400000}Ki"}}
                           for c in pod.get("spec", {}).get("containers", [])],
        })
    return metrics

# --- PATCH: the three patch formats, and the fields a patch may name. ---

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}
# Strategic merge patch: lists of objects merged by a key instead of replaced (the
# patchMergeKey of the Kubernetes types that have one).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "imagePullSecrets": "name", "ports": "containerPort",
    "volumeMounts": "mountPath", "conditions": "type", "readinessGates": "conditionType",
    "ownerReferences": "uid",
}


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def without_directives(value):
    if isinstance(value, dict):
        return {k: without_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [without_directives(v) for v in value]
    return value


def strategic_merge(target, patch):
    """A strategic merge patch: as a merge patch, but lists with a merge key are merged element
    by element, and the `$patch` directives replace or delete."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return without_directives(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(out.get(key), list) \
                and all(isinstance(e, dict) for e in value):
            out[key] = merge_list(out[key], value, MERGE_KEYS[key])
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                out.pop(key, None)
            else:
                out[key] = strategic_merge(out.get(key), value)
        else:
            out[key] = without_directives(value)
    return out


def merge_list(current, patch, key):
    out = copy.deepcopy(current)
    for element in patch:
        at = next((i for i, e in enumerate(out)
                   if isinstance(e, dict) and e.get(key) == element.get(key)), None)
        if element.get("$patch") == "delete":
            if at is not None:
                del out[at]
        elif at is None:
            out.append(without_directives(element))
        else:
            out[at] = strategic_merge(out[at], element)
    return out


class PatchError(Exception):
    pass


def pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} does not start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target, operations):
    """RFC 6902: add, remove, replace, test, copy, move."""
    doc = copy.deepcopy(target)

    def parent(parts):
        node = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node

    def get(parts):
        node = doc
        for p in parts:
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node

    def put(parts, value, replace):
        node = parent(parts)
        last = parts[-1]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if replace:
                node[index] = value
            else:
                node.insert(index, value)
        else:
            if replace and last not in node:
                raise KeyError(last)
            node[last] = value

    def remove(parts):
        node = parent(parts)
        return node.pop(int(parts[-1])) if isinstance(node, list) else node.pop(parts[-1])

    for op in operations:
        parts = pointer(op["path"])
        try:
            if op["op"] == "add":
                put(parts, op["value"], False)
            elif op["op"] == "replace":
                put(parts, op["value"], True)
            elif op["op"] == "remove":
                remove(parts)
            elif op["op"] == "test":
                if get(parts) != op["value"]:
                    raise PatchError(f"testing value {op['path']} failed")
            elif op["op"] in ("copy", "move"):
                value = get(pointer(op["from"]))
                if op["op"] == "move":
                    remove(pointer(op["from"]))
                put(parts, copy.deepcopy(value), False)
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise PatchError(f"the path {op['path']!r} does not exist ({e})")
    return doc


def patch_shape(kind, patch):
    """Why `patch` does not have the shape of its content type; None when it does."""
    if kind in ("merge", "strategic", "apply"):
        if not isinstance(patch, dict):
            return f"json: cannot unmarshal {type(patch).__name__} into Go value of type map[string]interface {{}}"
        return None
    if not isinstance(patch, list):
        return f"json: cannot unmarshal {type(patch).__name__} into Go value of type jsonpatch.Patch"
    for op in patch:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            return "a JSON patch operation is an object with a path"
        if op.get("op") not in ("add", "remove", "replace", "move", "copy", "test"):
            return f"unexpected kind of JSON patch operation: {op.get('op')!r}"
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            return f"JSON patch operation {op['op']} without a value"
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            return f"JSON patch operation {op['op']} without from"
    return None


# The fields a patch may name, for the kinds the reports patch; anything else is an unknown
# field. ANY: not checked below; OPEN: an object whose other fields are not checked.
ANY, STR, INT, BOOL, INTSTR, STRMAP, STRLIST = "any", "string", "integer", "boolean", "int-or-string", "map", "list"
OPEN = "*"
META = {"name": STR, "generateName": STR, "namespace": STR, "labels": STRMAP,
        "annotations": STRMAP, "ownerReferences": ANY, "finalizers": STRLIST, "uid": STR,
        "resourceVersion": STR, "generation": INT, "creationTimestamp": ANY,
        "deletionTimestamp": ANY, "deletionGracePeriodSeconds": INT, "managedFields": ANY,
        "selfLink": STR}
ACTION = {"exec": {"command": STRLIST},
          "httpGet": {"host": STR, "httpHeaders": ANY, "path": STR, "port": INTSTR, "scheme": STR},
          "tcpSocket": {"host": STR, "port": INTSTR}}
HANDLER = {**ACTION, "sleep": {"seconds": INT}}
PROBE = {**ACTION, "grpc": ANY, "initialDelaySeconds": INT, "timeoutSeconds": INT,
         "periodSeconds": INT, "successThreshold": INT, "failureThreshold": INT,
         "terminationGracePeriodSeconds": INT}
CONTAINER = {
    "name": STR, "image": STR, "command": STRLIST, "args": STRLIST, "workingDir": STR,
    "ports": ANY, "envFrom": ANY, "env": ANY, "resources": ANY, "resizePolicy": ANY,
    "restartPolicy": STR, "volumeMounts": ANY, "volumeDevices": ANY, "livenessProbe": PROBE,
    "readinessProbe": PROBE, "startupProbe": PROBE,
    "lifecycle": {"postStart": HANDLER, "preStop": HANDLER, "stopSignal": STR},
    "terminationMessagePath": STR, "terminationMessagePolicy": STR, "imagePullPolicy": STR,
    "securityContext": ANY, "stdin": BOOL, "stdinOnce": BOOL, "tty": BOOL,
}
POD_SPEC = {
    "activeDeadlineSeconds": INT, "affinity": ANY, "automountServiceAccountToken": BOOL,
    "containers": [CONTAINER], "dnsConfig": ANY, "dnsPolicy": STR, "enableServiceLinks": BOOL,
    "ephemeralContainers": ANY, "hostAliases": ANY, "hostIPC": BOOL, "hostNetwork": BOOL,
    "hostPID": BOOL, "hostUsers": BOOL, "hostname": STR, "imagePullSecrets": ANY,
    "initContainers": [CONTAINER], "nodeName": STR, "nodeSelector": STRMAP, "os": ANY,
    "overhead": ANY, "preemptionPolicy": STR, "priority": INT, "priorityClassName": STR,
    "readinessGates": ANY, "resourceClaims": ANY, "resources": ANY, "restartPolicy": STR,
    "runtimeClassName": STR, "schedulerName": STR, "schedulingGates": ANY,
    "securityContext": ANY, "serviceAccount": STR, "serviceAccountName": STR,
    "setHostnameAsFQDN": BOOL, "shareProcessNamespace": BOOL, "subdomain": STR,
    "terminationGracePeriodSeconds": INT, "tolerations": ANY,
    "topologySpreadConstraints": ANY, "volumes": ANY,
}
TEMPLATE = {"metadata": META, "spec": POD_SPEC}
DEPLOYMENT_SPEC = {
    "replicas": INT, "selector": ANY, "template": TEMPLATE, "minReadySeconds": INT,
    "revisionHistoryLimit": INT, "paused": BOOL, "progressDeadlineSeconds": INT,
    "strategy": {"type": STR, "rollingUpdate": {"maxUnavailable": INTSTR, "maxSurge": INTSTR}},
}
TOP = {"apiVersion": STR, "kind": STR, "metadata": META, "status": ANY}
SCHEMAS = {
    "Deployment": {**TOP, "spec": DEPLOYMENT_SPEC},
    "Pod": {**TOP, "spec": POD_SPEC},
    "Namespace": {**TOP, "spec": {"finalizers": STRLIST}},
    # The load balancer controller's CRD (elbv2.k8s.aws_ingressclassparams.yaml, v1beta1): its
    # attributes are strings, even numbers, and each list is atomic (no list-type marker).
    "IngressClassParams": {**TOP, "spec": {
        "group": {"name": STR}, "loadBalancerAttributes": [{"key": STR, "value": STR}],
        "scheme": STR, "ipAddressType": STR, "namespaceSelector": ANY, "tags": ANY,
        "inboundCIDRs": STRLIST, "sslPolicy": STR, "subnets": ANY, "certificateArn": STRLIST,
        "listeners": ANY, "minimumLoadBalancerCapacity": ANY, "ipamConfiguration": ANY,
        "targetType": STR, "PrefixListsIDs": STRLIST, "wafv2AclArn": STR,
    }},
}


def field_problems(schema, value, path=""):
    """(unknown fields, values of the wrong type) that `value` names against `schema`."""
    unknown, wrong = [], []
    if value is None or schema == ANY:
        return unknown, wrong
    expected = {STR: (str,), INT: (int,), BOOL: (bool,), INTSTR: (int, str)}
    if isinstance(schema, str) and schema in expected:
        if not isinstance(value, expected[schema]) or (schema != BOOL and isinstance(value, bool)):
            wrong.append(f"{path}: expected {schema}, got {json.dumps(value)}")
    elif schema == STRMAP:
        if not isinstance(value, dict):
            wrong.append(f"{path}: expected a map of strings")
        else:
            wrong += [f"{path}.{k}: expected string, got {json.dumps(v)}"
                      for k, v in value.items() if v is not None and not isinstance(v, str)]
    elif schema == STRLIST:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            wrong.append(f"{path}: expected a list of strings, got {json.dumps(value)}")
    elif isinstance(schema, list):
        if not isinstance(value, list):
            wrong.append(f"{path}: expected a list, got {json.dumps(value)}")
        else:
            for i, item in enumerate(value):
                u, w = field_problems(schema[0], item, f"{path}[{i}]")
                unknown += u
                wrong += w
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            wrong.append(f"{path}: expected an object, got {json.dumps(value)}")
            return unknown, wrong
        for key, item in value.items():
            if key.startswith("$"):  # strategic merge patch directives
                continue
            where = f"{path}.{key}" if path else key
            if key in schema:
                u, w = field_problems(schema[key], item, where)
                unknown += u
                wrong += w
            elif OPEN not in schema:
                unknown.append(where)
    return unknown, wrong

# --- WebSocket (RFC 6455), as kubectl dials exec and port-forward. ---

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
# kernel defaults a pod's `sysctl` prints when the world has no "exec" answer
SYSCTL_DEFAULTS = {
    "net.ipv4.tcp_keepalive_time": "7200", "net.ipv4.tcp_keepalive_intvl": "75",
    "net.ipv4.tcp_keepalive_probes": "9", "net.core.somaxconn": "4096",
}
SPDY_PING = b"\x80\x03\x00\x06"


def ws_send(out, opcode, payload):
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    out.write(head + payload)
    out.flush()


def ws_receive(stream):
    """(opcode, payload) of the next frame, or None at the end of the connection."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(stream.read(2), "big")
    elif n == 127:
        n = int.from_bytes(stream.read(8), "big")
    mask = stream.read(4) if head[1] & 0x80 else b""
    data = stream.read(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return head[0] & 0x0F, data


# what other commands print in a pod, when the world has no "exec" answer
EXEC_DEFAULTS = {
    "ss -ltn": "State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess\n"
               "LISTEN 0      4096               *:8080             *:*          \n",
}


def exec_output(world, command):
    """What the command prints in the pod, and its exit code."""
    answers = {**EXEC_DEFAULTS, **world.get("exec", {})}
    line = " ".join(command)
    if line in answers:
        return answers[line], 0
    if command and command[0] == "sysctl":
        keys = [k for k in command[1:] if not k.startswith("-")]
        if all(k in SYSCTL_DEFAULTS for k in keys):
            return "".join(f"{k} = {SYSCTL_DEFAULTS[k]}\n" for k in keys), 0
        return "".join(f"sysctl: cannot stat /proc/sys/{k.replace('.', '/')}: No such file or directory\n"
                       for k in keys if k not in SYSCTL_DEFAULTS), 255
    return "", 0


class Reply:
    def __init__(self, code, body, content_type="application/json", headers=(), upgrade=None):
        self.code, self.body, self.content_type = code, body, content_type
        self.headers, self.upgrade = list(headers), upgrade


def reply(pair, **kwargs):
    return Reply(pair[0], pair[1], **kwargs)


RESOURCE_PATH = re.compile(
    r"/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?"
)


class Handler(BaseHTTPRequestHandler):
    server_version = "kube-apiserver-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def world_file(self, path):
        """The world a request path is served from, and the API path within it."""
        options = self.server.options
        m = re.fullmatch(r"/clusters/([a-z0-9][a-z0-9-]*)(/.*)?", path)
        if options.worlds and m:
            return os.path.join(options.worlds, m.group(1) + ".json"), m.group(2) or "/"
        return options.world, path

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def dispatch(self, method):
        parts = urllib.parse.urlsplit(self.path)
        self.pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query = dict(self.pairs)
        repeated = {k for k, _ in self.pairs if sum(1 for q, _ in self.pairs if q == k) > 1}
        world_file, path = self.world_file(parts.path)
        self.world_path = world_file
        self.body = self.read_body()
        try:
            world = load(world_file) if world_file else None
        except FileNotFoundError:
            world = None
        if world is None:
            answer = reply(status(404, "NotFound", "the server could not find the requested resource"))
        else:
            time.sleep(float(world.get("delay_seconds", 0)))
            answer = self.answer(method, path.rstrip("/") or "/", query, world)
        if world_file:
            logged = {k: [v for q, v in self.pairs if q == k] if k in repeated else v for k, v in query.items()}
            entry = {"method": method, "path": path, "query": logged, "status": answer.code}
            if method == "PATCH":
                entry["content_type"] = self.headers.get("Content-Type", "")
                entry["body"] = self.body.decode("utf-8", "replace")
            with self.server.lock, open(world_file + ".requests.jsonl", "a") as log:
                log.write(json.dumps(entry) + "\n")
        if answer.upgrade:
            answer.upgrade()
            return
        data = answer.body.encode() if isinstance(answer.body, str) else json.dumps(answer.body).encode()
        self.send_response(answer.code)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def answer(self, method, path, query, world):
        options = self.server.options
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        problem = token_problem(
            token, options.cluster, options.region, options.access_key_id,
            options.secret_access_key, time.time(),
        )
        if problem or world.get("unauthorized"):
            return reply(status(401, "Unauthorized", "Unauthorized"))
        discovery = self.discovery(path)
        if discovery is not None:
            if method != "GET":
                return reply(status(405, "MethodNotAllowed",
                                    "the server does not allow this method on the requested resource"))
            return reply(discovery)
        m = RESOURCE_PATH.fullmatch(path)
        if not m:
            return reply(status(404, "NotFound", "the server could not find the requested resource"))
        group = "" if m.group("core") else m.group("group")
        version = m.group("core") or m.group("version")
        resource, namespace, name, sub = m.group("resource"), m.group("ns"), m.group("name"), m.group("sub")
        known = {r: (k, ns) for (r, k, ns) in RESOURCES.get((group, version), [])}
        subresources = {s: verbs for (s, _, verbs) in SUBRESOURCES.get((group, resource), [])}
        if resource not in known or (sub and sub not in subresources):
            return reply(status(404, "NotFound", "the server could not find the requested resource"))
        kind, namespaced = known[resource]
        if method == "GET":
            if sub in ("exec", "portforward"):
                verb = "create"
            elif name:
                verb = "get"
            else:
                verb = "watch" if query.get("watch") in ("true", "1") else "list"
        elif method == "PATCH" and name and not sub and group not in READ_ONLY_GROUPS:
            verb = "patch"
        else:
            return reply(status(405, "MethodNotAllowed",
                                "the server does not allow this method on the requested resource"))
        rbac_resource = f"{resource}/{sub}" if sub else resource
        for denied_verb, denied_group, denied_resource in world.get("deny", []):
            if (denied_verb, denied_group, denied_resource) == (verb, group, rbac_resource):
                where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
                return reply(status(403, "Forbidden",
                    f'{qualified(rbac_resource, group)}{" " + repr(name) if name else ""} is forbidden: '
                    f'User "elbmedic" cannot {verb} resource "{rbac_resource}" in API group "{group}"{where}',
                    {"kind": resource, **({"name": name} if name else {})}))
        throttle = world.get("throttle", {}).get(resource, 0)
        if throttle:
            with self.server.lock:
                counts = self.server.__dict__.setdefault("throttled", {})
                counts[resource] = counts.get(resource, 0) + 1
                over = counts[resource] <= throttle
            if over:
                return reply(status(429, "TooManyRequests", "Too many requests, please try again later.",
                                    {"retryAfterSeconds": 1}))
        if verb == "watch":
            return reply(status(405, "MethodNotAllowed", "the stand-in does not serve watches"))
        api_version = f"{group}/{version}" if group else version
        if group == "metrics.k8s.io":
            pool = pod_metrics(world, time.time()) if resource == "pods" else []
        else:
            pool = world.get("objects", [])
        objects = [
            o for o in pool
            if o.get("kind") == kind and o.get("apiVersion") == api_version
            and (namespace is None or not namespaced
                 or o.get("metadata", {}).get("namespace") == namespace)
        ]
        if name:
            found = next((o for o in objects if o["metadata"].get("name") == name), None)
            if found is None:
                return reply(not_found(resource, group, name))
            if sub == "log":
                return self.log(world, found, query)
            if sub == "exec":
                return self.exec(world, found)
            if sub == "portforward":
                return self.port_forward(found)
            if method == "PATCH":
                return self.patch(group, resource, kind, found)
            if self.wants_table():
                return reply((200, table([found], query.get("includeObject"), {"resourceVersion": "1"},
                                         time.time())))
            return reply((200, found))
        objects = [
            o for o in objects
            if label_matches(o.get("metadata", {}).get("labels") or {}, query.get("labelSelector"))
            and field_matches(o, query.get("fieldSelector"))
        ]
        objects.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        start = 0
        if query.get("continue"):
            try:
                start = int(base64.urlsafe_b64decode(query["continue"].encode()).decode())
            except Exception:
                return reply(status(410, "Expired", "The provided continue parameter is too old"))
        limit = int(query.get("limit") or 0)
        page = objects[start:start + limit] if limit > 0 else objects[start:]
        end = start + len(page)
        metadata = {"resourceVersion": "1"}
        if end < len(objects):
            metadata["continue"] = base64.urlsafe_b64encode(str(end).encode()).decode()
            metadata["remainingItemCount"] = len(objects) - end
        if self.wants_table() and group not in READ_ONLY_GROUPS:
            return reply((200, table(page, query.get("includeObject"), metadata, time.time())))
        return reply((200, {"kind": f"{kind}List", "apiVersion": api_version,
                            "metadata": metadata, "items": page}))

    def discovery(self, path):
        if path == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-eks-standin"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                for (g, v) in RESOURCES if g
            ]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        m = re.fullmatch(r"/api/(v1)|/apis/([^/]+)/([^/]+)", path)
        if not m:
            return None
        group, version = ("", "v1") if m.group(1) else (m.group(2), m.group(3))
        if (group, version) not in RESOURCES:
            return status(404, "NotFound", "the server could not find the requested resource")
        verbs = ["get", "list"] if group in READ_ONLY_GROUPS else ["get", "list", "patch", "watch"]
        resources = []
        for (r, k, ns) in RESOURCES[(group, version)]:
            resources.append({"name": r, "singularName": k.lower(), "namespaced": ns, "kind": k,
                              "verbs": verbs, "shortNames": SHORT_NAMES.get(r, [])})
            resources += [{"name": f"{r}/{s}", "singularName": "", "namespaced": ns, "kind": sk,
                           "verbs": sv} for (s, sk, sv) in SUBRESOURCES.get((group, r), [])]
        gv = f"{group}/{version}" if group else version
        return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                     "resources": resources}

    def wants_table(self):
        return "as=Table" in self.headers.get("Accept", "")

    def log(self, world, pod, query):
        name = pod["metadata"]["name"]
        containers = [c.get("name") for c in pod.get("spec", {}).get("containers", [])]
        container = query.get("container")
        if container and container not in containers:
            return reply(status(400, "BadRequest", f"container {container} is not valid for pod {name}"))
        if not container:
            if len(containers) > 1:
                return reply(status(400, "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"))
            container = containers[0] if containers else ""
        logs = world.get("logs", {})
        key = f"{pod['metadata'].get('namespace')}/{name}"
        text = logs.get(f"{key}/{container}", logs.get(key, ""))
        if query.get("tailLines", "").isdigit():
            lines = text.splitlines(keepends=True)
            text = "".join(lines[len(lines) - int(query["tailLines"]):]) if int(query["tailLines"]) else ""
        return Reply(200, text, content_type="text/plain")

    def websocket(self, offered_ok):
        """The protocol to speak, or a Reply refusing the upgrade."""
        if self.headers.get("Upgrade", "").lower() != "websocket" or not self.headers.get("Sec-WebSocket-Key"):
            return None, reply(status(400, "BadRequest", "Upgrade request required"))
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        chosen = next((p for p in offered_ok if p in offered), None)
        if chosen is None:
            return None, reply(status(400, "BadRequest",
                f"unable to upgrade: no supported protocol among {offered}, want one of {offered_ok}"))
        return chosen, None

    def switch(self, protocol):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    def exec(self, world, pod):
        name = pod["metadata"]["name"]
        command = [v for k, v in self.pairs if k == "command"]
        containers = [c.get("name") for c in pod.get("spec", {}).get("containers", [])]
        container = dict(self.pairs).get("container") or (containers[0] if containers else "")
        if container not in containers:
            return reply(status(400, "BadRequest", f"container {container} is not valid for pod {name}"))
        if pod.get("status", {}).get("phase") != "Running":
            return reply(status(400, "BadRequest",
                f"unable to upgrade connection: container not found (\"{container}\")"))
        if not command:
            return reply(status(400, "BadRequest", "you must specify at least 1 command"))
        protocol, refused = self.websocket(EXEC_PROTOCOLS)
        if refused:
            return refused
        stdout, code = exec_output(world, command)
        wanted = dict(self.pairs)

        def session():
            self.switch(protocol)
            if stdout and wanted.get("stdout") in ("true", "1"):
                ws_send(self.wfile, 2, b"\x01" + stdout.encode())
            if code == 0:
                result = {"metadata": {}, "status": "Success"}
            else:
                result = {"metadata": {}, "status": "Failure",
                          "message": f"command terminated with non-zero exit code: exit status {code}",
                          "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
            ws_send(self.wfile, 2, b"\x03" + json.dumps(result).encode())
            ws_send(self.wfile, 8, (1000).to_bytes(2, "big"))
            self.hold(until_close=True)

        return Reply(101, "", upgrade=session)

    def port_forward(self, pod):
        if pod.get("status", {}).get("phase") != "Running":
            return reply(status(400, "BadRequest", "unable to upgrade connection: pod is not running"))
        protocol, refused = self.websocket([PORT_FORWARD_PROTOCOL])
        if refused:
            return refused

        def session():
            self.switch(protocol)
            self.hold(until_close=False)

        return Reply(101, "", upgrade=session)

    def hold(self, until_close):
        """Reads the client's frames until it closes: answers WebSocket pings, and the SPDY
        pings that travel in the port-forward tunnel; nothing else is forwarded."""
        self.connection.settimeout(10 if until_close else None)
        try:
            while True:
                frame = ws_receive(self.rfile)
                if frame is None:
                    return
                opcode, data = frame
                if opcode == 8:
                    if not until_close:
                        ws_send(self.wfile, 8, data[:2])
                    return
                if opcode == 9:
                    ws_send(self.wfile, 10, data)
                elif opcode == 2 and data.startswith(SPDY_PING):
                    ws_send(self.wfile, 2, data)
        except (OSError, ValueError):
            return

    def patch(self, group, resource, kind, found):
        query = dict(self.pairs)
        media = self.headers.get("Content-Type", "").split(";")[0].strip()
        patch_type = PATCH_TYPES.get(media)
        accepted = ["application/json-patch+json", "application/merge-patch+json",
                    "application/apply-patch+yaml"]
        if group not in CUSTOM_GROUPS:
            accepted.append("application/strategic-merge-patch+json")
        if patch_type is None or (patch_type == "strategic" and group in CUSTOM_GROUPS):
            return reply(status(415, "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"))
        try:
            body = json.loads(self.body)
        except ValueError as e:
            body = yaml_body(self.body) if patch_type == "apply" else None
            if body is None:
                return reply(status(400, "BadRequest", f"error decoding patch: {e}"))
        manager = query.get("fieldManager") or user_agent_manager(self.headers.get("User-Agent", ""))
        if patch_type == "apply":
            problem = apply_problem(body, query, kind, found)
            if problem:
                return reply(problem)
        shape = patch_shape(patch_type, body)
        if shape:
            return reply(status(400, "BadRequest", shape))
        schema = SCHEMAS.get(kind, {**TOP, OPEN: ANY})
        if patch_type == "json":
            unknown, wrong = [], []
        else:
            unknown, wrong = field_problems(schema, body)
        if wrong:
            return reply(status(400, "BadRequest", "; ".join(wrong)))
        validation = query.get("fieldValidation", "Warn")
        if unknown and validation == "Strict":
            return reply(status(400, "BadRequest", "strict decoding error: " + ", ".join(
                f'unknown field "{u}"' for u in unknown)))
        headers = []
        if unknown and validation != "Ignore":
            headers = [("Warning", f'299 - "unknown field \\"{u}\\""') for u in unknown]
        name, namespace = found["metadata"]["name"], found["metadata"].get("namespace")
        with self.server.lock:
            world = load(self.world_path)
            objects = world.get("objects", [])
            at = next((i for i, o in enumerate(objects)
                       if o.get("kind") == found.get("kind") and o.get("apiVersion") == found.get("apiVersion")
                       and o["metadata"].get("name") == name and o["metadata"].get("namespace") == namespace), None)
            if at is None:
                return reply(not_found(resource, group, name))
            current = objects[at]
            wanted_version = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
            if wanted_version and wanted_version != current["metadata"].get("resourceVersion"):
                return reply(status(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": '
                    "the object has been modified; please apply your changes to the latest version and try again"))
            try:
                if patch_type == "apply":
                    patched, _ = field_manager.apply(current, body, manager, query.get("force") == "true")
                elif patch_type == "merge":
                    patched = merge_patch(current, body)
                elif patch_type == "strategic":
                    patched = strategic_merge(current, body)
                else:
                    patched = json_patch(current, body)
            except PatchError as e:
                return reply(status(422, "Invalid", str(e)))
            except field_manager.Conflict as conflict:
                return reply(conflict.status())
            if patch_type != "apply":
                patched = field_manager.update(current, patched, manager)
            unknown, wrong = field_problems(schema, patched)
            if wrong:
                return reply(status(400, "BadRequest", "; ".join(wrong)))
            same = {k: patched.get(k) for k in ("apiVersion", "kind")} == \
                {k: current.get(k) for k in ("apiVersion", "kind")}
            if not same or (patched.get("metadata") or {}).get("name") != name \
                    or (patched.get("metadata") or {}).get("namespace") != namespace:
                return reply(status(422, "Invalid",
                    f'{kind}.{group or "core"} "{name}" is invalid: the patch changes the object\'s kind, name or namespace'))
            denial = admission(world, kind, namespace, name)
            if denial:
                return reply(denial)
            if patched != current:
                meta = patched["metadata"]
                meta["resourceVersion"] = str(int(current["metadata"].get("resourceVersion", "1") or 1) + 1)
                if patched.get("spec") != current.get("spec"):
                    meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
                if query.get("dryRun") != "All":
                    objects[at] = patched
                    objects.extend(controller_events(world, patched))
                    save(self.world_path, world)
        return reply((200, patched), headers=headers)


def yaml_body(raw):
    """An apply body in YAML (JSON is tried first: kubectl and kube-rs send JSON)."""
    try:
        import yaml
    except ImportError:
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return None


def user_agent_manager(agent):
    """The field manager the API server names a client without `fieldManager`: its
    User-Agent's program name (`kubectl/v1.32.3 (linux/amd64)` -> `kubectl`)."""
    return (agent.split("/")[0] or "unknown").strip()


def apply_problem(body, query, kind, found):
    """Why a server-side apply is refused before it is tried, as the API server answers it."""
    if not query.get("fieldManager"):
        return status(422, "Invalid",
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
    if query.get("force") not in (None, "true", "false"):
        return status(400, "BadRequest", f'force: Invalid value: "{query.get("force")}"')
    if not isinstance(body, dict) or body.get("kind") != kind \
            or body.get("apiVersion") != found.get("apiVersion"):
        return status(400, "BadRequest", "the apply body must name the object's apiVersion and kind")
    meta = body.get("metadata") or {}
    if meta.get("name") != found["metadata"]["name"] \
            or meta.get("namespace", found["metadata"].get("namespace")) != found["metadata"].get("namespace"):
        return status(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                      % (meta.get("name"), found["metadata"]["name"]))
    if "managedFields" in meta:
        return status(400, "BadRequest", "metadata.managedFields must be nil")
    return None


def admission(world, kind, namespace, name):
    """The world's admission webhooks: each denies a change to the objects it names (every
    object of a kind without a name), as the API server relays the denial; a 422 is a
    validation failure, anything else a webhook's own code (403 from controller-runtime)."""
    for hook in world.get("admission", []):
        if hook.get("kind") != kind or hook.get("name") not in (None, name) \
                or hook.get("namespace") not in (None, namespace):
            continue
        code = int(hook.get("code", 403))
        if code == 422:
            return status(422, "Invalid", f'{kind} "{name}" is invalid: {hook.get("message", "")}')
        reason = {403: "Forbidden", 400: "BadRequest"}.get(code, "Forbidden")
        return status(code, reason,
            f'admission webhook "{hook.get("webhook", "validate.example.com")}" denied the request: {hook.get("message", "")}')
    return None


def controller_events(world, changed):
    """The Events a controller posts about an object after it changed, as the world's
    `on_change` hooks say (a reconcile failure, a sync): each hook fires once per change."""
    meta = changed["metadata"]
    posted = []
    for hook in world.get("on_change", []):
        if hook.get("kind") != changed.get("kind") or hook.get("name") != meta.get("name") \
                or hook.get("namespace") != meta.get("namespace"):
            continue
        for event in hook.get("events", []):
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            posted.append({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f'{meta["name"]}.{uuid.uuid4().hex[:16]}',
                             "namespace": meta.get("namespace")},
                "involvedObject": {"apiVersion": changed.get("apiVersion"), "kind": changed.get("kind"),
                                   "name": meta["name"], "namespace": meta.get("namespace")},
                "reason": event["reason"], "type": event.get("type", "Normal"),
                "message": event.get("message", ""), "count": 1,
                "firstTimestamp": now, "lastTimestamp": now,
                "source": {"component": event.get("component", "service-controller")},
            })
    return posted


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, world):
    scratch = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(scratch, "w") as f:
        json.dump(world, f)
    os.replace(scratch, path)


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--cluster", "--region", "--access-key-id", "--secret-access-key"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--world")
    # One world file per cluster, served under /clusters/NAME/.
    parser.add_argument("--worlds")
    # TLS, as EKS serves it (kubectl sends no bearer token over plain HTTP).
    parser.add_argument("--cert")
    parser.add_argument("--key")
    options = parser.parse_args()
    if not options.world and not options.worlds:
        parser.error("--world or --worlds is required")
    # A client opens a connection per concurrent read (eight at once, more for a group);
    # socketserver's default backlog of 5 would drop the rest's SYNs, which the kernel retries
    # a second later. An API server's backlog is far larger.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.options = options
    server.lock = threading.Lock()
    if options.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(options.cert, options.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
