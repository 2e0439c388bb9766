"""Running a search: pre-flight, charge, trials, resume, failures and interrupts.

:mod:`~tunedp.run.driver` runs plan → pre-flight → charge → trials → release in
that order (the privacy contract: nothing reads data before the charge);
:mod:`~tunedp.run.preflight` holds every check that can fail without private data;
:mod:`~tunedp.run.resume` the authenticated state of an interrupted search;
:mod:`~tunedp.run.ray_backend` owns the Ray cluster's lifetime, the trainable and
the Tune configuration (the only Ray importer besides the modes' Tune hooks);
:mod:`~tunedp.run.trial` is one DP training run (torch); :mod:`~tunedp.run.staged`
runs a staged search's stages.

The top of the stack: may import every other package; nothing below imports it.
"""
