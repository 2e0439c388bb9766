"""Which workloads are PUBLIC, and the check that a public proxy shares no data with the protected one.

A ``public_proxy`` search charges nothing for its first stage because that
stage reads no protected row. That claim rests on two facts checked here
before anything is planned or charged:

- the proxy is *declared* public (its ``Workload.public_source``; the
  built-ins are listed in :data:`PUBLIC_WORKLOADS`); a user cannot name some
  other workload — possibly another team's protected data — as public, and a
  third-party workload is public only where its own declaration says so;
- the proxy and the protected workload share no dataset name and no data
  file (resolved paths of the files each one declares in ``data_files``). A
  proxy that read the protected file would make stage 1 a free, uncharged
  look at private rows. Names and paths are compared, not contents
  (docs/architecture.md §4.5).

Files are located without reading them (and without importing torch). Where a
dataset is not installed its files cannot be compared; the dataset names are
still compared, and such a search fails at load time anyway.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

from pathlib import Path

from tunedp.errors import ConfigError

__all__ = ["PUBLIC_WORKLOADS", "check_public_proxy", "public_source", "workload_files"]


def public_source(workload: object) -> str | None:
    """Where ``workload``'s data comes from if its declaration says it is public; ``None`` otherwise.

    A csv table (a config's own workload) and a workload that cannot be
    resolved are protected: the conservative answer.
    """
    from tunedp.workloads import resolve_workload

    if not isinstance(workload, str):
        return None
    try:
        return resolve_workload(workload).public_source
    except (ConfigError, ValueError, TypeError, ImportError):
        return None


def _builtin_public_workloads() -> dict[str, str]:
    from tunedp.workloads import BUILTIN_WORKLOADS

    found = {name: public_source(name) for name in BUILTIN_WORKLOADS}
    return {name: source for name, source in found.items() if source is not None}


#: The built-in workloads whose data is public, with where it comes from (read from their declarations).
PUBLIC_WORKLOADS: dict[str, str] = _builtin_public_workloads()


def workload_files(workload: object) -> frozenset[Path]:
    """The resolved data files ``workload`` reads; empty where they cannot be located.

    A ``csv`` workload reads the one file its config names; any other, the
    files its declaration's ``data_files`` locates.
    """
    from tunedp.workloads import resolve_workload

    path = getattr(workload, "path", None)
    if path is not None:
        return frozenset({Path(path).resolve()})
    if not isinstance(workload, str):
        return frozenset()
    try:
        locate = resolve_workload(workload).data_files
        return frozenset(path.resolve() for path in locate()) if locate is not None else frozenset()
    except (ConfigError, ValueError, TypeError, ImportError, FileNotFoundError):
        return frozenset()


def check_public_proxy(
    *, public_workload: str, public_dataset: str, protected_workload: object, protected_dataset: str
) -> None:
    """Refuse a proxy that is not declared public or that shares data with the protected workload."""
    if public_source(public_workload) is None:
        known = ", ".join(sorted(PUBLIC_WORKLOADS))
        raise ConfigError(
            f"search.public_workload: {public_workload!r} is not declared public (known public workloads: {known})"
        )
    shared = workload_files(public_workload) & workload_files(protected_workload)
    if public_dataset == protected_dataset or public_workload == protected_workload or shared:
        what = f"file {sorted(shared)[0]}" if shared else f"dataset {protected_dataset!r}"
        raise ConfigError(
            f"search.public_workload: {public_workload!r} shares its data ({what}) with the protected workload "
            f"{protected_workload!r}; a proxy must read no protected row, so name a separate public workload"
        )
