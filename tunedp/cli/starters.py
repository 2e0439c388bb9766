"""``tunedp init``: write one of the commented starter configs shipped in the wheel (``tunedp/starters/``).

``STARTERS`` names them (a file ``<name>.yaml`` each); a starter is the
shortest way to a config that plans.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunedp.cli.output import UserError, console

__all__ = ["STARTERS", "init_command"]


STARTERS = ("digits", "adult", "fashion_mnist", "fashion_mnist_scatternet", "csv")


def init_command(
    workload: Annotated[str, typer.Option("--workload", help=f"One of: {', '.join(STARTERS)}.", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write it (default: ./<workload>.yaml).", dir_okay=False),
    ] = None,
) -> None:
    """Write a commented starter config (shipped in the wheel) to edit, plan and search."""
    from importlib.resources import files

    if workload not in STARTERS:
        raise UserError(f"--workload: no starter {workload!r}; choose one of {', '.join(STARTERS)}")
    target = output if output is not None else Path(f"{workload}.yaml")
    if target.exists():
        raise UserError(f"--output: {target} already exists; choose another path or remove it")
    target.write_text(files("tunedp.starters").joinpath(f"{workload}.yaml").read_text(encoding="utf-8"), "utf-8")
    console.print(f"wrote {target}; next: tunedp plan --config {target}")
