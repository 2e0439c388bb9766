"""Workload facts live in the workload's declaration: its data files and whether it is public.

Before, built-ins were listed in side tables (``public_proxy.PUBLIC_WORKLOADS``
and ``_FILES``, ``preflight.DATA_FILE_CHECKS``), so a third-party workload
could never be a public proxy nor get the data-file pre-flight.
"""

from __future__ import annotations

import pytest
from search_helpers import small_config

from tunedp.config import ConfigError
from tunedp.run.preflight import PreflightError, check_data_files
from tunedp.workloads import BUILTIN_WORKLOADS, resolve_workload
from tunedp.workloads.public import PUBLIC_WORKLOADS, check_public_proxy, public_source, workload_files


def test_the_built_in_public_workloads_are_read_from_their_declarations() -> None:
    declared = {name for name in BUILTIN_WORKLOADS if resolve_workload(name).public_source is not None}
    assert declared == set(PUBLIC_WORKLOADS) == {"mnist_public", "mnist_public_scatternet"}


def test_a_third_party_workload_declared_public_is_a_valid_proxy() -> None:
    name = "workload_fixtures:MNIST_5K_DECLARED_BY_A_THIRD_PARTY"
    assert public_source(name) == "a third party's declaration of mnist_5k"
    check_public_proxy(public_workload=name, public_dataset="mnist_public", protected_workload="fashion_mnist",
                       protected_dataset="fashion_mnist")  # fmt: skip


def test_a_third_party_workload_without_a_public_source_is_refused_as_a_proxy() -> None:
    with pytest.raises(ConfigError, match=r"^search\.public_workload: .* is not declared public"):
        check_public_proxy(public_workload="workload_fixtures:DIGITS_UNDECLARED", public_dataset="digits_x",
                           protected_workload="fashion_mnist", protected_dataset="fashion_mnist")  # fmt: skip


def test_a_proxy_reading_the_protected_file_is_refused_by_its_declared_files() -> None:
    """The third party's mnist_5k declares the same file as mnist_public: it cannot proxy mnist_public's data."""
    name = "workload_fixtures:MNIST_5K_DECLARED_BY_A_THIRD_PARTY"
    assert workload_files(name) == workload_files("mnist_public") != frozenset()
    with pytest.raises(ConfigError, match=r"shares its data \(file .*mnist_5k\.csv\.gz\)"):
        check_public_proxy(public_workload=name, public_dataset="third_party", protected_workload="mnist_public",
                           protected_dataset="mnist_public_protected")  # fmt: skip


def test_a_third_party_workload_gets_the_data_file_pre_flight() -> None:
    with pytest.raises(PreflightError, match=r"^workload: missing_files: /no/such\.csv is absent; install it$"):
        check_data_files("workload_fixtures:MISSING_FILES")
    check_data_files("workload_fixtures:DIGITS_UNDECLARED")  # nothing declared: nothing to check
    check_data_files(small_config().workload)  # digits' bundled file is there


def test_the_audit_takes_public_from_the_declaration_too() -> None:
    from tunedp.audit.command import AuditError, check_public

    public = small_config(workload="workload_fixtures:MNIST_5K_DECLARED_BY_A_THIRD_PARTY")
    assert check_public(public) == "a third party's declaration of mnist_5k"
    with pytest.raises(AuditError, match=r"^--public: workload 'digits' is not declared public"):
        check_public(small_config())
