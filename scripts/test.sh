#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs every check.
# Usage: scripts/test.sh        (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Keep build output outside the clone, so repeated runs (and CI's fresh clones) reuse the
# compiled dependencies instead of rebuilding them every time.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/elbmedic-target}"
# Golden files are compared, never rewritten, by the suite.
export INSTA_UPDATE=no
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "toolchain: $(cargo --version)"
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# The Python side of the tests (a moto server), in a virtualenv kept outside the clone and
# rebuilt whenever scripts/requirements-test.txt changes.
step "test virtualenv (moto)"
venv="${ELBMEDIC_VENV:-$HOME/.cache/elbmedic-venv}"
stamp="$venv/.requirements.sha256"
want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import moto; print("moto", moto.__version__)'
export ELBMEDIC_MOTO_SERVER="$venv/bin/moto_server"

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

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "benchmark compiles (run it with: cargo bench -p elbmedic-engine --bench diagnose)"
cargo bench -p elbmedic-engine --bench diagnose --locked --no-run

step "demo runs"
cargo run --quiet --locked -- demo | head -1

# Last, so the runner's summary line closes the log.
step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
