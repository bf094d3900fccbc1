from dataclasses import asdict

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.export import load_model, save_model
from polyfold.speech.dataset import collate
from polyfold.speech.layers import length_regulate
from polyfold.speech.model import PRESETS, AcousticConfig, AcousticModel
from polyfold.speech.objectives import comospeech_loss, prodiff_loss, teacher_loss
from polyfold.speech.phones import phone_ids
from polyfold.speech.synthesis import synthesize

TINY = {**asdict(PRESETS["tiny"]), "hidden": 32, "ff": 64, "duration_channels": 32, "channels": 16,
        "layers": 2, "encoder_layers": 1}  # fmt: skip


def model(**changes):
    torch.manual_seed(0)
    return AcousticModel(**{**TINY, **changes}).eval()


def batch():
    items = []
    for k, phones in enumerate([["pau", "hh", "ay", "pau"], ["pau", "y", "eh", "s", "pau"]]):
        d = torch.tensor([3, 4, 5, 6, 2][: len(phones)]) + k
        mel = torch.randn(int(d.sum()), 80) - 5
        items.append({"ids": torch.tensor(phone_ids(phones)), "durations": d, "mel": mel, "id": k})
    return collate(items)


def test_length_regulator_sums_to_mel_length():
    h = torch.randn(2, 5, 8)
    d = torch.tensor([[1, 0, 3, 2, 4], [2, 2, 0, 0, 0]])
    out, mask = length_regulate(h, d)
    assert mask.sum(1).tolist() == d.sum(1).tolist()
    assert out.shape == (2, 10, 8)
    assert torch.equal(out[0, 1], h[0, 2])  # the zero-duration phone is skipped
    assert torch.equal(out[0, 4:6], h[0, 3].expand(2, 8))
    assert out[1, 4:].abs().sum() == 0


def test_presets_and_config_validation():
    n = sum(p.numel() for p in AcousticModel(**asdict(PRESETS["default"])).parameters())
    assert 4e6 < n < 6.5e6  # the CPU-sized default, around 5M
    with pytest.raises(InputError, match="comospeech"):
        AcousticConfig(kind="comospeech", path="vp")
    with pytest.raises(InputError, match="layers"):
        AcousticConfig(layers=0)


@pytest.mark.parametrize("path", ["vp", "edm"])
def test_teacher_loss_trains(path):
    m = model(path=path).train()
    loss = teacher_loss(m, batch(), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert m.net.outp.weight.grad is not None
    assert m.duration.out.weight.grad is not None


def test_distillation_losses_run_on_core():
    gen = torch.Generator().manual_seed(0)
    teacher = model(path="edm")
    pd_student = AcousticModel(**{**teacher.config, "kind": "prodiff", "steps": 2})
    pd_student.load_state_dict(teacher.state_dict())
    loss = prodiff_loss(pd_student, teacher, batch(), gen, student_steps=2, data_steps=4)
    loss.backward()
    assert torch.isfinite(loss)
    cm = AcousticModel(**{**teacher.config, "kind": "comospeech", "steps": 1})
    cm.load_state_dict(teacher.state_dict())
    target = AcousticModel(**cm.config)
    target.load_state_dict(cm.state_dict())
    loss = comospeech_loss(cm, target, teacher, batch(), gen, levels=6, ema_decay=0.9)
    loss.backward()
    assert torch.isfinite(loss)


def test_sampler_step_counts(tmp_path):
    teacher = model(path="edm")
    durations = [3, 4, 5, 6]
    phones = ["pau", "hh", "ay", "pau"]
    for steps in (1, 2, 50):
        r = synthesize(teacher, phones=phones, durations=durations, steps=steps)
        assert r.nfe == steps
        assert r.mel.shape == (80, 18)
    prodiff = AcousticModel(**{**teacher.config, "kind": "prodiff", "steps": 2})
    como = AcousticModel(**{**teacher.config, "kind": "comospeech", "steps": 1})
    for student, nfe in ((prodiff, 2), (como, 1)):
        save_model(student, tmp_path / student.cfg.kind, config=student.config, card={})
        loaded = load_model(tmp_path / student.cfg.kind).model
        assert synthesize(loaded, phones=phones, durations=durations).nfe == nfe
    with pytest.raises(InputError, match="distilled for 2 steps"):
        synthesize(prodiff, phones=phones, steps=4)


def test_synthesis_is_seeded_and_follows_durations():
    m = model(path="vp")
    a = synthesize(m, "Hi there.", steps=3, seed=1)
    b = synthesize(m, "Hi there.", steps=3, seed=1)
    assert torch.equal(a.mel, b.mel)
    assert a.mel.shape[1] == int(a.durations.sum())
    assert (a.durations >= 1).all()


@pytest.mark.parametrize(
    ("name", "kind", "nfe"), [("prodiff", "prodiff", 2), ("comospeech", "comospeech", 1)]
)
def test_shipped_students(name, kind, nfe):
    from polyfold.core.export import read_card
    from polyfold.speech.generate import load_acoustic, shipped_path

    m = load_acoustic(name)
    assert m.cfg.kind == kind
    assert synthesize(m, "To be.").nfe == nfe
    card = read_card(shipped_path(name))["card"]
    assert card["data_card"] == "flite-slt"
    assert card["command"].startswith(f"polyfold-speech train --model {kind}")
