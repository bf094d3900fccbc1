"""Action classes of the embedded clips, caption paraphrases, "A then B" captions, and the
left/right swap that goes with mirroring."""

from __future__ import annotations

import re

import numpy as np

from polyfold.core.errors import InputError

__all__ = [
    "ACTIONS",
    "CLIP_ACTION",
    "PARAPHRASES",
    "caption_for",
    "mirror_action",
    "mirror_text",
    "then_caption",
]

ACTIONS = (
    "walk", "turn left", "turn right", "run", "jump", "kick", "spin-kick", "punch",
    "cartwheel", "backflip", "crawl", "roll", "spin", "dance", "get up from face-down",
    "get up from back",
)  # fmt: skip
"""The action classes, in label order."""

CLIP_ACTION = {
    "humanoid3d_backflip": "backflip", "humanoid3d_cartwheel": "cartwheel",
    "humanoid3d_crawl": "crawl", "humanoid3d_dance_a": "dance", "humanoid3d_dance_b": "dance",
    "humanoid3d_getup_facedown": "get up from face-down",
    "humanoid3d_getup_faceup": "get up from back", "humanoid3d_jump": "jump",
    "humanoid3d_kick": "kick", "humanoid3d_punch": "punch", "humanoid3d_roll": "roll",
    "humanoid3d_run": "run", "humanoid3d_spin": "spin", "humanoid3d_spinkick": "spin-kick",
    "humanoid3d_walk": "walk", "walker_0walk_forward": "walk",
    "walker_turn_left0": "turn left", "walker_turn_left1": "turn left",
    "walker_turn_right0": "turn right", "walker_turn_right1": "turn right",
}  # fmt: skip

PARAPHRASES: dict[str, tuple[str, ...]] = {
    "walk": ("a person walks forward", "someone walks straight ahead", "a man is walking",
             "a person takes a few steps forward", "a figure strolls forward at a steady pace",
             "the person walks in a straight line"),
    "turn left": ("a person walks and turns left", "someone turns to the left while walking",
                  "a person walks forward and veers left", "the figure makes a left turn",
                  "a man walks in a curve to the left"),
    "turn right": ("a person walks and turns right", "someone turns to the right while walking",
                   "a person walks forward and veers right", "the figure makes a right turn",
                   "a man walks in a curve to the right"),
    "run": ("a person runs forward", "someone is running", "a man jogs quickly ahead",
            "the person sprints forward", "a figure runs in a straight line"),
    "jump": ("a person jumps forward", "someone leaps ahead with both feet",
             "a man does a long jump", "the person hops forward", "a figure jumps up and lands"),
    "kick": ("a person kicks with the right leg", "someone performs a front kick",
             "a man kicks forward", "the person throws a kick", "a fighter kicks the air"),
    "spin-kick": ("a person does a spinning kick", "someone spins and kicks",
                  "a man performs a roundhouse spin kick", "the person turns around and kicks",
                  "a martial artist does a spin kick"),
    "punch": ("a person punches forward", "someone throws punches",
              "a man boxes with his fists", "the person punches the air",
              "a fighter throws a punch"),
    "cartwheel": ("a person does a cartwheel", "someone cartwheels sideways",
                  "a gymnast performs a cartwheel", "the person turns a cartwheel",
                  "a figure wheels sideways on its hands"),
    "backflip": ("a person does a backflip", "someone flips backwards",
                 "a gymnast performs a back somersault", "the person jumps and flips backward",
                 "a man does a back flip"),
    "crawl": ("a person crawls on hands and knees", "someone crawls forward",
              "a man is crawling on the floor", "the person moves forward on all fours",
              "a figure crawls along the ground"),
    "roll": ("a person does a forward roll", "someone rolls forward on the ground",
             "a man tumbles forward", "the person does a somersault roll",
             "a figure rolls over and stands"),
    "spin": ("a person spins around", "someone turns in circles", "a man twirls on the spot",
             "the person pirouettes", "a figure spins in place"),
    "dance": ("a person dances", "someone is dancing", "a man does a dance move",
              "the person dances happily", "a figure dances on the spot"),
    "get up from face-down": ("a person gets up from lying face down",
                              "someone stands up from a prone position",
                              "a man pushes himself up off the floor",
                              "the person rises from lying on the stomach",
                              "a figure gets up from the ground face down"),
    "get up from back": ("a person gets up from lying on the back",
                         "someone stands up from a supine position",
                         "a man sits up and stands from lying down",
                         "the person rises from lying on the back",
                         "a figure gets up off the floor from the back"),
}  # fmt: skip

_SWAP = {"left": "right", "right": "left"}
_MIRROR_ACTION = {"turn left": "turn right", "turn right": "turn left"}


def mirror_text(text: str) -> str:
    """The caption with the words left and right swapped (as mirroring the motion does)."""
    return re.sub(r"\b(left|right)\b", lambda m: _SWAP[m.group(1)], text)


def mirror_action(action: str) -> str:
    """The action class of the mirrored motion."""
    return _MIRROR_ACTION.get(action, action)


def caption_for(action: str, rng: np.random.Generator, *, mirrored: bool = False) -> str:
    """A random paraphrase of ``action`` (with left/right swapped if ``mirrored``: the mirrored
    "kick with the right leg" kicks with the left)."""
    if action not in PARAPHRASES:
        raise InputError(f"action {action!r}: expected one of {', '.join(ACTIONS)}")
    text = PARAPHRASES[action][int(rng.integers(len(PARAPHRASES[action])))]
    return mirror_text(text) if mirrored else text


def then_caption(first: str, second: str) -> str:
    """ "A then B" from two single-action captions: the second loses its subject."""
    rest = re.sub(r"^(a person|someone|a man|the person|a figure|a gymnast|a fighter|"
                  r"a martial artist|the figure)\s+", "", second)  # fmt: skip
    return f"{first} then {rest}"
