from pricefeed.pricing import apply_discount, convert, round_price


def test_round_price_rounds_half_up():
    assert round_price(2.675) == 2.68
    assert round_price(1.005) == 1.01


def test_round_price_keeps_requested_places():
    assert round_price(3.14159, places=3) == 3.142


def test_small_orders_pay_full_price():
    assert apply_discount(10.0, 3) == 30.0


def test_bulk_discount_starts_at_ten_units():
    assert apply_discount(10.0, 10) == 90.0


def test_large_orders_get_the_bulk_discount():
    assert apply_discount(2.5, 40) == 90.0


def test_convert_rounds_the_result():
    assert convert(10.0, 1.23456) == 12.35
