"""Fetch an sdist into the content-addressed cache and unpack it safely."""

from __future__ import annotations

import calendar
import tarfile
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kiln import http
from kiln.archive import extract
from kiln.errors import HashMismatchError, SourceHashMismatchError
from kiln.files import sha256_file, write_atomic
from kiln.progress import reporter
from kiln.recipe import Recipe
from kiln.wheelfile import ZIP_EPOCH_MIN


@dataclass(frozen=True)
class FetchedSource:
    url: str
    path: Path
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return self.path.name


def sdist_filename(url: str) -> str:
    name = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    return name or "source.tar.gz"


def fetch_sdist(recipe: Recipe, cache: Path) -> FetchedSource:
    """The recipe's sdist, downloaded once, its sha256 checked every time it is used."""
    reporter().stage("fetch", sdist_filename(recipe.url))
    target = cache / "sdists" / recipe.source_sha256 / sdist_filename(recipe.url)
    try:
        http.download(recipe.url, target, sha256=recipe.source_sha256,
                      what=f"{recipe.path}: [source] url")
    except HashMismatchError as exc:
        # The recipe's own sha256: the recipe is refused, not a build failed.
        raise SourceHashMismatchError(exc.message, hint=exc.hint) from exc
    actual = sha256_file(target)
    if actual != recipe.source_sha256:
        # The cache was changed behind kiln's back: never build from it.
        target.unlink()
        msg = (f"{recipe.path}: cached sdist {target} has sha256 {actual}, "
               f"but the recipe says {recipe.source_sha256}")
        raise HashMismatchError(msg, hint="the cached copy was removed; run the command again")
    return FetchedSource(url=recipe.url, path=target, sha256=actual, size=target.stat().st_size)


def unpack_sdist(source: FetchedSource, dest: Path) -> Path:
    """Unpack into the empty folder ``dest``; return the project folder inside it."""
    return extract(source.path, dest)


def source_date_epoch(source: FetchedSource, recipe: Recipe) -> int:
    """The time a build claims to have happened: the newest file in the sdist.

    It depends only on the sdist's bytes, so every rebuild claims the same time. A recipe
    may set ``[build] source-date-epoch`` instead.
    """
    if recipe.source_date_epoch is not None:
        return recipe.source_date_epoch
    memo = source.path.with_name("source-date-epoch")
    if memo.exists():
        return int(memo.read_text())
    newest = newest_member_time(source.path)
    write_atomic(memo, str(newest))
    return newest


def newest_member_time(archive: Path) -> int:
    newest = 0
    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                stamp = calendar.timegm((*info.date_time, 0, 0, 0))
                newest = max(newest, stamp)
    else:
        with tarfile.open(archive) as tar:
            for member in tar:
                newest = max(newest, int(member.mtime))
    return max(newest, ZIP_EPOCH_MIN)
