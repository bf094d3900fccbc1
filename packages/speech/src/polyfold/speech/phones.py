"""The phone set: flite's US-English phones (unstressed ARPAbet in lower case, ``ax`` for a
reduced vowel, ``pau`` for silence), so that gold durations from ``flite -psdur`` and the
CMUdict front end speak the same inventory.

Ids: 0 is padding, then :data:`PHONES` in order. :func:`arpabet_to_phone` maps a CMUdict phone
(``AH0``, ``T``) to this set.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyfold.core.errors import InputError

__all__ = ["PAD_ID", "PHONES", "PHONE_TO_ID", "arpabet_to_phone", "phone_ids"]

VOWELS = (
    "aa",
    "ae",
    "ah",
    "ao",
    "aw",
    "ax",
    "ay",
    "eh",
    "er",
    "ey",
    "ih",
    "iy",
    "ow",
    "oy",
    "uh",
    "uw",
)
CONSONANTS = [
    "b",
    "ch",
    "d",
    "dh",
    "f",
    "g",
    "hh",
    "jh",
    "k",
    "l",
    "m",
    "n",
    "ng",
    "p",
    "r",
    "s",
    "sh",
    "t",
    "th",
    "v",
    "w",
    "y",
    "z",
    "zh",
]
PHONES: tuple[str, ...] = ("pau", *VOWELS, *CONSONANTS)
PAD_ID = 0
PHONE_TO_ID = {p: i + 1 for i, p in enumerate(PHONES)}


def arpabet_to_phone(symbol: str) -> str:
    """flite's phone for a CMUdict ARPAbet symbol: stress dropped, ``AH0`` becomes ``ax``."""
    if symbol == "AH0":
        return "ax"
    phone = symbol.rstrip("012").lower()
    if phone not in PHONE_TO_ID:
        raise InputError(f"phone: {symbol!r} is not an ARPAbet phone")
    return phone


def phone_ids(phones: Sequence[str], where: str = "phones") -> list[int]:
    """Ids of ``phones`` (an InputError naming ``where`` and the unknown phone otherwise)."""
    ids = []
    for p in phones:
        if p not in PHONE_TO_ID:
            raise InputError(f"{where}: unknown phone {p!r} (expected one of {' '.join(PHONES)})")
        ids.append(PHONE_TO_ID[p])
    return ids
