"""Every model class a package declares in the ``polyfold.models`` entry-point group is the
class that package registers with polyfold.core.export, and each shipped model file loads."""

import importlib
import tomllib
from pathlib import Path

from polyfold.core import export

REPO = Path(__file__).resolve().parents[1]


def _declared(package: str) -> dict[str, str]:
    meta = tomllib.loads((REPO / "packages" / package / "pyproject.toml").read_text())
    return dict(meta["project"].get("entry-points", {}).get(export.ENTRY_POINT_GROUP, {}))


def test_declared_model_classes_are_the_registered_ones(package):
    for name, target in _declared(package).items():
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        assert export._REGISTRY.get(name) is cls, f"{package}: {name} = {target}"


def test_shipped_model_files_load_with_their_cards(package):
    weights = REPO / "packages" / package / "src" / "polyfold" / package / "weights"
    declared = set(_declared(package))
    for card in sorted(weights.glob("*.json")):
        record = export.read_card(card)
        assert record["model_class"] in declared, card
        loaded = export.load_model(card)
        assert type(loaded.model).__module__.startswith(f"polyfold.{package}.")
        assert loaded.card.get("command"), f"{card}: no training command"
        assert "metrics" in loaded.card or "heldout" in loaded.card, card
