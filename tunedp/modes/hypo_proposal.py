"""The proposal density of a ``hypo`` search: adaptive, yet never more than C/c away from the prior.

DP-HyPO (Wang et al., NeurIPS 2023) lets trial j + 1's hyperparameters follow
any density π⁽ʲ⁺¹⁾ built from earlier trials' outputs, provided
c ≤ π⁽ʲ⁺¹⁾/π⁽⁰⁾ ≤ C everywhere, for constants c, C fixed before the search;
the charge grows with log(C/c) (:mod:`tunedp.accounting.hypo`). This module
builds such densities and samples them.

**The prior π⁽⁰⁾** is the space as the config declares it, coordinates
independent: ``log_uniform`` is uniform in log scale, ``uniform`` uniform,
``choice`` uniform over its listed values (as ``tune.choice`` draws), the
searched model variants likewise; ``fixed`` coordinates are constants.
Each continuous coordinate is mapped to u ∈ [0, 1] (log scale for
``log_uniform``), where the prior is uniform. A density *ratio* is unchanged
by such a bijection (both densities carry the same Jacobian), so bounds
proved on the unit cube hold on the space itself.

**The proposal** after history h (the finished trials' points and *released*
scores — the noisy scores each trial's charge already paid for; nothing
else) is the mixture

    π_h = (1 − w)·π⁽⁰⁾ + w·q_h,    q_h = (1/m)·Σᵢ kᵢ,

over the m "elite" trials (the best ⌈¼·|h|⌉ by released score), where kᵢ is a
product kernel centred on elite i: on each continuous coordinate a normal
of scale s = ``bandwidth`` truncated to [0, 1]; on each choice coordinate
"keep elite i's value with probability ρ, else draw from the prior". With
no history π_h is the prior.

**Why c ≤ π_h/π⁽⁰⁾ ≤ C for every history.** Per coordinate:

- truncated normal centred at x ∈ [0, 1]: its density is
  φ((u − x)/s) / (s·Z(x)) with Z(x) = Φ((1 − x)/s) − Φ(−x/s), the mass of
  N(x, s²) inside [0, 1]. The numerator is at most φ(0). Z is symmetric
  about ½ and Z′(x) = (φ(x/s) − φ((1 − x)/s))/s ≥ 0 for x ≤ ½, so Z is
  smallest at the ends: Z(x) ≥ Z(0) = Φ(1/s) − ½. Against the uniform prior
  (density 1) the ratio is at most M_a = φ(0) / (s·(Φ(1/s) − ½)).
- choice over values with prior probabilities P(v): ρ·1[v = vᵢ] + (1 − ρ)·P(v)
  against P(v) is at most M_a = 1 − ρ + ρ / min_v P(v).
- fixed: 1 (both are the same point mass).

A product of kernels is bounded by the product of the bounds, M = Π M_a,
and an average of kernels by their common bound, so 0 ≤ q_h/π⁽⁰⁾ ≤ M.
Hence 1 − w ≤ π_h/π⁽⁰⁾ ≤ 1 − w + w·M for every h — c = 1 − w and
C = 1 − w + w·M are fixed by the config before the search, whatever the
scores turn out to be. With w = (R − 1)/(R − 1 + M) the span is exactly
C/c = R, the config's ``density_ratio`` (R = 1: w = 0, random search).
The prior itself (no history) has ratio 1, inside [c, C] since c ≤ 1 ≤ C.

The same argument would hold for any q with q/π⁽⁰⁾ ≤ M (a Gaussian-process
model, TPE's l(x)); the kernel density is the simplest smoothed model of
earlier scores whose bound is a closed form. It is a utility choice and
changes nothing in the charge, which depends on R alone.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from tunedp.config import ChoiceParam, FixedParam, LogUniformParam, SearchConfig, UniformParam

__all__ = ["Axis", "BoundedProposal", "History"]

#: The share of finished trials the kernel density is centred on (the best ones by released score).
ELITE_FRACTION = 0.25
#: ρ: a choice coordinate's kernel keeps the elite's value with this probability.
CHOICE_KEEP = 0.5

#: Finished trials as (point, released score): the only thing the proposal learns from.
History = Sequence[tuple[Mapping[str, Any], float]]


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One coordinate of the searched space and its prior."""

    name: str
    kind: Literal["log", "linear", "choice", "fixed"]
    low: float = 0.0
    high: float = 1.0
    values: tuple[Any, ...] = ()

    def to_unit(self, value: float) -> float:
        """A continuous coordinate's value on [0, 1], where its prior is uniform."""
        if self.kind == "log":
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, unit: float) -> float:
        unit = min(1.0, max(0.0, unit))
        if self.kind == "log":
            value = math.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + unit * (self.high - self.low)
        return min(self.high, max(self.low, value))  # round-off must not leave the declared range

    def prior_probability(self, value: Any) -> float:
        """P(value) under a choice coordinate's prior (uniform over the listed entries)."""
        return sum(1 for v in self.values if v == value) / len(self.values)


