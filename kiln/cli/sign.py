"""``kiln keygen``, ``kiln sign`` and ``kiln verify``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from kiln.cli.app import app, report_error
from kiln.cli.common import JsonOption, terminal
from kiln.cli.console import err, out, print_json, table
from kiln.errors import KilnError, UsageError, VerificationError
from kiln.progress import reporting

StagingOption = Annotated[bool, typer.Option(
    "--staging", envvar="KILN_SIGSTORE_STAGING",
    help="Use Sigstore's staging instance instead of production.")]


@app.command()
def keygen(
    output: Annotated[Path, typer.Option(
        "--output", "-o", envvar="KILN_KEYGEN_OUTPUT",
        help="Prefix of the key pair: writes PREFIX.key (mode 0600) and PREFIX.pub.")],
    json_output: JsonOption = False,
) -> None:
    """Make an ECDSA P-256 key pair for signing wheels offline; never overwrites a key.

    Set KILN_KEY_PASSWORD to encrypt the private key (and to use it later).
    """
    from kiln.signing.keys import generate_keypair

    pair = generate_keypair(output)
    if json_output:
        print_json({"private": str(pair.private), "public": str(pair.public),
                    "keyid": pair.keyid})
        return
    out.print(f"private key: {pair.private} (keep it secret; mode 0600)", highlight=False)
    out.print(f"public key:  {pair.public} (give it to whoever verifies)", highlight=False)
    out.print(f"keyid:       {pair.keyid}", highlight=False)


@app.command()
def sign(
    wheels: Annotated[list[Path], typer.Argument(help="Wheels, each with its .build.json "
                                                      "beside it.")],
    key: Annotated[Path | None, typer.Option(
        "--key", envvar="KILN_SIGN_KEY",
        help="Sign with this private key (W.dsse.json) instead of Sigstore.")] = None,
    identity_token: Annotated[str | None, typer.Option(
        "--identity-token", envvar="KILN_IDENTITY_TOKEN", show_default=False,
        help="OIDC token for Sigstore (default: the ambient credential, e.g. GitHub "
             "Actions with id-token: write).")] = None,
    staging: StagingOption = False,
    json_output: JsonOption = False,
) -> None:
    """Sign wheels' provenance: keyless with Sigstore (W.sigstore.json and the PEP 740
    W.publish.attestation), or with --key (W.dsse.json)."""
    from kiln.signing.wheels import sign_wheels_keyless, sign_wheels_with_key

    if key is not None and identity_token is not None:
        raise UsageError("--key and --identity-token exclude each other",
                         hint="sign with a local key, or keyless with Sigstore, not both at once")
    reporter = terminal()
    try:
        with reporting(reporter):
            if key is not None:
                done = sign_wheels_with_key(list(wheels), key)
            else:
                done = sign_wheels_keyless(list(wheels), identity_token=identity_token,
                                           staging=staging)
    finally:
        reporter.close()
    if json_output:
        print_json([d.to_json() for d in done])
        return
    table(None, ["wheel", "sha256", "signed by", "wrote"],
          [[d.wheel.name, d.sha256[:12], f"{d.method}: {d.signer}",
            ", ".join(f.name.removeprefix(d.wheel.name) for f in d.files)] for d in done])


def _rows(v: Any) -> list[list[str]]:
    rows = [["sha256", v.sha256]]
    for s in v.signatures:
        rows.append(["signed by", s.signer + (f"\nissuer {s.issuer}" if s.issuer else "")])
        rows.append(["attestation", s.origin])
    rows.append(["statement", v.predicate_type])
    if v.builder:
        rows.append(["builder", v.builder])
    if v.started or v.finished:
        rows.append(["built", f"{v.started or '?'} → {v.finished or '?'}"])
    if v.sdist:
        rows.append(["sdist", f"{v.sdist}\nsha256 {v.sdist_sha256}"])
    if v.recipe:
        rows.append(["recipe", f"{v.recipe}\nsha256 {v.recipe_sha256}"])
    if v.python or v.target:
        rows.append(["python, target", f"{v.python}, {v.target}"])
    for name, version, url, digest in v.libraries:
        rows.append(["library", f"{name} {version}: {url}\nsha256 {digest}"])
    if v.build_type and v.build_type.startswith("https://kiln.dev/"):
        repro = ("yes (" + ", ".join(d[:12] for d in v.repro_digests) + ")" if v.reproducible
                 else "NO" if v.reproducible is False else "not checked")
        rows.append(["reproducible", repro])
        rows.append(["tests", "passed" if v.tests_passed else
                     "not run" if v.tests_passed is None else "FAILED"])
    if v.signed_tests is not None:
        rows.append(["tests (signed result)",
                     f"{v.signed_tests.summary}\nsigned by {v.signed_tests.signature.signer}"])
    return rows


def _failure_json(wheel: Path, exc: KilnError) -> dict[str, Any]:
    return {"wheel": wheel.name, "path": str(wheel), "verified": False,
            "error": {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                      "exit_code": exc.exit_code}}


def _beside_or_recorded(wheel: Path, audit_repo: Path | None) -> Any:
    """The attestations beside the wheel, else those the audit branch keeps (None: neither)."""
    from kiln.verify import find_attestations

    if not wheel.is_file():
        return None  # verify_wheel says so
    beside = find_attestations(wheel)
    if beside:
        return beside
    from kiln.audit import attestations_for

    return attestations_for(wheel, repo=audit_repo) or None


@app.command()
def verify(
    wheels: Annotated[list[Path], typer.Argument(help="Wheels (or other distributions) to "
                                                      "check.")],
    key: Annotated[list[Path] | None, typer.Option(
        "--key", envvar="KILN_VERIFY_KEY",
        help="Trust signatures by this public key (PEM, from `kiln keygen`); repeat it for "
             "each builder of a quorum.")] = None,
    identity: Annotated[list[str] | None, typer.Option(
        "--identity", envvar="KILN_VERIFY_IDENTITY",
        help="Trust Sigstore signatures whose certificate names exactly this identity "
             "(e.g. https://github.com/ORG/REPO/.github/workflows/build.yml@refs/heads/main); "
             "repeatable, each with its --issuer."
    )] = None,
    issuer: Annotated[list[str] | None, typer.Option(
        "--issuer", envvar="KILN_VERIFY_ISSUER",
        help="The OIDC issuer that certificate must name, exactly "
             "(e.g. https://token.actions.githubusercontent.com).")] = None,
    quorum: Annotated[int | None, typer.Option(
        "--quorum", min=1, envvar="KILN_VERIFY_QUORUM",
        help="Pass only when this many of the trusted signers (--key, --identity) signed "
             "this wheel's very bytes, and none signed other bytes under its name; their "
             "signatures are read beside the wheel and on the audit branch.")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", envvar="KILN_OFFLINE",
        help="Use the Sigstore trust root sigstore-python ships or has cached; no network.")
    ] = False,
    staging: StagingOption = False,
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", envvar="KILN_VERIFY_BUNDLE",
        help="The attestation to check (DSSE envelope, Sigstore bundle, PEP 740 attestation "
             "or provenance) instead of the files beside the wheel; one wheel only.")] = None,
    audit_repo: Annotated[Path | None, typer.Option(
        "--audit-repo", envvar="KILN_AUDIT_REPO",
        help="When nothing lies beside a wheel, look for its signatures on the audit branch "
             "of this repository (default: the current folder's).")] = None,
    require_tests: Annotated[bool, typer.Option(
        "--require-tests", envvar="KILN_REQUIRE_TESTS",
        help="Also require a signed test result (W.tests.dsse.json or W.tests.sigstore.json, "
             "or the audit branch's copy) by a trusted signer, for these bytes, that passed.")
    ] = False,
    audit_branch: Annotated[list[str] | None, typer.Option(
        "--audit-branch",
        help="With --quorum: read the signatures recorded on this branch of the audit "
             "repository; repeat for each builder's branch (a rebuilder's, fetched with "
             "`git fetch URL audit:rebuilder-audit`). Default: audit.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Check wheels against their signed provenance; print what it says; exit non-zero on
    any doubt."""
    if offline:
        # sigstore warns that it will not update its trust root: with --offline, that is the point.
        logging.getLogger("sigstore").setLevel(logging.ERROR)
    keys, identities, issuers = key or [], identity or [], issuer or []
    if quorum is not None or len(keys) > 1 or len(identities) > 1 or len(issuers) > 1:
        _verify_quorum(wheels, keys, identities, issuers, quorum or 1, offline=offline,
                       staging=staging, bundle=bundle, audit_repo=audit_repo,
                       branches=audit_branch or [], json_output=json_output,
                       require_tests=require_tests)
        return
    if audit_branch:
        raise UsageError("--audit-branch counts builders: it goes with --quorum N",
                         hint="kiln verify WHEEL --quorum 2 --key a.pub --key b.pub "
                              "--audit-branch audit --audit-branch rebuilder-audit")
    from kiln.verify import VerifyPolicy, verify_tests, verify_wheel

    policy = VerifyPolicy(key=keys[0] if keys else None,
                          identity=identities[0] if identities else None,
                          issuer=issuers[0] if issuers else None, offline=offline,
                          staging=staging)
    policy.check()
    if bundle is not None and len(wheels) != 1:
        raise UsageError("--bundle belongs to one wheel, and several were given",
                         hint="verify the wheels one at a time with their own --bundle")
    passed, failed = [], []
    for wheel in wheels:
        try:
            found = (bundle if bundle is not None or audit_repo is None
                     else _beside_or_recorded(wheel, audit_repo))
            verified = verify_wheel(wheel, policy, attestation=found)
            if require_tests:
                verified = dataclasses.replace(
                    verified, signed_tests=verify_tests(wheel, [policy], audit_repo=audit_repo))
            passed.append(verified)
        except UsageError:
            raise
        except KilnError as exc:
            failed.append((wheel, exc))
    if json_output:
        print_json([v.to_json() for v in passed] + [_failure_json(w, e) for w, e in failed])
    else:
        for v in passed:
            table(None, ["verified", v.wheel.name], _rows(v))
        for wheel, failure in failed:
            err.print(f"[bold red]NOT verified[/] [bold]{wheel.name}[/]", highlight=False)
            report_error(failure)
    _fail(failed, len(wheels), json_output)


