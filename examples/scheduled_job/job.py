"""A scheduled job (cron, Airflow, a CI schedule): budget check, search, register, load, predict.

    python examples/scheduled_job/job.py --ledger LEDGER --tracking-uri URI --name compas-risk \
        --rows new_rows.csv --predictions predictions.csv

1. **Budget check.** The search is priced (``plan_search``) and the ledger
   asked whether it can admit that charge; if not, the job stops with exit 0
   and one line: tonight's model is skipped, nothing is charged.
2. **Search and register.** ``tunedp.search(..., register=NAME)`` checks the
   Model Registry *before* the charge (an unreachable registry costs nothing),
   charges the ledger, runs the trials and releases the best model, which
   becomes a new version of NAME tagged with the dataset, the charged ε, δ
   and the ledger's total spent.
3. **Load by name.** ``mlflow.pyfunc.load_model("models:/NAME/latest")`` —
   what a later pipeline stage (or another machine) does.
4. **Predict on raw rows.** The model takes the table's own columns (any
   other column, such as an id or the label, is ignored) and returns a label
   and each class's probability.

Exit codes: 0 done (or skipped for lack of budget), 1 the search released
nothing, 2 a user error (bad config, unreachable registry): nothing charged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=HERE / "compas.yaml")
    parser.add_argument("--ledger", required=True, help="the dataset's ledger (tunedp budget init --config ...)")
    parser.add_argument("--tracking-uri", required=True, help="MLflow tracking (and registry) URI")
    parser.add_argument("--name", required=True, help="registered model name")
    parser.add_argument("--rows", type=Path, required=True, help="raw rows to score (CSV with the table's columns)")
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=None, help="the search's output folder")
    args = parser.parse_args(argv)

    import tunedp
    from tunedp.errors import BudgetExceededError, UserFacingError
    from tunedp.ledger.sqlite import PrivacyLedger
    from tunedp.observe import MlflowTracker
    from tunedp.run.preflight import check_admissible

    try:
        config = tunedp.load_config(args.config)
        plan = tunedp.plan_search(config)
        # 1. Budget check: a dry run of the charge; nothing is charged here.
        ledger = PrivacyLedger.open(Path(args.ledger), dataset=config.dataset_name)
        try:
            check_admissible(plan, ledger)
        except BudgetExceededError as error:
            print(f"skipped: {error}")
            return 0
        print(
            f"budget check: ε {plan.search_epsilon:.3g} fits; {ledger.spent_epsilon():.3g} of {ledger.epsilon:g} spent"
        )
        # 2. Search and register (the registry is checked before the charge).
        tracker = MlflowTracker(args.tracking_uri)
        outcome = tunedp.search(
            config, ledger_path=Path(args.ledger), observers=[tracker], register=args.name, output_dir=args.output
        )
    except UserFacingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except tunedp.SearchError as error:
        print(f"search failed: {error}", file=sys.stderr)
        return 1
    if tracker.registered is None:
        print(f"error: the search released a model but registering it failed: {tracker.error}", file=sys.stderr)
        return 1
    name, version = tracker.registered
    privacy = outcome.report.privacy
    print(f"registered models:/{name}/{version} (charged ε = {privacy.charged_epsilon:.4g}, δ = {privacy.delta:g})")

    # 3. Load by name, as the next stage of a pipeline would.
    import pandas as pd

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{args.name}/latest")
    # 4. Predict on raw rows: the CSV's own columns.
    predictions = model.predict(pd.read_csv(args.rows))
    predictions.to_csv(args.predictions, index=False)
    print(f"wrote {len(predictions)} predictions to {args.predictions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
