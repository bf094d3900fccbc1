"""polyfold.core.export: the one model file format (safetensors weights + JSON card)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from polyfold.core import export
from polyfold.core._version import __version__
from polyfold.core.errors import InputError
from polyfold.core.export import LoadedModel, load_model, model_files, register_model, save_model


@register_model("test.Tiny")
class Tiny(nn.Module):
    """Built with ``cls(**config)``."""

    def __init__(self, width: int, depth: int = 1) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(nn.Linear(width, width) for _ in range(depth)))
        self.register_buffer("scale", torch.ones(width))


class Configured(nn.Module):
    """Built with ``from_config``."""

    def __init__(self, sizes: tuple[int, int]) -> None:
        super().__init__()
        self.proj = nn.Linear(*sizes)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Configured:
        return cls(tuple(config["sizes"]))  # type: ignore[arg-type]


register_model(Configured, name="test.Configured")


class Unregistered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))


def _tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny(4, depth=2)


CARD = {"data_card": "iris", "command": "polyfold-x train --steps 3", "metrics": {"loss": 0.5}}


def test_round_trip_weights_config_card_and_class(tmp_path: Path) -> None:
    model = _tiny()
    out = save_model(model, tmp_path / "m", config={"width": 4, "depth": 2}, card=CARD)
    assert out == tmp_path / "m.safetensors"
    assert (tmp_path / "m.json").is_file()
    for given in (tmp_path / "m", out, tmp_path / "m.json", str(tmp_path / "m")):
        loaded = load_model(given)
        assert isinstance(loaded, LoadedModel)
        assert type(loaded.model) is Tiny
        assert loaded.config == {"width": 4, "depth": 2}
        assert loaded.card == CARD
        assert not loaded.model.training
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.model.state_dict()[k], v)
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["model_class"] == "test.Tiny"
    assert record["polyfold_version"] == __version__
    assert record["format"] == "polyfold-model"
    assert record["format_version"] == 1


def test_from_config_and_extra_tensors(tmp_path: Path) -> None:
    model = Configured((3, 2))
    extra = {"data_min": torch.tensor([1.0, -2.0])}
    save_model(model, tmp_path / "c.safetensors", config={"sizes": [3, 2]}, tensors=extra)
    loaded = load_model(tmp_path / "c")
    assert type(loaded.model) is Configured
    assert loaded.card == {}
    assert torch.equal(loaded.tensors["data_min"], extra["data_min"])
    assert torch.equal(loaded.model.proj.weight, model.proj.weight)


def test_model_files_stem_convention(tmp_path: Path) -> None:
    pair = (tmp_path / "a.b.safetensors", tmp_path / "a.b.json")
    assert model_files(tmp_path / "a.b") == pair == model_files(tmp_path / "a.b.json")


def test_refuses_unregistered_class_when_saving_and_loading(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Unregistered is not registered"):
        save_model(Unregistered(), tmp_path / "u", config={})
    save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": 2})
    card = tmp_path / "m.json"
    record = json.loads(card.read_text())
    record["model_class"] = "os.system"
    card.write_text(json.dumps(record))
    with pytest.raises(InputError) as err:
        load_model(tmp_path / "m")
    msg = str(err.value)
    assert "'os.system' is not a registered polyfold model" in msg
    assert "test.Tiny" in msg
    assert str(card) in msg


def test_entry_point_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FromPlugin(Tiny):
        pass

    save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": 2})
    record = json.loads((tmp_path / "m.json").read_text())
    record["model_class"] = "plugin.FromPlugin"
    (tmp_path / "m.json").write_text(json.dumps(record))
    ep = SimpleNamespace(name="plugin.FromPlugin", value="plugin:X", load=lambda: FromPlugin)
    seen: list[str] = []

    def entry_points(*, group: str) -> list[SimpleNamespace]:
        seen.append(group)
        return [ep]

    monkeypatch.setattr(export.importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(export, "_REGISTRY", dict(export._REGISTRY))
    loaded = load_model(tmp_path / "m")
    assert type(loaded.model) is FromPlugin
    assert seen == ["polyfold.models"]
    assert "plugin.FromPlugin" in export.registered_models()


def test_save_refuses_a_name_of_another_class(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'test\.Configured' names Configured, not the Tiny"):
        save_model(_tiny(), tmp_path / "m", config={"width": 4}, name="test.Configured")


def test_register_model_rejects_a_second_class_under_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already names Tiny"):
        register_model("test.Tiny")(Configured)
    assert register_model(Tiny, name="test.Tiny") is Tiny  # same class again: fine


def test_non_json_config_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"config\['depth'\]: expected JSON values.*object"):
        save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": object()})
    with pytest.raises(InputError, match=r"card\['metrics'\]\['x'\]"):
        save_model(_tiny(), tmp_path / "m", config={"width": 4}, card={"metrics": {"x": {1}}})
    assert not list(tmp_path.iterdir())  # nothing written


def _boom(*args: object, **kwargs: object) -> bytes:
    raise OSError("disk full")


def test_failed_save_leaves_the_previous_pair_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _tiny(0)
    save_model(old, tmp_path / "m", config={"width": 4, "depth": 2}, card={"v": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(export.safetensors.torch, "save", _boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(_tiny(1), tmp_path / "m", config={"width": 4, "depth": 2}, card={"v": 2})
    monkeypatch.undo()
    real_write = export._write_temp
    calls: list[Path] = []

    def fail_card(final: Path, data: bytes) -> Path:  # the weights' temp file, then a failure
        calls.append(final)
        if final.suffix == ".json":
            raise OSError("card write failed")
        return real_write(final, data)

    monkeypatch.setattr(export, "_write_temp", fail_card)
    with pytest.raises(OSError, match="card write failed"):
        save_model(_tiny(1), tmp_path / "m", config={"width": 4, "depth": 2}, card={"v": 2})
    assert [c.name for c in calls] == ["m.safetensors", "m.json"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files left
    loaded = load_model(tmp_path / "m")
    assert loaded.card == {"v": 1}
    assert torch.equal(loaded.model.layers[0].weight, old.layers[0].weight)


def test_torn_pair_is_refused(tmp_path: Path) -> None:
    save_model(_tiny(0), tmp_path / "m", config={"width": 4, "depth": 2})
    card = (tmp_path / "m.json").read_bytes()
    save_model(_tiny(1), tmp_path / "m", config={"width": 4, "depth": 2})
    (tmp_path / "m.json").write_bytes(card)  # new weights, old card
    with pytest.raises(InputError, match="does not match its card"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("target", "content", "message"),
    [
        ("json", None, r"m\.json: missing; expected a polyfold model card"),
        ("json", b"", r"m\.json: expected a polyfold model card \(JSON\)"),
        ("json", b"\x89PNG\x00\xff\xfe", r"m\.json: expected a polyfold model card \(JSON\)"),
        ("json", b'{"model_class": "test.Tiny"}', r"not a polyfold model card"),
        ("json", b"[1, 2]", r"not a polyfold model card"),
        ("safetensors", None, r"m\.safetensors: missing; expected the safetensors weights"),
        ("safetensors", b"", r"m\.safetensors: does not match its card"),
        ("safetensors", "truncate", r"m\.safetensors: does not match its card"),
    ],
)
def test_malformed_files_raise_input_errors(
    tmp_path: Path, target: str, content: bytes | str | None, message: str
) -> None:
    save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": 2})
    f = tmp_path / f"m.{target}"
    if content is None:
        f.unlink()
    elif content == "truncate":
        f.write_bytes(f.read_bytes()[:100])
    else:
        assert isinstance(content, bytes)
        f.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_model(tmp_path / "m")


def test_unsupported_version_and_garbage_weights(tmp_path: Path) -> None:
    save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": 2})
    record = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**record, "format_version": 99}))
    with pytest.raises(InputError, match="format_version 99 is not supported"):
        load_model(tmp_path / "m")
    garbage = b"\x00" * 64
    (tmp_path / "m.safetensors").write_bytes(garbage)
    import hashlib

    record["weights_sha256"] = hashlib.sha256(garbage).hexdigest()
    (tmp_path / "m.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="expected safetensors weights"):
        load_model(tmp_path / "m")


def test_weight_key_mismatch_and_bad_config_are_input_errors(tmp_path: Path) -> None:
    save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": 2})
    record = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**record, "config": {"width": 4, "depth": 3}}))
    missing = r"missing keys \['layers\.2\.bias', 'layers\.2\.weight'\]"
    with pytest.raises(InputError, match=missing):
        load_model(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps({**record, "config": {"width": 4, "depth": 1}}))
    with pytest.raises(InputError, match=r"unexpected keys \['layers\.1\.bias'"):
        load_model(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps({**record, "config": {"width": 5, "depth": 2}}))
    with pytest.raises(InputError, match=r"the weights do not fit test\.Tiny"):
        load_model(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps({**record, "config": {"wide": 4}}))
    with pytest.raises(InputError, match="config does not build Tiny"):
        load_model(tmp_path / "m")


def test_nothing_is_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": 2})

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    assert type(load_model(tmp_path / "m").model) is Tiny


def test_broken_entry_point_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_model(_tiny(), tmp_path / "m", config={"width": 4, "depth": 2})
    record = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**record, "model_class": "gone.Net"}))

    def load() -> type:
        raise ImportError("No module named 'gone'")

    ep = SimpleNamespace(name="gone.Net", value="gone:Net", load=load)
    monkeypatch.setattr(export.importlib.metadata, "entry_points", lambda *, group: [ep])
    with pytest.raises(InputError, match=r"polyfold\.models:gone\.Net = 'gone:Net' cannot be"):
        load_model(tmp_path / "m")
