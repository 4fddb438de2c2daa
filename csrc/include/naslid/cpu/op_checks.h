// Argument checks shared by the CPU ops: cheap TORCH_CHECKs whose messages name the op, the
// argument and the sizes (the ops are public through torch.ops.naslid; naslid_ext validates first).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "naslid/lid_math.h"

namespace naslid {
namespace cpu {

inline Estimator parse_estimator(const char* op, c10::string_view name, int64_t k) {
  TORCH_CHECK_VALUE(k >= kMinLidK, "naslid::", op, ": the MLE needs k >= ", kMinLidK,
                    " neighbours, got k=", k);
  if (name == "naslid") return Estimator::kNasLid;
  if (name == "levina") return Estimator::kLevina;
  TORCH_CHECK_VALUE(false, "naslid::", op, ": estimator must be 'naslid' or 'levina', got '",
              std::string(name), "'");
  return Estimator::kNasLid;
}

inline void check_float_cpu_contig(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), "naslid::", op, ": ", arg, " must be a CPU tensor here, got ",
              t.device());
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "naslid::", op,
              ": ", arg, " must be float32 or float64, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.is_contiguous(), "naslid::", op, ": ", arg, " must be contiguous, got sizes ",
              t.sizes(), " strides ", t.strides());
}

// A set of N points (rank 2: (N, D); rank 3: (B, N, D)) for self k-NN with k neighbours.
inline void check_self_set(const char* op, const char* arg, const at::Tensor& t, int64_t rank,
                           int64_t k) {
  TORCH_CHECK_VALUE(t.dim() == rank, "naslid::", op, ": ", arg, " must have ", rank,
              " dims, got sizes ", t.sizes());
  check_float_cpu_contig(op, arg, t);
  const int64_t N = t.size(rank - 2), D = t.size(rank - 1);
  TORCH_CHECK_VALUE(D >= 1, "naslid::", op, ": ", arg, " needs D >= 1 features, got sizes ", t.sizes());
  TORCH_CHECK_VALUE(k >= 1 && k < N - 1, "naslid::", op,
              ": k must be in [1, N-2] (smaller than the N-1 candidates, self excluded), got k=", k,
              " for ", arg, " of sizes ", t.sizes());
}

inline void check_knn_args(const char* op, const at::Tensor& x, const at::Tensor& y, int64_t k,
                           bool exclude_self) {
  TORCH_CHECK_VALUE(x.dim() == 3, "naslid::", op, ": x must be (B, N, D), got sizes ", x.sizes());
  TORCH_CHECK_VALUE(y.dim() == 3, "naslid::", op, ": y must be (B, M, D), got sizes ", y.sizes());
  check_float_cpu_contig(op, "x", x);
  check_float_cpu_contig(op, "y", y);
  TORCH_CHECK_TYPE(x.scalar_type() == y.scalar_type(), "naslid::", op, ": x and y must have the same dtype, got ",
              x.scalar_type(), " and ", y.scalar_type());
  TORCH_CHECK_VALUE(x.size(0) == y.size(0), "naslid::", op, ": x and y must have the same batch size B, got x ",
              x.sizes(), " and y ", y.sizes());
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
              "] (smaller than the ", cand, " candidates", exclude_self ? ", self excluded" : "", "), got k=", k,
              " for y ", y.sizes());
}

}  // namespace cpu
}  // namespace naslid
