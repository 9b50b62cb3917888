# shellcheck shell=bash disable=SC2034  # (its variables are for the scripts that source it)
# Sourced by every bash script here (and by .ci/run), from any folder of scripts/, as
#   # shellcheck source=scripts/lib.sh
#   source "$(dirname "$0")/../lib.sh"
# (`shellcheck -x` from the repository's root then follows it), so that what each of them used
# to repeat lives once:
#  - strict mode (set -euo pipefail); a script that records a failure and goes on says `set +e`;
#  - the working folder: the repository's root, found from this file's own place (no git needed),
#    so that a script's relative paths (www/data/…, tests/browser/…, dist/) hold at any depth;
#  - CARGO_TARGET_DIR: one build folder outside the clone, shared by every script, CI and
#    `trunk build` runs from them (default ~/.cache/tabdiffusion/target), and BIN, the native
#    release binary in it;
#  - CACHE: where the tools, downloads and venvs outside the clone go ($TABDIFFUSION_CACHE,
#    which `tabdiffusion data` reads too; default ~/.cache/tabdiffusion);
#  - PY: the PyTorch + diffusers reference venv's python ($REFERENCE_PYTHON, default
#    .venv-ref/bin/python);
#  - helpers: say (a heading on stderr), build and build_variant (release builds of the native
#    binary), toolchain (a Rust toolchain from rustup), prepared (a dataset under www/data), tag
#    and medians (JSON lines of `bench --json`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tabdiffusion/target}"
BIN="$CARGO_TARGET_DIR/release/tabdiffusion"
CACHE="${TABDIFFUSION_CACHE:-$HOME/.cache/tabdiffusion}"
PY="${REFERENCE_PYTHON:-.venv-ref/bin/python}"
# The venv PY names, for messages: what makes it.
REFERENCE_VENV="python3 -m venv .venv-ref && .venv-ref/bin/pip install torch diffusers safetensors numpy"

# A heading, in bold, on stderr (a script's stdout stays its results).
say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# build [CARGO FLAGS…]: the native release binary, $BIN (quietly; the default features unless
# the flags say otherwise).
build() { cargo build --release --quiet "$@"; }

# build_variant NAME CARGO FLAGS…: a release build with those flags, kept beside $BIN as
# $BIN-NAME (e.g. without kernel fusion) before `build` puts the default one back in $BIN.
build_variant() {
    local name="$1"; shift
    build "$@" && cp "$BIN" "$BIN-$name"
}

# toolchain NAME [TARGET]: Rust NAME (rustup, minimal profile) and its TARGET, unless there.
toolchain() {
    local name="$1" target="${2:-}"
    if ! rustup run "$name" rustc --version >/dev/null 2>&1 \
       || { [ -n "$target" ] && ! rustup target list --toolchain "$name" --installed | grep -qx "$target"; }; then
        say "Rust $name${target:+ with the $target target}"
        rustup toolchain install "$name" --profile minimal ${target:+--target "$target"}
    fi
}

# prepared NAME: whether www/data/NAME holds a dataset in today's format (its manifest records
# its size); scripts/setup prepares them.
prepared() { grep -qs '"bytes"' "www/data/$1/manifest.json"; }

# tag KEY VALUE: the JSON line on stdin (`tabdiffusion bench --json`'s last) with KEY set to VALUE.
# Fails, with a word on stderr, where stdin holds none (a run that failed).
tag() {
    python3 -c '
import json, sys
line = sys.stdin.read().strip()
try:
    row = json.loads(line)
except ValueError:
    sys.exit(f"tag: no JSON line to tag with {sys.argv[1]} = {sys.argv[2]}: {line[-200:]!r}")
row[sys.argv[1]] = sys.argv[2]
print(json.dumps(row))' "$1" "$2"
}

# medians FILE FIELD [LABEL=]A [LABEL=]B [KEY=VALUE…]: FILE holds JSON lines of bench runs, each
# with FIELD set to A or B (tag); prints one JSON line: the KEY=VALUEs, median_of (the runs of
# the side with fewer), and for training and DDIM-50 throughput the median of each side (under its LABEL, by
# default its value) and their ratio A / B. Lines of other sides, or without the throughputs
# (a failed run), are left out.
medians() {
    python3 - "$@" <<'PY'
import json, statistics, sys
path, field, *rest = sys.argv[1:]
sides = [s.split("=", 1) if "=" in s else [s, s] for s in rest[:2]]
out = dict(kv.split("=", 1) for kv in rest[2:])
keys = ("train_images_per_s", "ddim50_images_per_s")
rows = [json.loads(line) for line in open(path) if line.strip()]
rows = [r for r in rows if all(k in r for k in keys)]
runs = {label: [r for r in rows if r.get(field) == value] for label, value in sides}
out["median_of"] = min(len(r) for r in runs.values())
(a, _), (b, _) = sides
for key in keys:
    x, y = (statistics.median(r[key] for r in runs[label]) for label in (a, b))
    out[key] = {a: x, b: y, "ratio": round(x / y, 3)}
print(json.dumps(out))
PY
}
