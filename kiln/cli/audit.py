"""``kiln audit record|log|show|verify|push``: the append-only audit branch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from kiln.cli.app import app
from kiln.cli.common import JsonOption, terminal
from kiln.cli.console import err, out, print_json, table
from kiln.errors import UsageError, VerificationError
from kiln.progress import reporting

if TYPE_CHECKING:
    from kiln.audit.branch import AuditBranch, Entry
    from kiln.audit.records import AuditRecord

audit_app = typer.Typer(name="audit", no_args_is_help=True,
                        help="The append-only audit branch: record, list, show, verify, push.")
app.add_typer(audit_app, name="audit")

RepoOption = Annotated[Path, typer.Option(
    "--repo", envvar="KILN_AUDIT_REPO",
    help="A folder inside the repository that keeps the branch [default: the current one].")]
BranchOption = Annotated[str, typer.Option(
    "--branch", envvar="KILN_AUDIT_BRANCH", help="The audit branch's name.")]


def _open(repo: Path, branch: str) -> AuditBranch:
    from kiln.audit.branch import AuditBranch

    return AuditBranch.open(repo, branch)


@audit_app.command("record")
def record(
    wheels: Annotated[list[Path], typer.Argument(
        help="Wheels with their build records (and signatures) beside them.")],
    repo: RepoOption = Path(),
    branch: BranchOption = "audit",
    json_output: JsonOption = False,
) -> None:
    """Record wheels on the audit branch (the same wheel again changes nothing)."""
    from kiln.audit.records import record_for_wheel

    audit = _open(repo, branch)
    # Read every wheel's records first: one bad wheel stops the command before any commit.
    records = [record_for_wheel(w) for w in wheels]
    reporter = terminal()
    results = []
    try:
        with reporting(reporter):
            for rec in records:
                results.append((rec, audit.add(rec)))
    finally:
        reporter.close()
    if json_output:
        print_json([{"wheel": rec.wheel.filename, "sha256": rec.wheel.sha256,
                     "status": added.status, "path": added.path, "commit": added.commit,
                     "attempts": added.attempts} for rec, added in results])
        return
    words = {"recorded": "recorded", "exists": "already recorded",
             "conflict": "recorded: DIGEST DIFFERS from the first record",
             "witness": "recorded: another signer of the same bytes"}
    table(None, ["wheel", "sha256", "status", "commit"],
          [[rec.wheel.filename, rec.wheel.sha256[:12], words[added.status],
            (added.commit or "")[:12]] for rec, added in results])


def _reproducible(entry: Entry) -> str:
    repro = entry.record.reproducibility
    text = ("not checked" if not repro.checked else "yes" if repro.reproducible
            else "no (expected)" if not repro.expected else "no")
    return f"{text}; differs across builders" if entry.conflict else text


def _signed_by(rec: AuditRecord, short: bool = False) -> str:
    """Key ids are 64 hex digits: a table shows the first 16, like `kiln verify`."""
    names = [s.signed_by[:20] + "…" if short and s.signed_by.startswith("key ")
             and len(s.signed_by) > 24 else s.signed_by for s in rec.signatures]
    return "; ".join(names) or "unsigned"


def _entry_json(entry: Entry) -> dict[str, Any]:
    rec = entry.record
    return {"commit": entry.commit.oid, "path": entry.path, "wheel": rec.wheel.filename,
            "sha256": rec.wheel.sha256, "builder": rec.builder,
            "reproducible": rec.reproducibility.reproducible,
            "reproducibility_checked": rec.reproducibility.checked,
            "differs_across_builders": entry.conflict, "signed_by": _signed_by(rec),
            "recorded_at": rec.recorded_at.isoformat()}


@audit_app.command("log")
def log(
    repo: RepoOption = Path(),
    branch: BranchOption = "audit",
    json_output: JsonOption = False,
) -> None:
    """List the records, newest first."""
    entries = list(reversed(_open(repo, branch).entries()))
    if json_output:
        print_json([_entry_json(e) for e in entries])
        return
    if not entries:
        err.print(Text(f"the {branch} branch has no records yet", style="dim"))
        return
    table(None, ["recorded", "wheel", "sha256", "builder", "reproducible", "signed by",
                 "commit"],
          [[e.record.recorded_at.strftime("%Y-%m-%d %H:%M"), e.record.wheel.filename,
            e.record.wheel.sha256[:12], e.record.builder, _reproducible(e),
            _signed_by(e.record, short=True), e.commit.oid[:12]] for e in entries])


@audit_app.command("show")
def show(
    wheel: Annotated[str, typer.Argument(help="A wheel filename (or a path to the wheel).")],
    sha256: Annotated[str | None, typer.Option("--sha256", help="Only the record with this "
                                                                "digest.")] = None,
    repo: RepoOption = Path(),
    branch: BranchOption = "audit",
    json_output: JsonOption = False,
) -> None:
    """Show the full record(s) of a wheel."""
    from kiln.audit.records import wheel_folder

    filename = Path(wheel).name
    wheel_folder(filename)  # a clear error for something that is not a wheel filename
    entries = [e for e in _open(repo, branch).entries() if e.record.wheel.filename == filename
               and (sha256 is None or e.record.wheel.sha256 == sha256)]
    if not entries:
        raise UsageError(f"{filename}: no record on the {branch} branch"
                         + (f" with sha256 {sha256}" if sha256 else ""),
                         hint="kiln audit log lists what is recorded")
    if json_output:
        print_json([{**_entry_json(e), "record": e.record.model_dump(mode="json")}
                    for e in entries])
        return
    for e in entries:
        rec = e.record
        rows = [["commit", e.commit.oid], ["path", e.path],
                ["recorded", f"{rec.recorded_at.isoformat()} by {rec.recorded_by}"],
                ["wheel", f"{rec.wheel.filename} ({rec.wheel.size} bytes)"],
                ["sha256", rec.wheel.sha256], ["builder", rec.builder],
                ["reproducible", _reproducible(e)], ["signed by", _signed_by(rec)],
                ["sdist", f"{rec.source.url} sha256 {rec.source.sha256}"],
                ["recipe", f"{rec.recipe.path} sha256 {rec.recipe.sha256}"],
                ["lock", f"{rec.lock.path} sha256 {rec.lock.sha256}" if rec.lock else "none"],
                ["build log", f"{rec.build_log.name} sha256 {rec.build_log.sha256}"
                 if rec.build_log else "none"]]
        table(None, ["field", "value"], rows)
        out.print_json(rec.model_dump_json())


@audit_app.command("verify")
def verify(
    key: Annotated[list[Path] | None, typer.Option(
        "--key", envvar="KILN_VERIFY_KEY",
        help="Public key (PEM) for DSSE envelopes; repeat it to trust each builder's key "
             "(every record must verify with one of them).")] = None,
    identity: Annotated[str | None, typer.Option(
        "--identity", envvar="KILN_VERIFY_IDENTITY",
        help="Sigstore: the signer identity the certificate must name.")] = None,
    issuer: Annotated[str | None, typer.Option(
        "--issuer", envvar="KILN_VERIFY_ISSUER",
        help="Sigstore: the OIDC issuer the certificate must name.")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", envvar="KILN_OFFLINE",
        help="Sigstore: use the trust root sigstore-python ships or has cached; no network.")
    ] = False,
    staging: Annotated[bool, typer.Option("--staging", help="Sigstore's staging instance.")
                       ] = False,
    wheelhouse: Annotated[Path | None, typer.Option(
        "--wheelhouse", help="Every wheel here must be recorded with its digest.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="A commit the branch must still descend from (the tip you checked "
                        "last time).")] = None,
    repo: RepoOption = Path(),
    branch: BranchOption = "audit",
    json_output: JsonOption = False,
) -> None:
    """Check the whole branch: history, records, signatures, a wheelhouse, --since."""
    from kiln.audit.verify import signature_check, verify_branch

    if (identity is None) != (issuer is None):
        raise UsageError("--identity and --issuer go together",
                         hint="for GitHub Actions: --issuer https://token.actions."
                              "githubusercontent.com")
    check = signature_check(key=key, identity=identity, issuer=issuer, offline=offline,
                            staging=staging)
    report = verify_branch(_open(repo, branch), check=check, wheelhouse=wheelhouse,
                           since=since)
    if json_output:
        print_json(report.as_json())
    elif report.findings:
        table(None, ["", "where", "reason"],
              [[f.severity, f.where, f.reason] for f in report.findings])
    summary = (f"{report.ref or branch} at {(report.tip or 'nothing')[:12]}: {report.records} "
               f"records in "
               f"{report.commits} commits"
               + (f", {report.signatures_checked} signatures checked"
                  if report.signatures_checked is not None else "")
               + (f", {report.wheels_checked} wheels checked"
                  if report.wheels_checked is not None else ""))
    if check is None:
        err.print(Text("signatures were not checked: pass --key, or --identity and --issuer",
                       style="yellow"))
    if not report.ok:
        problems = [f for f in report.findings if f.severity != "note"]
        raise VerificationError(f"{summary}: {len(problems)} problem(s)",
                                hint="each is listed above with its reason")
    if not json_output:
        out.print(Text.assemble(("verified", "green"), f": {summary}; pin it next time with "
                                f"--since {report.tip}"))


@audit_app.command("push")
def push(
    remote: Annotated[str, typer.Option("--remote", envvar="KILN_AUDIT_REMOTE",
                                        help="The remote to push to.")] = "origin",
    repo: RepoOption = Path(),
    branch: BranchOption = "audit",
    json_output: JsonOption = False,
) -> None:
    """Push the audit branch, rebasing our records on the remote's and retrying."""
    from kiln.audit.push import push_branch

    reporter = terminal()
    try:
        with reporting(reporter):
            done = push_branch(_open(repo, branch), remote)
    finally:
        reporter.close()
    if json_output:
        print_json(done.__dict__)
        return
    message = (f"pushed {done.pushed} record(s) to {remote}/{branch}" if done.pushed
               else f"{remote}/{branch} already has every record")
    out.print(Text(f"{message}; tip {(done.tip or 'none')[:12]}"))
    if done.dropped:
        err.print(Text(f"{len(done.dropped)} record(s) were already on {remote}: dropped ours",
                       style="dim"))
    for path in done.conflicts:
        err.print(Text(f"{path}: {remote} has this wheel with another digest; kept both "
                       "(not reproduced across builders)", style="yellow"))
