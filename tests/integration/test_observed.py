"""The record is evidence: a package that writes what its own build saw into its wheel
shows no network in both builds and, in the rebuild, every variation the report claims.

The probe is the package's own setup.py, not kiln's: it checks kiln's observations against
what a build backend really gets. The two builds' wheels then differ (they carry what each
saw), so the check fails, and kiln keeps both wheels for a look.
"""

from __future__ import annotations

import json
import socket
import zipfile
from pathlib import Path

import pytest

from tests.conftest import cext_files, make_sdist, recipe_text

pytestmark = pytest.mark.slow

PROBE_SETUP = """
    import hashlib, json, locale, os, shutil, socket, sys, time
    from setuptools import Extension, setup

    seen = {}
    mask = os.umask(0); os.umask(mask)
    seen["umask"] = oct(mask)
    seen["hostname"] = socket.gethostname()
    seen["time"] = str(int(time.time() // 86400))
    seen["timezone"] = time.strftime("%z")
    seen["locale"] = str(locale.setlocale(locale.LC_ALL, ""))
    seen["num_cpus"] = str(len(os.sched_getaffinity(0)))
    seen["home"] = os.environ["HOME"]
    seen["build_path"] = os.getcwd()
    seen["hash_seed"] = str(hash("probe"))
    seen["environment_order"] = ",".join(os.environ)
    seen["interpreter"] = sys.version
    seen["tools"] = str(shutil.which("strip"))  # not among the pinned toolchain's wrappers
    outside = int(os.environ["PROBE_PORT"])
    for where in (("127.0.0.1", outside), ("151.101.0.223", 443), ("pypi.org", 443)):
        try:
            socket.create_connection(where, timeout=3).close()
            seen[f"net {where[0]}"] = "connected"
        except OSError as exc:
            seen[f"net {where[0]}"] = f"failed: {exc}"
    os.makedirs("cext_demo", exist_ok=True)
    with open("cext_demo/seen.json", "w") as fh:
        json.dump(seen, fh, sort_keys=True)
    setup(name="cext-demo", version="1.0", packages=["cext_demo"],
          package_data={"cext_demo": ["seen.json"]},
          ext_modules=[Extension("cext_demo._speedups", ["src/speedups.c"])])
"""


def _seen(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read("cext_demo/seen.json"))  # type: ignore[no-any-return]


def test_a_probe_package_sees_no_network_and_every_variation_the_report_claims(run_kiln,
                                                                              tmp_path):
    with socket.socket() as outside:
        outside.bind(("127.0.0.1", 0))
        outside.listen(4)
        port = outside.getsockname()[1]
        files = cext_files()
        files["setup.py"] = PROBE_SETUP
        sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", files)
        recipe = tmp_path / "recipes" / "cext-demo.toml"
        recipe.parent.mkdir()
        recipe.write_text(recipe_text(sdist, extra=f"""
            [build.environment]
            PROBE_PORT = "{port}"
        """.replace("            ", "")))
        result = run_kiln("build", "--check-repro", recipe, "-o", tmp_path / "wh",
                          "--no-test", "--json")
    # The wheels carry what each build saw, so they differ: exit 13, both kept.
    assert result.returncode == 13, result.stderr
    kept = next((tmp_path / "wh" / "repro-failures").iterdir())
    first, second = _seen(kept / "build-a.whl"), _seen(kept / "build-b.whl")
    for seen in (first, second):
        for key, value in seen.items():
            if key.startswith("net "):
                assert value.startswith("failed"), (key, value)  # no network, in both
    report = json.loads((tmp_path / "wh" / f"{kept.name}.repro.json").read_text())
    claimed = set(report["variations"])
    assert claimed, report
    for variation in claimed:
        # What the report claims, the package's own build saw vary.
        assert first[variation] != second[variation], (variation, first[variation])
    # Every variation is either claimed, or skipped with a reason.
    from kiln.recipe import VARIATIONS

    assert claimed | set(report["skipped"]) == set(VARIATIONS)
    assert {"build_path", "umask", "timezone", "locale", "hostname", "home", "hash_seed",
            "environment_order", "tools"} <= claimed
