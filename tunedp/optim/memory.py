"""An opt-in allocator setting that makes repeated private steps cheaper on glibc (Linux).

Each private step allocates and frees tens of MiB of per-example gradients
(chunk × number of parameters, plus the temporaries of the batched backward).
By default glibc serves blocks that large with fresh ``mmap``s, or trims the
heap once they are freed, so every step pays the page faults of touching that
memory anew — on the reference CNN that is about a third of the step. Telling
glibc to keep such blocks on the heap and not to trim it makes freed memory
reusable. This is process-wide, so it is never done implicitly: the embedding
program (a trial worker, a benchmark) calls it once. It changes no result and
has nothing to do with privacy.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_freed_memory"]

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(*, mmap_threshold: int = 32 * 2**20, trim_threshold: int = 2**30) -> bool:
    """Serve blocks up to ``mmap_threshold`` bytes from the heap and trim it only above ``trim_threshold``.

    Returns whether glibc accepted both settings; elsewhere (macOS, musl,
    Windows) it does nothing and returns False. glibc caps ``mmap_threshold``
    at 32 MiB on 64-bit systems. The price is resident memory: up to
    ``trim_threshold`` bytes of freed heap may stay mapped.
    """
    if mmap_threshold < 0 or trim_threshold < 0:
        raise ValueError(f"Expected mmap_threshold={mmap_threshold} and trim_threshold={trim_threshold} >= 0")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    accepted = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    return bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1) and accepted
