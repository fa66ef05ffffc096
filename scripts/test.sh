#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs every check.
# Usage: scripts/test.sh        (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%5ss] %s\n' "$SECONDS" "$*"; }

# Keep build output outside the clone, so repeated runs (and CI's fresh clones) reuse the
# compiled dependencies instead of rebuilding them every time.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/elbmedic-target}"
# No incremental caches: a suite run rebuilds the workspace crates once, and their caches
# (gigabytes per edit) would only fill the shared target directory's disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Every fresh clone builds the workspace crates anew, under new hashes: drop the ones older
# than a day so the shared target directory does not grow with each run (dependencies stay).
if [ -d "$CARGO_TARGET_DIR/debug/deps" ]; then
  find "$CARGO_TARGET_DIR/debug/deps" -name '*elbmedic*' -mtime +1 -delete 2>/dev/null || true
fi
# Golden files are compared, never rewritten, by the suite.
export INSTA_UPDATE=no
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "toolchain: $(cargo --version)"
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# Python tools in virtualenvs kept outside the clone, each rebuilt whenever its requirements
# file changes: moto, cfn-lint and cargo-lambda for the tests; checkov and the SAM CLI each on
# their own, since they pin their own versions of boto3 and friends.
venv_for() { # venv_for NAME REQUIREMENTS -> prints the virtualenv's path
  local venv="$HOME/.cache/elbmedic-$1" stamp want
  stamp="$venv/.requirements.sha256"
  want=$(sha256sum "$2" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing $2 into $venv" >&2
    rm -rf "$venv"
    # Explicit failures: callers may test this function, which turns `set -e` off inside it.
    python3 -m venv "$venv" >&2 || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$2" >&2 || { rm -rf "$venv"; return 1; }
    echo "$want" > "$stamp"
  fi
  echo "$venv"
}
step "test virtualenvs (moto, cfn-lint, cargo-lambda; checkov; SAM CLI)"
venv="${ELBMEDIC_VENV:-$(venv_for venv scripts/requirements-test.txt)}"
checkov_venv=$(venv_for checkov scripts/requirements-checkov.txt)
sam_venv=$(venv_for sam scripts/requirements-sam.txt)
"$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'
export ELBMEDIC_MOTO_SERVER="$venv/bin/moto_server"
# cargo-lambda and zig, for the Lambda build below.
export PATH="$venv/bin:$PATH"

# The real clients the Kubernetes stand-in is proven with: the AWS CLI (its token) and Debian's
# kubectl, installed here when absent; without them that test skips, and under CI it fails.
step "real clients: aws (eks get-token) and kubectl"
if awscli_venv=$(venv_for awscli scripts/requirements-awscli.txt); then
  export ELBMEDIC_AWS_CLI="$awscli_venv/bin/aws"
fi
if ! command -v kubectl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's kubectl" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubectl openssl; } >&2 \
    || echo "could not install kubectl" >&2
fi
"${ELBMEDIC_AWS_CLI:-aws}" --version || true
kubectl version --client 2>/dev/null | head -1 || true

step "fixtures: events/ matches events/generate.py"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 events/generate.py --out "$scratch"
if ! diff -r -x generate.py -x __pycache__ "$scratch" events >/dev/null; then
  diff -r -x generate.py -x __pycache__ "$scratch" events | head -20
  echo "events/ is out of date: run python3 events/generate.py and review the diff" >&2
  exit 1
fi

step "format"
cargo fmt --all -- --check

step "shape: no function over 100 lines, handlers under 80, no Result<_, String> (scripts/shape.py)"
python3 scripts/shape.py

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "benchmark compiles (run it with: cargo bench -p elbmedic-engine --bench diagnose)"
cargo bench -p elbmedic-engine --bench diagnose --locked --no-run

step "templates: cfn-lint"
cfn-lint infra/template.yaml infra/alarms.yaml infra/member-role.yaml

step "templates: who may invoke the functions (the real SAM translator)"
"$sam_venv/bin/python" scripts/check-invoke-permissions.py infra/template.yaml

step "templates: checkov (offline; every skip is justified in the template)"
"$checkov_venv/bin/checkov" --skip-download --quiet --compact --framework cloudformation \
  -f infra/template.yaml -f infra/alarms.yaml -f infra/member-role.yaml

# The artifacts SAM deploys, built as a user builds them: `sam build` runs `cargo lambda build
# --release --arm64` in each function's package. The arm64 standard library is installed if
# this machine lacks it. SAM's output goes to a scratch folder, not into the clone.
step "Lambda build: sam build (cargo lambda build --release --arm64, both functions)"
rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$' || rustup target add aarch64-unknown-linux-gnu
(cd infra && SAM_CLI_TELEMETRY=0 "$sam_venv/bin/sam" build --build-dir "$scratch/sam-build")
ls -l "$scratch"/sam-build/*/bootstrap

# The tests are built before the demo runs, and the demo runs the binary they built: `cargo
# run` alone would resolve the SDK's features without the test-only ones (aws-smithy-mocks
# turns on `test-util`) and compile every AWS crate a second time.
step "tests: build"
if cargo nextest --version >/dev/null 2>&1; then
  build_tests() { cargo nextest run --workspace --locked --no-run; }
  run_tests() { cargo nextest run --workspace --locked --no-fail-fast; }
else
  build_tests() { cargo test --workspace --locked --no-run; }
  run_tests() { cargo test --workspace --locked --no-fail-fast; }
fi
build_tests

step "demo runs (the README's first command, from the binary just built)"
"$CARGO_TARGET_DIR/debug/elbmedic" demo | head -1

# Every scenario's HTML report opened in a real browser: Debian's Chromium, installed here when
# absent, driven by playwright with no browser download. Without a browser the check skips
# with a message; under CI=true (.ci/run) it fails instead.
step "HTML reports in headless Chromium"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >&2 \
    || echo "could not install chromium" >&2
fi
if browser_venv=$(venv_for browser scripts/requirements-browser.txt); then
  "$browser_venv/bin/python" scripts/check-html.py "$CARGO_TARGET_DIR/debug/elbmedic"
else
  python3 scripts/check-html.py "$CARGO_TARGET_DIR/debug/elbmedic"
fi

# Every kubectl command of every scenario's report, run as printed with Debian's kubectl
# (installed above) against the Kubernetes API stand-in, its token from the AWS CLI. Without
# kubectl, openssl or the AWS CLI the check skips with a message; under CI=true it fails instead.
step "kubectl commands of the reports against the Kubernetes API stand-in"
python3 scripts/check-kubectl.py "$CARGO_TARGET_DIR/debug/elbmedic"

# Every aws command of every scenario's report, run as printed with the real AWS CLI against a
# recorder on 127.0.0.1 that answers every call with an error: accepted means parsed, validated
# against the service model and sent. Nothing reaches AWS.
step "aws commands of the reports through the real AWS CLI"
python3 scripts/check-aws.py "$CARGO_TARGET_DIR/debug/elbmedic"

# Last, so the runner's summary line closes the log.
step "tests"
run_tests
