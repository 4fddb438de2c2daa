"""The MLE LID formula in plain torch: the one Python mirror of `csrc/include/naslid/lid_math.h`.

Used by the torch and faiss backends when `torch.ops.naslid.lid_mle` has no kernel for the device.
It must stay equal to `naslid::lid_from_sorted_sqdist` term by term (tests compare the two).

The estimators ("naslid", "levina") and the values of degenerate neighbourhoods (LID 0 for a zero
distance, the cap 1 / eps of the compute dtype for equidistant neighbours) are defined in
docs/ops_api.md ("The estimators", "Degenerate neighbourhoods"). Here the input is the sorted
squared distances s_1 <= ... <= s_k, and log(r_k / r_j) = 0.5 * log(s_k / s_j): the factor 0.5 is
applied once, below.
"""
from __future__ import annotations

import torch

ESTIMATORS = ("naslid", "levina")


def min_k(estimator: str) -> int:
    """Smallest k the MLE ops accept: 2 for both estimators. With k = 1 "naslid" sums a single
    zero term (always the 1/eps cap) and "levina" divides 0 by 0: no information either way."""
    return 2


def lid_cap(dtype: torch.dtype) -> float:
    """The finite LID returned for equidistant neighbourhoods: 1 / machine epsilon of `dtype`."""
    return 1.0 / torch.finfo(dtype).eps


def lid_from_sorted_sqdist(sqdist: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-point LID from sorted k-NN squared distances.

    Args:
        sqdist: (..., k) float32/float64, sorted ascending along the last dim, finite, >= 0.
        estimator: "naslid" | "levina" (already validated; k >= `min_k(estimator)`).
    Returns:
        (...) LID in sqdist.dtype (computed in that dtype, like the C++ kernels do for float/double).
    """
    k = sqdist.shape[-1]
    terms = k if estimator == "naslid" else k - 1
    sk = sqdist[..., k - 1 : k]  # (..., 1)
    sj = sqdist[..., :terms]  # (..., terms)
    # A zero among s_k or the summed s_j: the limit of the formula is 0 (checked before any log so
    # no inf/NaN is ever formed; `~(s > 0)` mirrors the C++ `!(s > 0)`).
    degenerate = (~(sj > 0)).any(dim=-1) | (~(sk[..., 0] > 0))
    safe_sj = torch.where(sj > 0, sj, torch.ones_like(sj))
    safe_sk = torch.where(sk > 0, sk, torch.ones_like(sk))
    log_sum = 0.5 * torch.log(safe_sk / safe_sj).sum(dim=-1)  # the one factor 0.5
    numer = float(terms)
    cap = lid_cap(sqdist.dtype)
    capped = ~(log_sum * cap > numer)
    safe_log_sum = torch.where(capped, torch.ones_like(log_sum), log_sum)
    lid = torch.where(capped, torch.full_like(log_sum, cap), numer / safe_log_sum)
    return torch.where(degenerate, torch.zeros_like(lid), lid)
