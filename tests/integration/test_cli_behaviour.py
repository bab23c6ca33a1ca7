"""What a user sees: one-line errors with hints and exit codes, several recipes, fail-fast."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import pytest

from tests.conftest import cext_files, make_sdist, recipe_text

HOST_ARCH = platform.machine()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error:", "hint:"))]


def table_rows(stdout: str) -> dict[str, list[str]]:
    """A printed table's rows by their first cell, each cell's folded lines joined."""
    rows: dict[str, list[str]] = {}
    last: list[str] = []
    for line in stdout.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            last = rows.setdefault(cells[0], cells)
        else:
            last[:] = [f"{a} {b}" if b else a for a, b in zip(last, cells, strict=True)]
    return rows


def test_bad_recipe_is_one_line_with_a_hint_and_exit_2(run_kiln, cext_recipe, tmp_path):
    cext_recipe.write_text(cext_recipe.read_text().replace("python = ", "pyhton = "))
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh")
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert any("[build] pyhton: unknown key (did you mean 'python'?)" in x for x in lines)
    assert any(x.startswith("hint:") for x in lines)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing was built: no results table
    assert not (tmp_path / "wh").exists() or not list((tmp_path / "wh").glob("*.whl"))
    as_json = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", "--json")
    assert as_json.returncode == 2
    rows = json.loads(as_json.stdout)  # --json: stdout is JSON, whatever happened
    assert "pyhton: unknown key" in rows[0]["error"]["message"]
    assert not (tmp_path / "wh" / ".kiln").exists()  # bad input leaves no status behind


def test_verbose_shows_the_traceback(run_kiln, cext_recipe, tmp_path):
    cext_recipe.write_text(cext_recipe.read_text().replace("python = ", "pyhton = "))
    result = run_kiln("-v", "build", cext_recipe)
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_hash_mismatch_exit_code_and_both_digests(run_kiln, cext_recipe, tmp_path):
    text = cext_recipe.read_text()
    real = text.split('sha256 = "')[1].split('"')[0]
    cext_recipe.write_text(text.replace(real, "f" * 64))
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh")
    assert result.returncode == 5
    assert real in result.stderr and "f" * 64 in result.stderr
    # one failure is said once: one error, one hint, no "1 of 1 build(s) failed" after it
    assert [x.split(":")[0] for x in error_lines(result.stderr)] == ["error", "hint"]
    assert "build(s) failed" not in result.stderr
    # a wrong sha256 is bad input: no status file says the recipe failed to build
    assert not list((tmp_path / "wh").rglob("*.json"))


def test_a_refused_recipe_writes_nothing_and_says_it_once(run_kiln, cext_recipe, tmp_path):
    # a recipe that also lists a target this host skips, with a wrong sha256: refused whole
    text = cext_recipe.read_text()
    real = text.split('sha256 = "')[1].split('"')[0]
    cext_recipe.write_text(text.replace(real, "f" * 64).replace(
        'python = ["3.11"]', 'python = ["3.11"]\ntargets = ["linux-x86_64", "macos-arm64"]'))
    result = run_kiln("build", cext_recipe, "-o", tmp_path / "wh")
    assert result.returncode == 5
    said = [x for x in result.stderr.splitlines() if not x.startswith("→")]
    assert [x.split(":")[0] for x in said] == ["error", "hint"], result.stderr
    assert result.stdout == ""  # no table
    assert not (tmp_path / "wh").exists()
    assert not (tmp_path / "kiln-cache").exists()  # no folder, no .lock, no partial sdist
    as_json = run_kiln("build", cext_recipe, "-o", tmp_path / "wh", "--json")
    assert [r["error"]["exit_code"] for r in json.loads(as_json.stdout)] == [5]
    assert not (tmp_path / "wh").exists() and not (tmp_path / "kiln-cache").exists()


def test_a_failed_build_still_records_why(run_kiln, tmp_path):
    # not bad input: the recipe is fine, the code does not compile; `kiln status` needs to know
    broken = make_sdist(tmp_path / "sdists", "broken-demo", "1.0",
                        {**cext_files("broken-demo", "1.0", "broken_demo"),
                         "src/speedups.c": "this is not C\n"})
    recipe = tmp_path / "recipes" / "broken-demo.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(recipe_text(broken))
    result = run_kiln("build", recipe, "-o", tmp_path / "wh")
    assert result.returncode == 10
    (outcome,) = (tmp_path / "wh" / ".kiln" / "status").glob("broken-demo-3.11-*.json")
    assert json.loads(outcome.read_text())["failure"]["kind"] == "BuildError"


def test_json_errors_before_any_result_are_json(run_kiln, tmp_path):
    result = run_kiln("status", tmp_path / "no-such-recipes", "--json")
    assert result.returncode == 3
    error = json.loads(result.stdout)["error"]
    assert "no such recipe" in error["message"] and error["exit_code"] == 3
    assert error["kind"] == "NothingToDoError"
    assert "error:" in result.stderr  # and the person at the terminal still reads it


def test_json_even_when_the_command_line_is_wrong(run_kiln, tmp_path):
    result = run_kiln("test", tmp_path / "no-such.whl", "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "UsageError" and "no-such.whl" in error["message"]
    assert error["exit_code"] == 2 and error["hint"]
    assert "no-such.whl" in result.stderr  # the person at the terminal reads it there
    unknown = run_kiln("build", tmp_path / "x.toml", "--json", "--no-such-option")
    assert unknown.returncode == 2
    assert "--no-such-option" in json.loads(unknown.stdout)["error"]["message"]
    plain = run_kiln("build", tmp_path / "x.toml", "--no-such-option")
    assert plain.returncode == 2 and plain.stdout == ""
    missing = run_kiln("rebuild", tmp_path / "nope.whl")
    assert missing.returncode == 2
    assert [line.split(":")[0] for line in missing.stderr.splitlines()] == ["error", "hint"]


STAMPED_SETUP = """
    import pathlib, time
    pathlib.Path("stamp_demo/_when.py").write_text(f"WHEN = {time.time_ns()!r}\\n")
    from setuptools import setup
    setup(name="stamp-demo", version="1.0", packages=["stamp_demo"])
