"""Which builds of a recipe run side by side, and with what share of the job limit.

A build leaves cores idle for much of its time (making its venv, installing its
requirements, a link, repair, tests under qemu), so a recipe's Pythons and targets run
side by side when the job limit allows two or more, each with an equal share of it. The
machine is never asked for more compiles at once than ``-j``: a ``--check-repro`` build
counts twice (its twin takes half its share), so on two cores a checked build runs alone.

The order keeps what is done once done once:

1. the first build (the oldest Python, the first target) runs alone: an abi3 or pure
   wheel it makes serves the other Pythons, and every object it compiles that does not
   include Python.h is in the compile cache before any other build asks for it;
2. then the first build of each other target, side by side, for the same reasons;
3. then the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextvars import copy_context
from typing import TypeVar

from kiln.proc import CancelScope, run_in_scope

Item = TypeVar("Item")
Result = TypeVar("Result")


def waves(builds: Sequence[tuple[str, str]]) -> list[list[int]]:
    """The indexes of ``builds`` ((python, target) pairs, oldest Python first) in the
    order of the rules above; each wave starts when the one before it has finished."""
    if not builds:
        return []
    seen = {builds[0][1]}
    leads: list[int] = []
    rest: list[int] = []
    for i, (_python, target) in enumerate(builds[1:], start=1):
        if target in seen:
            rest.append(i)
        else:
            seen.add(target)
            leads.append(i)
    return [wave for wave in ([0], leads, rest) if wave]


def width(jobs: int, count: int, *, check_repro: bool, one_at_a_time: bool) -> int:
    """How many of ``count`` builds run at once under a limit of ``jobs`` compiles;
    ``one_at_a_time`` for work that must be in order (``--fail-fast``: the first failure
    stops everything; signing and the audit branch)."""
    if one_at_a_time:
        return 1
    return max(1, min(count, jobs // (2 if check_repro else 1)))


def side_by_side(items: Sequence[Item], at_once: int,
                 build: Callable[[Item], Result]) -> list[Result]:
    """``build(item)`` for every item, ``at_once`` at a time, each in a thread of its own;
    the results in the items' order. Ctrl-C or SIGTERM stops every build's programs."""
    if at_once <= 1:
        return [build(item) for item in items]
    scopes = [CancelScope() for _ in items]
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        futures = [pool.submit(copy_context().run, run_in_scope, scope,
                               functools.partial(build, item))
                   for scope, item in zip(scopes, items, strict=True)]
        try:
            wait(futures)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for scope in scopes:
                scope.cancel("kiln was stopped")
            raise
    return [future.result() for future in futures]
