"""log|det K| of an integer matrix with an exact singularity decision (NASWOT's kernel).

A float LU (``torch.linalg.slogdet``) of a singular integer matrix leaves a pivot of rounding noise
whose size depends on the LAPACK build and the CPU's instruction set: the same singular kernel gives
sign 0 on one machine and a finite, even high, log|det| on another. Here the decision is exact:

1. ``det K mod p != 0`` for the prime p = 2^31 - 1 (Gaussian elimination in int64, exact) proves
   det K != 0. Otherwise, or when K is badly conditioned (2-norm condition number above
   ``COND_EXACT``), the determinant is computed exactly by fraction-free (Bareiss) elimination in
   Python integers, and log|det| is ``math.log`` of that integer (``-inf`` when it is 0).
2. A well-conditioned K proven non-singular takes log|det| from float64 LU: with cond <= 1e8 its
   error is below ~N * cond * 2^-53 < 1e-5 (N <= 512), i.e. it agrees across CPUs to about 1e-6.

Cost at N = 128 on a 2-core Xeon (loaded): ~15 ms for the modular proof plus a condition number;
the exact path 0.1-1.5 s (entries up to 2e5).

Public API::

    integer_logabsdet(K: (N, N) integer-valued tensor) -> float   # -inf iff det K == 0
    integer_det(K) -> int                                          # exact, Bareiss
"""
from __future__ import annotations

import math

import numpy as np
import torch

#: the Mersenne prime 2^31 - 1: products of two residues fit in int64
PRIME = 2_147_483_647

#: above this 2-norm condition number the float64 LU value is replaced by the exact one
COND_EXACT = 1e8


def _as_int_array(fn: str, K: torch.Tensor) -> np.ndarray:
    if not isinstance(K, torch.Tensor) or K.dim() != 2 or K.shape[0] != K.shape[1]:
        shape = tuple(K.shape) if isinstance(K, torch.Tensor) else type(K).__name__
        raise ValueError(f"{fn}: K must be a square (N, N) tensor, got {shape}")
    k64 = K.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(k64).all()) or not bool((k64 == k64.round()).all()):
        raise ValueError(f"{fn}: K must hold finite integer values (a NASWOT kernel counts units)")
    if bool((k64.abs() >= 2.0 ** 62).any()):
        raise ValueError(f"{fn}: K has entries of magnitude >= 2^62, out of int64 range")
    return k64.numpy().astype(np.int64)


def _nonzero_mod_p(a: np.ndarray) -> bool:
    """True when det(a) mod PRIME != 0 (proves det != 0); a: (N, N) int64."""
    m = np.mod(a, PRIME)
    n = m.shape[0]
    for k in range(n):
        nz = np.flatnonzero(m[k:, k])
        if nz.size == 0:
            return False
        piv = k + int(nz[0])
        if piv != k:
            m[[k, piv]] = m[[piv, k]]
        inv = pow(int(m[k, k]), PRIME - 2, PRIME)
        row = (m[k, k + 1:] * inv) % PRIME  # (N - k - 1,)
        neg = PRIME - m[k + 1:, k]  # (N - k - 1,) in [1, p]: -col mod p, so one mod per entry
        # entries < p + p * p < 2^63: exact in int64; column k is eliminated (not needed again)
        m[k + 1:, k + 1:] = (m[k + 1:, k + 1:] + neg[:, None] * row[None, :]) % PRIME
    return True


def _bareiss(a: np.ndarray) -> int:
    """Exact determinant of the int64 matrix a (N, N) by fraction-free elimination (Python ints)."""
    m = [[int(v) for v in row] for row in a]
    n, sign, prev = len(m), 1, 1
    for k in range(n - 1):
        if m[k][k] == 0:
            piv = next((i for i in range(k + 1, n) if m[i][k] != 0), None)
            if piv is None:
                return 0
            m[k], m[piv] = m[piv], m[k]
            sign = -sign
        akk, rk = m[k][k], m[k]
        for i in range(k + 1, n):
            ri, aik = m[i], m[i][k]
            ri[k + 1:] = [(akk * ri[j] - aik * rk[j]) // prev for j in range(k + 1, n)]
        prev = akk
    return sign * m[n - 1][n - 1] if n else 1


def integer_det(K: torch.Tensor) -> int:
    """Exact det of an integer-valued square tensor K (N, N), as a Python int."""
    return _bareiss(_as_int_array("integer_det", K))


def integer_logabsdet(K: torch.Tensor) -> float:
    """log|det K| of an integer-valued square tensor K (N, N); ``-inf`` exactly when det K == 0.

    The decision det == 0 never depends on floating-point rounding (see the module docstring)."""
    a = _as_int_array("integer_logabsdet", K)
    if a.shape[0] == 0:
        return 0.0
    if _nonzero_mod_p(a):
        k64 = torch.from_numpy(a.astype(np.float64))
        if float(torch.linalg.cond(k64)) <= COND_EXACT:
            _, logabs = torch.linalg.slogdet(k64)
            return float(logabs)
    det = _bareiss(a)
    return math.log(abs(det)) if det != 0 else float("-inf")