"""


def test_a_failed_repro_check_prints_only_json(run_kiln, tmp_path):
    sdist = make_sdist(tmp_path / "sdists", "stamp-demo", "1.0", {
        "pyproject.toml": cext_files()["pyproject.toml"], "setup.py": STAMPED_SETUP,
        "stamp_demo/__init__.py": ""})
    recipe = tmp_path / "recipes" / "stamp-demo.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(recipe_text(sdist))
    result = run_kiln("build", "--check-repro", recipe, "-o", tmp_path / "wh", "--json")
    assert result.returncode == 13, result.stderr
    (row,) = json.loads(result.stdout)  # stdout is the JSON and nothing else
    assert row["error"]["exit_code"] == 13 and row["error"]["report"].endswith(".repro.json")
    assert "error:" in result.stderr


def test_kiln_test_without_tests_says_what_to_do(run_kiln, cext_recipe, tmp_path):
    wheel = demo_wheel(tmp_path)
    cext_recipe.write_text(cext_recipe.read_text().split("[test]")[0])
    result = run_kiln("test", wheel, "--recipe", cext_recipe, "-p", "3.11",
                      "--cache-dir", tmp_path / "c")
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert "tests not run: the recipe has no [test] commands" in lines[0]
    assert lines[1].startswith("hint: add commands to the recipe's [test]")
    assert "log:" not in result.stderr  # the log is empty: the error does not point at it


def demo_wheel(folder: Path, tag: str = "py3-none-any") -> Path:
    """A wheel of one empty module, ``demo``, tagged ``tag``."""
    import zipfile

    wheel = folder / f"demo-1.0-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/__init__.py", "")
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\n"
                                                   "Version: 1.0\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
        zf.writestr("demo-1.0.dist-info/RECORD", "")
    return wheel


def test_a_failed_test_command_quotes_what_it_printed(run_kiln, cext_recipe, tmp_path):
    wheel = demo_wheel(tmp_path)
    cext_recipe.write_text(cext_recipe.read_text().split("[test]")[0] + "[test]\ncommands = "
                           "[\"python -c 'import demo; print(41001); assert False'\"]\n")
    result = run_kiln("test", wheel, "--recipe", cext_recipe, "-p", "3.11",
                      "--cache-dir", tmp_path / "c")
    assert result.returncode == 12, result.stderr
    error, hint = result.stderr[result.stderr.index("error:"):].split("hint:")
    assert error.rstrip().endswith("AssertionError")
    assert "41001" in hint.split("log:")[0]  # what the command printed, not where it went
    assert "output is in" not in result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="a Linux host's view of other wheels")
def test_kiln_test_refuses_a_wheel_this_host_cannot_run_and_says_where(run_kiln, tmp_path):
    mac = run_kiln("test", demo_wheel(tmp_path, "cp311-cp311-macosx_11_0_arm64"),
                   "--cache-dir", tmp_path / "c")
    assert mac.returncode == 64
    lines = error_lines(mac.stderr)
    assert [x.split(":")[0] for x in lines] == ["error", "hint"]
    assert "macos-arm64" in lines[0] and "macOS" in lines[1]
    assert "qemu-user-static" not in mac.stderr  # installing qemu would not help
    musl = run_kiln("test", demo_wheel(tmp_path, f"cp311-cp311-musllinux_1_2_{HOST_ARCH}"),
                    "--cache-dir", tmp_path / "c")
    if platform.libc_ver()[0] == "glibc":
        assert musl.returncode == 64, musl.stderr
        lines = error_lines(musl.stderr)
        assert "musllinux_1_2" in lines[0] and "musl" in lines[1]


def test_status_lists_a_recipe_it_cannot_read_with_the_reason(run_kiln, cext_recipe, tmp_path):
    recipes = cext_recipe.parent
    (recipes / "typo.toml").write_text(cext_recipe.read_text().replace("python = ", "pyhton = "))
    (recipes / "torn.toml").write_text("[package\nname = ")
    result = run_kiln("status", recipes, "-w", tmp_path / "wh", "--no-audit")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["typo"][4].startswith("invalid: typo.toml: [build] pyhton: unknown key")
    assert rows["torn"][4].startswith("invalid: torn.toml: TOML: ")
    assert "README.md (Recipes)" in rows["torn"][4]  # a hint that points at a real page
    assert rows["cext-demo"][4] == "not built"
    assert "typo" not in result.stderr  # said once, in the table
    assert "3 recipe(s) (2 invalid: not read), 1 builds" in result.stdout
    as_json = json.loads(run_kiln("status", recipes, "-w", tmp_path / "wh", "--no-audit",
                                  "--json").stdout)
    invalid = {c["recipe"]: c["why"] for c in as_json["cells"] if c["result"] == "invalid"}
    assert sorted(invalid) == ["torn", "typo"] and "pyhton: unknown key" in invalid["typo"]


RUST_FAILURE_SETUP = """
    import sys
    from setuptools import setup
    from setuptools.command.build_py import build_py

    class Cargo(build_py):  # what a setuptools-rust build that cannot link prints
        def run(self):
            sys.stderr.write("   Compiling rusty-demo v1.0.0\\n"
                             "error: linker `cc` not found\\n"
                             "  = note: No such file or directory (os error 2)\\n\\n")
            sys.stderr.flush()
            raise SystemExit("error: `cargo rustc --lib --message-format=json-render-diagnostics`"
                             " failed with code 101\\n-- Output captured from stdout:\\n"
                             '{"reason":"build-finished","success":false}\\n')

    setup(name="rusty-demo", version="1.0", packages=["rusty_demo"],
          cmdclass={"build_py": Cargo})