class BoundedProposal:
    """Samples π_h (module docstring) and evaluates its ratio to the prior; c, C fixed at construction."""

    def __init__(self, axes: Sequence[Axis], *, density_ratio: float, bandwidth: float) -> None:
        if not (math.isfinite(density_ratio) and density_ratio >= 1):
            raise ValueError(f"Expected density_ratio={density_ratio} >= 1")
        if not 0 < bandwidth <= 1:
            raise ValueError(f"Expected bandwidth={bandwidth} in (0, 1]")
        self.axes = tuple(axes)
        self.density_ratio = float(density_ratio)
        self.bandwidth = float(bandwidth)
        self.kernel_bound = math.prod(self._axis_bound(axis) for axis in self.axes)
        # w such that (1 − w + w·M) / (1 − w) = R exactly.
        self.weight = (self.density_ratio - 1.0) / (self.density_ratio - 1.0 + self.kernel_bound)

    @classmethod
    def of_config(cls, config: SearchConfig, *, model_key: str) -> BoundedProposal:
        """The proposal of a ``hypo`` config: its space as the prior, its density_ratio and bandwidth.

        ``model_key`` names the searched model variant's coordinate in a point.
        """
        search = config.search
        density_ratio = getattr(search, "density_ratio", None)
        bandwidth = getattr(search, "bandwidth", None)
        if search.mode != "hypo" or density_ratio is None or bandwidth is None:
            raise ValueError(f"search.mode: {search.mode} has no bounded proposal (mode hypo has)")
        axes: list[Axis] = []
        for name, param in config.space.params.items():
            if isinstance(param, LogUniformParam):
                axes.append(Axis(name=name, kind="log", low=param.low, high=param.high))
            elif isinstance(param, UniformParam):
                axes.append(Axis(name=name, kind="linear", low=param.low, high=param.high))
            elif isinstance(param, ChoiceParam):
                axes.append(Axis(name=name, kind="choice", values=tuple(param.values)))
            else:
                assert isinstance(param, FixedParam)
                axes.append(Axis(name=name, kind="fixed", values=(param.value,)))
        if config.space.model is not None:
            axes.append(Axis(name=model_key, kind="choice", values=tuple(config.space.model.values)))
        return cls(axes, density_ratio=density_ratio, bandwidth=bandwidth)

    # ------------------------------------------------------------------ the bounds

    def _axis_bound(self, axis: Axis) -> float:
        """M_a: the most a kernel's density on ``axis`` exceeds the prior's (module docstring)."""
        if axis.kind in ("log", "linear"):
            s = self.bandwidth
            return float(stats.norm.pdf(0.0) / (s * (stats.norm.cdf(1.0 / s) - 0.5)))
        if axis.kind == "choice":
            smallest = min(axis.prior_probability(v) for v in axis.values)
            return 1.0 - CHOICE_KEEP + CHOICE_KEEP / smallest
        return 1.0

    @property
    def lower(self) -> float:
        """c: no point's proposal density falls below c times its prior density."""
        return 1.0 - self.weight

    @property
    def upper(self) -> float:
        """C: no point's proposal density exceeds C times its prior density."""
        return 1.0 - self.weight + self.weight * self.kernel_bound

    # ------------------------------------------------------------------ the density

    def elites(self, history: History) -> list[Mapping[str, Any]]:
        """The points the kernel density is centred on: the best ⌈¼·n⌉ finished trials by released score."""
        finished = [(point, score) for point, score in history if math.isfinite(score)]
        if not finished:
            return []
        count = max(1, math.ceil(ELITE_FRACTION * len(finished)))
        ranked = sorted(finished, key=lambda item: item[1], reverse=True)
        return [point for point, _ in ranked[:count]]

    def ratio(self, point: Mapping[str, Any], history: History) -> float:
        """π_h(point) / π⁽⁰⁾(point): always in [:attr:`lower`, :attr:`upper`]."""
        elites = self.elites(history)
        if not elites or self.weight == 0.0:
            return 1.0
        kernel = sum(self._kernel_ratio(point, elite) for elite in elites) / len(elites)
        return 1.0 - self.weight + self.weight * kernel

    def _kernel_ratio(self, point: Mapping[str, Any], centre: Mapping[str, Any]) -> float:
        ratio = 1.0
        for axis in self.axes:
            if axis.kind in ("log", "linear"):
                ratio *= self._kernel_density(axis.to_unit(centre[axis.name]), axis.to_unit(point[axis.name]))
            elif axis.kind == "choice":
                prior = axis.prior_probability(point[axis.name])
                kept = CHOICE_KEEP if point[axis.name] == centre[axis.name] else 0.0
                ratio *= (kept + (1.0 - CHOICE_KEEP) * prior) / prior
        return ratio

    def _kernel_density(self, centre: float, unit: float) -> float:
        """The truncated normal's density at ``unit``: φ((u − x)/s) / (s·Z(x)), 0 outside [0, 1]."""
        if not 0.0 <= unit <= 1.0:
            return 0.0
        s = self.bandwidth
        mass = special.ndtr((1.0 - centre) / s) - special.ndtr(-centre / s)
        return float(stats.norm.pdf((unit - centre) / s) / (s * mass))

    def _kernel_draw(self, centre: float, rng: np.random.Generator) -> float:
        """A draw of the truncated normal by inverting its CDF (stable here: Φ(a) ≤ ½ ≤ Φ(b))."""
        s = self.bandwidth
        low, high = special.ndtr(-centre / s), special.ndtr((1.0 - centre) / s)
        return float(centre + s * special.ndtri(low + float(rng.random()) * (high - low)))

    # ------------------------------------------------------------------ sampling

    def sample(self, history: History, rng: np.random.Generator) -> dict[str, Any]:
        """One point from π_h: the prior with probability 1 − w, else a kernel around a random elite."""
        elites = self.elites(history)
        if not elites or rng.random() >= self.weight:
            return self.sample_prior(rng)
        centre = elites[int(rng.integers(len(elites)))]
        point: dict[str, Any] = {}
        for axis in self.axes:
            if axis.kind in ("log", "linear"):
                point[axis.name] = axis.from_unit(self._kernel_draw(axis.to_unit(centre[axis.name]), rng))
            elif axis.kind == "choice":
                keep = rng.random() < CHOICE_KEEP
                point[axis.name] = centre[axis.name] if keep else axis.values[int(rng.integers(len(axis.values)))]
            else:
                point[axis.name] = axis.values[0]
        return point

    def sample_prior(self, rng: np.random.Generator) -> dict[str, Any]:
        """One point from the prior π⁽⁰⁾."""
        point: dict[str, Any] = {}
        for axis in self.axes:
            if axis.kind in ("log", "linear"):
                point[axis.name] = axis.from_unit(float(rng.random()))
            elif axis.kind == "choice":
                point[axis.name] = axis.values[int(rng.integers(len(axis.values)))]
            else:
                point[axis.name] = axis.values[0]
        return point
