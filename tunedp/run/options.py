"""How a search runs, apart from what it searches: :class:`RunOptions`, one frozen value the driver passes on.

``tunedp.search``, :func:`tunedp.run.driver.run_search` and
:func:`~tunedp.run.driver.resume_search` take these as keyword arguments
(the command line's options) and hand one :class:`RunOptions` to every step.
Nothing in it changes what is charged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tunedp.observe.lines import LineProgress, ProgressCallback
from tunedp.observe.protocol import SearchObserver

__all__ = ["RunOptions"]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Where and how a search runs, and who hears about it."""

    #: An external Ray cluster (``--ray-address``); ``None`` starts a local Ray.
    ray_address: str | None = None
    #: At most this many trials at once (default: as many as the cluster fits).
    max_concurrent: int | None = None
    #: A seeded run (``--seed``): reproducible, and labelled "seeded: not private" everywhere.
    seed: int | None = None
    #: The output folder (default ``runs/<search id>``).
    output_dir: Path | None = None
    #: Told of the search within the disclosure rule (console, MLflow, …).
    observers: Sequence[SearchObserver] = ()
    #: Lets ``output_dir`` be a non-empty folder.
    force: bool = False
    #: Receives one plain line per event (also logged to ``tunedp.progress``).
    progress: ProgressCallback | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # The public functions take any sequence of observers and a str or Path folder: one frozen shape here.
        object.__setattr__(self, "observers", tuple(self.observers))
        if self.output_dir is not None:
            object.__setattr__(self, "output_dir", Path(self.output_dir))

    def listeners(self) -> list[SearchObserver]:
        """Everyone told about the search: the observers, then the plain progress lines."""
        return [*self.observers, LineProgress(self.progress)]
