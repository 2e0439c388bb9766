"""Running a search: pre-flight, charge, trials, release, resume, failures and interrupts.

:mod:`~tunedp.run.driver` runs plan → pre-flight → charge → trials → release in
that order (the privacy contract: nothing reads data before the charge), one
function per step, with the options of the run in one
:class:`~tunedp.run.options.RunOptions`:

- :mod:`~tunedp.run.preflight` — every check that can fail without private data;
- :mod:`~tunedp.run.charge` — the data verified, the plan's event charged;
- the trials — the search mode's run (:mod:`tunedp.modes`), given a
  :class:`~tunedp.run.mode_run.RunContext`: Ray Tune through
  :mod:`~tunedp.run.ray_backend` (which owns the Ray cluster's lifetime, the
  trainable and the records; the only Ray importer besides the modes' Tune
  hooks), or a staged search's stages (:mod:`~tunedp.run.staged`);
- :mod:`~tunedp.run.release_step` — the model, the report, the observers' last word;
- :mod:`~tunedp.run.resume` — the authenticated state of an interrupted search;
- :mod:`~tunedp.run.trial` — one DP training run (torch).

The top of the stack: may import every other package. Only the search
modes, just below, import from it: the run's context (:mod:`~tunedp.run.mode_run`)
and, inside their functions, the Ray backend and the stages.
"""
