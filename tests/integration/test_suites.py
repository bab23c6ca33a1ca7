"""A package's own test suite, run against the built wheel: counted, and never the source.

The sdist carries ``tests/`` (pytest or unittest); the recipe copies them out of the sdist
(``[test] files``) into the folder the tests run in, which holds no source package, so
``import cext_demo`` finds the installed wheel. Offline: pytest comes from the fixture wheels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cext_files, make_sdist, recipe_text, serve_sdists

PYTEST_SUITE = {
    "tests/conftest.py": "import pytest\n",
    "tests/test_speedups.py": """
        import pytest
        import cext_demo


        def test_add():
            assert cext_demo.add(2, 3) == 5


        def test_the_installed_wheel_not_the_source():
            import os
            here = os.path.join(os.getcwd(), "cext_demo")
            assert os.path.dirname(cext_demo.__file__) != here, cext_demo.__file__


        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass


        class TestMore:
            def test_negative(self):
                assert cext_demo.add(-2, 1) == {result}
    """,
}

UNITTEST_SUITE = {
    "tests/__init__.py": "",
    "tests/test_speedups.py": """
        import unittest
        import cext_demo


        class Speedups(unittest.TestCase):
            def test_add(self):
                self.assertEqual(cext_demo.add(2, 3), {result})

            def test_installed(self):
                self.assertIn("site-packages", cext_demo.__file__)

            @unittest.skip("not today")
            def test_skipped(self):
                pass
    """,
}


def _recipe(tmp_path: Path, suite: dict[str, str], result: int, commands: str,
            requires: str = "") -> Path:
    files = {**cext_files(), **{k: v.replace("{result}", str(result)) for k, v in suite.items()}}
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", files)
    path = tmp_path / "recipes" / "cext-demo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe_text(sdist, extra=f"""
        [test]
        requires = [{requires}]
        files = ["tests"]
        commands = [{commands}]
    """))
    return path


def _build(run_kiln, recipe: Path, out: Path):
    return run_kiln("build", recipe, "-o", out, "--backend", "host", "--json")


@pytest.mark.parametrize("runner", ["pytest", "unittest"])
def test_the_projects_own_suite_runs_against_the_wheel_and_is_counted(run_kiln, tmp_path,
                                                                     runner):
    if runner == "pytest":
        recipe = _recipe(tmp_path, PYTEST_SUITE, -1, '"python -m pytest tests"', '"pytest"')
    else:
        recipe = _recipe(tmp_path, UNITTEST_SUITE, 5,
                         '"python -m unittest discover -s tests -t ."')
    result = _build(run_kiln, recipe, tmp_path / "wh")
    assert result.returncode == 0, result.stderr
    [built] = json.loads(result.stdout)
    assert built["record"]["recipe"]["name"] == "cext-demo"
    test = built["record"]["test"]
    expected = {"collected": 4, "passed": 3, "failed": 0, "skipped": 1} if runner == "pytest" \
        else {"collected": 3, "passed": 2, "failed": 0, "skipped": 1}
    assert {k: test["counts"][k] for k in expected} == expected, test
    assert test["passed"] is True
    if runner == "pytest":
        assert test["counts"]["skip_reasons"] == ["not today"]
    if runner == "pytest":  # [test] requires, locked by hash beside the recipe and recorded
        lock = recipe.with_suffix(".test.lock").read_text()
        assert "pytest==9.2.0" in lock and "--hash=sha256:" in lock
        pinned = {r["name"]: r for r in test["requirements"]}
        assert pinned["pytest"]["version"] == "9.2.0" and pinned["pytest"]["hashes"]
        assert test["lock_sha256"]
    table = run_kiln("build", recipe, "-o", tmp_path / "wh", "--backend", "host")
    assert f"passed ({expected['passed']}, 1 skipped)" in table.stdout, table.stdout
    # the signed provenance carries the counts too
    record = tmp_path / "wh" / (Path(built["wheel"]).name + ".build.json")
    assert json.loads(record.read_text())["test"]["counts"]["collected"] == expected["collected"]


@pytest.mark.parametrize("runner", ["pytest", "unittest"])
def test_a_failing_suite_names_its_first_failing_test(run_kiln, tmp_path, runner):
    if runner == "pytest":
        recipe = _recipe(tmp_path, PYTEST_SUITE, 7, '"python -m pytest tests"', '"pytest"')
        first = "tests/test_speedups.py::TestMore::test_negative"
    else:
        recipe = _recipe(tmp_path, UNITTEST_SUITE, 6,
                         '"python -m unittest discover -s tests -t ."')
        first = "test_add (tests.test_speedups.Speedups"
    result = _build(run_kiln, recipe, tmp_path / "wh")
    assert result.returncode == 12, result.stderr
    [built] = json.loads(result.stdout)
    message = built["error"]["message"]
    assert "1 of " in message and first in message, message
    tests = built["error"]["tests"]  # what the runner counted, though no wheel came out
    assert tests["failed"] == 1 and tests["first_failure"].startswith(first.split(" ")[0])
    assert tests["command"].startswith("python -m ")


def test_a_test_requirement_whose_bytes_differ_from_the_lock_is_refused(run_kiln, tmp_path):
    recipe = _recipe(tmp_path, PYTEST_SUITE, -1, '"python -m pytest tests"', '"pytest"')
    assert run_kiln("lock", recipe).returncode == 0
    lock = recipe.with_suffix(".test.lock")
    text = lock.read_text()
    assert "# pythons: 3.11" in text and "# requires: pytest" in text
    start = text.index("pytest==9.2.0")
    digest = text.index("--hash=sha256:", start) + len("--hash=sha256:")
    lock.write_text(text[:digest] + "0" * 64 + text[digest + 64:])
    result = _build(run_kiln, recipe, tmp_path / "wh")
    assert result.returncode == 12, result.stderr
    [built] = json.loads(result.stdout)
    assert "locked test requirements" in built["error"]["message"]


def test_test_files_must_be_paths_inside_the_sdist(run_kiln, tmp_path):
    recipe = _recipe(tmp_path, PYTEST_SUITE, -1, '"python -m pytest tests"', '"pytest"')
    recipe.write_text(recipe.read_text().replace('files = ["tests"]', 'files = ["../etc"]'))
    checked = run_kiln("recipe", "check", recipe, "--json")
    assert checked.returncode == 2
    assert "[test] files[0]: '../etc' is not a path" in json.loads(checked.stdout)[0]["detail"]
    recipe.write_text(recipe.read_text().replace('files = ["../etc"]', 'files = ["nope"]'))
    missing = _build(run_kiln, recipe, tmp_path / "wh")
    assert missing.returncode == 12 and "nope is not in" in missing.stdout


def test_recipe_new_finds_the_suite_and_the_build_runs_it(run_kiln, tmp_path):
    """A new user's path: `recipe new` on an sdist that ships tests/ writes a [test] that
    runs them against the wheel; one without a suite gets the compiled-module smoke test,
    never `import zope` of a namespace folder or `import x-stubs` of a stubs folder."""
    from kiln import toml

    suite = {**cext_files(), **{k: v.replace("{result}", "-1") for k, v in PYTEST_SUITE.items()},
             "PKG-INFO": "Metadata-Version: 2.1\nName: cext-demo\nVersion: 1.0\n"
                         "Provides-Extra: test\nRequires-Dist: pytest>=7; extra == \"test\"\n"
                         "Requires-Dist: cext-demo[speed]; extra == \"test\"\n"}
    with_tests = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", suite)
    bare_files = cext_files("nsdemo", "1.0", "nsdemo")
    bare_files.update({
        "nsdemo.egg-info/top_level.txt": "nsdemo\nnsdemo-stubs\nzope\n",
        "zope/inner.py": "X = 1\n",
        "nsdemo-stubs/__init__.pyi": "def add(a: int, b: int) -> int: ...\n",
    })
    bare = make_sdist(tmp_path / "sdists", "nsdemo", "1.0", bare_files)
    with serve_sdists([with_tests, bare]) as index:
        env = {"KILN_INDEX_URL": index}
        made = run_kiln("recipe", "new", "cext-demo==1.0", "--python", "3.11", "-o",
                        tmp_path / "recipes" / "cext-demo.toml", "--url", with_tests.url,
                        "--json", env=env, check=True)
        found = json.loads(made.stdout)["suite"]
        assert found["files"] == ["tests"] and found["test_files"] == 1
        assert found["requires"] == ["pytest>=7"]
        recipe = tmp_path / "recipes" / "cext-demo.toml"
        test = toml.loads(recipe.read_text())["test"]
        assert test["commands"] == ["python -m pytest tests"] and test["smoke"] is True
        made = run_kiln("recipe", "new", "nsdemo==1.0", "--python", "3.11", "-o",
                        tmp_path / "recipes" / "nsdemo.toml", "--url", bare.url, "--json",
                        env=env, check=True)
        assert json.loads(made.stdout)["suite"] is None
        bare_recipe = tmp_path / "recipes" / "nsdemo.toml"
        assert toml.loads(bare_recipe.read_text())["test"] == {"smoke": True}

    built = run_kiln("build", recipe, "-o", tmp_path / "wh", "--backend", "host", "--json")
    assert built.returncode == 0, built.stderr
    [result] = json.loads(built.stdout)
    test = result["record"]["test"]
    assert test["counts"]["passed"] == 3 and test["counts"]["skipped"] == 1, test
    assert test["commands"][-1] == "python -c 'import cext_demo._speedups'"
    smoke = run_kiln("build", bare_recipe, "-o", tmp_path / "wh", "--backend", "host", "--json")
    assert smoke.returncode == 0, smoke.stderr
    [result] = json.loads(smoke.stdout)
    assert result["record"]["test"]["commands"] == ["python -c 'import nsdemo._speedups'"]


def test_the_test_result_is_signed_and_verify_requires_it(run_kiln, tmp_path):
    """A second signed statement over the wheel's digest says what its tests found;
    `kiln verify --require-tests` passes only with one that passed, by a trusted signer."""
    import base64
    import subprocess

    keys = tmp_path / "keys"
    for name in ("ci", "other"):
        run_kiln("keygen", "-o", keys / name, check=True)
    recipe = _recipe(tmp_path, PYTEST_SUITE, -1, '"python -m pytest tests"', '"pytest"')
    built = run_kiln("build", recipe, "-o", tmp_path / "wh", "--backend", "host", "--json",
                     "--sign-key", keys / "ci.key", check=True)
    wheel = Path(json.loads(built.stdout)[0]["wheel"])
    tests = wheel.with_name(wheel.name + ".tests.dsse.json")
    statement = json.loads(base64.b64decode(json.loads(tests.read_text())["payload"]))
    assert statement["predicateType"] == "https://kiln.dev/test-result/v1"
    assert statement["predicate"]["result"] == "PASSED"
    assert statement["predicate"]["counts"]["passed"] == 3

    ok = run_kiln("verify", wheel, "--key", keys / "ci.pub", "--require-tests", "--json")
    assert ok.returncode == 0, ok.stderr
    signed = json.loads(ok.stdout)[0]["signedTests"]
    assert signed["summary"] == "passed (3, 1 skipped)" and signed["result"] == "PASSED"
    shown = run_kiln("verify", wheel, "--key", keys / "ci.pub", "--require-tests")
    assert "passed (3, 1 skipped)" in shown.stdout

    # Someone else's signature on a test result counts for nothing.
    stranger = run_kiln("verify", wheel, "--key", keys / "other.pub", "--require-tests")
    assert stranger.returncode != 0

    # The result kept on the audit branch counts when none lies beside the wheel.
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    run_kiln("audit", "record", wheel, check=True, cwd=repo)
    kept = tests.read_bytes()
    tests.unlink()
    recorded = run_kiln("verify", wheel, "--key", keys / "ci.pub", "--require-tests", cwd=repo)
    assert recorded.returncode == 0, recorded.stderr
    assert run_kiln("audit", "verify", "--key", keys / "ci.pub", cwd=repo).returncode == 0

    # An edited result fails as a bad signature; none at all fails on its own code.
    envelope = json.loads(kept)
    statement["predicate"]["counts"]["failed"] = 0
    statement["predicate"]["result"] = "PASSED"
    statement["predicate"]["counts"]["passed"] = 999
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    tests.write_text(json.dumps(envelope))
    edited = run_kiln("verify", wheel, "--key", keys / "ci.pub", "--require-tests")
    assert edited.returncode == 24, edited.stderr
    tests.unlink()
    untested = run_kiln("build", recipe, "-o", tmp_path / "wh2", "--backend", "host", "--json",
                        "--no-test", "--sign-key", keys / "ci.key", check=True)
    bare = Path(json.loads(untested.stdout)[0]["wheel"])
    assert not bare.with_name(bare.name + ".tests.dsse.json").exists()
    missing = run_kiln("verify", bare, "--key", keys / "ci.pub", "--require-tests")
    assert missing.returncode == 31 and "no signed test result" in missing.stderr
    assert run_kiln("verify", bare, "--key", keys / "ci.pub").returncode == 0


OPTIONAL_C = """
    #include <Python.h>
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_optional", NULL, -1, NULL};
    PyMODINIT_FUNC PyInit__optional(void) {
        PyObject *backend = PyImport_ImportModule("absent_backend_xyz");  /* an extra's */
        if (backend == NULL) return NULL;
        Py_DECREF(backend);
        return PyModule_Create(&module);
    }
