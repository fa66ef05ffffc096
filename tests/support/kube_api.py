#!/usr/bin/env python3
"""A stand-in for an EKS cluster's Kubernetes API server, on 127.0.0.1 only, for the tests.

No kube-apiserver can run here (none is packaged for Debian or PyPI), so this serves what
elbmedic reads, in the API's own JSON shapes, and is proven with the real `kubectl`:
- reads (GET) of the kinds elbmedic's ClusterRole allows, namespaced and cluster-wide, one
  object or a list, with `labelSelector`, `fieldSelector`, `limit` and `continue`;
- legacy discovery (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`), which kubectl needs;
- both `v1` Events and `events.k8s.io/v1` Events;
- authentication as EKS does it: the bearer token is `k8s-aws-v1.` + base64url (no padding)
  of a presigned STS GetCallerIdentity URL. The URL must name the partition's regional STS
  host, sign `host;x-k8s-aws-id` with this cluster's name, be at most 15 minutes old, and
  carry a SigV4 signature that this file recomputes with the test credentials (its own
  implementation, independent of the signer under test). Anything else is a 401.
- authorization as RBAC answers it: a (verb, group, resource) the world denies is a 403 with
  the API server's message.

Usage: kube_api.py --world WORLD.json --cluster NAME --region REGION
                   --access-key-id AKID --secret-access-key SECRET [--cert PEM --key PEM]
Prints `PORT <n>` on its first line once it listens. The world file holds
{"objects": [...], "deny": [["list", "", "pods"], ...], "delay_seconds": 0}; it is read again
on every request, so a test can change it while the server runs. Every request is appended to
WORLD.requests.jsonl (method, path, query, status), tokens excluded.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import re
import ssl
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class Handler(BaseHTTPRequestHandler):
    server_version = "kube-apiserver-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def world(self):
        with open(self.server.options.world) as f:
            return json.load(f)

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        world = self.world()
        time.sleep(float(world.get("delay_seconds", 0)))
        code, body = self.answer(parts.path.rstrip("/") or "/", query, world)
        with open(self.server.options.world + ".requests.jsonl", "a") as log:
            log.write(json.dumps({"path": parts.path, "query": query, "status": code}) + "\n")
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self, path, query, world):
        options = self.server.options
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        problem = token_problem(
            token, options.cluster, options.region, options.access_key_id,
            options.secret_access_key, time.time(),
        )
        if problem or world.get("unauthorized"):
            return status(401, "Unauthorized", "Unauthorized")
        if path == "/version":
            return 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-eks-standin"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                for (g, v) in RESOURCES if g
            ]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        m = re.fullmatch(r"/api/(v1)|/apis/([^/]+)/([^/]+)", path)
        if m:
            group, version = ("", "v1") if m.group(1) else (m.group(2), m.group(3))
            if (group, version) not in RESOURCES:
                return status(404, "NotFound", "the server could not find the requested resource")
            resources = [
                {"name": r, "singularName": k.lower(), "namespaced": ns, "kind": k,
                 "verbs": ["get", "list", "watch"], "shortNames": SHORT_NAMES.get(r, [])}
                for (r, k, ns) in RESOURCES[(group, version)]
            ]
            gv = f"{group}/{version}" if group else version
            return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                         "groupVersion": gv, "resources": resources}
        m = re.fullmatch(
            r"/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
            r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?",
            path,
        )
        if not m:
            return status(404, "NotFound", "the server could not find the requested resource")
        group = "" if m.group("core") else m.group("group")
        version = m.group("core") or m.group("version")
        resource, namespace, name = m.group("resource"), m.group("ns"), m.group("name")
        if resource == "namespaces" and namespace and name is None and group == "":
            # /api/v1/namespaces/NAME: one namespace.
            resource, name, namespace = "namespaces", namespace, None
        known = {r: (k, ns) for (r, k, ns) in RESOURCES.get((group, version), [])}
        if resource not in known:
            return status(404, "NotFound", "the server could not find the requested resource")
        kind, namespaced = known[resource]
        verb = "get" if name else "list"
        for denied_verb, denied_group, denied_resource in world.get("deny", []):
            if (denied_verb, denied_group, denied_resource) == (verb, group, resource):
                where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
                return status(403, "Forbidden",
                    f'{resource}{"." + group if group else ""}{" " + repr(name) if name else ""} is forbidden: '
                    f'User "elbmedic" cannot {verb} resource "{resource}" in API group "{group}"{where}',
                    {"kind": resource, **({"name": name} if name else {})})
        api_version = f"{group}/{version}" if group else version
        objects = [
            o for o in world.get("objects", [])
            if o.get("kind") == kind and o.get("apiVersion") == api_version
            and (namespace is None or not namespaced
                 or o.get("metadata", {}).get("namespace") == namespace)
        ]
        if name:
            for o in objects:
                if o["metadata"].get("name") == name:
                    return 200, o
            return status(404, "NotFound", f'{resource} "{name}" not found',
                          {"name": name, "kind": resource})
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
                return status(410, "Expired", "The provided continue parameter is too old")
        limit = int(query.get("limit") or 0)
        page = objects[start:start + limit] if limit > 0 else objects[start:]
        end = start + len(page)
        metadata = {"resourceVersion": "1"}
        if end < len(objects):
            metadata["continue"] = base64.urlsafe_b64encode(str(end).encode()).decode()
            metadata["remainingItemCount"] = len(objects) - end
        return 200, {"kind": f"{kind}List", "apiVersion": api_version,
                     "metadata": metadata, "items": page}


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--world", "--cluster", "--region", "--access-key-id", "--secret-access-key"):
        parser.add_argument(flag, required=True)
    # TLS, as EKS serves it (kubectl sends no bearer token over plain HTTP).
    parser.add_argument("--cert")
    parser.add_argument("--key")
    options = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.options = options
    if options.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(options.cert, options.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
