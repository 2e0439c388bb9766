"""Run tunedp's workload contract on this package's workload: one class, nothing else to write."""

from tunedp.testing import WorkloadContract


class TestBreastCancer(WorkloadContract):
    reference = "breast_cancer"  # the entry point (or "breast_cancer_workload.workload:WORKLOAD")
