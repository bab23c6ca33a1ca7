"""What a build saw, observed from inside its sandbox right before the backend runs.

A record that says what kiln meant to do misleads the auditor who reads it; this is what
the build got. A small probe runs with the build's own interpreter, environment, sandbox,
umask, CPU set and clock, and writes what it finds: whether it can reach a listener kiln
holds outside the sandbox (the network), the clock's offset from kiln's, the umask, host
name, time zone, locale, CPUs, ``HOME``, the folder it builds in, the hash seed, the order
of the environment, the interpreter, and which program answers to ``cc``. The build record
carries these; the reproducibility check compares the first build's with its rebuild's and
calls a variation applied only when the two saw different values.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kiln import proc
from kiln.errors import BuildError
from kiln.pep517 import HookRun
from kiln.toolchain.sandbox import Bind

# Which observation shows each variation of the rebuild (kiln.recipe.VARIATIONS).
SHOWS = {
    "interpreter": "interpreter",
    "tools": "tools",
    "build_path": "build_path",
    "umask": "umask",
    "time": "clock_offset_days",
    "timezone": "timezone",
    "locale": "locale",
    "hostname": "hostname",
    "environment_order": "environment_order",
    "num_cpus": "cpus",
    "home": "home",
    "hash_seed": "hash_seed",
}
ALLOW_NETWORK = "KILN_ALLOW_NETWORK"

PROBE = r'''
import hashlib, json, locale, os, shutil, socket, sys, time
out, port, started = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
seen = {}
mask = os.umask(0); os.umask(mask)
seen["umask"] = f"{mask:03o}"
seen["hostname"] = socket.gethostname()
seen["clock_offset_days"] = str(round((time.time() - started) / 86400))
seen["timezone"] = f"{os.environ.get('TZ', '')} {time.strftime('%z %Z')}"
try:
    seen["locale"] = locale.setlocale(locale.LC_ALL, "")
except locale.Error as exc:
    seen["locale"] = f"unusable: {exc}"
seen["cpus"] = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count())
seen["home"] = os.environ.get("HOME", "")
seen["build_path"] = os.getcwd()
seen["hash_seed"] = f"{os.environ.get('PYTHONHASHSEED', '')} {hash('kiln') & 0xffffffff:08x}"
seen["environment_order"] = hashlib.sha256(" ".join(os.environ).encode()).hexdigest()[:16]
seen["interpreter"] = f"{sys.version.split()[0]} {os.path.realpath(sys.executable)}"
found = []
for tool in ("cc", "gcc", "c++", "cmake", "ld", "strip"):
    path = shutil.which(tool)
    found.append(f"{tool}={os.path.realpath(path) if path else '-'}")
seen["tools"] = " ".join(found)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(b"kiln-probe")
    seen["network"] = "on: it reached a listener kiln holds on the host's loopback"
except OSError as exc:
    why = exc.strerror or str(exc)
    seen["network"] = f"off: a listener kiln holds on the host's loopback was out of reach ({why})"
with open(out, "w") as fh:
    json.dump(seen, fh, sort_keys=True)
'''


@contextmanager
def listener() -> Iterator[int]:
    """A TCP listener on the host's loopback that the build must not be able to reach."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        yield server.getsockname()[1]
    finally:
        server.close()


def observe(run: HookRun) -> dict[str, str]:
    """Run the probe as the backend will run: same interpreter, sandbox, environment."""
    with tempfile.TemporaryDirectory(prefix="kiln-probe-") as tmp, listener() as port:
        control = Path(tmp)
        (control / "probe.py").write_text(PROBE)
        out = control / "seen.json"
        # Not -I: the probe must see PYTHONHASHSEED and the rest as the backend will.
        argv = [*run.inner_prefix, run.python, str(control / "probe.py"), str(out),
                str(port), repr(time.time())]
        wrapped = run.sandbox.wrap(argv, cwd=run.project_inside, network=False,
                                   extra_binds=[Bind(control, str(control), writable=True)])
        # bubblewrap changes to the project itself (--chdir); without it the probe runs there.
        here = None if run.sandbox.isolated else Path(run.project_inside)
        proc.run([*run.prefix, *wrapped], what=f"{run.label}: observing the build's "
                 "surroundings", error=BuildError, env=dict(run.env), log=run.log,
                 timeout=120, umask=run.umask, cwd=here)
        try:
            seen: dict[str, str] = json.loads(out.read_text())
        except (OSError, ValueError) as exc:
            raise BuildError(f"{run.label}: the probe of the build's surroundings wrote "
                             f"nothing readable ({exc})", log=run.log) from exc
    return seen


def check_network(seen: dict[str, str], label: str) -> None:
    """Refuse a build that could reach the network when it must not."""
    if seen.get("network", "").startswith("on") and not os.environ.get(ALLOW_NETWORK):
        raise BuildError(
            f"{label}: the build's network is not off: from inside its sandbox, "
            f"{seen['network'].removeprefix('on: ')}",
            hint="install bubblewrap (or allow `unshare --net`) so builds run without "
                 f"network; {ALLOW_NETWORK}=1 builds with it on, and the record says so")


def compare(first: dict[str, str] | None, second: dict[str, str],
            asked: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Per variation asked for: the two builds' observations when they differ; and the
    variations whose values the two builds saw alike (asked for, not applied)."""
    applied: dict[str, list[str]] = {}
    unseen: list[str] = []
    for variation in asked:
        key = SHOWS.get(variation)
        if key is None or first is None or key not in first or key not in second:
            continue
        if first[key] != second[key]:
            applied[variation] = [first[key], second[key]]
        else:
            unseen.append(variation)
    return applied, unseen


def sandbox_text(seen: dict[str, str] | None, intended: str) -> str:
    """The record's network field: what the probe saw, and how kiln meant to cut it."""
    if not seen or "network" not in seen:
        return intended
    return f"{seen['network']} [{intended}]"
