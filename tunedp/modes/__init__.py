"""Search modes: how a search's trials are chosen, priced, run and released — one module per mode.

:class:`SearchMode` (:mod:`~tunedp.modes.base`) is the protocol; each mode
module registers one under the config's ``search.mode`` literal, and
:func:`search_mode` finds it:

========================  =====================================================
``random``                K random, points from the prior (:mod:`~tunedp.modes.random`)
``adaptive``              Optuna TPE, optionally ASHA (:mod:`~tunedp.modes.adaptive`)
``grid``                  every grid point (:mod:`~tunedp.modes.grid`)
``hypo``                  DP-HyPO's bounded adaptive proposals (:mod:`~tunedp.modes.hypo`)
``two_stage``             short private trials, then one run (:mod:`~tunedp.modes.two_stage`)
``public_proxy``          public trials, then one private run (:mod:`~tunedp.modes.public_proxy`)
========================  =====================================================

A new mode is one module here (a :class:`SingleStageMode` or
:class:`StagedMode` that calls :func:`~tunedp.modes.base.register`), its import
below, its config model in :mod:`tunedp.config`, and one
:class:`tunedp.testing.SearchModeContract` subclass in the tests.

Sits between the driver and the planners: imports :mod:`tunedp.planning`'s
planners, :mod:`tunedp.release.disclosure`, and — inside functions only —
:mod:`tunedp.run.ray_backend`, Ray, Tune and Optuna. Importing it loads
neither Ray nor torch.
"""

from __future__ import annotations

from tunedp.modes import adaptive, grid, hypo, public_proxy, random, two_stage
from tunedp.modes.base import SearchMode, SingleStageMode, StagedMode, registered_modes, search_mode

__all__ = ["MODE_MODULES", "SearchMode", "SingleStageMode", "StagedMode", "registered_modes", "search_mode"]

#: The module of each shipped mode (importing them registers the modes).
MODE_MODULES = (random, adaptive, grid, hypo, two_stage, public_proxy)
