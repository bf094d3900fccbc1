import numpy as np
import pytest

from polyfold.core.errors import InputError
from polyfold.motion.deepmimic import load_clips
from polyfold.motion.export import motion_files, save_joints
from polyfold.motion.formats.amass import read_amass
from polyfold.motion.formats.bvh import bvh_to_motion, read_bvh, write_bvh
from polyfold.motion.formats.humanml3d import humanml3d_joints, read_humanml3d
from polyfold.motion.render import write_gif, write_svg
from polyfold.motion.skeleton import HUMANOID

TINY_BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Knee
  {
    OFFSET 0 -10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -10 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.05
0 20 0 0 0 0 0 0 0
1 20 0 0 0 90 90 0 0
"""


@pytest.fixture(scope="module")
def cartwheel():
    return load_clips(("humanoid3d_cartwheel",))[0].resampled()


def test_bvh_round_trip(tmp_path, cartwheel):
    path = tmp_path / "c.bvh"
    write_bvh(path, cartwheel)
    bvh = read_bvh(path)
    assert bvh.names[0] == "root"
    assert bvh.frame_time == pytest.approx(0.05)
    order = [HUMANOID.index(n) for n in bvh.names]
    np.testing.assert_allclose(bvh.joints() / 100, cartwheel.joints()[:, order], atol=1e-6)
    np.testing.assert_allclose(bvh_to_motion(bvh).joints(), cartwheel.joints(), atol=1e-6)


def test_tiny_bvh_closed_form(tmp_path):
    path = tmp_path / "t.bvh"
    path.write_text(TINY_BVH)
    bvh = read_bvh(path)
    j = bvh.joints()
    np.testing.assert_allclose(j[0, 1], [0, 10, 0], atol=1e-9)
    # frame 1: root yaw 90 deg about y turns nothing on a vertical bone; the knee moves with x
    np.testing.assert_allclose(j[1, 1], [1, 10, 0], atol=1e-9)
    with pytest.raises(InputError, match="BVH joint 'Hips'"):
        bvh_to_motion(bvh)


def test_bad_bvh(tmp_path):
    path = tmp_path / "b.bvh"
    path.write_text(TINY_BVH.replace("Frames: 2", "Frames: 3"))
    with pytest.raises(InputError, match="expected 3 frames"):
        read_bvh(path)
    path.write_text("MOTION\n")
    with pytest.raises(InputError, match="HIERARCHY"):
        read_bvh(path)
    path.write_text(TINY_BVH.replace("Zrotation Xrotation", "Wrotation Xrotation"))
    with pytest.raises(InputError, match="Wrotation"):
        read_bvh(path)


def test_humanml3d_loader(tmp_path):
    t = 5
    f = np.zeros((t, 263), dtype=np.float32)
    f[:, 3] = 0.9  # root height
    f[:, 1:3] = [0.0, 0.1]  # forward (z) 0.1 m per frame, no turning
    f[:, 4:7] = [0.2, 1.5, 0.0]  # joint 1: 0.2 m beside the root (xz), 1.5 m high (y is absolute)
    (tmp_path / "new_joint_vecs").mkdir()
    (tmp_path / "texts").mkdir()
    np.save(tmp_path / "new_joint_vecs" / "000001.npy", f)
    (tmp_path / "texts" / "000001.txt").write_text(
        "a person walks forward#a/DET person/NOUN#0.0#0.0\nsomeone walks#x#nan#nan\n"
    )
    (tmp_path / "train.txt").write_text("000001\n")
    (item,) = read_humanml3d(tmp_path, "train")
    assert item.captions == ["a person walks forward", "someone walks"]
    joints = item.joints()
    assert joints.shape == (t, 22, 3)
    np.testing.assert_allclose(joints[:, 0, 2], 0.1 * np.arange(t), atol=1e-6)
    np.testing.assert_allclose(joints[:, 1, 1], 1.5, atol=1e-6)
    np.testing.assert_allclose(joints[:, 1, 0] - joints[:, 0, 0], 0.2, atol=1e-6)
    with pytest.raises(InputError, match="263"):
        humanml3d_joints(np.zeros((3, 10)))
    (tmp_path / "texts" / "000001.txt").write_text("no hashes here\n")
    with pytest.raises(InputError, match="line 1"):
        read_humanml3d(tmp_path, "train")


def test_amass_loader(tmp_path):
    t = 11
    poses = np.zeros((t, 156))
    poses[:, 3 * 4 + 0] = np.linspace(0, 1.0, t)  # joint 4 about x
    path = tmp_path / "a.npz"
    np.savez(path, poses=poses, trans=np.zeros((t, 3)), mocap_framerate=np.array(100.0),
             betas=np.zeros(16), gender=np.array("female"))  # fmt: skip
    m = read_amass(path, num_joints=22)
    assert m.rotations.shape == (t, 22, 4)
    assert m.gender == "female"
    r = m.resample(20.0)
    assert r.rotations.shape[0] == 3
    np.testing.assert_allclose(r.axis_angle()[:, 4, 0], [0.0, 0.5, 1.0], atol=1e-9)
    np.savez(path, poses=poses, trans=np.zeros((t, 3)))
    with pytest.raises(InputError, match="mocap_framerate"):
        read_amass(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="AMASS motion"):
        read_amass(path)


def test_exports_and_previews(tmp_path, cartwheel):
    files = motion_files(tmp_path, "m", cartwheel)
    assert [f.name for f in files] == ["m.npy", "m.bvh"]
    np.testing.assert_allclose(np.load(files[0]), cartwheel.joints(), atol=1e-6)
    with pytest.raises(InputError, match=r"\(T, J, 3\)"):
        save_joints(tmp_path / "x.npy", np.zeros((3, 4)))
    joints = cartwheel.joints()[:6]
    svg = write_svg(tmp_path / "p.svg", [joints, joints], ["a <b>", "c"]).read_text()
    assert svg.count("<animate ") == 2 * 14 * 4
    assert "a &lt;b>" in svg
    gif = write_gif(tmp_path / "p.gif", [joints], ["c"])
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 6
    with pytest.raises(InputError, match="one caption per motion"):
        write_svg(tmp_path / "q.svg", [joints], [])


def test_smpl_inputs_shapes(tmp_path):
    from polyfold.motion.formats.amass import AmassMotion
    from polyfold.motion.smpl import smpl_inputs, smpl_meshes

    rng = np.random.default_rng(0)
    rot = rng.normal(size=(5, 52, 4))
    rot /= np.linalg.norm(rot, axis=-1, keepdims=True)
    motion = AmassMotion(rot, np.zeros((5, 3)), 30.0, np.arange(16.0), "female")
    inputs = smpl_inputs(motion)
    assert inputs["global_orient"].shape == (5, 3)
    assert inputs["body_pose"].shape == (5, 63)
    assert inputs["betas"].shape == (5, 10)
    np.testing.assert_allclose(inputs["betas"][0], np.arange(10.0))
    short = AmassMotion(rot[:, :10], np.zeros((5, 3)), 30.0, np.zeros(10), "male")
    with pytest.raises(InputError, match="at least 22 joints"):
        smpl_inputs(short)
    try:
        import smplx  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match=r"polyfold-motion\[smpl\]"):
            smpl_meshes(motion, tmp_path)
