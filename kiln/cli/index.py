"""``kiln index``, ``kiln serve`` and ``kiln publish``: the mirror."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from kiln.cli.app import app
from kiln.cli.common import JsonOption, terminal
from kiln.cli.console import err, out, print_json, table
from kiln.errors import IndexBuildError, PublishError, UsageError
from kiln.progress import reporting

DEFAULT_ROOT = Path("public")
LOOPBACK = "127.0.0.1"


@app.command("index")
def index_command(
    wheelhouse: Annotated[Path, typer.Argument(help="Folder of wheels (and their .build.json "
                                                    "and .publish.attestation files).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The index folder to write "
                                                                "or update.")] = Path("public"),
    upstream: Annotated[str | None, typer.Option(
        "--upstream", envvar="KILN_UPSTREAM",
        help="Also list this index's files for each project (PEP 691/503 base URL, e.g. "
             "https://pypi.org/simple/, or file:// of a bandersnatch web/simple).")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", envvar="KILN_BASE_URL",
        help="Where the index will be served (e.g. https://wheels.example.org/); links "
             "become absolute. Default: relative links.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Read every wheel again instead of "
                                                      "trusting the last run's state.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit non-zero when a wheel was "
                                                          "left out.")] = False,
    require_quorum: Annotated[int | None, typer.Option(
        "--require-quorum", min=1, envvar="KILN_REQUIRE_QUORUM",
        help="Leave out each wheel that fewer than this many trusted signers (--key, "
             "--identity) signed, or that a trusted signer signed other bytes of.")] = None,
    key: Annotated[list[Path] | None, typer.Option(
        "--key", envvar="KILN_VERIFY_KEY",
        help="A builder's public key; repeat for each. With a key, each file's builders "
             "show in the index (_kiln.builders).")] = None,
    identity: Annotated[list[str] | None, typer.Option(
        "--identity", envvar="KILN_VERIFY_IDENTITY",
        help="A builder's Sigstore identity; repeatable, each with its --issuer.")] = None,
    issuer: Annotated[list[str] | None, typer.Option(
        "--issuer", envvar="KILN_VERIFY_ISSUER", help="The OIDC issuer of each --identity.")
    ] = None,
    audit_repo: Annotated[Path | None, typer.Option(
        "--audit-repo", envvar="KILN_AUDIT_REPO",
        help="The repository whose audit branch holds the builders' records (default: the "
             "current folder's).")] = None,
    audit_branch: Annotated[list[str] | None, typer.Option(
        "--audit-branch",
        help="Read the builders' signatures on this branch of the audit repository; repeat "
             "for each builder's branch (a rebuilder's, fetched with `git fetch URL "
             "audit:rebuilder-audit`). Default: audit.")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", envvar="KILN_OFFLINE",
        help="Sigstore: use the trust root sigstore-python ships or has cached.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Write a static index (PEP 503 HTML, PEP 691 JSON, PEP 658 metadata, PEP 740 provenance)."""
    from kiln.index import build_index
    from kiln.index.build import Trust

    trust = None
    if key or identity or issuer or require_quorum is not None:
        from kiln.quorum import anchors_from, check_branches

        anchors = anchors_from(key or [], identity or [], issuer or [])
        check_branches(audit_repo, audit_branch or [])
        if require_quorum is not None and require_quorum > len(anchors):
            raise UsageError(f"--require-quorum {require_quorum} with {len(anchors)} trusted "
                             "signer(s): no wheel could ever meet it",
                             hint="pass one --key (or identity) per builder")
        trust = Trust(anchors, require_quorum, audit_repo, offline,
                      tuple(audit_branch or ()))
    elif audit_branch:
        raise UsageError("--audit-branch names where the builders' signatures are: it goes "
                         "with --key or --identity",
                         hint="kiln index WHEELHOUSE --require-quorum 2 --key ci.pub --key "
                              "rebuilder.pub --audit-branch audit --audit-branch rebuilder-audit")

    for value, option in ((upstream, "--upstream"), (base_url, "--base-url")):
        if value is not None and not value.startswith(("https://", "http://", "file://")):
            raise UsageError(f"{option} {value}: not an http(s):// or file:// URL",
                             hint="for example --upstream https://pypi.org/simple/")
    with reporting(terminal()):
        report = build_index(wheelhouse, output, upstream=upstream, base_url=base_url, full=full,
                             trust=trust)
    if json_output:
        print_json(report.as_json())
    else:
        for rejected in report.rejected:
            err.print(f"[yellow]left out[/] {escape(rejected.filename)}: "
                      f"{escape(rejected.reason)}", markup=True, highlight=False)
        for warning in report.warnings:
            err.print(f"[yellow]warning[/] {escape(warning)}", markup=True, highlight=False)
        state = ("up to date" if report.up_to_date else
                 f"generation {report.generation}, {report.projects_rewritten} project page(s) "
                 "written")
        out.print(f"{output}/simple/: {report.wheels:,} wheel(s) in {report.projects:,} "
                  f"project(s); {len(report.added)} added, {len(report.changed)} changed, "
                  f"{len(report.removed)} removed, {len(report.rejected)} left out; {state} "
                  f"({report.seconds:.2f} s)", highlight=False)
    if strict and report.rejected:
        raise IndexBuildError(f"{len(report.rejected)} wheel(s) were left out of the index",
                              hint="fix or remove them; the reasons are listed above")


