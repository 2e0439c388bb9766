"""Search configs: every mistake that could change the privacy cost is a one-line error naming its field.

Mutations of the shipped example (``search_spaces/example.yaml``) are
validated through the same entry points the CLI uses (``load_config`` /
``parse_config``); each refusal must be one line that starts with the source
and names the dotted field.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tunedp.config import (
    ChoiceParam,
    ConfigError,
    RandomSearch,
    SearchConfig,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "search_spaces" / "example.yaml"


# A valid config written out here (not read from search_spaces/, which others
# edit) so that each mutation below changes exactly one thing.
BASE: dict[str, Any] = {
    "name": "digits-test",
    "workload": "digits",
    "budget": {"epsilon": 2.0, "delta": 1.0e-5},
    "search": {
        "mode": "random",
        "expected_trials": 4,
        "distribution": "negative_binomial",
        "shape": 1.0,
        "release": "best",
    },
    "training": {
        "epochs": 10,
        "expected_batch_size": 120,
        "noise_schedule": {"kind": "constant"},
        "evaluations": 1,
    },
    "validation": {"policy": "private", "score_noise_multiplier": 5.0},
    "optimizer": "dp_sgd",
    "space": {
        "coupling": "lr_clip",
        "params": {
            "step_size": {"distribution": "log_uniform", "low": 0.5, "high": 8.0},
            "clip_norm": {"distribution": "log_uniform", "low": 0.1, "high": 5.0},
            "momentum": {"distribution": "fixed", "value": 0.9},
        },
    },
}


def _mutated(*edits: tuple[tuple[str, ...], object]) -> dict[str, Any]:
    """The example with each (path, value) set; value ``...`` deletes the key."""
    data = copy.deepcopy(BASE)
    for path, value in edits:
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        if value is ...:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return data


def _refusal(data: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="cfg.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cfg.yaml: ")
    return message


def test_shipped_example_and_the_test_base_are_valid() -> None:
    example = load_config(EXAMPLE)
    assert example.dataset_name == example.workload
    config = parse_config(copy.deepcopy(BASE))
    assert config.dataset_name == "digits"
    assert isinstance(config.search, RandomSearch)
    assert config.search.accountant_shape == 1.0
    assert config.budget.delta == 1e-5


def test_yaml_exponent_without_dot_is_read_as_a_number() -> None:
    """YAML 1.1 reads ``1e-5`` as a string; users mean the number."""
    data = yaml.safe_load(yaml.safe_dump(BASE).replace("1.0e-05", "1e-5"))
    assert data["budget"]["delta"] == "1e-5"
    assert parse_config(data).budget.delta == 1e-5


# Each case: the edit, and the field the one-line message must name.
REFUSALS: dict[str, tuple[tuple[tuple[tuple[str, ...], object], ...], str]] = {
    "typo at top level": (((("workloadd",), "digits"),), "workloadd: unknown field"),
    "typo in training": (((("training", "epochz"), 3),), "training.epochz: unknown field"),
    "typo in a search mode": (((("search", "expected_trial"), 3),), "search.expected_trial: unknown field"),
    "typo in a parameter": (
        ((("space", "params", "clip_norm", "hi"), 3),),
        "space.params.clip_norm.hi: unknown field",
    ),
    "missing budget delta": (((("budget", "delta"), ...),), "budget.delta: required field is missing"),
    "zero epsilon": (((("budget", "epsilon"), 0),), "budget.epsilon"),
    "negative epsilon": (((("budget", "epsilon"), -2.0),), "budget.epsilon"),
    "NaN epsilon": (((("budget", "epsilon"), math.nan),), "budget.epsilon"),
    "delta of one": (((("budget", "delta"), 1.0),), "budget.delta"),
    "boolean epsilon": (((("budget", "epsilon"), True),), "budget.epsilon: expected a number"),
    "boolean epochs": (((("training", "epochs"), True),), "training.epochs: expected a number"),
    "boolean trial count": (((("search", "expected_trials"), True),), "search.expected_trials: expected a number"),
    "boolean in a choice list": (
        (
            (("search",), {"mode": "grid"}),
            (
                ("space", "params"),
                {
                    "step_size": {"distribution": "choice", "values": [1.0, True]},
                    "clip_norm": {"distribution": "fixed", "value": 1.0},
                },
            ),
        ),
        "space.params.step_size.values.1: expected a number",
    ),
    "unknown mode": (((("search", "mode"), "bayesian"),), "search.mode: 'bayesian' is not one of"),
    "missing mode": (((("search", "mode"), ...),), "search.mode: required field is missing"),
    "expected trials below one": (((("search", "expected_trials"), 0.5),), "search.expected_trials"),
    "release all without max_trials": (((("search", "release"), "all"),), "search.max_trials is required"),
    "max_trials below the mean": (
        ((("search", "release"), "all"), (("search", "max_trials"), 2)),
        "search.max_trials=2 must be >= expected_trials",
    ),
    "capping K with release best": (((("search", "max_trials"), 10),), "search.max_trials applies only"),
    "epochs and steps": (((("training", "steps"), 100),), "training.epochs or training.steps"),
    "neither epochs nor steps": (((("training", "epochs"), ...),), "training.epochs or training.steps"),
    "batch and sampling rate": (
        ((("training", "sampling_rate"), 0.1),),
        "training.expected_batch_size or training.sampling_rate",
    ),
    "sampling rate above one": (
        ((("training", "expected_batch_size"), ...), (("training", "sampling_rate"), 1.5)),
        "training.sampling_rate",
    ),
    "zero evaluations": (((("training", "evaluations"), 0),), "training.evaluations"),
    "fractional evaluations": (((("training", "evaluations"), 2.5),), "training.evaluations"),
    "unknown schedule": (
        ((("training", "noise_schedule"), {"kind": "sawtooth"}),),
        "training.noise_schedule.kind: 'sawtooth' is not one of",
    ),
    "non-positive score noise": (
        ((("validation", "score_noise_multiplier"), 0.0),),
        "validation.score_noise_multiplier",
    ),
    "private validation without score noise": (
        ((("validation",), {"policy": "private"}),),
        "validation.score_noise_multiplier: required field is missing",
    ),
    "unknown optimizer": (((("optimizer",), "dp_lion"),), "optimizer"),
    "unknown hyperparameter": (
        ((("space", "params", "learning_rate"), {"distribution": "fixed", "value": 0.1}),),
        "space.params: unknown hyperparameter 'learning_rate'",
    ),
    "log-uniform bounds reversed": (
        ((("space", "params", "clip_norm"), {"distribution": "log_uniform", "low": 5.0, "high": 0.1}),),
        "space.params.clip_norm",
    ),
    "lr_clip searching lr": (
        ((("space", "params", "lr"), {"distribution": "log_uniform", "low": 0.01, "high": 1.0}),),
        "space.params: coupling lr_clip searches step_size",
    ),
    "lr_clip without any clip norm": (
        ((("space", "params", "clip_norm"), ...),),
        "space.params: coupling lr_clip needs clip_norm",
    ),
    "clip norm searched and fixed": (((("training", "clip_norm"), 1.0),), "clip_norm is both searched"),
    "adam searching clip_norm": (((("optimizer",), "dp_adam"),), "space.coupling: dp_adam is invariant to clip_norm"),
    "adam with fixed_clip searching clip_norm": (
        (
            (("optimizer",), "dp_adam"),
            (("space", "coupling"), "fixed_clip"),
            (
                ("space", "params"),
                {
                    "lr": {"distribution": "log_uniform", "low": 0.01, "high": 1.0},
                    "clip_norm": {"distribution": "log_uniform", "low": 0.1, "high": 1.0},
                },
            ),
        ),
        "space.params.clip_norm: dp_adam is invariant to clip_norm, so it is not searched; move it to training",
    ),
    "adamwosm with lr_clip": (
        ((("optimizer",), "dp_adamwosm"), (("space", "params", "clip_norm"), ...), (("training", "clip_norm"), 1.0)),
        "space.coupling: dp_adamwosm is invariant to clip_norm",
    ),
    "lr_clip for dp2_rmsprop": (((("optimizer",), "dp2_rmsprop"),), "space.coupling: lr_clip applies to dp_sgd only"),
    "fixed_clip without a fixed clip": (
        (
            (("space", "coupling"), "fixed_clip"),
            (("space", "params"), {"lr": {"distribution": "log_uniform", "low": 0.01, "high": 1.0}}),
        ),
        "space.coupling: fixed_clip needs training.clip_norm",
    ),
    "grid over a continuous range": (((("search",), {"mode": "grid"}),), "space.params.step_size: grid search needs"),
}


@pytest.mark.parametrize(("edits", "field"), list(REFUSALS.values()), ids=list(REFUSALS))
def test_config_mistake_is_one_line_naming_the_field(
    edits: tuple[tuple[tuple[str, ...], object], ...], field: str
) -> None:
    assert field in _refusal(_mutated(*edits))


def test_discriminator_tags_are_dropped_from_error_paths() -> None:
    """Pydantic would say ``search.random.expected_trials``; users wrote ``search.expected_trials``."""
    message = _refusal(_mutated((("search", "expected_trials"), -1)))
    assert "search.expected_trials" in message
    assert "search.random." not in message


@pytest.mark.parametrize("document", ["", "- 1\n- 2\n", "just a string\n", "42\n"])
def test_document_that_is_not_a_mapping_is_refused(tmp_path: Path, document: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(document)
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        load_config(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("workload: digits\nbudget: {epsilon: 2\n  delta: [\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


def test_missing_or_unreadable_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--config: file .* does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="--config: cannot read"):
        load_config(tmp_path)


def test_models_are_frozen() -> None:
    config = parse_config(copy.deepcopy(BASE))
    with pytest.raises(ValidationError):
        config.budget.epsilon = 100.0
    with pytest.raises(ValidationError):
        config.workload = "adult"


def test_budget_override_revalidates() -> None:
    config = parse_config(copy.deepcopy(BASE))
    original = config.budget.epsilon
    assert config.with_budget(epsilon=None, delta=None) is config
    changed = config.with_budget(epsilon=original / 2, delta=None)
    assert (changed.budget.epsilon, changed.budget.delta) == (original / 2, config.budget.delta)
    assert config.budget.epsilon == original
    with pytest.raises(ValidationError):
        config.with_budget(epsilon=-1.0, delta=None)
    with pytest.raises(ValidationError):
        config.with_budget(epsilon=None, delta=math.inf)


def test_poisson_number_of_trials_is_shape_infinity() -> None:
    config = parse_config(_mutated((("search", "distribution"), "poisson")))
    assert isinstance(config.search, RandomSearch)
    assert config.search.accountant_shape == math.inf


def test_valid_grid_and_adaptive_configs_are_accepted() -> None:
    grid = parse_config(
        _mutated(
            (("search",), {"mode": "grid"}),
            (("space", "params", "step_size"), {"distribution": "choice", "values": [0.5, 1.0, 2.0]}),
            (("space", "params", "clip_norm"), {"distribution": "choice", "values": [0.1, 1.0]}),
        )
    )
    assert isinstance(grid.space.params["step_size"], ChoiceParam)
    adaptive = parse_config(_mutated((("search",), {"mode": "adaptive", "max_trials": 20, "scheduler": "asha"})))
    assert isinstance(adaptive, SearchConfig)
