#!/usr/bin/env python3
"""Runs every `aws` command of every scenario's report, as the report prints it, with the real
AWS CLI, and checks that the CLI accepts it: the standard is that every command a report prints
is one the real `aws` accepts as pasted.

- The commands: every line of a report's `"command"` fields (the fix's commands, its durable
  change, anything else so named) that runs `aws`, and `aws ...` between backquotes in its text.
  A line is run with bash as printed, pipelines included.
- Where they go: `AWS_ENDPOINT_URL` points the CLI at a recorder on 127.0.0.1 that answers every
  call with an AWS error (`elbmedicRecorded`). The CLI has then parsed the line, checked every
  parameter against the service model and signed the call: exactly what "accepted" means. No
  command reaches AWS, and nothing changes anywhere.
- A command fails if bash cannot parse it, if the CLI exits without reaching the recorder
  (an unknown option, a parameter the model rejects, a usage text), or if it runs over 30 s.

A self-test first proves the check can fail: broken commands (an unknown option, a missing
required parameter, a value of the wrong type, a bad shorthand) must be caught, good ones must
pass.

Usage: check-aws.py ELBMEDIC_BINARY [--scenario NAME ...] [-v]
Needs the AWS CLI: ELBMEDIC_AWS_CLI, else ~/.cache/elbmedic-awscli/bin/aws, else PATH. Without it
the check skips with a message; under CI=true it fails instead.
"""

import argparse
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

AWS_WORD = re.compile(r"^aws\s")
MARKER = "elbmedicRecorded"


class Recorder(http.server.ThreadingHTTPServer):
    """Answers every call with an AWS error in the protocol's shape, and remembers it."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.calls = []
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        target = self.headers.get("X-Amz-Target") or ""
        action = re.search(r"(?:^|&)Action=([A-Za-z0-9]+)", body)
        with self.server.lock:
            self.server.calls.append(target or (action.group(1) if action else self.path))
        if target or "json" in (self.headers.get("Content-Type") or ""):
            payload = json.dumps({"__type": MARKER, "message": "recorded by check-aws"}).encode()
            content_type = "application/x-amz-json-1.1"
        else:
            payload = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{MARKER}</Code>"
                       f"<Message>recorded by check-aws</Message></Error><RequestId>0</RequestId>"
                       f"</ErrorResponse>").encode()
            content_type = "text/xml"
        self.send_response(400)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = do_PUT = do_DELETE = _answer


def find_cli():
    for candidate in (os.environ.get("ELBMEDIC_AWS_CLI"), os.path.expanduser("~/.cache/elbmedic-awscli/bin/aws"),
                      shutil.which("aws")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def aws_lines(text):
    return [line.strip() for line in text.splitlines() if AWS_WORD.match(line.strip())]


def commands_of(report):
    found = []

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "command" and isinstance(item, str):
                    found.extend(aws_lines(item))
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.extend(span.strip() for span in re.findall(r"`([^`\n]+)`", value) if AWS_WORD.match(span.strip()))

    walk(report)
    return list(dict.fromkeys(found))


def run(line, cli, endpoint):
    """(ok, why) for one printed line."""
    parsed = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True, timeout=10)
    if parsed.returncode != 0:
        return False, f"bash cannot parse it: {parsed.stderr.strip()}"
    bindir = tempfile.mkdtemp(prefix="check-aws-")
    try:
        os.symlink(cli, os.path.join(bindir, "aws"))
        env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": bindir, "AWS_ENDPOINT_URL": endpoint,
               "AWS_ACCESS_KEY_ID": "AKIDCHECKAWS", "AWS_SECRET_ACCESS_KEY": "check-aws",
               "AWS_DEFAULT_REGION": "eu-west-1", "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard",
               "AWS_PAGER": ""}
        try:
            done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False, "ran over 30 s"
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
    output = done.stdout + done.stderr
    if MARKER in output:
        return True, "accepted (the call reached the recorder)"
    return False, f"exit {done.returncode}: {' '.join(output.split())[:300]}"


SELF_TEST_BROKEN = [
    "aws elbv2 modify-listener-attributes --region eu-west-1 --listener-arn arn:aws:x --idle-timeout 700",
    "aws elbv2 modify-listener-attributes --region eu-west-1 --attributes Key=tcp.idle_timeout.seconds,Value=700",
    "aws ec2 create-network-acl-entry --region eu-west-1 --network-acl-id acl-1 --rule-number ninety --protocol 6 "
    "--rule-action allow --ingress --cidr-block 10.0.0.0/16 --port-range From=1024,To=65535",
    "aws elbv2 modify-target-group-attributes --region eu-west-1 --target-group-arn arn:aws:x --attributes Key=a,Val=b",
    "aws elbv2 describe-listener-attributes --region eu-west-1 --listener-arn 'unterminated",
]
SELF_TEST_GOOD = [
    "aws elbv2 modify-listener-attributes --region eu-west-1 --listener-arn arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/net/n/0123456789abcdef/0123456789abcdef --attributes Key=tcp.idle_timeout.seconds,Value=700",
    "aws ec2 create-network-acl-entry --region eu-west-1 --network-acl-id acl-1 --rule-number 90 --protocol 6 "
    "--rule-action allow --ingress --ipv6-cidr-block 2600:1f18::/56 --port-range From=1024,To=65535",
    "aws elb modify-load-balancer-attributes --region eu-west-1 --load-balancer-name n "
    "--load-balancer-attributes '{\"ConnectionSettings\":{\"IdleTimeout\":120}}'",
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--scenario", action="append")
    parser.add_argument("-v", action="store_true")
    args = parser.parse_args()
    cli = find_cli()
    if not cli:
        print("check-aws: no AWS CLI (set ELBMEDIC_AWS_CLI)", file=sys.stderr)
        return 1 if os.environ.get("CI") == "true" else 0
    recorder = Recorder()
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{recorder.server_address[1]}"
    print(f"aws: {cli}; recorder at {endpoint}")
    failures = 0
    caught = sum(1 for line in SELF_TEST_BROKEN if not run(line, cli, endpoint)[0])
    passed = sum(1 for line in SELF_TEST_GOOD if run(line, cli, endpoint)[0])
    print(f"self-test: {caught} of {len(SELF_TEST_BROKEN)} broken commands caught, "
          f"{passed} of {len(SELF_TEST_GOOD)} good ones passed")
    if caught != len(SELF_TEST_BROKEN) or passed != len(SELF_TEST_GOOD):
        for line in SELF_TEST_BROKEN + SELF_TEST_GOOD:
            print(f"  {run(line, cli, endpoint)}  {line}")
        return 1
    listed = subprocess.run([args.binary, "demo", "--list"], capture_output=True, text=True, timeout=60, check=True)
    names = args.scenario or [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    started, total, per = time.time(), 0, {}
    for name in names:
        out = subprocess.run([args.binary, "demo", "--scenario", name, "--format", "json"], capture_output=True,
                             text=True, timeout=60)
        report = json.loads(out.stdout)
        lines = commands_of(report)
        per[name] = len(lines)
        for line in lines:
            total += 1
            ok, why = run(line, cli, endpoint)
            if not ok:
                failures += 1
            if not ok or args.v:
                print(f"{'ok  ' if ok else 'FAIL'} {name:32} {line}\n       {why}")
    recorder.shutdown()
    print("commands per scenario: " + ", ".join(f"{n} {c}" for n, c in per.items()))
    print(f"{total - failures} of {total} aws commands from {len(names)} reports accepted by the AWS CLI "
          f"({time.time() - started:.1f} s, {len(recorder.calls)} calls recorded)")
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
