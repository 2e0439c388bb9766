"""One source of truth per concept: the config, the search space and the optimizers agree.

The torch-free registry :mod:`tunedp.optim.specs` is what the config
validates against and what every update rule is built from; these tests
fail if a name, a default or a clip-invariance drifts between them.
"""

from __future__ import annotations

import typing

import pytest

from tunedp.config import ADAM_TYPE_OPTIMIZERS, OPTIMIZERS, SearchConfig
from tunedp.config.space import INTEGER_HYPERPARAMETERS as SPACE_INTEGERS
from tunedp.optim import UPDATE_RULES, build_update_rule
from tunedp.optim.rules import _RULES
from tunedp.optim.specs import HYPERPARAMETER_RANGES, INTEGER_HYPERPARAMETERS, OPTIMIZER_SPECS


def test_the_config_accepts_exactly_the_registered_optimizers() -> None:
    field = SearchConfig.model_fields["optimizer"].annotation
    assert set(typing.get_args(field)) == set(OPTIMIZERS) == set(OPTIMIZER_SPECS) == set(UPDATE_RULES)


def test_clip_invariance_is_declared_once() -> None:
    assert set(ADAM_TYPE_OPTIMIZERS) == {name for name, spec in OPTIMIZER_SPECS.items() if spec.clip_invariant}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_SPECS))
def test_each_rule_takes_its_specs_hyperparameters_and_defaults(name: str) -> None:
    spec, rule = OPTIMIZER_SPECS[name], _RULES[name]
    assert rule.hyperparameters_type is spec.hyperparameters
    assert rule.defaults() == spec.defaults
    assert set(spec.defaults) <= set(HYPERPARAMETER_RANGES)
    built = build_update_rule(name, {})
    for key, value in spec.defaults.items():
        assert getattr(built, key) == value


def test_integer_hyperparameters_come_from_the_ranges() -> None:
    assert SPACE_INTEGERS is INTEGER_HYPERPARAMETERS
    assert {"cutoff", "delay"} == INTEGER_HYPERPARAMETERS


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("dp_sgd", {"lr": -1.0}, "Expected lr=-1.0 > 0"),
        ("dp_sgd", {"beta1": 0.9}, "dp_sgd does not take hyperparameter 'beta1'"),
        ("dp_adamwosm", {"cutoff": 2.5}, "Expected cutoff=2.5 to be an integer"),
        ("dp2_rmsprop", {"gamma": 1.5}, r"Expected gamma=1.5 in \[0, 1\)"),
    ],
)
def test_the_registry_refuses_bad_values_with_one_line(name: str, values: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OPTIMIZER_SPECS[name].hyperparameters.from_mapping(values)
    with pytest.raises(ValueError, match=message):
        build_update_rule(name, values)