"""
TWO_MODULES_SETUP = """
    from setuptools import Extension, setup
    setup(name="cext-demo", version="1.0", packages=["cext_demo"],
          ext_modules=[Extension("cext_demo._speedups", ["src/speedups.c"]),
                       Extension("cext_demo._optional", ["src/optional.c"])])
"""


def test_the_smoke_test_passes_over_a_module_that_needs_an_optional_package(run_kiln, tmp_path):
    files = {**cext_files(), "setup.py": TWO_MODULES_SETUP, "src/optional.c": OPTIONAL_C}
    sdist = make_sdist(tmp_path / "sdists", "cext-demo", "1.0", files)
    recipe = tmp_path / "recipes" / "cext-demo.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(recipe_text(sdist, extra="\n[test]\nsmoke = true\n"))
    result = _build(run_kiln, recipe, tmp_path / "wh")
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = json.loads(result.stdout)
    assert "cext_demo._optional" in built["record"]["test"]["commands"][0]
    log = Path(built["log"]).read_text()
    assert "skipped cext_demo._optional: it needs absent_backend_xyz" in log
    # a module of the wheel's own that does not import fails it
    broken = files | {"cext_demo/__init__.py": "import cext_demo.nope\n"}
    sdist = make_sdist(tmp_path / "sdists2", "cext-demo", "1.0", broken)
    recipe.write_text(recipe_text(sdist, extra="\n[test]\nsmoke = true\n"))
    recipe.with_suffix(".lock").unlink()  # another sdist: locked again
    failed = _build(run_kiln, recipe, tmp_path / "wh2")
    assert failed.returncode == 12, failed.stderr
