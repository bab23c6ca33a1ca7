"""auditwheel's refusals come back with what to do about them."""

from __future__ import annotations

import pytest

from kiln import repair
from kiln.errors import RepairError
from kiln.toolchain.targets import TARGETS


@pytest.mark.parametrize(("said", "hint"), [
    ("auditwheel.error.InvalidLibcError: couldn't detect libc for python extension "
     "demo/_speedups.abi3.so", "links no C library"),
    ("demo-1.0-cp311-cp311-linux_x86_64.whl is not compliant with manylinux_2_17_x86_64: "
     "too-recent versioned symbols", "--backend zig"),
])
def test_auditwheel_refusals_get_a_hint(tmp_path, monkeypatch, said, hint):
    def refuse(*args, **kwargs):
        raise RepairError(f"demo: auditwheel repair failed (exit 1): {said}")

    monkeypatch.setattr(repair.proc, "run", refuse)
    raw = tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    with pytest.raises(RepairError) as caught:
        repair._auditwheel(raw, TARGETS["linux-x86_64"], tmp_path, epoch=0,
                           log=tmp_path / "log", policy=None, label="demo")
    assert caught.value.hint is not None and hint in caught.value.hint
