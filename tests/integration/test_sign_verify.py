"""keygen → build --sign-key → verify, through the real CLI; then every way to break it.

Also: `kiln sign` with a key and through its environment variables, keyless signing's
errors up to the network call, and offline keyless verification with no network at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from tests.conftest import RunKiln

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "sigstore"
PA_SDIST = ASSETS / "pypi_attestations-0.0.19.tar.gz"
PA_WORKFLOW = ("https://github.com/trailofbits/pypi-attestations/.github/workflows/release.yml"
               "@refs/tags/v0.0.19")
GITHUB = "https://token.actions.githubusercontent.com"
NO_AMBIENT = dict.fromkeys(("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL",
                            "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "KILN_IDENTITY_TOKEN",
                            "KILN_SIGN_KEY", "KILN_VERIFY_KEY", "GITLAB_CI", "BUILDKITE",
                            "CIRCLECI", "GOOGLE_SERVICE_ACCOUNT_NAME"), "")


def _build(run_kiln: RunKiln, recipe: Path, out: Path, *args: str) -> Path:
    run_kiln("build", recipe, "-o", out, *args, check=True)
    (wheel,) = out.glob("*.whl")
    return wheel


def _token(**claims: object) -> str:
    now = int(time.time())
    body = {"iss": "https://oauth2.sigstore.dev/auth", "aud": "sigstore", "sub": "x",
            "email": "builder@example.com", "iat": now, "nbf": now, "exp": now + 600, **claims}
    return jwt.encode(body, "k" * 32, algorithm="HS256")


def test_key_path_end_to_end(run_kiln: RunKiln, cext_recipe: Path, tmp_path: Path) -> None:
    run_kiln("keygen", "-o", "keys/kiln", check=True)
    key, pub = tmp_path / "keys" / "kiln.key", tmp_path / "keys" / "kiln.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    again = run_kiln("keygen", "-o", "keys/kiln")
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert key.read_bytes() == before

    wheel = _build(run_kiln, cext_recipe, tmp_path / "wh", "--sign-key", str(key),
                   "--check-repro")
    envelope = json.loads((wheel.parent / (wheel.name + ".dsse.json")).read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"

    result = run_kiln("verify", wheel, "--key", pub, "--json", check=True)
    (report,) = json.loads(result.stdout)
    assert report["verified"] is True and report["wheel"] == wheel.name
    assert report["buildType"] == "https://kiln.dev/build/v1"
    assert report["sdistSha256"] in cext_recipe.read_text()
    assert report["recipeSha256"] == hashlib.sha256(cext_recipe.read_bytes()).hexdigest()
    assert report["reproducible"] is True and len(set(report["reproDigests"])) == 1
    assert report["testsPassed"] is True
    assert report["builder"].startswith("kiln://")
    human = run_kiln("verify", wheel, "--key", pub, check=True).stdout
    assert "verified" in human and wheel.name in human and "reproducible" in human

    _each_tampering_fails(run_kiln, wheel, key, pub, tmp_path)


def _each_tampering_fails(run_kiln: RunKiln, wheel: Path, key: Path, pub: Path,
                          tmp_path: Path) -> None:
    run_kiln("keygen", "-o", "keys/other", check=True)
    other = tmp_path / "keys" / "other.pub"

    def changed_bytes(d: Path) -> tuple[Path, Path]:
        w = d / wheel.name
        w.write_bytes(w.read_bytes() + b"\0")
        return w, pub

    def renamed(d: Path) -> tuple[Path, Path]:
        w = d / wheel.name
        new = d / wheel.name.replace("-cp311-cp311-", "-cp311-abi3-")
        w.rename(new)
        (d / (wheel.name + ".dsse.json")).rename(d / (new.name + ".dsse.json"))
        return new, pub

    def statement_edited(d: Path) -> tuple[Path, Path]:
        path = d / (wheel.name + ".dsse.json")
        env = json.loads(path.read_text())
        st = json.loads(base64.b64decode(env["payload"]))
        st["predicate"]["runDetails"]["builder"]["id"] = "https://trusted.example/builder"
        env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
        path.write_text(json.dumps(env))
        return d / wheel.name, pub

    def wrong_key(d: Path) -> tuple[Path, Path]:
        return d / wheel.name, other

    def missing(d: Path) -> tuple[Path, Path]:
        (d / (wheel.name + ".dsse.json")).unlink()
        return d / wheel.name, pub

    def malformed(d: Path) -> tuple[Path, Path]:
        (d / (wheel.name + ".dsse.json")).write_text('{"payloadType": "application/vnd.in-'
                                                     'toto+json", "payload": "')
        return d / wheel.name, pub

    cases: list[tuple[Callable[[Path], tuple[Path, Path]], int, str]] = [
        (changed_bytes, 22, "the wheel was changed after signing"),
        (renamed, 23, "the wheel was renamed"),
        (statement_edited, 24, "it was changed after signing"),
        (wrong_key, 25, "signed by another key"),
        (missing, 26, "no attestation"),
        (malformed, 27, "not JSON"),
    ]
    for damage, code, reason in cases:
        case = tmp_path / "tamper" / damage.__name__
        case.mkdir(parents=True)
        shutil.copyfile(wheel, case / wheel.name)
        shutil.copyfile(wheel.parent / (wheel.name + ".dsse.json"),
                        case / (wheel.name + ".dsse.json"))
        target, public = damage(case)
        result = run_kiln("verify", target, "--key", public)
        assert result.returncode == code, (damage.__name__, result.stdout, result.stderr)
        assert reason in result.stderr, (damage.__name__, result.stderr)
        assert "error:" in result.stderr and "hint:" in result.stderr
        assert "Traceback" not in result.stderr
        as_json = run_kiln("verify", target, "--key", public, "--json")
        assert as_json.returncode == code
        assert json.loads(as_json.stdout)[0]["verified"] is False


def test_sign_command_and_its_environment(run_kiln: RunKiln, cext_recipe: Path,
                                          tmp_path: Path) -> None:
    run_kiln("keygen", "-o", "keys/kiln", check=True)
    wheel = _build(run_kiln, cext_recipe, tmp_path / "wh")
    assert not (wheel.parent / (wheel.name + ".dsse.json")).exists()
    env = {**NO_AMBIENT, "KILN_SIGN_KEY": "keys/kiln.key", "KILN_VERIFY_KEY": "keys/kiln.pub"}
    signed = run_kiln("sign", wheel, "--json", env=env, check=True)
    assert json.loads(signed.stdout)[0]["method"] == "key"
    assert run_kiln("verify", wheel, env=env).returncode == 0
    # A wheel that no longer matches its build record is not signed.
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    refused = run_kiln("sign", wheel, env=env)
    assert refused.returncode == 20, refused.stderr
    assert "changed after it was built" in refused.stderr


def test_keyless_signing_fails_clearly_before_and_at_the_network(
        run_kiln: RunKiln, cext_recipe: Path, tmp_path: Path) -> None:
    wheel = _build(run_kiln, cext_recipe, tmp_path / "wh")
    no_token = run_kiln("sign", wheel, env=NO_AMBIENT)
    assert no_token.returncode == 20, no_token.stderr
    assert "needs an OIDC identity token" in no_token.stderr
    assert "permissions: id-token: write" in no_token.stderr
    # KILN_IDENTITY_TOKEN is read, and its claims are checked before any network call.
    expired = _token(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200,
                     exp=int(time.time()) - 3600)
    stale = run_kiln("sign", wheel, env={**NO_AMBIENT, "KILN_IDENTITY_TOKEN": expired})
    assert stale.returncode == 20 and "expired" in stale.stderr, stale.stderr
    # A well-formed token gets as far as Sigstore, which this machine cannot reach (or, where
    # it can, Fulcio refuses a token nobody signed).
    fresh = run_kiln("sign", wheel, "--identity-token", _token(), env=NO_AMBIENT, timeout=300)
    assert fresh.returncode == 20, fresh.stderr
    assert "Sigstore" in fresh.stderr
    assert not (wheel.parent / (wheel.name + ".sigstore.json")).exists()


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -n` (a network namespace)")
def test_offline_keyless_verification_needs_no_network(tmp_path: Path) -> None:
    """With no network at all and an empty HOME, the shipped trust root is enough."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "COLUMNS": "200"}
    base = ["unshare", "-n", sys.executable, "-m", "kiln", "verify", str(PA_SDIST), "--bundle",
            str(ASSETS / (PA_SDIST.name + ".provenance")), "--issuer", GITHUB, "--offline"]
    good = subprocess.run([*base, "--identity", PA_WORKFLOW, "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)[0]["signatures"][0]["signer"] == PA_WORKFLOW
    bad = subprocess.run([*base, "--identity", PA_WORKFLOW.replace("v0.0.19", "v9")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 25, bad.stderr
    assert f"signed by {PA_WORKFLOW}" in bad.stderr


def test_signatures_kept_on_the_audit_branch_are_used(run_kiln: RunKiln, cext_recipe: Path,
                                                      tmp_path: Path) -> None:
    """With nothing beside the wheel, `kiln verify` checks the audit branch's copy."""
    run_kiln("keygen", "-o", "keys/kiln", check=True)
    wheel = _build(run_kiln, cext_recipe, tmp_path / "wh", "--sign-key", "keys/kiln.key")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    run_kiln("audit", "record", wheel, "--repo", repo, check=True)
    alone = tmp_path / "downloaded" / wheel.name
    alone.parent.mkdir()
    shutil.copyfile(wheel, alone)
    missing = run_kiln("verify", alone, "--key", "keys/kiln.pub")
    assert missing.returncode == 26, missing.stderr  # tmp_path is not the repository
    found = run_kiln("verify", alone, "--key", "keys/kiln.pub", "--audit-repo", repo, "--json",
                     check=True)
    assert "audit branch" in json.loads(found.stdout)[0]["signatures"][0]["attestation"]
    alone.write_bytes(alone.read_bytes() + b"\0")
    tampered = run_kiln("verify", alone, "--key", "keys/kiln.pub", "--audit-repo", repo)
    assert tampered.returncode == 22, tampered.stderr