@app.command("serve")
def serve_command(
    root: Annotated[Path, typer.Argument(help="The folder `kiln index -o` wrote.")] = DEFAULT_ROOT,
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Loopback address to listen on.")] = LOOPBACK,
) -> None:
    """Serve an index on loopback, with PEP 691 content negotiation and range requests."""
    from kiln.serve import IndexServer

    server = IndexServer(root, host=host, port=port, log=_log_line)
    url = f"http://{server.host_for_url}:{server.port}/simple/"
    # One machine-readable first line on stdout, so scripts and tests can find the port.
    print(f"serving {root} at {url}", flush=True)
    stop = threading.Event()
    try:
        server.serve_until(stop)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _log_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@app.command("publish")
def publish_command(
    root: Annotated[Path, typer.Argument(help="The folder `kiln index -o` wrote.")],
    target: Annotated[str, typer.Argument(help="A folder, or s3://bucket/prefix.")],
    endpoint_url: Annotated[str | None, typer.Option(
        "--endpoint-url", envvar="KILN_S3_ENDPOINT_URL",
        help="S3-compatible endpoint (MinIO, R2, moto …).")] = None,
    region: Annotated[str | None, typer.Option("--region", envvar="AWS_REGION",
                                               help="S3 region.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="List what would change; "
                                                                  "change nothing.")] = False,
    delete: Annotated[bool, typer.Option("--delete/--keep-stale", help="Remove files an "
                                         "earlier publish put there that the index no longer "
                                         "has (after the pages).")] = True,
    require_quorum: Annotated[int | None, typer.Option(
        "--require-quorum", min=1, envvar="KILN_REQUIRE_QUORUM",
        help="Publish nothing unless every kiln wheel in the index lists this many builders "
             "(build the index with `kiln index --require-quorum N --key …`, which leaves "
             "the others out).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Copy an index to a folder or an S3 bucket: changed files first, pages last."""
    from kiln.publish import open_target, publish, without_quorum

    if require_quorum is not None:
        short = without_quorum(root, require_quorum)
        if short:
            raise PublishError(
                f"{len(short)} wheel(s) in {root} lack a quorum of {require_quorum} builders: "
                + ", ".join(short[:5]) + (" …" if len(short) > 5 else ""),
                hint=f"run `kiln index WHEELHOUSE -o {root} --require-quorum {require_quorum} "
                     "--key …` (one --key per builder) to leave them out; nothing was published")

    with reporting(terminal()):
        destination = open_target(target, endpoint_url=endpoint_url, region=region)
        report = publish(root, destination, dry_run=dry_run, delete=delete)
    if json_output:
        print_json(report.as_json())
        return
    if report.uploads or report.deletions:
        rows = [[action.verb, action.key, f"{action.size:,}" if action.size else ""]
                for action in report.actions()]
        table(None, ["action", "key", "bytes"], rows)
    verb = "would upload" if dry_run else "uploaded"
    out.print(f"{target}: {verb} {len(report.uploads)} file(s) "
              f"({report.bytes_uploaded:,} bytes), {'would delete' if dry_run else 'deleted'} "
              f"{len(report.deletions)}, {report.unchanged:,} unchanged", highlight=False)
    if report.failed:
        raise PublishError(f"{report.failed} upload(s) failed", hint="run the same command again")
