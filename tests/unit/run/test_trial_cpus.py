"""A trial's share of the cores (issue 28 §3): idle cores go to the trials that run, never more than fit."""

from __future__ import annotations

import itertools

import pytest

from tunedp.run.ray_backend.cluster import trial_cpus


def _fits(nodes: list[float], share: int, concurrency: int) -> bool:
    """``concurrency`` trials of ``share`` CPUs each placed on the nodes, one trial never split across two."""
    return sum(int(c // share) for c in nodes) >= concurrency


@pytest.mark.parametrize(
    ("nodes", "asked", "concurrency", "share"),
    [
        ([2.0], 1.0, 1, 2),  # a final run alone on this machine: both cores
        ([2.0], 1.0, 2, 1),  # two trials at once: one core each, as before
        ([16.0], 1.0, 3, 5),  # 3 trials on 16 cores: 5 each (15 used)
        ([16.0], 4.0, 8, 4),  # more trials than fit at 4: the ask stands (Ray queues the rest)
        ([2.0, 2.0], 1.0, 1, 2),  # two 2-CPU nodes: one trial cannot span both
        ([3.0, 1.0], 1.0, 2, 1),  # 2 CPUs each would leave the 1-CPU node unused and run one at a time
        ([8.0, 4.0], 1.0, 2, 4),  # one trial on each node
        ([2.0], 0.5, 1, 2),  # a fractional ask is a floor of one thread
        ([2.0], 0.5, 4, 1),
    ],
)
def test_the_share_is_the_largest_that_still_runs_every_trial_at_once(
    nodes: list[float], asked: float, concurrency: int, share: int
) -> None:
    assert trial_cpus(nodes, asked, concurrency) == share


def test_against_an_exhaustive_search_of_small_clusters() -> None:
    """Every cluster of up to three nodes of 1–6 CPUs: the share is the largest s ≥ the ask that fits."""
    for count in (1, 2, 3):
        for nodes in itertools.product([1.0, 2.0, 3.0, 4.0, 6.0], repeat=count):
            for asked in (0.5, 1.0, 2.0):
                for concurrency in range(1, 8):
                    share = trial_cpus(list(nodes), asked, concurrency)
                    floor = max(1, int(asked))
                    assert share >= floor
                    if share > floor:
                        assert _fits(list(nodes), share, concurrency)
                    assert not any(_fits(list(nodes), s, concurrency) for s in range(share + 1, 8))
