"""Workloads for tests only, named by import path (``workload_fixtures:NAME``): ``tests/`` is on sys.path.

``DIGITS_PUBLIC_VALIDATION`` is the real digits data *declared* as if its
validation split came from a separate public source. It exists to test the
mechanics of ``validation: {policy: public}`` (exact scores, nothing charged
for them), which tunedp allows only for such a declaration; it charges a
ledger of its own name so it never touches the digits ledger.
"""

from __future__ import annotations

import dataclasses
import os

from tunedp.workloads import Split, Splits, digits, mnist_public

DIGITS_PUBLIC_VALIDATION = dataclasses.replace(
    digits.WORKLOAD,
    name="digits_public_validation",
    sizes=dataclasses.replace(digits.WORKLOAD.sizes, dataset="digits_public_validation"),
    validation_source="public",
)

DIGITS_CLAIMING_ADULT_ROWS = dataclasses.replace(
    digits.WORKLOAD, name="digits_claiming_adult_rows", fingerprint_workload="adult"
)
"""A workload that says it transforms another's rows while declaring other sizes: its fingerprint is refused."""

MNIST_5K_DECLARED_BY_A_THIRD_PARTY = dataclasses.replace(
    mnist_public.WORKLOAD, name="third_party_mnist_5k", public_source="a third party's declaration of mnist_5k"
)
"""A third-party workload declared public (the same public rows under its own name): a valid proxy."""

DIGITS_UNDECLARED = dataclasses.replace(digits.WORKLOAD, name="digits_undeclared", data_files=None)
"""digits' rows under another name, with no public_source: protected, so refused as a proxy."""

#: Digits as a custom workload that declares no raw input (the network takes its own arrays).
DIGITS_NO_RAW_INPUT = dataclasses.replace(
    digits.WORKLOAD, name="digits_no_raw_input", raw_input_shape=None, raw_input_range=None, preprocess=None
)

MISSING_FILES = dataclasses.replace(
    digits.WORKLOAD,
    name="missing_files",
    data_files=lambda: (_ for _ in ()).throw(FileNotFoundError("missing_files: /no/such.csv is absent; install it")),
)
"""A third-party workload whose declared file is absent: the pre-flight names it before any charge."""

NODE_COPY_ENV = "TUNEDP_TEST_NODE_COPY"
"""Set to ``modified`` in a Ray node's environment: that node's copy of the data differs in one row."""


def load_node_copy() -> Splits:
    """The real digits splits; on a node whose environment says ``modified``, one training row is changed."""
    from tunedp.workloads import digits_torch

    splits = digits_torch.load()
    if os.environ.get(NODE_COPY_ENV) != "modified":
        return splits
    inputs = splits.train.inputs.clone()
    inputs[0] = -inputs[0]
    return Splits(train=Split(inputs, splits.train.targets), validation=splits.validation, test=splits.test)


def load_on_unmodified_nodes() -> Splits:
    """The real digits splits; a node whose environment says ``modified`` has no copy of the data."""
    from tunedp.workloads import digits_torch

    if os.environ.get(NODE_COPY_ENV) == "modified":
        raise FileNotFoundError("this node holds no copy of the digits data")
    return digits_torch.load()


DIGITS_NODE_COPY = dataclasses.replace(
    digits.WORKLOAD,
    name="digits_node_copy",
    sizes=dataclasses.replace(digits.WORKLOAD.sizes, dataset="digits_node_copy"),
    loader="workload_fixtures:load_node_copy",
)
"""Digits read from each node's own copy (``load_node_copy``): for the per-node data check on a cluster."""


DIGITS_NODE_MISSING = dataclasses.replace(
    digits.WORKLOAD,
    name="digits_node_missing",
    sizes=dataclasses.replace(digits.WORKLOAD.sizes, dataset="digits_node_missing"),
    loader="workload_fixtures:load_on_unmodified_nodes",
)
"""Digits that a ``modified`` node cannot load: the per-node check's other refusal."""
