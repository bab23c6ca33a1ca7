"""``kiln status``: build records, outcome files and audit facts combined into one row per build.

Wheelhouses here are written by the test (records from tests/assets, outcome files from
JobResults), so every row's source is known.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kiln.errors import BuildError, EnvironmentSetupError, NotReproducibleError
from kiln.outcomes import STATUS_DIR, outcome_path, read_outcomes, record_outcomes
from kiln.pipeline import JobResult
from kiln.recipe import recipe_files
from kiln.record import BuildRecord, record_path, write_record
from kiln.status import AuditFact, collect_status
from kiln.statuspage import cell_row, render_packages_md

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHA = "c" * 64
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def write_recipe(folder: Path, name: str = "cext-demo", version: str = "1.0",
                 pythons: str = '"3.11", "3.12"') -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(f"""# {name}: a tiny C extension | for tests
[package]
name = "{name}"
version = "{version}"

[source]
url = "https://e.org/{name}-{version}.tar.gz"
sha256 = "{SHA}"

[build]
python = [{pythons}]
targets = ["linux-x86_64"]
""")
    return path


def put_record(wheelhouse: Path, *, python: str = "3.11.7", finished: datetime = T0,
               signed: tuple[str, ...] = (), **changes: object) -> BuildRecord:
    record = BuildRecord.model_validate_json((ASSETS / "build-record.json").read_bytes())
    tag = "cp" + "".join(python.split(".")[:2])
    wheel = record.wheel.model_copy(update={
        "filename": f"cext_demo-1.0-{tag}-{tag}-manylinux_2_17_x86_64.whl"})
    record = record.model_copy(update={
        "python": record.python.model_copy(update={"version": python, "tag": tag}),
        "outputs": [wheel], "finished": finished, **changes})
    wheelhouse.mkdir(parents=True, exist_ok=True)
    target = wheelhouse / wheel.filename
    target.write_bytes(b"wheel")
    write_record(record, record_path(target))
    for kind in signed:
        (wheelhouse / f"{wheel.filename}.{kind}.json").write_text("{}")
    return record


def put_outcome(wheelhouse: Path, recipe: Path, *, python: str = "3.11",
                target: str = "linux-x86_64", error=None, when: datetime = T0) -> None:
    result = JobResult(recipe=recipe, label="x", python=python, target=target,
                       ok=error is None, error=error, seconds=12.5)
    record_outcomes(wheelhouse, [result])
    path = outcome_path(wheelhouse, recipe.stem, python, target)
    # the clock of the test, not of the machine: rewrite "finished"
    from kiln.outcomes import Outcome

    outcome = Outcome.model_validate_json(path.read_bytes())
    path.write_text(outcome.model_copy(update={"finished": when}).model_dump_json())


def test_a_built_wheel_shows_tag_tests_repro_and_signatures(tmp_path):
    recipes = tmp_path / "recipes"
    write_recipe(recipes)
    put_record(tmp_path / "wh", signed=("dsse",), hermetic=True, backend="hermetic")
    put_record(tmp_path / "wh", python="3.12.1", backend="host",
               not_hermetic=["built with this host's compilers"])
    status = collect_status([recipes], wheelhouse=tmp_path / "wh")
    by_python = {c.python: c for c in status.cells}
    built = by_python["3.11"]
    assert (built.result, built.tag, built.tests, built.reproducible, built.signed) == (
        "built", "manylinux_2_5_x86_64", "passed", True, ("dsse",))
    assert cell_row(built)[4:9] == ["built", "yes", "yes", "dsse", "passed"]
    host = by_python["3.12"]
    assert (host.result, host.hermetic, cell_row(host)[5]) == ("built", False, "no (host)")


def test_a_later_failure_wins_and_says_why(tmp_path):
    recipe = write_recipe(tmp_path / "recipes")
    put_record(tmp_path / "wh")
    error = BuildError("cext-demo 1.0 (cp311): build_wheel failed (exit 1): error: x.h: "
                       "No such file", hint="see the log", log=tmp_path / "wh" / "logs" / "a.log")
    put_outcome(tmp_path / "wh", recipe, error=error, when=T0 + timedelta(hours=1))
    cell = collect_status([recipe], wheelhouse=tmp_path / "wh").cells[0]
    assert cell.result == "failed" and cell.earlier_wheel is not None
    assert "x.h: No such file" in cell.why and "hint: see the log" in cell.why
    assert cell.log == "logs/a.log"  # relative to the wheelhouse


def test_an_older_failure_is_forgotten_once_the_build_works(tmp_path):
    recipe = write_recipe(tmp_path / "recipes")
    put_outcome(tmp_path / "wh", recipe, error=BuildError("boom"), when=T0 - timedelta(days=1))
    put_record(tmp_path / "wh")
    assert collect_status([recipe], wheelhouse=tmp_path / "wh").cells[0].result == "built"


def test_not_reproducible_is_its_own_result(tmp_path):
    recipe = write_recipe(tmp_path / "recipes")
    put_outcome(tmp_path / "wh", recipe, error=NotReproducibleError("two builds differ"))
    cell = collect_status([recipe], wheelhouse=tmp_path / "wh").cells[0]
    assert (cell.result, cell.reproducible) == ("not reproducible", False)
    assert cell_row(cell)[6] == "no"


def test_a_failure_before_any_build_applies_to_every_python(tmp_path):
    recipe = write_recipe(tmp_path / "recipes")
    put_outcome(tmp_path / "wh", recipe, python="", target="",
                error=EnvironmentSetupError("needs debian packages that are not installed: "
                                            "libfoo-dev"))
    assert (tmp_path / "wh" / STATUS_DIR / "cext-demo-all-all.json").is_file()
    cells = collect_status([recipe], wheelhouse=tmp_path / "wh").cells
    assert [c.result for c in cells] == ["failed", "failed"]
    assert all("libfoo-dev" in c.why for c in cells)


def test_audit_branch_fills_in_what_the_wheelhouse_lacks_and_flags_disagreement(tmp_path,
                                                                                 monkeypatch):
    import kiln.status

    recipe = write_recipe(tmp_path / "recipes")
    put_record(tmp_path / "wh")  # cp311 locally
    mine = "cext_demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    theirs = "cext_demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    facts = [
        AuditFact(mine, "a" * 64, "cext-demo", "1.0", "3.11.7", "linux-x86_64", True, (),
                  "ci", T0, False),
        AuditFact(mine, "b" * 64, "cext-demo", "1.0", "3.11.7", "linux-x86_64", True,
                  ("sigstore",), "laptop", T0, True),
        AuditFact(theirs, "d" * 64, "cext-demo", "1.0", "3.12.1", "linux-x86_64", True,
                  ("sigstore",), "https://github.com/o/r/.github/workflows/b.yml", T0, False),
    ]
    monkeypatch.setattr(kiln.status, "read_audit_facts",
                        lambda repo, branch: (facts, "refs/heads/audit"))
    status = collect_status([recipe], wheelhouse=tmp_path / "wh", audit_repo=tmp_path)
    local, remote = status.cells
    assert local.audit == "conflict" and "builders disagree" in cell_row(local)[4]
    assert (remote.result, remote.signed, remote.wheel) == ("recorded", ("sigstore",), theirs)
    assert status.audit_source == "the audit branch (refs/heads/audit)"


def test_no_audit_branch_is_a_note_not_an_error(tmp_path, monkeypatch):
    import kiln.status

    monkeypatch.setattr(kiln.status, "read_audit_facts",
                        lambda repo, branch: ([], f"no {branch} branch in {repo}"))
    recipe = write_recipe(tmp_path / "recipes")
    status = collect_status([recipe], wheelhouse=tmp_path / "wh", audit_repo=tmp_path)
    assert status.audit_source == ""
    assert status.problems == [f"no audit branch in {tmp_path}"]
    assert status.cells[0].result == "not built"


def test_unreadable_files_are_reported_and_skipped(tmp_path):
    recipe = write_recipe(tmp_path / "recipes")
    wh = tmp_path / "wh"
    (wh / STATUS_DIR).mkdir(parents=True)
    (wh / STATUS_DIR / "junk.json").write_text("{not json")
    (wh / "x.whl.build.json").write_text('{"kind": "something else"}')
    status = collect_status([recipe], wheelhouse=wh)
    assert status.cells[0].result == "not built"
    assert len(status.problems) == 2
    assert read_outcomes(wh)[0] == []


def test_packages_md_lists_recipes_builds_and_failures(tmp_path):
    recipes = tmp_path / "recipes"
    recipe = write_recipe(recipes)
    write_recipe(recipes, name="other", pythons='"3.12"')
    put_record(tmp_path / "wh", signed=("dsse", "sigstore"), hermetic=True, backend="hermetic")
    put_outcome(tmp_path / "wh", recipe, python="3.12",
                error=BuildError("compiler said a|b\nand more"))
    status = collect_status([recipes], wheelhouse=tmp_path / "wh")
    page = render_packages_md(status, command="kiln status recipes --write PACKAGES.md",
                              sources="the wheelhouse")
    assert page.startswith("# Packages\n")
    assert ("| cext-demo | 1.0 | 3.11 | linux-x86_64 | built | yes | yes | dsse, sigstore | "
            "passed |") in page
    assert "a tiny C extension \\| for tests" in page  # the recipe's own comment, escaped
    assert "- **cext-demo 1.0** (Python 3.12, linux-x86_64): compiler said a\\|b and more" in page
    assert "- other 1.0: 3.12 linux-x86_64" in page  # not built yet
    assert ("2 recipe(s), 3 builds (recipe × Python × target): 1 built, 1 failed, "
            "1 not built yet; 1 of the built hermetic") in page


def test_recipe_folders_and_missing_paths(tmp_path):
    write_recipe(tmp_path / "r", name="b")
    write_recipe(tmp_path / "r", name="a")
    assert [p.name for p in recipe_files([tmp_path / "r"])] == ["a.toml", "b.toml"]
    with pytest.raises(Exception, match="no such recipe"):
        recipe_files([tmp_path / "nope"])


def test_the_log_says_what_actually_went_wrong(tmp_path):
    recipe = write_recipe(tmp_path / "recipes")
    logs = tmp_path / "wh" / "logs"
    logs.mkdir(parents=True)
    (logs / "a.log").write_text(
        "+ uv pip install -r build-requirements.txt\n"
        "error: an earlier, successful step is not the cause\n"
        "+ bwrap … build_wheel\n"
        "Running `maturin pep517 build-wheel`\n"
        "error: no matching package named `base64` found\n"
        "  Caused by: `cargo metadata` exited with an error: \n"
        "Error: command ['maturin', 'pep517'] returned non-zero exit status 1\n")
    put_outcome(tmp_path / "wh", recipe, error=BuildError(
        "build_wheel failed (exit 1): Error: command ['maturin', 'pep517'] returned non-zero "
        "exit status 1", log=logs / "a.log"))
    cell = collect_status([recipe], wheelhouse=tmp_path / "wh").cells[0]
    assert cell.why.endswith("; the log says: error: no matching package named `base64` found")


def test_a_failed_system_call_is_named_when_no_line_says_error(tmp_path):
    recipe = write_recipe(tmp_path / "recipes")
    log = tmp_path / "wh" / "logs" / "b.log"
    log.parent.mkdir(parents=True)
    log.write_text("+ bwrap … build_wheel\n"
                   "WARNING - Could not run CMake at /usr/bin/cmake: [Errno 22] Invalid argument\n"
                   "scikit_build_core.errors.CMakeNotFoundError: Could not find CMake\n")
    put_outcome(tmp_path / "wh", recipe, error=BuildError("CMakeNotFoundError", log=log))
    cell = collect_status([recipe], wheelhouse=tmp_path / "wh").cells[0]
    assert cell.why.endswith("[Errno 22] Invalid argument")


def test_an_invalid_recipe_is_listed_not_dropped(tmp_path):
    recipes = tmp_path / "recipes"
    write_recipe(recipes)
    (recipes / "broken.toml").write_text("[package]\nname = \"broken\"\n")
    status = collect_status([recipes], wheelhouse=tmp_path / "wh")
    invalid = [c for c in status.cells if c.result == "invalid"]
    assert [c.recipe for c in invalid] == ["broken"]
    assert "broken.toml" in invalid[0].why
    page = render_packages_md(status, command="kiln status recipes", sources="the wheelhouse")
    assert "- **broken** (the recipe is invalid): " in page
    assert "2 recipe(s) (1 invalid: not read), 2 builds (recipe × Python × target): 0 built, " \
           "0 failed, 2 not built yet" in page
