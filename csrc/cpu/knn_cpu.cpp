// CPU kernels of naslid::knn, naslid::knn_lid and naslid::lid_profile (schemas in csrc/ops.cpp).
// The engine (Gram tiles from the BLAS or, for float32 symmetric strips, the FMA micro-kernels of
// csrc/cpu/sym_gram.cpp; symmetric when y is x; running top-k; exact refinement of ill-conditioned
// pairs) is in csrc/include/naslid/cpu/gram_knn.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "naslid/cpu/gram_knn.h"
#include "naslid/op_checks.h"
#include "naslid/lid_math.h"

namespace naslid {
namespace cpu {
namespace {

// Order of tasks by decreasing cost (longest first: balances the dynamic schedule).
std::vector<int64_t> by_cost(const std::vector<double>& cost) {
  std::vector<int64_t> order(cost.size());
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  return order;
}

// strict = false (the *_norms ops): a non-finite k-th distance gives NaN instead of the error; the
// caller judges the input from the row norms and recomputes (naslid_ext._validate.norms_verdict).
template <typename T>
void write_lid(const char* op, const TopK<T>& tk, Estimator est, T* out, bool strict = true) {
  using acc_t = T;  // float accumulates in float, double in double (lid_math.h convention)
  for (int64_t i = 0; i < tk.n; ++i) {
    const T* d = tk.dist.data() + i * tk.k;
    if (!strict && !std::isfinite(d[tk.kout - 1])) {
      out[i] = std::numeric_limits<T>::quiet_NaN();
      continue;
    }
    // finite input whose squared distances exceed the dtype's range (|x| ~ 1e19 in float32):
    // the ratios are lost. naslid_ext.lid / lid_profile rescale such input (LID is scale-invariant).
    TORCH_CHECK_VALUE(std::isfinite(d[tk.kout - 1]), "naslid::", op, ": squared distances of point ", i,
                      " overflow ", c10::CppTypeToScalarType<T>::value,
                      "; scale the input by a power of two (LID is scale-invariant), or call "
                      "naslid_ext.lid / naslid_ext.lid_profile, which do");
    out[i] = T(lid_from_sorted_sqdist<acc_t, T>(d, tk.kout, est));
  }
}

// knn, and with_norms: also the squared row norms of x (B, N) and y (B, M) (undefined tensors
// otherwise) that the engine computes anyway (see self_knn's raw_nrm).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> knn_impl(
    const char* op, const at::Tensor& x_in, const at::Tensor& y_in, int64_t k, bool exclude_self,
    bool with_norms) {
  check_knn_args(op, x_in, y_in, k, exclude_self);
  const bool y_is_x = x_in.is_same(y_in);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_is_x ? x : y_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1), M = y.size(1), D = x.size(2);
  at::Tensor dist = at::empty({B, N, k}, x.options());
  at::Tensor idx = at::empty({B, N, k}, x.options().dtype(at::kLong));
  // y is x (the same storage and layout): symmetric path
  const bool same = x.data_ptr() == y.data_ptr() && x.sizes() == y.sizes();
  at::Tensor xn, yn;
  if (with_norms) {
    xn = at::empty({B, N}, x.options());
    if (!same) yn = at::empty({B, M}, x.options());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "naslid::knn", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* yp = y.data_ptr<T>();
    T* dp = dist.data_ptr<T>();
    int64_t* ip = idx.data_ptr<int64_t>();
    T* xnp = with_norms ? xn.data_ptr<T>() : nullptr;
    T* ynp = with_norms && !same ? yn.data_ptr<T>() : nullptr;
    std::vector<int64_t> order(B);
    std::iota(order.begin(), order.end(), int64_t(0));
    run_tasks(B, order, [&](int64_t b, bool par) {
      const T* xb = xp + b * N * D;
      const T* yb = yp + b * M * D;
      T* nxb = xnp ? xnp + b * N : nullptr;
      T* nyb = ynp ? ynp + b * M : nullptr;
      TopK<T> tk = same ? self_knn<T>(xb, N, D, k, exclude_self, par, nxb)
                        : cross_knn<T>(xb, N, yb, M, D, k, exclude_self, par, nxb, nyb);
      tk.write(dp + b * N * k, ip + b * N * k);
    });
  });
  if (with_norms && same) yn = xn.clone();
  return {dist, idx, xn, yn};
}

