"""Text normalisation for the front end: numbers spelled out, abbreviations expanded, case folded.

:func:`normalize_text` returns the words and the pauses of an utterance as tokens: a word is
lower-case letters and apostrophes, a pause is ``","`` (a phrase break) or ``"."`` (a sentence
break). Characters with no reading (``"@"``, a stray emoji) raise an InputError naming them.
"""

from __future__ import annotations

import re
import unicodedata

from polyfold.core.errors import InputError

__all__ = ["normalize_text", "number_to_words"]

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "dr": "doctor",
    "st": "saint",
    "jr": "junior",
    "sr": "senior",
    "vs": "versus",
    "etc": "et cetera",
}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals "}
_PHRASE_BREAKS = ",;:()\u2014\u2013"
_SENTENCE_BREAKS = ".!?"
_IGNORED = "\"'`\u2018\u2019\u201c\u201d*_[]{}/-"


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int, ordinal: bool = False, year: bool = False) -> str:
    """English words of a non-negative integer (``ordinal``: "twenty first"; ``year``: 1984 as
    "nineteen eighty four")."""
    if n < 0:
        raise InputError(f"number: expected a non-negative integer, got {n}")
    words: list[str] = []
    if year and 1000 < n < 10000 and n % 100 >= 10 and (n // 100) % 10 and not ordinal:
        # years and the like: nineteen eighty four
        words = _below_thousand(n // 100) + _below_thousand(n % 100)
    else:
        for scale, name in _SCALES:
            if n >= scale:
                words += (
                    _below_thousand(n // scale % 1000)
                    if n // scale < 1000
                    else (number_to_words(n // scale).split())
                )
                words.append(name)
                n %= scale
        if n or not words:
            words += _below_thousand(n)
    if ordinal:
        last = words[-1]
        if last in _ORDINAL_IRREGULAR:
            last = _ORDINAL_IRREGULAR[last]
        elif last.endswith("y"):
            last = last[:-1] + "ieth"
        else:
            last += "th"
        words[-1] = last
    return " ".join(words)


def _spell_number(match: re.Match[str]) -> str:
    raw, frac = match.group("int"), match.group("frac")
    n = int(raw.replace(",", ""))
    if match.group("cur"):
        spoken = number_to_words(n) + (" dollar" if n == 1 else " dollars")
        cents = int((frac or "0")[:2].ljust(2, "0"))
        if cents:
            spoken += f" and {number_to_words(cents)} cent" + ("" if cents == 1 else "s")
        return f" {spoken} "
    year = "," not in raw and not frac
    spoken = number_to_words(n, ordinal=bool(match.group("ord")), year=year)
    if frac:
        spoken += " point " + " ".join(_ONES[int(d)] for d in frac)
    return f" {spoken} "


_NUMBER = re.compile(
    r"(?P<cur>\$)?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<ord>st|nd|rd|th)?\b"
)


def normalize_text(text: str) -> list[str]:
    """Words (lower case) and pause marks (``","``, ``"."``) of ``text``, in order."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("text: expected a non-empty utterance")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NUMBER.sub(_spell_number, text)
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    tokens: list[str] = []
    after_abbreviation = False
    for raw in re.findall(r"[A-Za-z']+|\S", text):
        was_abbreviation, after_abbreviation = after_abbreviation, False
        if raw[0].isalpha() or (raw[0] == "'" and len(raw) > 1):
            word = raw.lower().strip("'")
            if word in _ABBREVIATIONS:
                tokens += _ABBREVIATIONS[word].split()
                after_abbreviation = True
            elif word:
                tokens.append(word)
        elif raw in _PHRASE_BREAKS:
            tokens.append(",")
        elif raw in _SENTENCE_BREAKS:
            if not (was_abbreviation and raw == "."):  # "Dr." ends no sentence
                tokens.append(".")
        elif raw not in _IGNORED:
            raise InputError(
                f"text: the character {raw!r} in {text.strip()!r} has no reading "
                "(expected letters, digits and punctuation)"
            )
    # collapse runs of pauses and drop leading ones
    out: list[str] = []
    for tok in tokens:
        if tok in ",." and (not out or out[-1] in ",."):
            if out and tok == "." and out[-1] == ",":
                out[-1] = "."
            continue
        out.append(tok)
    if not any(t not in ",." for t in out):
        raise InputError(f"text: {text.strip()!r} holds no words to speak")
    return out
