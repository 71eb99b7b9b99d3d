"""Freed heap goes back to the system after a stage (glibc)."""

from __future__ import annotations

import sys

import pytest

from videozero.memory import _malloc_trim, release_freed_memory, releasing_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or _malloc_trim() is None, reason="glibc only")
def test_a_stage_hands_its_freed_heap_back() -> None:
    kept: list[bytes] = []

    @releasing_memory
    def stage() -> int:
        # 1 KiB blocks come from malloc's heap (not mmap); one in 64 outlives the stage, so the heap
        # cannot simply shrink from its top and stays resident until trimmed
        blocks = [bytes(1024) + bytes([i % 256]) for i in range(300_000)]
        kept.extend(blocks[::64])
        return len(blocks)

    release_freed_memory()
    before = _rss_mb()
    assert stage() == 300_000
    after = _rss_mb()
    assert after - before < 60, f"{after - before:.0f} MB still resident after the stage"
    assert len(kept) == 4688
