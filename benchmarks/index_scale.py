"""How `kiln index` scales: a synthetic wheelhouse, a full index, one wheel added, and a peer.

    .venv/bin/python benchmarks/index_scale.py                 # 100,000 wheels, 5,000 projects
    .venv/bin/python benchmarks/index_scale.py --wheels 5000   # a quick run
    .venv/bin/python benchmarks/index_scale.py --workdir /var/tmp/kb   # keep the wheelhouse

Generates small but valid wheels (METADATA, WHEEL, RECORD, one module) with a build
record beside each, then times, each as its own process (so peak memory is its own):

1. `kiln index WH -o OUT` from nothing (full index);
2. the same again with nothing changed;
3. the same after one wheel was added (the incremental case);
4. simple503 (a static PEP 503 generator from PyPI that also hashes wheels and extracts
   PEP 658 metadata) on the same wheelhouse, from nothing, and again after the one wheel.

In the same run it also times two floors, what this machine's file system costs before
any index logic: a plain loop that stats every file in the wheelhouse (the least an
incremental run must do to notice a change), and one that writes as many files as a
full index publishes (each wheel and its PEP 658 .metadata) with the wheels' bytes.

Prints wall times, kiln's own in-process time, peak RSS, and kiln/peer ratios. Goals:
full ≤ 30 s, add one ≤ 1 s, faster than the peer. The peer is installed with
`.venv/bin/pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

DATE = (2024, 1, 1, 0, 0, 0)
TAGS = ("cp310-cp310-manylinux_2_17_x86_64", "cp311-cp311-manylinux_2_17_x86_64",
        "cp312-cp312-manylinux_2_17_x86_64", "py3-none-any")


def wheel_bytes(dist: str, version: str, tag: str) -> bytes:
    dist_info = f"{dist}-{version}.dist-info"
    purelib = "true" if tag.endswith("any") else "false"
    members = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                                  "Requires-Python: >=3.9\nSummary: synthetic\n\n").encode(),
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: "
                               f"{purelib}\nTag: {tag}\n").encode(),
    }
    record = "".join(f"{name},sha256={hashlib.sha256(data).hexdigest()},{len(data)}\n"
                     for name, data in members.items()) + f"{dist_info}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in [*members.items(), (f"{dist_info}/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(name, DATE), data)
    return buf.getvalue()


def write_wheel(folder: Path, dist: str, version: str, tag: str) -> None:
    data = wheel_bytes(dist, version, tag)
    name = f"{dist}-{version}-{tag}.whl"
    (folder / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    record = {"build_id": f"bench-{digest[:12]}",
              "outputs": [{"filename": name, "sha256": digest, "size": len(data)}],
              "repro": {"checked": True, "reproducible": True, "digests": [digest, digest]}}
    (folder / (name + ".build.json")).write_text(json.dumps(record))


def generate(folder: Path, wheels: int, projects: int) -> None:
    folder.mkdir(parents=True)
    per_project = max(1, wheels // projects)
    made = 0
    for p in range(projects):
        dist = f"bench_project_{p:05d}"
        for i in range(per_project if p < projects - 1 else wheels - made):
            write_wheel(folder, dist, f"1.{i // len(TAGS)}", TAGS[i % len(TAGS)])
            made += 1
            if made == wheels:
                return


@dataclass(frozen=True)
class Timing:
    label: str
    wall: float  # seconds
    cpu: float  # user + system seconds of the process and the workers it waited for
    rss: int  # peak resident set size, MiB
    inner: float | None = None  # kiln's own figure for the work, without interpreter start


def timed(argv: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds, peak RSS in MiB, and stdout of one child process."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        stdout = out.read().decode()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed:\n{stderr[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, stdout


def stat_floor(wheelhouse: Path) -> float:
    """Seconds to list and stat every file of the wheelhouse in a plain loop."""
    started = time.monotonic()
    with os.scandir(wheelhouse) as entries:
        for entry in entries:
            entry.stat()
    return time.monotonic() - started


def write_floor(wheelhouse: Path, out: Path) -> float:
    """Seconds to write each wheel's bytes and a small .metadata file beside it into
    per-project folders: the files a full index publishes, without reading or hashing."""
    names = sorted(n for n in os.listdir(wheelhouse) if n.endswith(".whl"))
    data = {n: (wheelhouse / n).read_bytes() for n in names}  # read outside the timing
    started = time.monotonic()
    made: set[str] = set()
    for name in names:
        project = name.split("-", 1)[0]
        if project not in made:
            (out / project).mkdir(parents=True)
            made.add(project)
        (out / project / name).write_bytes(data[name])
        (out / project / f"{name}.metadata").write_bytes(b"Metadata-Version: 2.1\n")
    seconds = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--wheels", type=int, default=100_000)
    parser.add_argument("--projects", type=int, default=None,
                        help="default: wheels / 20 (5,000 for 100,000 wheels)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the generated wheelhouse here and reuse it next time "
                             "(default: a temporary folder, deleted at the end)")
    parser.add_argument("--no-peer", action="store_true", help="skip simple503")
    args = parser.parse_args()
    projects = args.projects or max(1, args.wheels // 20)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kiln-index-bench-"))
    wheelhouse = work / f"wheelhouse-{args.wheels}-{projects}"
    work.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="run-", dir=work))  # outputs: fresh every time
    out, peer_out = runs / "public", runs / "peer"
    new_wheel = wheelhouse / "bench_project_new-1.0-py3-none-any.whl"
    kiln = [sys.executable, "-m", "kiln", "-q", "index", str(wheelhouse), "-o", str(out), "--json"]
    rows: list[Timing] = []
    try:
        if (wheelhouse / ".complete").exists():
            new_wheel.unlink(missing_ok=True)
            new_wheel.with_name(new_wheel.name + ".build.json").unlink(missing_ok=True)
            print(f"reusing {wheelhouse}", flush=True)
        else:
            shutil.rmtree(wheelhouse, ignore_errors=True)
            started = time.monotonic()
            generate(wheelhouse, args.wheels, projects)
            (wheelhouse / ".complete").touch()
            print(f"generated {args.wheels:,} wheels over {projects:,} projects in "
                  f"{time.monotonic() - started:.1f} s ({wheelhouse})", flush=True)

        rows.append(Timing("floor: stat every file", stat_floor(wheelhouse), 0.0, 0))
        rows.append(Timing("floor: write the published files",
                           write_floor(wheelhouse, runs / "floor"), 0.0, 0))
        print(f"floors: stat {rows[0].wall:.2f} s, write {rows[1].wall:.2f} s", flush=True)
        for label in ("kiln full index", "kiln again, nothing changed"):
            wall, cpu, rss, stdout = timed(kiln)
            rows.append(Timing(label, wall, cpu, rss, json.loads(stdout)["seconds"]))
            print(f"{label}: {wall:.2f} s", flush=True)
        write_wheel(wheelhouse, "bench_project_new", "1.0", TAGS[-1])
        wall, cpu, rss, stdout = timed(kiln)
        report = json.loads(stdout)
        assert report["added"] == [new_wheel.name], report["added"]
        assert report["wheels"] == args.wheels + 1
        rows.append(Timing("kiln after adding one wheel", wall, cpu, rss, report["seconds"]))
        print(f"kiln after adding one wheel: {wall:.2f} s", flush=True)

        if not args.no_peer:
            peer_bin = shutil.which("simple503", path=str(Path(sys.executable).parent))
            if peer_bin is None:
                raise SystemExit("simple503 is not installed: .venv/bin/pip install -e '.[bench]'")
            new_wheel.unlink()
            peer = [peer_bin, "--copy", "--sort", "--extract-metadata", str(wheelhouse),
                    str(peer_out)]
            wall, cpu, rss, _ = timed(peer)
            rows.append(Timing("simple503 full index", wall, cpu, rss))
            print(f"simple503 full index: {wall:.2f} s", flush=True)
            write_wheel(wheelhouse, "bench_project_new", "1.0", TAGS[-1])
            wall, cpu, rss, _ = timed(peer)  # it has no incremental mode: a full run again
            rows.append(Timing("simple503 after adding one wheel", wall, cpu, rss))
        report_table(rows, args.wheels, projects)
    finally:
        # Printed first: deleting a few hundred thousand small files takes a while.
        print(f"cleaning up {runs}" + ("" if args.workdir else f" and {work}"), flush=True)
        shutil.rmtree(runs, ignore_errors=True)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def report_table(rows: list[Timing], wheels: int, projects: int) -> None:
    print(f"\n{wheels:,} wheels, {projects:,} projects, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'run':<34}{'wall s':>9}{'CPU s':>9}{'in-process s':>14}{'peak RSS MiB':>14}")
    for t in rows:
        inner_text = f"{t.inner:.2f}" if t.inner is not None else "—"
        floor = t.label.startswith("floor")
        cpu_text, rss_text = ("—", "—") if floor else (f"{t.cpu:.2f}", str(t.rss))
        print(f"{t.label:<34}{t.wall:>9.2f}{cpu_text:>9}{inner_text:>14}{rss_text:>14}")
    by = {t.label: t for t in rows}
    if "simple503 full index" in by:
        for what, peer, ours in (("full index", "simple503 full index", "kiln full index"),
                                 ("after one wheel", "simple503 after adding one wheel",
                                  "kiln after adding one wheel")):
            print(f"ratio {what}, simple503 / kiln: wall {by[peer].wall / by[ours].wall:.1f}x, "
                  f"CPU {by[peer].cpu / max(by[ours].cpu, 1e-9):.1f}x")
    full, one = by["kiln full index"].wall, by["kiln after adding one wheel"].wall
    stat, write = by["floor: stat every file"].wall, by["floor: write the published files"].wall
    print(f"kiln / floor: full index {full / write:.1f}x the write floor; "
          f"add one {one / stat:.1f}x the stat floor")
    print(f"goals: full ≤ 30 s: {'met' if full <= 30 else 'MISSED'} ({full:.1f} s); "
          f"add one ≤ 1 s: {'met' if one <= 1 else 'MISSED'} ({one:.2f} s wall)", flush=True)


if __name__ == "__main__":
    main()
