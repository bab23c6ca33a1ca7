"""``kiln toolchain``: what hermetic builds build with, fetching it ahead, pinning CPython."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from kiln.cli.app import app
from kiln.cli.common import CacheOption, JsonOption, cache_dir, terminal
from kiln.cli.console import out, print_json, table
from kiln.errors import UsageError
from kiln.progress import reporting

toolchain_app = typer.Typer(help="The hermetic toolchain: the pinned zig and CPython headers.",
                            no_args_is_help=True)
app.add_typer(toolchain_app, name="toolchain")


@toolchain_app.command("show")
def show_command(json_output: JsonOption = False) -> None:
    """What every hermetic build uses: the zig pin, and the CPython headers pinned per X.Y."""
    from kiln.toolchain import cpython, zig

    pin = zig.zig_pin()
    pins = cpython.pins()
    data = {
        "zig": {"package": pin.package, "version": pin.version, "wheels": dict(pin.wheels),
                "digest": zig.pin_digest(pin)},
        "cpython": {minor: {"headers": p.version, "source": p.describe(), "url": p.urls()[0],
                            "sha256": p.sha256, "trees": dict(p.trees)}
                    for minor, p in sorted(pins.items(), key=lambda kv: _key(kv[0]))},
    }
    if json_output:
        print_json(data)
        return
    out.print(f"zig: {pin.package} {pin.version}, pinned for {len(pin.wheels)} hosts "
              f"(pin digest {zig.pin_digest(pin)[:12]})", highlight=False)
    table(None, ["cpython", "headers", "from", "deb sha256"],
          [[minor, p.version, p.describe(), p.sha256[:12]]
           for minor, p in sorted(pins.items(), key=lambda kv: _key(kv[0]))])


def _key(minor: str) -> tuple[int, ...]:
    return tuple(int(x) for x in minor.split("."))


@toolchain_app.command("fetch")
def fetch_command(
    python: Annotated[list[str], typer.Option(
        "--python", "-p", help="CPython version whose pinned headers to fetch (repeatable).")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder to put the pinned files in (a --find-links folder "
                               "for builds without the network).")],
    cache: CacheOption = None,
    json_output: JsonOption = False,
) -> None:
    """Download the pinned CPython headers packages and the zig wheel into a folder."""
    from kiln.toolchain import cpython, zig
    from kiln.toolchain.targets import host_target

    output = output.absolute()
    output.mkdir(parents=True, exist_ok=True)
    fetched = []
    reporter = terminal()
    try:
        with reporting(reporter):
            for minor in python:
                pin = cpython.pin_for(minor)
                deb = cpython.fetch_package(pin, cache_dir(cache) / "downloads" / "cpython")
                target = output / pin.filename
                if deb != target:
                    shutil.copyfile(deb, target)
                fetched.append({"what": f"cpython {minor} headers", "file": str(target),
                                "sha256": pin.sha256})
            zig_pin = zig.zig_pin()
            sha = zig_pin.wheel_sha256(host_target())
            pattern = f"{zig_pin.package}-{zig_pin.version}-*.whl"
            if not any(output.glob(pattern)):
                _download_zig(output, zig_pin.package, zig_pin.version, sha)
            wheel = next(output.glob(pattern))
            fetched.append({"what": f"{zig_pin.package} {zig_pin.version}", "file": str(wheel),
                            "sha256": sha})
    finally:
        reporter.close()
    if json_output:
        print_json(fetched)
        return
    table(None, ["what", "file", "sha256"], [[f["what"], f["file"], f["sha256"][:12]]
                                             for f in fetched])


def _download_zig(output: Path, package: str, version: str, sha: str) -> None:
    """pip download the pinned wheel (uv has no download command) with its hash required."""
    import sys

    from kiln import proc

    requirement = output / f".{package}-requirement.txt"
    requirement.write_text(f"{package}=={version} --hash=sha256:{sha}\n")
    try:
        proc.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                  "--no-deps", "--only-binary", ":all:", "--require-hashes", "-r", requirement,
                  "-d", output], what=f"downloading {package} {version}")
    finally:
        requirement.unlink(missing_ok=True)


@toolchain_app.command("pin-cpython")
def pin_cpython_command(
    python: Annotated[str, typer.Argument(help="The CPython version to pin (3.12).")],
    archive: Annotated[str | None, typer.Option(
        "--archive", help="debian or ubuntu [default: the one whose release ships it].")] = None,
    suite: Annotated[str | None, typer.Option(
        "--suite", help="The suite (bookworm, noble …) [default: the one that ships it].")] = None,
    cache: CacheOption = None,
) -> None:
    """Print a pin for kiln/resources/cpython.toml, made from the archive's signed index."""
    from kiln.toolchain.pinning import make_pin, render_pin

    if not python.startswith("3.") or not python[2:].isdigit():
        raise UsageError(f"{python!r} is not a CPython version like 3.12")
    reporter = terminal()
    try:
        with reporting(reporter):
            made = make_pin(python, cache_dir(cache) / "debian", archive=archive, suite=suite)
    finally:
        reporter.close()
    out.print(render_pin(made), highlight=False, markup=False)
