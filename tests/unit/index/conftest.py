"""Puts tests/ on sys.path so the index tests share ``index_support`` (hand-made wheels)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
