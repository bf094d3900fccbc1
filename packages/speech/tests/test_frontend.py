import pytest

from polyfold.core.errors import InputError
from polyfold.speech.g2p import NeuralG2P, cmu_lexicon, text_to_phones, word_to_arpabet
from polyfold.speech.normalize import normalize_text, number_to_words
from polyfold.speech.phones import PHONE_TO_ID, arpabet_to_phone, phone_ids


def test_numbers_are_spelled_out():
    assert number_to_words(0) == "zero"
    assert number_to_words(105) == "one hundred five"
    assert number_to_words(1984, year=True) == "nineteen eighty four"
    assert number_to_words(2005, year=True) == "two thousand five"
    assert number_to_words(1_234_567) == (
        "one million two hundred thirty four thousand five hundred sixty seven"
    )
    assert number_to_words(21, ordinal=True) == "twenty first"
    assert number_to_words(40, ordinal=True) == "fortieth"


def test_normalize_text_words_and_pauses():
    tokens = normalize_text("Dr. Smith paid $3.50 on the 2nd; really?")
    assert tokens == [
        "doctor", "smith", "paid", "three", "dollars", "and", "fifty", "cents",
        "on", "the", "second", ",", "really", ".",
    ]  # fmt: skip


@pytest.mark.parametrize("text", ["", "   ", "?!", "..."])
def test_text_without_words_is_an_input_error(text):
    with pytest.raises(InputError, match="text"):
        normalize_text(text)


def test_character_without_reading_is_named():
    with pytest.raises(InputError, match="'@'"):
        text_to_phones("mail me @ home")


def test_cmudict_and_flite_phone_set():
    assert cmu_lexicon()["hello"] == ("HH", "AH0", "L", "OW1")
    assert arpabet_to_phone("AH0") == "ax"
    assert arpabet_to_phone("AH1") == "ah"
    assert arpabet_to_phone("NG") == "ng"
    # flite -voice slt -psdur prints exactly these phones for this sentence
    assert text_to_phones("Hello world, my 2 friends.") == (
        [
            "pau",
            "hh",
            "ax",
            "l",
            "ow",
            "w",
            "er",
            "l",
            "d",
            "pau",
            "m",
            "ay",
            "t",
            "uw",
            "f",
            "r",
            "eh",
            "n",
            "d",
            "z",
            "pau",
        ]
    )


def test_neural_g2p_for_out_of_vocabulary_words():
    model = NeuralG2P.shipped()
    assert "polyfold" not in cmu_lexicon()
    phones = word_to_arpabet("polyfold")
    assert phones == model("polyfold")
    assert phones[:2] == ["P", "AA1"]
    assert phones[-1] == "D"
    # the model reproduces CMUdict on common in-vocabulary words
    assert model("hello")[0] == "HH"
    assert model("cat") == ["K", "AE1", "T"]


def test_phone_ids_name_unknown_phones():
    assert phone_ids(["pau", "ax"]) == [PHONE_TO_ID["pau"], PHONE_TO_ID["ax"]]
    with pytest.raises(InputError, match="unknown phone 'xx'"):
        phone_ids(["pau", "xx"], where="line 3")
