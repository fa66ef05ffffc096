#!/usr/bin/env python3
"""Who may invoke the functions, as AWS will see it: the SAM template transformed by the real
SAM translator (the code CloudFormation runs for AWS::Serverless-2016-10-31).

remediate applies plans. Its envelope (the SNS record, its TopicArn) can be forged by anyone
who may call lambda:InvokeFunction, so the function's resource policy is the real control: it
must let exactly SNS invoke it, for exactly the remediation topic, and no policy in the stack
may grant lambda:InvokeFunction to anyone else. diagnose likewise takes only its alarm topic
(directly, or with AlarmQueue=on through the alarm queue that only the topic may send to), and
its follow-up queue (whose policy lets only diagnose send to it).

Usage: check-invoke-permissions.py TEMPLATE   (exit 1 naming what is wrong)
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# The topic each function may be invoked from (contract of the template).
EXPECTED = {"DiagnoseFunction": "AlarmTopic", "RemediateFunction": "RemediationTopic"}


class NoManagedPolicies:
    def load(self):
        return {}


def invoke_grants(node, path="Resources"):
    """Every place a policy document allows lambda:InvokeFunction (or a wildcard over it)."""
    found = []
    if isinstance(node, dict):
        if node.get("Effect") == "Allow":
            actions = node.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if any(a in ("*", "lambda:*", "lambda:InvokeFunction", "lambda:Invoke*") for a in actions):
                found.append(path)
        for key, value in node.items():
            found += invoke_grants(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += invoke_grants(value, f"{path}[{index}]")
    return found


def main(path):
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    template = yaml_parse(open(path).read())
    for name in EXPECTED:
        # The translator wants an S3 location; sam build puts one there.
        template["Resources"][name]["Properties"]["CodeUri"] = "s3://bucket/key"
    out = transform(template, {}, NoManagedPolicies())
    problems = []
    permissions = {n: r["Properties"] for n, r in out["Resources"].items() if r["Type"] == "AWS::Lambda::Permission"}
    for function, topic in EXPECTED.items():
        mine = [p for p in permissions.values() if p.get("FunctionName") == {"Ref": function}]
        wanted = {"Action": "lambda:InvokeFunction", "FunctionName": {"Ref": function},
                  "Principal": "sns.amazonaws.com", "SourceArn": {"Ref": topic}}
        if mine != [wanted]:
            problems.append(f"{function} may be invoked by {json.dumps(mine)}; expected only {json.dumps(wanted)}")
    strangers = [n for n, p in permissions.items() if p.get("FunctionName") not in [{"Ref": f} for f in EXPECTED]]
    if strangers:
        problems.append(f"permissions for other functions: {strangers}")
    mappings = sorted(
        ((r.get("Condition"), r["Properties"]) for r in out["Resources"].values()
         if r["Type"] == "AWS::Lambda::EventSourceMapping"),
        key=lambda m: json.dumps(m[1]["EventSourceArn"]))
    wanted_mappings = [(condition, {"FunctionName": {"Ref": "DiagnoseFunction"},
                                    "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]},
                                    "FunctionResponseTypes": ["ReportBatchItemFailures"]})
                       for condition, queue in [("UsesAlarmQueue", "AlarmQueueResource"), (None, "FollowUpQueue")]]
    if len(mappings) != len(wanted_mappings) or any(
            got[0] != want[0] or any(got[1].get(k) != v for k, v in want[1].items())
            for got, want in zip(mappings, wanted_mappings)):
        problems.append(f"event source mappings {json.dumps(mappings)}; expected only the follow-up queue and (AlarmQueue=on) the alarm queue to diagnose, {json.dumps(wanted_mappings)}")
    # With the alarm queue on, SNS must not invoke diagnose too (every alarm would be diagnosed
    # twice), and only the alarm topic may send to the queue.
    direct = [r for r in out["Resources"].values() if r["Type"] == "AWS::Lambda::Permission"
              and r["Properties"].get("FunctionName") == {"Ref": "DiagnoseFunction"}]
    if any(r.get("Condition") != "InvokedBySns" for r in direct):
        problems.append("the alarm topic invokes diagnose even when the alarm queue is on")
    policy = out["Resources"].get("AlarmQueuePolicy", {}).get("Properties", {}).get("PolicyDocument", {})
    senders = [st for st in policy.get("Statement", []) if st.get("Effect") == "Allow"]
    if senders != [{"Sid": "AlarmTopicSends", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["AlarmQueueResource", "Arn"]},
                    "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": "AlarmTopic"}}}}]:
        problems.append(f"the alarm queue admits {json.dumps(senders)}; expected only the alarm topic")
    grants = invoke_grants(out["Resources"])
    if grants:
        problems.append(f"policies granting lambda:InvokeFunction: {grants}")
    for problem in problems:
        print(f"invoke permissions: {problem}", file=sys.stderr)
    if not problems:
        print("invoke permissions: diagnose only from the alarm topic (directly, or through the alarm queue it alone feeds) and its follow-up queue, remediate only from the remediation topic, no other grant")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "infra/template.yaml"))
