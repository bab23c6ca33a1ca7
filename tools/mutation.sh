#!/usr/bin/env bash
# Mutation testing of the modules that carry kiln's safety guarantees: does some unit test
# fail for every small change (a flipped comparison, a dropped check, another constant)?
#
#   bash tools/mutation.sh                     # everything below, from scratch (~20 min)
#   bash tools/mutation.sh 'kiln.archive.*'    # only these mutants (mutmut's name globs)
#   KILN_MUTATION_DIR=/tmp/m bash tools/mutation.sh   # where the scratch copy lives
#
# Covers kiln/archive.py, kiln/verify.py, kiln/signing/keys.py, kiln/signing/keyless.py,
# kiln/audit/branch.py, and in kiln/toolchain/debian.py the chain of checks from the
# signed Release to each .deb (verify_release, release_sha256, load_suite, download_debs).
# The mutated modules and the tests run against them are in tools/mutmut.cfg.
#
# Needs mutmut 3 in the venv (`.venv/bin/python -m pip install mutmut`); not run in CI.
# It works on a scratch copy of the work tree (uncommitted edits included), so the
# checkout gains no mutants/ folder and no setup.cfg. It ends with the figures and the
# name of every surviving mutant; `cd "$KILN_MUTATION_DIR" && mutmut show NAME` shows one.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${KILN_PYTHON:-$root/.venv/bin/python}
work=${KILN_MUTATION_DIR:-${TMPDIR:-/tmp}/kiln-mutation}

if ! "$python" -c 'import mutmut' 2>/dev/null; then
    echo "error: mutmut is not installed in $python" >&2
    echo "hint: $python -m pip install mutmut" >&2
    exit 2
fi

patterns=("$@")
if [ ${#patterns[@]} -eq 0 ]; then
    patterns=(
        'kiln.archive.*'
        'kiln.verify.*'
        'kiln.signing.keys.*'
        'kiln.signing.keyless.*'
        'kiln.audit.branch.*'
        'kiln.toolchain.debian.x_verify_release__*'
        'kiln.toolchain.debian.x_release_sha256__*'
        'kiln.toolchain.debian.x_load_suite__*'
        'kiln.toolchain.debian.x_download_debs__*'
    )
fi

rm -rf "$work"
mkdir -p "$work"
(cd "$root" && git ls-files -z --cached --others --exclude-standard -- kiln tests pyproject.toml \
    | tar --null -T - -cf -) | tar -xf - -C "$work"
cp "$root/tools/mutmut.cfg" "$work/setup.cfg"

cd "$work"
"$python" -m mutmut run "${patterns[@]}" > mutmut-run.log 2>&1 || {
    tail -n 40 mutmut-run.log >&2
    exit 1
}
"$python" -m mutmut results --all true > mutmut-results.txt
"$python" - "${patterns[@]}" <<'EOF'
"""Figures for the mutants the patterns name (mutmut's own counts include skipped ones)."""
import collections
import fnmatch
import sys

patterns = sys.argv[1:]
status = {}
for line in open("mutmut-results.txt", encoding="utf-8"):
    name, _, outcome = line.strip().partition(": ")
    if any(fnmatch.fnmatch(name, p) for p in patterns):
        status[name] = outcome
counts = collections.Counter(status.values())
print(f"mutants: {len(status)}  " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
for name, outcome in sorted(status.items()):
    if outcome != "killed":
        print(f"  {outcome:10} {name}")
EOF
