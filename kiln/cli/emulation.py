"""``kiln test`` (a wheel's tests, under qemu for another machine's wheel), ``kiln sysroot``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app
from kiln.cli.common import (
    CacheOption,
    FindLinksOption,
    IndexUrlOption,
    JsonOption,
    NoIndexOption,
    cache_dir,
    index_options,
    terminal,
)
from kiln.cli.console import out, print_json, table
from kiln.errors import KilnError, UnsupportedError, UsageError
from kiln.installer import PYPI_SIMPLE
from kiln.progress import reporting
from kiln.recipe import TestSpec
from kiln.toolchain.targets import TARGETS, Target, host_target, target_of_platform_tag
from kiln.wheelfile import parse_name

_CPYTHON_TAG = re.compile(r"cp3(\d+)\Z")


def wheel_target_and_python(wheel: Path, python: str | None) -> tuple[Target, str]:
    """The target a wheel is for, and the CPython minor to test it with."""
    name = parse_name(wheel.name)
    targets = {target_of_platform_tag(t) for t in name.platform_tags}
    if name.is_pure:
        targets = {host_target()}
    if len(targets) != 1 or None in targets:
        raise UsageError(f"{wheel.name}: kiln cannot tell which machine this wheel is for",
                         hint="kiln test takes Linux and macOS wheels of one architecture")
    target = targets.pop()
    assert target is not None
    if python is not None:
        return target, python
    tags = sorted(t.interpreter for t in name.tags)
    versions = [m.group(1) for t in tags if (m := _CPYTHON_TAG.match(t))]
    if not versions:
        raise UsageError(f"{wheel.name}: no CPython tag to choose an interpreter by",
                         hint="pass --python 3.11")
    return target, f"3.{versions[0]}"


_SYSTEMS = {"linux": "Linux", "macos": "macOS"}
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_")


def refuse_unrunnable(wheel: Path, target: Target) -> None:
    """Refuse a wheel this host cannot run, not even under qemu-user (which runs another
    processor's programs, not another system's), saying where it can be tested."""
    host = host_target()
    if target.os != host.os:
        raise UnsupportedError(
            f"{wheel.name} is a {target.name} wheel, and this {_SYSTEMS.get(host.os, host.os)} "
            "host runs none (qemu-user emulates other processors, not other systems)",
            hint=f"test it on a {_SYSTEMS.get(target.os, target.os)} machine: kiln test "
                 f"{wheel.name}")
    name = parse_name(wheel.name)
    if target != host or name.is_pure:
        return
    from packaging.tags import platform_tags

    if set(name.platform_tags) & set(platform_tags()):
        return
    tag = name.platform_tags[0]
    if tag.startswith("musllinux"):
        where = "a musl-based Linux (Alpine, for one)"
    elif m := _MANYLINUX.match(tag):
        where = f"a Linux with glibc {m.group(1)}.{m.group(2)} or newer"
    else:
        where = f"a machine that installs {tag} wheels"
    raise UnsupportedError(f"{wheel.name}: this host cannot install a {tag} wheel",
                           hint=f"test it on {where}")


def import_smoke_test(wheel: Path) -> TestSpec:
    """Without a recipe: import the wheel's compiled modules (a pure wheel's packages)."""
    from kiln.wheeltest import smoke_command

    if smoke_command(wheel) is None:
        raise UsageError(f"{wheel.name}: no importable module found", hint="pass --recipe")
    return TestSpec(smoke=True)


@app.command("test")
def test_command(
    wheel: Annotated[Path, typer.Argument(help="The wheel to test.", exists=True,
                                          dir_okay=False)],
    recipe: Annotated[Path | None, typer.Option(
        "--recipe", "-r", help="Run this recipe's [test] [default: import the wheel's "
                               "modules].")] = None,
    python: Annotated[str | None, typer.Option(
        "--python", "-p", help="CPython version [default: from the wheel's tag].")] = None,
    cache: CacheOption = None,
    index_url: IndexUrlOption = PYPI_SIMPLE,
    find_links: FindLinksOption = None,
    no_index: NoIndexOption = False,
    json_output: JsonOption = False,
) -> None:
    """Install WHEEL alone and run its tests; under qemu-user when it is for another machine."""
    from kiln.recipe import load_recipe
    from kiln.toolchain import emulation
    from kiln.toolchain.interpreters import find_interpreter
    from kiln.wheeltest import run_wheel_tests

    wheel = wheel.absolute()
    target, minor = wheel_target_and_python(wheel, python)
    refuse_unrunnable(wheel, target)
    loaded = load_recipe(recipe) if recipe else None
    spec = loaded.test if loaded else import_smoke_test(wheel)
    root = cache_dir(cache)
    index = index_options(index_url, find_links, no_index)
    sdist, test_lock = None, None
    if loaded is not None:
        from kiln.fetch import fetch_sdist
        from kiln.lockfile import read_test_lock, test_lock_is_current

        if spec.files:  # the tests are copied out of the recipe's sdist
            sdist = fetch_sdist(loaded, root).path
        locked = read_test_lock(loaded) if spec.requires else None
        if locked is not None and test_lock_is_current(loaded, locked, (minor,)):
            test_lock = locked.path
    log = root / "logs" / f"test-{wheel.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    reporter = terminal()
    try:
        with reporting(reporter):
            reporter.stage("test", f"{wheel.name} ({target.name}, CPython {minor})")
            if target == host_target():
                outcome = run_wheel_tests(wheel, spec, find_interpreter(minor), work=root / "work",
                                          index=index, log=log, label=wheel.name, sdist=sdist,
                                          test_lock=test_lock)
            else:
                outcome = emulation.run_emulated_tests(wheel, spec, minor, target,
                                                       work=root / "work", index=index, log=log,
                                                       label=wheel.name, cache=root,
                                                       sdist=sdist, test_lock=test_lock)
    except KilnError as exc:
        exc.log = exc.log or _written(log)
        if exc.hint is None:
            exc.hint = "kiln test WHEEL --recipe RECIPE runs a recipe's [test] on any wheel"
        raise
    finally:
        reporter.close()
    if not outcome.ran:
        why, _, hint = outcome.why_not.partition(" (")
        raise UnsupportedError(
            f"{wheel.name}: tests not run: {why}", log=_written(log),
            hint=hint.removesuffix(")") if hint else
            "add commands to the recipe's [test], or leave out --recipe to import the "
            "wheel's modules" if recipe else None)
    from kiln.wheeltest import test_ref

    ref = test_ref(outcome)
    data = {"wheel": str(wheel), "target": target.name, "python": minor,
            "emulated": outcome.emulated, "passed": outcome.passed,
            "counts": ref.counts.model_dump(mode="json") if ref.counts else None,
            "commands": list(outcome.commands), "seconds": outcome.seconds, "log": str(log)}
    if json_output:
        print_json(data)
        return
    table(None, ["wheel", "target", "python", "how", "tests", "s"],
          [[wheel.name, target.name, minor, "qemu-user" if outcome.emulated else "native",
            ref.summary(), f"{outcome.seconds:.1f}"]])


def _written(log: Path) -> Path | None:
    """The log, when something was written to it: an error never points at an empty log."""
    try:
        return log if log.stat().st_size else None
    except OSError:
        return None


@app.command("sysroot")
def sysroot_command(
    target: Annotated[str, typer.Argument(help="The foreign target (linux-aarch64).")],
    python: Annotated[str, typer.Option("--python", "-p", help="CPython version.")] = "3.11",
    cache: CacheOption = None,
    json_output: JsonOption = False,
) -> None:
    """Unpack a foreign CPython from Debian's packages into kiln's cache (no root needed)."""
    from kiln.toolchain import emulation

    if target not in TARGETS:
        raise UsageError(f"unknown target '{target}'", hint=f"targets: {', '.join(TARGETS)}")
    reporter = terminal()
    try:
        with reporting(reporter):
            made = emulation.prepare_sysroot(TARGETS[target], python, cache_dir(cache))
    finally:
        reporter.close()
    data = {"root": str(made.root), "target": made.target.name, "python": made.minor,
            "debian_suite": made.suite, "python_version": made.python_version,
            "glibc": made.glibc, "uv_platform": made.uv_platform,
            "packages": [{"name": n, "version": v, "sha256": s} for n, v, s in made.packages]}
    if json_output:
        print_json(data)
        return
    table(None, ["target", "python", "debian", "glibc", "packages", "root"],
          [[made.target.name, made.python_version, made.suite, made.glibc,
            str(len(made.packages)), str(made.root)]])
    out.print(f"run it: qemu-{made.target.arch}-static -L {made.root} {made.python}",
              highlight=False)