"""


def test_a_build_error_carries_no_backend_scaffolding(run_kiln, tmp_path):
    sdist = make_sdist(tmp_path / "sdists", "rusty-demo", "1.0", {
        "pyproject.toml": cext_files()["pyproject.toml"], "setup.py": RUST_FAILURE_SETUP,
        "rusty_demo/__init__.py": ""})
    recipe = tmp_path / "recipes" / "rusty-demo.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(recipe_text(sdist))
    result = run_kiln("build", recipe, "-o", tmp_path / "wh", "--json")
    assert result.returncode == 10, result.stderr
    error = json.loads(result.stdout)[0]["error"]
    status = run_kiln("status", recipe, "-w", tmp_path / "wh", "--no-audit", "--json")
    (cell,) = json.loads(status.stdout)["cells"]
    for text in (error["message"], error["hint"] or "", result.stderr, cell["why"]):
        assert "Output captured" not in text and '{"reason"' not in text
    assert "failed with code 101" in error["message"]
    assert "linker `cc` not found" in cell["why"]


def test_recipe_check(run_kiln, cext_recipe, tmp_path):
    ok = run_kiln("recipe", "check", cext_recipe, "--json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)[0]["status"] == "ok"
    bad = tmp_path / "recipes" / "bad.toml"
    bad.write_text(cext_recipe.read_text().replace("[source]", "[sauce]"))
    result = run_kiln("recipe", "check", cext_recipe, bad, "--json")
    assert result.returncode == 2
    rows = {Path(r["recipe"]).name: r for r in json.loads(result.stdout)}
    assert rows["cext-demo.toml"]["status"] == "ok"
    assert rows["bad.toml"]["status"] == "error" and "[sauce]" in rows["bad.toml"]["detail"]


@pytest.mark.slow
def test_one_failure_does_not_stop_the_others_unless_fail_fast(run_kiln, cext_recipe, tmp_path):
    broken = make_sdist(tmp_path / "sdists", "broken-demo", "1.0",
                        {**cext_files("broken-demo", "1.0", "broken_demo"),
                         "src/speedups.c": "this is not C\n"})
    broken_recipe = tmp_path / "recipes" / "broken-demo.toml"
    broken_recipe.write_text(recipe_text(broken))
    result = run_kiln("build", broken_recipe, cext_recipe, "-o", tmp_path / "wh", "--json")
    assert result.returncode == 10, result.stderr
    rows = json.loads(result.stdout)
    assert [r["status"] for r in rows] == ["failed", "built"]
    assert "broken-demo" in rows[0]["label"] and rows[0]["error"]["exit_code"] == 10
    assert "1 of 2 build(s) failed" in result.stderr
    assert len(list((tmp_path / "wh").glob("*.whl"))) == 1
    assert (tmp_path / "wh" / "logs" / "broken-demo-1.0-cp311-linux-x86_64.log").exists()

    stopped = run_kiln("build", "--fail-fast", broken_recipe, cext_recipe, "-o", tmp_path / "w2",
                       "--json")
    assert stopped.returncode == 10
    assert [r["status"] for r in json.loads(stopped.stdout)] == ["failed"]


def test_unknown_target_option(run_kiln, cext_recipe):
    result = run_kiln("build", cext_recipe, "--target", "linux-arm64")
    assert result.returncode == 2
    assert "unknown target" in result.stderr and "hint:" in result.stderr
