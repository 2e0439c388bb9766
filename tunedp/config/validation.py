"""The ``validation:`` section: whether validation scores are private (noisy, charged) or public (exact, free).

The policy decides whether each score release is part of a trial's DpEvent;
:data:`Validation` is the discriminated union the top-level config holds.

Imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tunedp.config.strict import STRICT

__all__ = ["PrivateValidation", "PublicValidation", "Validation"]


class PrivateValidation(BaseModel):
    """Validation scores are noisy counts: ``N(0, score_noise_multiplier²)`` added to
    the number of correct predictions (sensitivity 1), each release charged."""

    model_config = STRICT
    policy: Literal["private"] = "private"
    score_noise_multiplier: float = Field(gt=0, allow_inf_nan=False)


class PublicValidation(BaseModel):
    """The user asserts the validation split is public: exact scores, no charge."""

    model_config = STRICT
    policy: Literal["public"] = "public"


Validation = Annotated[PrivateValidation | PublicValidation, Field(discriminator="policy")]
