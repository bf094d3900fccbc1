"""polyfold-core's tests.

- ``TRITON_INTERPRET=1`` is set before anything imports Triton, so the kernel tests run the
  Triton kernels in its CPU interpreter (dispatch still sends CPU tensors to the references).
- One torch thread: the tensors are tiny and extra threads only contend.
- Every test starts from the same global torch seed.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)
