"""`kiln cache prune` on a real zig object cache: what is left still compiles.

zig trusts its manifests: one whose object was removed is a cache hit on a missing file, and
the compile fails. Pruning takes the manifests of every object it removes (and of objects
used up to two days after them), so the compiles after a prune all work.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from kiln.installer import IndexOptions
from kiln.toolchain.zig import install_zig
from tests.conftest import TEST_WHEELS

DAY = 86400


@pytest.fixture(scope="module")
def zig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not any(TEST_WHEELS.glob("ziglang-*.whl")):
        pytest.fail(f"{TEST_WHEELS} has no ziglang wheel: run `bash .ci/setup` first")
    cache = tmp_path_factory.mktemp("zig-install")
    return install_zig(cache, IndexOptions(find_links=(str(TEST_WHEELS),), no_index=True)).zig


def _compile_all(zig: Path, src: Path, out: Path, chain: Path) -> list[int]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": str(chain), "ZIG_LOCAL_CACHE_DIR": str(chain)}
    return [subprocess.run([str(zig), "cc", "-c", str(c), "-o", str(out / (c.stem + ".o"))],
                           env=env, capture_output=True).returncode
            for c in sorted(src.glob("*.c"))]


def test_compiles_after_a_size_prune_all_work(zig, run_kiln, tmp_path):
    cache = tmp_path / "cache"
    chain = cache / "tools" / "zigcache-test" / "build"
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"s{i}.c").write_text(f"int f{i}(int x) {{ return x * {i + 2} + {i}; }}\n"
                                     + f"static const char pad{i}[{4096 * (i + 1)}] = {{1}};\n"
                                     + f"const char *p{i}(void) {{ return pad{i}; }}\n")
    assert _compile_all(zig, src, tmp_path / "first", chain) == [0] * 6
    objects = sorted((chain / "o").iterdir())
    manifests = [m for m in (chain / "h").iterdir() if m.suffix == ".txt"]
    assert len(objects) == 6 and len(manifests) == 6
    # Used three weeks ago, a minute apart; each manifest read last, after every object.
    start = time.time() - 21 * DAY
    for i, obj in enumerate(objects):
        for f in obj.iterdir():
            os.utime(f, (start + 60 * i,) * 2)
    for m in manifests:
        os.utime(m, (start + 3600,) * 2)
    total = sum(f.stat().st_size for o in objects for f in o.iterdir())

    result = run_kiln("cache", "prune", "--max-size", str(total // 2), "--max-age", "none",
                      "--json", env={"KILN_CACHE_DIR": str(cache)}, check=True)
    report = json.loads(result.stdout)
    assert report["removed"]["objects"]["entries"] > 0
    assert len(list((chain / "o").iterdir())) < 6  # objects went, not only manifests

    assert _compile_all(zig, src, tmp_path / "second", chain) == [0] * 6
    for first in (tmp_path / "first").iterdir():
        assert first.read_bytes() == (tmp_path / "second" / first.name).read_bytes()


def test_prune_refuses_a_bad_size_naming_the_option(run_kiln, tmp_path):
    result = run_kiln("cache", "prune", "--max-size", "lots",
                      env={"KILN_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 2
    assert "--max-size: 'lots' is not a size" in result.stderr
    assert not (tmp_path / "cache").exists()
