"""Which builds of a recipe run side by side (kiln.schedule)."""

from __future__ import annotations

import threading
import time

from kiln.schedule import side_by_side, waves, width


def test_the_first_build_runs_alone_then_each_other_targets_first_then_the_rest():
    builds = [("3.10", "x86"), ("3.10", "arm"), ("3.11", "x86"), ("3.11", "arm"),
              ("3.12", "x86")]
    assert waves(builds) == [[0], [1], [2, 3, 4]]
    assert waves([("3.11", "x86")]) == [[0]]
    assert waves([("3.10", "x86"), ("3.11", "x86")]) == [[0], [1]]
    assert waves([]) == []


def test_the_job_limit_holds_with_the_twin_counted():
    assert width(2, 3, check_repro=False, one_at_a_time=False) == 2
    assert width(2, 3, check_repro=True, one_at_a_time=False) == 1  # build and twin fill 2
    assert width(8, 3, check_repro=True, one_at_a_time=False) == 3
    assert width(8, 5, check_repro=True, one_at_a_time=False) == 4
    assert width(1, 3, check_repro=False, one_at_a_time=False) == 1
    assert width(8, 3, check_repro=False, one_at_a_time=True) == 1


def test_builds_run_side_by_side_and_come_back_in_order():
    running, most = 0, 0
    lock = threading.Lock()

    def build(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05 * (3 - item))  # the first finishes last
        with lock:
            running -= 1
        return item * 10

    assert side_by_side([0, 1, 2], 2, build) == [0, 10, 20]
    assert most == 2
    most = 0
    assert side_by_side([0, 1, 2], 1, build) == [0, 10, 20]
    assert most == 1
