"""keep_freed_memory: accepted by glibc, refused arguments, and it changes no result."""

from __future__ import annotations

import platform

import pytest

from tunedp.optim import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings exist on glibc only")
def test_glibc_accepts_the_settings():
    assert keep_freed_memory() is True


def test_negative_thresholds_refused():
    with pytest.raises(ValueError, match=r"^Expected mmap_threshold=-1 and trim_threshold=1 >= 0$"):
        keep_freed_memory(mmap_threshold=-1, trim_threshold=1)