std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& x, const at::Tensor& y, int64_t k,
                                           bool exclude_self) {
  auto r = knn_impl("knn", x, y, k, exclude_self, false);
  return {std::get<0>(r), std::get<1>(r)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> knn_norms_cpu(
    const at::Tensor& x, const at::Tensor& y, int64_t k, bool exclude_self) {
  return knn_impl("_knn_norms", x, y, k, exclude_self, true);
}

// knn_lid, and with_norms: also the squared row norms (B, N), with NaN LID where the k-th squared
// distance is not finite (instead of the overflow error).
std::tuple<at::Tensor, at::Tensor> knn_lid_impl(const char* op, const at::Tensor& x_in, int64_t k,
                                                c10::string_view estimator, bool with_norms) {
  const Estimator est = parse_estimator(op, estimator, k);
  check_self_set(op, "x", x_in, 3, k);
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  at::Tensor out = at::empty({B, N}, x.options());
  at::Tensor nrm = with_norms ? at::empty({B, N}, x.options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "naslid::knn_lid", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    T* o = out.data_ptr<T>();
    T* np = with_norms ? nrm.data_ptr<T>() : nullptr;
    std::vector<int64_t> order(B);
    std::iota(order.begin(), order.end(), int64_t(0));
    run_tasks(B, order, [&](int64_t b, bool par) {
      TopK<T> tk = self_knn<T>(xp + b * N * D, N, D, k, true, par, np ? np + b * N : nullptr);
      write_lid<T>(op, tk, est, o + b * N, !with_norms);
    });
  });
  return {out, nrm};
}

at::Tensor knn_lid_cpu(const at::Tensor& x, int64_t k, c10::string_view estimator) {
  return std::get<0>(knn_lid_impl("knn_lid", x, k, estimator, false));
}

std::tuple<at::Tensor, at::Tensor> knn_lid_norms_cpu(const at::Tensor& x, int64_t k,
                                                     c10::string_view estimator) {
  return knn_lid_impl("_knn_lid_norms", x, k, estimator, true);
}

// lid_profile, and with_norms: also the squared row norms (L, N) (as knn_lid_impl).
std::tuple<at::Tensor, at::Tensor> lid_profile_impl(const char* op, at::TensorList features, int64_t k,
                                                    c10::string_view estimator, bool with_norms) {
  const Estimator est = parse_estimator(op, estimator, k);
  const std::vector<at::Tensor> flat = profile_layers(op, features, k);
  const int64_t L = static_cast<int64_t>(flat.size());
  const int64_t N = flat[0].size(0);
  std::vector<double> cost(L);
  for (int64_t l = 0; l < L; ++l) cost[l] = double(N) * double(N) * double(flat[l].size(1));
  at::Tensor out = at::empty({L, N}, flat[0].options());
  at::Tensor nrm = with_norms ? at::empty({L, N}, flat[0].options()) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(flat[0].scalar_type(), "naslid::lid_profile", [&] {
    using T = scalar_t;
    T* o = out.data_ptr<T>();
    T* np = with_norms ? nrm.data_ptr<T>() : nullptr;
    run_tasks(L, by_cost(cost), [&](int64_t l, bool par) {
      const at::Tensor& f = flat[l];
      TopK<T> tk = self_knn<T>(f.data_ptr<T>(), N, f.size(1), k, true, par,
                               np ? np + l * N : nullptr);
      write_lid<T>(op, tk, est, o + l * N, !with_norms);
    });
  });
  return {out, nrm};
}

at::Tensor lid_profile_cpu(at::TensorList features, int64_t k, c10::string_view estimator) {
  return std::get<0>(lid_profile_impl("lid_profile", features, k, estimator, false));
}

std::tuple<at::Tensor, at::Tensor> lid_profile_norms_cpu(at::TensorList features, int64_t k,
                                                         c10::string_view estimator) {
  return lid_profile_impl("_lid_profile_norms", features, k, estimator, true);
}

}  // namespace
}  // namespace cpu
}  // namespace naslid

TORCH_LIBRARY_IMPL(naslid, CPU, m) {
  m.impl("knn", &naslid::cpu::knn_cpu);
  m.impl("knn_lid", &naslid::cpu::knn_lid_cpu);
  m.impl("lid_profile", &naslid::cpu::lid_profile_cpu);
  m.impl("_knn_norms", &naslid::cpu::knn_norms_cpu);
  m.impl("_knn_lid_norms", &naslid::cpu::knn_lid_norms_cpu);
  m.impl("_lid_profile_norms", &naslid::cpu::lid_profile_norms_cpu);
}
