"""RDP curves at the ledger's fixed orders: what a PostgreSQL ledger stores per charge and adds up.

Rényi DP composes by addition, order by order, so a server that knows each
charge's curve at fixed orders can enforce the cap without understanding any
DpEvent: it adds the curves and converts the sum to ε at the budget's δ. That
conversion must be the one tunedp uses everywhere else, dp_accounting's
``compute_epsilon`` (the improved bound of Canonne, Kamath & Steinke 2020,
Prop. 12 in v4 of arXiv:2004.00010), or the server and the client would
disagree on what fits. :data:`EPSILON_FUNCTION_SQL` is that formula in SQL;
the tests check it against dp_accounting on every shipped plan.

The curve is computed by the client, so a modified client could under-report
it; ``tunedp budget verify`` recomputes every stored curve from the stored
DpEvent (:func:`short_orders`) and names the charges whose curve is short.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

from tunedp.accounting.epsilon import RDP_ORDERS, UnsupportedEventError, rdp_accountant

__all__ = [
    "CURVE_TOLERANCE",
    "EPSILON_FUNCTION_SQL",
    "LEDGER_ORDERS",
    "epsilon_from_curve",
    "rdp_curve",
    "short_orders",
]

#: The orders every stored curve is evaluated at: tunedp's own RDP orders, so the
#: server's ε equals the client's for the same events. Stored with the schema; a
#: ledger created with other orders is refused, never silently mixed.
LEDGER_ORDERS: tuple[float, ...] = tuple(float(order) for order in RDP_ORDERS)

#: Relative slack when comparing a stored curve with its recomputation (float round-off only).
CURVE_TOLERANCE = 1e-9


def rdp_curve(event: dp_event.DpEvent) -> tuple[float, ...]:
    """The RDP curve of ``event`` at :data:`LEDGER_ORDERS` (dp_accounting's RDP accountant; +inf where undefined)."""
    accountant = rdp_accountant()
    if not accountant.supports(event):
        raise UnsupportedEventError(f"RDP accountant does not support event {type(event).__name__}")
    return tuple(float(value) for value in accountant.compose(event).rdp)


def epsilon_from_curve(curve: Sequence[float], delta: float) -> float:
    """ε at ``delta`` of a summed curve: dp_accounting's own conversion, the one the client admits with."""
    if len(curve) != len(LEDGER_ORDERS):
        raise ValueError(f"Expected a curve of {len(LEDGER_ORDERS)} orders, got {len(curve)}")
    if any(math.isnan(value) or value < 0 for value in curve):
        # dp_accounting maps a negative order to ε = 0 (it assumes round-off); a stored
        # curve is untrusted, so that reading is refused instead.
        raise ValueError("a curve value is negative or NaN")
    epsilon, _ = rdp_privacy_accountant.compute_epsilon(LEDGER_ORDERS, list(curve), delta)
    return float(epsilon)


def short_orders(stored: Sequence[float], recomputed: Sequence[float]) -> list[float]:
    """The orders at which ``stored`` is below ``recomputed`` beyond round-off (an under-reported curve)."""
    if len(stored) != len(recomputed):
        return list(LEDGER_ORDERS)  # a curve of the wrong length is short everywhere: refuse it whole
    short = []
    for order, have, want in zip(LEDGER_ORDERS, stored, recomputed, strict=True):
        if math.isnan(have) or have < want - CURVE_TOLERANCE * max(1.0, abs(want)):
            short.append(order)
    return short


def _orders_sql() -> str:
    return "ARRAY[" + ", ".join(repr(order) for order in LEDGER_ORDERS) + "]::float8[]"


#: ``{schema}.epsilon_of(curve, delta)``: dp_accounting's ``compute_epsilon`` at
#: :data:`LEDGER_ORDERS`, in PL/pgSQL. Differences, all conservative or round-off:
#: a negative or NaN value raises (dp_accounting would read it as ε = 0); the
#: "KL bound" test ``δ² + expm1(−r) > 0`` is written ``r < −log1p(−δ²)`` because
#: PostgreSQL's ``exp`` raises on underflow, with ``−log1p(−x)`` from its series
#: below 1e-4 (error < x⁴, far below round-off); ``log1p(−1/α)`` is ``ln(1 − 1/α)``
#: (α ≥ 1.1 here, so no cancellation). Identifiers are formatted in by the setup.
EPSILON_FUNCTION_SQL = (
    """
CREATE FUNCTION {schema}.epsilon_of(curve float8[], delta float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    orders CONSTANT float8[] := """
    + _orders_sql()
    + """;
    best float8 := 'Infinity';
    candidate float8;
    alpha float8;
    value float8;
    x float8 := delta * delta;
    kl_bound float8;
BEGIN
    IF delta IS NULL OR NOT (delta > 0 AND delta < 1) THEN
        RAISE EXCEPTION 'delta % is not in (0, 1)', delta USING ERRCODE = '22023';
    END IF;
    IF coalesce(array_length(curve, 1), 0) <> array_length(orders, 1) THEN
        RAISE EXCEPTION 'a curve must have % orders, not %',
            array_length(orders, 1), coalesce(array_length(curve, 1), 0)
            USING ERRCODE = '22023';
    END IF;
    IF x < 1e-4 THEN
        kl_bound := x + x * x / 2 + x * x * x / 3;
    ELSE
        kl_bound := -ln(1 - x);
    END IF;
    FOR i IN 1 .. array_length(orders, 1) LOOP
        alpha := orders[i];
        value := curve[i];
        IF value IS NULL OR value = 'NaN'::float8 OR value < 0 THEN
            RAISE EXCEPTION 'curve value % at order % is negative or not a number', value, alpha
                USING ERRCODE = '22023';
        ELSIF value = 'Infinity'::float8 THEN
            candidate := 'Infinity';
        ELSIF value < kl_bound THEN
            candidate := 0;
        ELSIF alpha > 1.01 THEN
            candidate := value + ln(1 - 1 / alpha) - ln(delta * alpha) / (alpha - 1);
        ELSE
            candidate := 'Infinity';
        END IF;
        IF candidate < best THEN
            best := candidate;
        END IF;
    END LOOP;
    RETURN greatest(0, best);
END
$body$;
"""
)
