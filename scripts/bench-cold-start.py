#!/usr/bin/env python3
"""Cold-start init time of the Lambda binaries: process start to the first poll of the Runtime
API (GET .../invocation/next), which is when Lambda's init phase ends for a custom runtime.

Each run starts a binary against a local Runtime API on 127.0.0.1, takes the time of its first
poll, and kills it. Prints a Markdown table (size, min, median, p90, max) for docs/performance.md.

Usage: scripts/bench-cold-start.py [--runs N] BOOTSTRAP [BOOTSTRAP ...]
Build host-runnable binaries first, e.g.:
  cargo lambda build --release --x86-64 -p elbmedic-diagnose -p elbmedic-remediate \\
    --lambda-dir "$CARGO_TARGET_DIR/lambda-x86_64"
"""

import argparse
import http.server
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

polls: "queue.Queue[float]" = queue.Queue()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the standard library's name)
        if self.path.endswith("/runtime/invocation/next"):
            polls.put(time.perf_counter())
        # No invocation is ever handed out: the process is killed once it has polled.
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def measure(binary: str, port: int, runs: int) -> list:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "eu-west-1",
        "REPORT_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:elbmedic-reports",
        "RUST_LOG": "error",
    }
    times = []
    for _ in range(runs + 1):  # the first run warms the page cache and is not counted
        while not polls.empty():
            polls.get_nowait()
        started = time.perf_counter()
        child = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            polled = polls.get(timeout=10)
        except queue.Empty:
            child.kill()
            sys.exit(f"{binary} did not poll the Runtime API within 10 s")
        child.kill()
        child.wait()
        times.append((polled - started) * 1000)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print(f"{args.runs} runs each, process start to first Runtime API poll\n")
    print("| binary | size | min | median | p90 | max |")
    print("|---|---|---|---|---|---|")
    for binary in args.binaries:
        times = sorted(measure(binary, port, args.runs))
        p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
        name = os.path.basename(binary)
        if name == "bootstrap":  # cargo-lambda's layout: lambda/NAME/bootstrap
            name = os.path.basename(os.path.dirname(binary))
        size = os.path.getsize(binary) / 1e6
        print(
            f"| {name} | {size:.1f} MB | {times[0]:.1f} ms | {statistics.median(times):.1f} ms "
            f"| {p90:.1f} ms | {times[-1]:.1f} ms |"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
