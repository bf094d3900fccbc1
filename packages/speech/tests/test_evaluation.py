import pytest

from polyfold.core.errors import InputError
from polyfold.speech.evaluation import edit_distance, error_rates


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert edit_distance(["a", "b"], ["a", "b"]) == 0


def test_error_rates_normalise_text():
    # numbers, case and punctuation are normalised before scoring
    rates = error_rates(["I have 2 cats."], ["i have two cats"])
    assert rates.cer == 0.0
    assert rates.wer == 0.0
    rates = error_rates(["the cat sat"], ["the hat sat down"])
    assert rates.wer == pytest.approx(2 / 3)
    assert rates.cer == pytest.approx(6 / len("the cat sat"))
    with pytest.raises(InputError, match="as many hypotheses"):
        error_rates(["a"], [])
