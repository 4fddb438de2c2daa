// Argument checks of the naslid ops, shared by the CPU kernels (csrc/cpu) and the CUDA / emulated
// pipeline (csrc/include/naslid/cuda/knn_pipeline.h): one rule set, one wording. Cheap TORCH_CHECKs
// whose messages name the op, the argument and the sizes; ValueError for values and shapes
// (TORCH_CHECK_VALUE), TypeError for dtypes (TORCH_CHECK_TYPE). The ops are public through
// torch.ops.naslid; naslid_ext validates first with the same rules (docs/ops_api.md).
//
// Layout is not a rule: non-contiguous inputs are accepted and copied contiguous by the ops.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "naslid/lid_math.h"

namespace naslid {

// The estimator named `name` for an MLE op with k neighbours (k >= kMinLidK for both).
inline Estimator parse_estimator(const char* op, c10::string_view name, int64_t k) {
  TORCH_CHECK_VALUE(k >= kMinLidK, "naslid::", op, ": the MLE needs k >= ", kMinLidK,
                    " neighbours, got k=", k);
  if (name == "naslid") return Estimator::kNasLid;
  if (name == "levina") return Estimator::kLevina;
  TORCH_CHECK_VALUE(false, "naslid::", op, ": estimator must be 'naslid' or 'levina', got '",
                    std::string(name), "'");
  return Estimator::kNasLid;
}

inline void check_float(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "naslid::", op,
                   ": ", arg, " must be float32 or float64, got ", t.scalar_type());
}

// k nearest neighbours of x (B, N, D) among y (B, M, D); exclude_self drops reference i for query i.
inline void check_knn_args(const char* op, const at::Tensor& x, const at::Tensor& y, int64_t k,
                           bool exclude_self) {
  TORCH_CHECK_VALUE(x.dim() == 3, "naslid::", op, ": x must be (B, N, D), got sizes ", x.sizes());
  TORCH_CHECK_VALUE(y.dim() == 3, "naslid::", op, ": y must be (B, M, D), got sizes ", y.sizes());
  check_float(op, "x", x);
  check_float(op, "y", y);
  TORCH_CHECK_TYPE(x.scalar_type() == y.scalar_type(), "naslid::", op,
                   ": x and y must have the same dtype, got ", x.scalar_type(), " and ", y.scalar_type());
  TORCH_CHECK_VALUE(x.device() == y.device(), "naslid::", op, ": x and y must be on the same device, got ",
                    x.device(), " and ", y.device());
  TORCH_CHECK_VALUE(x.size(0) == y.size(0), "naslid::", op,
                    ": x and y must have the same batch size B, got x ", x.sizes(), " and y ", y.sizes());
  TORCH_CHECK_VALUE(x.size(2) == y.size(2), "naslid::", op, ": x and y must have the same D, got x ",
                    x.sizes(), " and y ", y.sizes());
  TORCH_CHECK_VALUE(x.size(2) >= 1, "naslid::", op, ": D must be >= 1, got x ", x.sizes());
  TORCH_CHECK_VALUE(x.size(1) >= 1, "naslid::", op, ": x needs N >= 1 queries, got x ", x.sizes());
  if (exclude_self)
    TORCH_CHECK_VALUE(x.size(1) == y.size(1), "naslid::", op,
                      ": exclude_self needs as many queries as references (N == M), got x ", x.sizes(),
                      " and y ", y.sizes());
  const int64_t cand = y.size(1) - (exclude_self ? 1 : 0);
  TORCH_CHECK_VALUE(k >= 1 && k < cand, "naslid::", op, ": k must be in [1, ", cand - 1,
                    "] (smaller than the ", cand, " candidates", exclude_self ? ", self excluded" : "",
                    "), got k=", k, " for y ", y.sizes());
  TORCH_CHECK_VALUE(y.size(1) < std::numeric_limits<int32_t>::max(), "naslid::", op, ": M = ", y.size(1),
                    " is too large (candidate indices are int32 in the CUDA kernels)");
}

// One layer of lid_profile: `arg` (N, D) (rank 2) or a batch (B, N, D) (rank 3) for self k-NN.
inline void check_self_set(const char* op, const char* arg, const at::Tensor& t, int64_t rank,
                           int64_t k) {
  TORCH_CHECK_VALUE(t.dim() == rank, "naslid::", op, ": ", arg, " must have ", rank,
                    " dims, got sizes ", t.sizes());
  const at::Tensor t3 = rank == 3 ? t : t.unsqueeze(0);
  check_knn_args(op, t3, t3, k, true);
}

// lid_mle: sorted squared distances (..., k) with k >= kMinLidK; returns the estimator.
inline Estimator check_lid_mle_args(c10::string_view estimator, const at::Tensor& sqdist) {
  TORCH_CHECK_VALUE(sqdist.dim() >= 1, "naslid::lid_mle: sqdist must be (..., k), got sizes ", sqdist.sizes());
  check_float("lid_mle", "sqdist", sqdist);
  return parse_estimator("lid_mle", estimator, sqdist.size(-1));
}

// lid_profile's layers: L >= 1 tensors (N, ...) of one dtype and device, flattened to contiguous
// (N, D_l) after the checks (every layer a self k-NN set with k neighbours).
inline std::vector<at::Tensor> profile_layers(const char* op, at::TensorList features, int64_t k) {
  TORCH_CHECK_VALUE(!features.empty(), "naslid::", op, ": features must hold at least one layer, got 0");
  const at::Tensor& f0 = features[0];
  std::vector<at::Tensor> flat;
  flat.reserve(features.size());
  for (size_t l = 0; l < features.size(); ++l) {
    const at::Tensor& f = features[l];
    const std::string name = "features[" + std::to_string(l) + "]";
    TORCH_CHECK_VALUE(f.dim() >= 1, "naslid::", op, ": ", name, " must be (N, ...), got sizes ", f.sizes());
    TORCH_CHECK_TYPE(f.scalar_type() == f0.scalar_type(), "naslid::", op, ": ", name, " has dtype ",
                     f.scalar_type(), " but features[0] has ", f0.scalar_type());
    TORCH_CHECK_VALUE(f.device() == f0.device(), "naslid::", op, ": ", name, " is on ", f.device(),
                      " but features[0] on ", f0.device());
    TORCH_CHECK_VALUE(f.size(0) == f0.size(0), "naslid::", op, ": ", name, " has N=", f.size(0),
                      " samples but features[0] has N=", f0.size(0));
    const at::Tensor x = f.reshape({f.size(0), -1}).contiguous();
    check_self_set(op, name.c_str(), x, 2, k);
    flat.push_back(x);
  }
  return flat;
}

}  // namespace naslid
