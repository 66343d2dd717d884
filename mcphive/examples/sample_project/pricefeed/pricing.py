"""Price arithmetic: rounding, the bulk discount and currency conversion."""

from decimal import ROUND_HALF_UP, Decimal

BULK_THRESHOLD = 10
"""Orders of this many units or more get the bulk discount."""

BULK_DISCOUNT = Decimal("0.10")


def round_price(value: float, places: int = 2) -> float:
    """Round a price half-up, the way invoices do (not banker's rounding)."""
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def apply_discount(unit_price: float, quantity: int) -> float:
    """Total price of ``quantity`` units; orders of BULK_THRESHOLD units or more get BULK_DISCOUNT off."""
    total = Decimal(str(unit_price)) * quantity
    if quantity > BULK_THRESHOLD:
        total -= total * BULK_DISCOUNT
    return round_price(float(total))


def convert(amount: float, rate: float) -> float:
    return round_price(amount * rate)