def _fail(failed: list[tuple[Path, KilnError]], total: int, json_output: bool) -> None:
    """Exit as the failures ask: one failure's own code, or a summary error for several."""
    if failed:
        codes = {e.exit_code for _, e in failed}
        if len(failed) == 1:
            error = failed[0][1]
        else:
            error = VerificationError(f"{len(failed)} of {total} wheel(s) failed "
                                      "verification: " + ", ".join(w.name for w, _ in failed))
            if len(codes) == 1:
                error.exit_code = codes.pop()
        if json_output or len(failed) > 1:
            raise error
        raise typer.Exit(error.exit_code)


def _verify_quorum(wheels: list[Path], keys: list[Path], identities: list[str],
                   issuers: list[str], needed: int, *, offline: bool, staging: bool,
                   bundle: Path | None, audit_repo: Path | None, branches: list[str],
                   json_output: bool, require_tests: bool = False) -> None:
    """``kiln verify --quorum N``: each wheel needs N of the trusted signers, none against."""
    from kiln.quorum import anchors_from, check_branches, check_quorum
    from kiln.verify import FoundAttestation, VerifyPolicy, verify_tests

    anchors = anchors_from(keys, identities, issuers)
    check_branches(audit_repo, branches)
    if bundle is not None and len(wheels) != 1:
        raise UsageError("--bundle belongs to one wheel, and several were given",
                         hint="verify the wheels one at a time with their own --bundle")
    extra = [FoundAttestation.from_path(bundle)] if bundle is not None else []
    results, failed = [], []
    tested: dict[Path, Any] = {}
    for wheel in wheels:
        try:
            result = check_quorum(wheel, anchors, needed, offline=offline, staging=staging,
                                  audit_repo=audit_repo, branches=branches, extra=extra)
        except UsageError:
            raise
        except KilnError as exc:
            failed.append((wheel, exc))
            continue
        results.append(result)
        problem = result.problem()
        if problem is not None:
            failed.append((wheel, problem))
        elif require_tests:
            policies = [VerifyPolicy(key=a.key, identity=a.identity, issuer=a.issuer,
                                     offline=offline, staging=staging) for a in anchors]
            try:
                tested[wheel] = verify_tests(wheel, policies, audit_repo=audit_repo)
            except KilnError as exc:
                failed.append((wheel, exc))
    if json_output:
        done = {r.wheel for r in results}
        print_json([{**r.to_json(), "signedTests": tested[r.wheel].to_json()
                     if r.wheel in tested else None,
                     **({"verified": False} if any(w == r.wheel for w, _ in failed) else {})}
                    for r in results]
                   + [_failure_json(w, e) for w, e in failed if w not in done])
    else:
        for r in results:
            rows = [[v.signer, v.sha256[:16], v.builder or "", "agrees"] for v in r.agree]
            rows += [[v.signer, v.sha256[:16], v.builder or "", "SIGNED OTHER BYTES"]
                     for v in r.disagree]
            title = (f"{r.wheel.name}: {len(r.agree)} of {r.needed} required signers"
                     + ("" if r.ok else " (NOT verified)"))
            table(title, ["signer", "sha256", "builder", "verdict"], rows)
        for wheel, failure in failed:
            err.print(f"[bold red]NOT verified[/] [bold]{wheel.name}[/]", highlight=False)
            report_error(failure)
    _fail(failed, len(wheels), json_output)

