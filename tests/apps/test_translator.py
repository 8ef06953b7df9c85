from combogan.apps.translator import young_average_note


def test_the_note_names_the_domains_whose_average_auto_passed_over():
    note = young_average_note({"a": (0.999, 749), "b": (0.999, 280), "c": None})
    assert note == ("note: a, b translate with the trained weights: the weight average (train.ema=0.999) has 280-749 updates, "
                    "fewer than the 750 it needs to settle (--weights average uses it anyway)")
    assert "has 280 updates, fewer than the 150 it" in young_average_note({"b": (0.995, 280)})
    assert young_average_note({"c": None}) is None and young_average_note({}) is None
