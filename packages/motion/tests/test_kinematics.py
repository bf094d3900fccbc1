import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.deepmimic import load_clips, read_deepmimic
from polyfold.motion.kinematics import forward_kinematics
from polyfold.motion.quaternion import axis_angle, from_rot6d, qmul, slerp, to_rot6d
from polyfold.motion.skeleton import HUMANOID, skeleton_from_urdf

# pybullet's link-frame positions for humanoid3d_walk frame 0 (dev/check_fk_pybullet.py)
WALK0 = {
    "root": [0.0, 0.847532, 0.0],
    "neck": [0.047178, 1.304798, 0.017326],
    "right_ankle": [0.241051, 0.057733, 0.036419],
    "left_ankle": [-0.347432, 0.113879, -0.035082],
    "right_wrist": [-0.138216, 0.810171, 0.237371],
    "left_wrist": [0.267564, 0.888384, -0.28029],
}


def test_fk_matches_pybullet_reference_values():
    joints = load_clips(("humanoid3d_walk",))[0].motion().joints()[0]
    for name, ref in WALK0.items():
        np.testing.assert_allclose(joints[HUMANOID.index(name)], ref, atol=2e-6)


def test_fk_rest_pose_is_sum_of_offsets():
    rot = np.zeros((1, 15, 4))
    rot[..., 0] = 1
    joints = forward_kinematics(np.zeros((1, 3)), rot)[0]
    wrist = HUMANOID.index("left_wrist")
    expect = sum(HUMANOID.offsets[j] for j in (1, 12, 13, 14))
    np.testing.assert_allclose(joints[wrist], expect)


def test_skeleton_from_urdf_strips_nul(tmp_path):
    names = HUMANOID.names[1:]
    kinds = {"ball": "spherical", "hinge": "revolute", "fixed": "fixed"}
    body = "".join(
        f'<joint name="{n}" type="{kinds[HUMANOID.kinds[j]]}"><origin xyz="'
        + " ".join(str(v * 4) for v in HUMANOID.offsets[j])
        + '"/></joint>'
        for j, n in enumerate(names, start=1)
    )
    path = tmp_path / "h.urdf"
    path.write_bytes(f'<robot name="h">{body}</robot>'.encode() + b"\x00")
    np.testing.assert_allclose(skeleton_from_urdf(path).offsets, HUMANOID.offsets)
    path.write_bytes(b'<robot name="h"></robot>')
    with pytest.raises(InputError, match="no joint named 'chest'"):
        skeleton_from_urdf(path)


def test_slerp_and_rot6d():
    z = np.array([0.0, 0.0, 1.0])
    mid = slerp(axis_angle(z, 0.0), axis_angle(z, 1.0), 0.5)
    np.testing.assert_allclose(mid, axis_angle(z, 0.5), atol=1e-12)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    back = from_rot6d(to_rot6d(q))
    np.testing.assert_allclose(np.abs(np.sum(back * q, -1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(qmul(q, q * [1, -1, -1, -1])[:, 0], 1.0, atol=1e-12)


def test_resampling_keeps_bones_and_rate():
    clip = load_clips(("humanoid3d_spin",))[0]  # frame time 1/24 s
    m = clip.resampled(20.0)
    assert m.fps == 20.0
    assert m.num_frames == int(np.floor(clip.frame_times()[-1] * 20 + 1e-6)) + 1
    joints = m.joints()
    for j, p in enumerate(HUMANOID.parents):
        if p >= 0:
            length = np.linalg.norm(joints[:, j] - joints[:, p], axis=-1)
            np.testing.assert_allclose(length, np.linalg.norm(HUMANOID.offsets[j]), atol=1e-9)
    # a resampling time on an original frame reproduces it exactly
    raw = clip.motion()
    at = raw.at_times(clip.frame_times()[[0, 12]], clip.frame_times())
    np.testing.assert_allclose(at.joints(), raw.joints()[[0, 12]], atol=1e-9)


def test_all_clips_embedded():
    clips = load_clips()
    assert len(clips) == 20
    assert sum(c.frames.shape[0] for c in clips) == 1810
    assert {round(1 / c.frames[0, 0]) for c in clips} == {60, 30, 24, 16}


def test_corrupt_deepmimic_file(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text('{"Frames": [[0.1, 1, 2]]}')
    with pytest.raises(InputError, match="44 numbers"):
        read_deepmimic(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.txt"):
        read_deepmimic(bad)
