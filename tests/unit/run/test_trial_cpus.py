"""A trial's share of the cores (issue 28 §3): idle cores go to the trials that run, never more than fit."""

from __future__ import annotations

import itertools

import pytest

from tunedp.config import Resources
from tunedp.run.ray_backend.cluster import reuse_actors, trial_cpus


def _fits(nodes: list[tuple[float, float]], share: int, gpus: float, concurrency: int) -> bool:
    """``concurrency`` trials of ``share`` CPUs (and ``gpus`` GPUs) each placed on the nodes, none split across two."""
    held = 0
    for node_cpus, node_gpus in nodes:
        room = int(node_cpus // share)
        if gpus > 0:
            room = min(room, int(node_gpus // gpus))
        held += room
    return held >= concurrency


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
    assert trial_cpus([(cpus, 0.0) for cpus in nodes], Resources(cpus=asked), concurrency) == share


@pytest.mark.parametrize(
    ("nodes", "gpus", "concurrency", "share"),
    [
        ([(16.0, 0.0), (4.0, 1.0)], 1.0, 1, 4),  # the trial needs the GPU node: its 4 CPUs, not the other's 16
        ([(16.0, 1.0), (2.0, 1.0)], 1.0, 2, 2),  # one GPU each: the 2-CPU node must hold the second trial
        ([(8.0, 1.0)], 0.5, 2, 4),  # half a GPU each: two trials share the node's GPU and its 8 CPUs
    ],
)
def test_a_gpu_trial_s_share_counts_only_nodes_whose_gpus_can_hold_it(
    nodes: list[tuple[float, float]], gpus: float, concurrency: int, share: int
) -> None:
    assert trial_cpus(nodes, Resources(cpus=1.0, gpus=gpus), concurrency) == share


def test_against_an_exhaustive_search_of_small_clusters() -> None:
    """Every cluster of up to three nodes of 1–6 CPUs and 0–2 GPUs: the share is the largest s ≥ the ask that fits."""
    kinds = list(itertools.product([1.0, 2.0, 3.0, 4.0, 6.0], [0.0, 1.0, 2.0]))
    for count in (1, 2, 3):
        for nodes in itertools.product(kinds, repeat=count):
            for asked, gpus in itertools.product((0.5, 1.0, 2.0), (0.0, 0.5, 1.0)):
                for concurrency in range(1, 6):
                    share = trial_cpus(list(nodes), Resources(cpus=asked, gpus=gpus), concurrency)
                    floor = max(1, int(asked))
                    assert share >= floor
                    if share > floor:
                        assert _fits(list(nodes), share, gpus, concurrency)
                    assert not any(_fits(list(nodes), s, gpus, concurrency) for s in range(share + 1, 8))


@pytest.mark.parametrize(
    ("nodes", "reused"),
    [
        ([(2.0, 0.0)], True),  # this machine: a worker's start saved per trial
        ([(2.0, 0.0), (0.0, 0.0)], True),  # a head that runs no trials beside one worker node
        ([(1.0, 0.0), (1.0, 0.0)], False),  # two nodes: each trial where its CPUs were reserved
        ([(8.0, 1.0), (4.0, 0.0), (0.0, 0.0)], False),
        ([], True),
    ],
)
def test_workers_are_reused_only_where_one_node_runs_every_trial(
    nodes: list[tuple[float, float]], reused: bool
) -> None:
    assert reuse_actors(nodes) is reused
