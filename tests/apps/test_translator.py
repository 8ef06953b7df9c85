from combogan.apps.translator import young_average_note


def test_a_weight_average_younger_than_its_horizon_is_noted():
    note = young_average_note({"a": (0.999, 999), "b": (0.999, 280), "c": None, "d": (0.999, 1000)})
    assert note == ("note: the weight average (train.ema=0.999) of a, b has 280-999 updates, fewer than its horizon of 1,000: "
                    "in a run this short the trained weights may translate better (compare with eval --live-weights)")
    assert "of b has 280 updates" in young_average_note({"b": (0.999, 280)})
    assert young_average_note({"a": (0.999, 1000), "b": (0.995, 200), "c": None}) is None
