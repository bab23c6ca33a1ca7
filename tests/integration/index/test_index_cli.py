"""The index commands' own behaviour: reports, errors with hints, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from index_support import make_wheel


def kiln(*args, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln", *map(str, args)], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_index_reports_what_it_did_and_left_out(tmp_path):
    wh, out = tmp_path / "wh", tmp_path / "public"
    make_wheel(wh, "good", "1.0")
    (wh / "bad-1.0-py3-none-any.whl").write_bytes(b"garbage")
    result = kiln("index", wh, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "left out bad-1.0-py3-none-any.whl: not a zip file" in result.stderr
    assert "1 wheel(s) in 1 project(s); 1 added" in result.stdout
    strict = kiln("index", wh, "-o", out, "--strict", "--json")
    assert strict.returncode == 40
    assert json.loads(strict.stdout)["rejected"][0]["filename"] == "bad-1.0-py3-none-any.whl"
    assert "error: 1 wheel(s) were left out" in strict.stderr and "hint:" in strict.stderr
    assert (out / "simple" / "good" / "index.html").is_file()  # the index is still written


def test_bad_input_is_one_error_line_with_a_hint(tmp_path):
    missing = kiln("index", tmp_path / "nope", "-o", tmp_path / "out")
    assert missing.returncode == 40
    assert "error:" in missing.stderr and "not a folder" in missing.stderr
    assert "hint:" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "out").exists()
    bad_url = kiln("index", tmp_path, "--upstream", "ftp://example.org/simple/")
    assert bad_url.returncode == 2 and "not an http(s):// or file:// URL" in bad_url.stderr
    not_index = kiln("serve", tmp_path, "--port", "0")
    assert not_index.returncode == 2 and "not an index" in not_index.stderr
    (tmp_path / "simple").mkdir()
    public = kiln("serve", tmp_path, "--host", "0.0.0.0", "--port", "0")
    assert public.returncode == 2 and "loopback only" in public.stderr
