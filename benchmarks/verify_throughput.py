"""How fast `kiln verify` checks wheels, against `sha256sum` of the same files, in one run.

    .venv/bin/python benchmarks/verify_throughput.py              # 300 wheels of 100 KiB, 3 runs
    .venv/bin/python benchmarks/verify_throughput.py --wheels 1000 --size 1 --runs 5

Key path: N small wheels are generated, each with a provenance statement (made from a
real build record, tests/assets/build-record.json) signed with a fresh ECDSA P-256 key
into ``W.dsse.json``. Sigstore path: the real production bundle in tests/assets/sigstore
(made by actions/attest in GitHub Actions) is verified offline N times, each copy in its
own folder beside its distribution. Timed, each as the median of --runs:

- ``sha256sum`` of the N files, one process: the floor (hashing is part of every check);
- kiln in-process: ``verify_wheel`` over the N wheels (what the audit branch will call);
- kiln CLI: one ``kiln verify W1 … WN --json`` process, interpreter start-up included.

Prints wheels per second and each kiln/sha256sum ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiln.files import sha256_file  # noqa: E402
from kiln.provenance import build_statement  # noqa: E402
from kiln.record import BuildRecord, WheelRef  # noqa: E402
from kiln.signing.keys import (  # noqa: E402
    generate_keypair,
    load_private_key,
    sign_with_key,
    write_envelope,
)
from kiln.signing.wheels import dsse_path  # noqa: E402
from kiln.verify import VerifyPolicy, verify_wheel  # noqa: E402

ASSETS = ROOT / "tests" / "assets"
BUNDLED = ASSETS / "sigstore" / "pypi_attestation_models-0.0.4a2.tar.gz"
WORKFLOW = ("https://github.com/trailofbits/pypi-attestation-models/.github/workflows/"
            "release.yml@refs/tags/v0.0.4a2")
ISSUER = "https://token.actions.githubusercontent.com"


def make_wheel(folder: Path, index: int, size: int) -> Path:
    name = f"bench_pkg{index:05d}"
    path = folder / f"{name}-1.0-py3-none-any.whl"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}/__init__.py", f"VALUE = {index}\n")
        # Incompressible, so the file is as large as asked and hashing costs what it would.
        zf.writestr(f"{name}/_data.bin", os.urandom(size), compress_type=zipfile.ZIP_STORED)
        dist = f"{name}-1.0.dist-info"
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    path.write_bytes(buf.getvalue())
    return path


def signed_wheelhouse(folder: Path, count: int, size: int) -> tuple[list[Path], Path]:
    pair = generate_keypair(folder / "keys" / "bench")
    key = load_private_key(pair.private)
    template = BuildRecord.model_validate_json((ASSETS / "build-record.json").read_bytes())
    wheels = []
    house = folder / "wheelhouse"
    house.mkdir()
    for i in range(count):
        wheel = make_wheel(house, i, size)
        ref = WheelRef(filename=wheel.name, sha256=sha256_file(wheel), size=wheel.stat().st_size,
                       python_tag="py3", abi_tag="none", platform_tags=["any"])
        record = template.model_copy(update={"outputs": [ref]})
        statement = build_statement(record, recipe_values={}, env={"KILN_BUILDER_ID": "bench"})
        write_envelope(sign_with_key(statement, key), dsse_path(wheel))
        wheels.append(wheel)
    return wheels, pair.public


def bundled_copies(folder: Path, count: int) -> list[Path]:
    copies = []
    for i in range(count):
        sub = folder / "sigstore" / f"{i:05d}"
        sub.mkdir(parents=True)
        dist = sub / BUNDLED.name
        shutil.copyfile(BUNDLED, dist)
        shutil.copyfile(BUNDLED.with_name(BUNDLED.name + ".sigstore"),
                        sub / (BUNDLED.name + ".sigstore.json"))
        copies.append(dist)
    return copies


def median_time(runs: int, action: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {argv[:4]} …\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheels", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=100,
                        help="KiB of (incompressible) data in each generated wheel")
    args = parser.parse_args()
    kiln = [sys.executable, "-m", "kiln", "verify"]

    with tempfile.TemporaryDirectory(prefix="kiln-verify-bench-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        wheels, public = signed_wheelhouse(folder, args.wheels, args.size * 1024)
        made = time.perf_counter() - start
        copies = bundled_copies(folder, args.wheels)
        n = args.wheels
        wheel_size = wheels[0].stat().st_size
        print(f"{n} wheels generated and key-signed in {made:.2f} s "
              f"({n / made:.0f}/s, statement + signature included)")

        key_policy = VerifyPolicy(key=public)
        sig_policy = VerifyPolicy(identity=WORKFLOW, issuer=ISSUER, offline=True)
        start = time.perf_counter()
        verify_wheel(copies[0], sig_policy)  # loads the trust root once
        first = time.perf_counter() - start

        rows = [
            ("key: sha256sum (floor)", median_time(args.runs, lambda: run(
                ["sha256sum", *map(str, wheels)]))),
            ("key: kiln in-process", median_time(args.runs, lambda: [
                verify_wheel(w, key_policy) for w in wheels] and None)),
            ("key: kiln verify CLI", median_time(args.runs, lambda: run(
                [*kiln, *map(str, wheels), "--key", str(public), "--json"]))),
            ("sigstore: sha256sum (floor)", median_time(args.runs, lambda: run(
                ["sha256sum", *map(str, copies)]))),
            ("sigstore: kiln in-process", median_time(args.runs, lambda: [
                verify_wheel(c, sig_policy) for c in copies] and None)),
            ("sigstore: kiln verify CLI", median_time(args.runs, lambda: run(
                [*kiln, *map(str, copies), "--identity", WORKFLOW, "--issuer", ISSUER,
                 "--offline", "--json"]))),
        ]
    floors = {"key": rows[0][1], "sigstore": rows[3][1]}
    print(f"\nmedian of {args.runs} runs, {n} files each "
          f"(wheel ≈ {wheel_size} B; "
          f"sdist {BUNDLED.stat().st_size} B)")
    print(f"{'':30} {'seconds':>9} {'files/s':>10} {'× sha256sum':>12}")
    for label, seconds in rows:
        floor = floors[label.split(":")[0]]
        print(f"{label:30} {seconds:9.3f} {n / seconds:10.0f} {seconds / floor:12.1f}")
    print(f"\nfirst Sigstore verification in this process (trust root load): {first:.3f} s")
    print(json.dumps({"wheels": n, "runs": args.runs,
                      "results": {label: round(s, 4) for label, s in rows}}))


if __name__ == "__main__":
    main()
