"""SMPL meshes from AMASS-style joint rotations (``polyfold-motion[smpl]`` and the user's SMPL
model files; none ship, SMPL is registration-only).

:func:`smpl_inputs` turns an :class:`~polyfold.motion.formats.amass.AmassMotion` into the
keyword arrays of ``smplx``'s body model (checked without smplx); :func:`smpl_meshes` runs the
model and returns vertices, faces and joints. Without SMPL files everything else in the package
works on the skeleton.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError
from polyfold.motion.formats.amass import AmassMotion

__all__ = ["SMPL_BODY_JOINTS", "smpl_inputs", "smpl_meshes"]

SMPL_BODY_JOINTS = 22  # pelvis + 21 body joints (SMPL-H/X hands and face are not used)


def smpl_inputs(motion: AmassMotion, num_betas: int = 10) -> dict[str, np.ndarray]:
    """``global_orient (T, 3)``, ``body_pose (T, 63)``, ``transl (T, 3)`` and ``betas
    (T, num_betas)`` float32 arrays for an SMPL body model."""
    aa = motion.axis_angle()
    t = aa.shape[0]
    if aa.shape[1] < SMPL_BODY_JOINTS:
        raise InputError(
            f"SMPL pose: expected at least {SMPL_BODY_JOINTS} joints, got {aa.shape[1]}"
        )
    betas = np.zeros(num_betas)
    given = np.asarray(motion.betas, dtype=np.float64).reshape(-1)[:num_betas]
    betas[: len(given)] = given
    return {
        "global_orient": aa[:, 0].astype(np.float32),
        "body_pose": aa[:, 1:SMPL_BODY_JOINTS].reshape(t, -1).astype(np.float32),
        "transl": np.asarray(motion.trans, dtype=np.float32),
        "betas": np.broadcast_to(betas, (t, num_betas)).astype(np.float32),
    }


def smpl_meshes(
    motion: AmassMotion, model_dir: str | Path, model_type: str = "smpl"
) -> dict[str, np.ndarray]:
    """``vertices (T, V, 3)``, ``faces (F, 3)`` and ``joints (T, K, 3)`` of the SMPL body in
    ``model_dir`` (the folder holding the user's ``SMPL_*.pkl`` / ``.npz`` files)."""
    from polyfold.core.extras import require_extra

    smplx = require_extra("smplx", "motion", "smpl", needed_for="SMPL meshes")
    import torch

    if not Path(model_dir).is_dir():
        raise InputError(f"SMPL model folder {model_dir}: not a folder")
    kwargs = {k: torch.from_numpy(v) for k, v in smpl_inputs(motion).items()}
    gender = motion.gender if motion.gender in ("male", "female") else "neutral"
    body = smplx.create(str(model_dir), model_type=model_type, gender=gender,
                        batch_size=len(kwargs["transl"]))  # fmt: skip
    with torch.no_grad():
        out = body(**kwargs)
    return {
        "vertices": out.vertices.numpy(),
        "faces": np.asarray(body.faces, dtype=np.int64),
        "joints": out.joints.numpy(),
    }
