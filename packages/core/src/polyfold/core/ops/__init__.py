"""Fused Triton kernels, each beside a plain-PyTorch reference of the same signature.

Dispatch (:func:`polyfold.core.ops._dispatch.use_triton`): the kernel runs on CUDA tensors when
Triton is importable (``pip install polyfold-core[triton]``), the reference everywhere else.
"""
