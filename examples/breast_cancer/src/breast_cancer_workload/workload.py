"""The declaration tunedp reads before any data: sizes, input shape, variants, where the splits come from.

It imports no torch, so ``tunedp plan`` stays instant; the torch parts are
named as ``"module:function"`` strings and imported when a trial runs.
"""

from tunedp import DatasetSizes, Workload

WORKLOAD = Workload(
    name="breast_cancer",
    # 569 rows: 400 train / 69 validation / 100 test by a fixed permutation (data.py).
    sizes=DatasetSizes(dataset="breast_cancer", train=400, validation=69, test=100, classes=2),
    input_shape=(30,),
    variants=("linear", "mlp"),
    loader="breast_cancer_workload.data:load",
    model_factory="breast_cancer_workload.data:build_model",
    validation_source="protected",  # carved from the same table: scores must be released privately
    test_source="protected",  # ditto: its exact accuracy is outside the ε guarantee
)
