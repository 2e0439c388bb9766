"""``tunedp report`` and ``tunedp predict``: the commands that read a finished search's output folder.

``report`` prints its privacy report (it loads neither Ray nor torch, see
``tests/integration/test_layers.py``); ``predict`` runs its released model
on raw rows without MLflow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tunedp.cli.options import JsonOption
from tunedp.cli.output import UserError, console

__all__ = ["predict_command", "report_command"]


def predict_command(
    rows: Annotated[
        Path,
        typer.Argument(
            help="Raw rows: a CSV with the table's own columns; for images, a .npy array or an idx file "
            "(t10k-images-idx3-ubyte.gz) of raw pixels."
        ),
    ],
    report: Annotated[
        Path,
        typer.Option("--report", help="A search's output folder (report.json and best_model.pt).", file_okay=False),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the predictions here (default: stdout).", dir_okay=False),
    ] = None,
) -> None:
    """Predict labels and class probabilities for raw rows with a search's released model (no MLflow needed)."""
    from tunedp.release.predict import predict_file

    count = predict_file(report, rows, output)
    if output is not None:
        console.print(f"wrote {count} predictions to {output}", highlight=False)


def report_command(
    path: Annotated[Path, typer.Argument(help="A search's output folder or its report.json.")],
    as_json: JsonOption = False,
) -> None:
    """Print a finished search's privacy report."""
    from tunedp.release.report import SearchReport, human_summary

    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"PATH: no report at {file}; give a search's output folder")
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
        summary = human_summary(SearchReport.from_json(report))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"PATH: {file} is not a tunedp report ({error})") from None
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console.print(summary, highlight=False)
