// CPU kernels of naslid::knn, naslid::knn_lid and naslid::lid_profile (schemas in csrc/ops.cpp).
// The engine (Gram tiles from the BLAS or, for float32 symmetric strips, the FMA micro-kernels of
// csrc/cpu/sym_gram.cpp; symmetric when y is x; running top-k; exact refinement of ill-conditioned
// pairs) is in csrc/include/naslid/cpu/gram_knn.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
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

template <typename T>
void write_lid(const char* op, const TopK<T>& tk, Estimator est, T* out) {
  using acc_t = T;  // float accumulates in float, double in double (lid_math.h convention)
  for (int64_t i = 0; i < tk.n; ++i) {
    const T* d = tk.dist.data() + i * tk.k;
    // finite input whose squared distances exceed the dtype's range (|x| ~ 1e19 in float32):
    // the ratios are lost. naslid_ext.lid / lid_profile rescale such input (LID is scale-invariant).
    TORCH_CHECK_VALUE(std::isfinite(d[tk.kout - 1]), "naslid::", op, ": squared distances of point ", i,
                      " overflow ", c10::CppTypeToScalarType<T>::value,
                      "; scale the input by a power of two (LID is scale-invariant), or call "
                      "naslid_ext.lid / naslid_ext.lid_profile, which do");
    out[i] = T(lid_from_sorted_sqdist<acc_t, T>(d, tk.kout, est));
  }
}

std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& x_in, const at::Tensor& y_in, int64_t k,
                                           bool exclude_self) {
  check_knn_args("knn", x_in, y_in, k, exclude_self);
  const bool y_is_x = x_in.is_same(y_in);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_is_x ? x : y_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1), M = y.size(1), D = x.size(2);
  at::Tensor dist = at::empty({B, N, k}, x.options());
  at::Tensor idx = at::empty({B, N, k}, x.options().dtype(at::kLong));
  // y is x (the same storage and layout): symmetric path
  const bool same = x.data_ptr() == y.data_ptr() && x.sizes() == y.sizes();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "naslid::knn", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    const T* yp = y.data_ptr<T>();
    T* dp = dist.data_ptr<T>();
    int64_t* ip = idx.data_ptr<int64_t>();
    std::vector<int64_t> order(B);
    std::iota(order.begin(), order.end(), int64_t(0));
    run_tasks(B, order, [&](int64_t b, bool par) {
      const T* xb = xp + b * N * D;
      const T* yb = yp + b * M * D;
      TopK<T> tk = same ? self_knn<T>(xb, N, D, k, exclude_self, par)
                        : cross_knn<T>(xb, N, yb, M, D, k, exclude_self, par);
      tk.write(dp + b * N * k, ip + b * N * k);
    });
  });
  return {dist, idx};
}

at::Tensor knn_lid_cpu(const at::Tensor& x_in, int64_t k, c10::string_view estimator) {
  const Estimator est = parse_estimator("knn_lid", estimator, k);
  check_self_set("knn_lid", "x", x_in, 3, k);
  const at::Tensor x = x_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  at::Tensor out = at::empty({B, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "naslid::knn_lid", [&] {
    using T = scalar_t;
    const T* xp = x.data_ptr<T>();
    T* op = out.data_ptr<T>();
    std::vector<int64_t> order(B);
    std::iota(order.begin(), order.end(), int64_t(0));
    run_tasks(B, order, [&](int64_t b, bool par) {
      TopK<T> tk = self_knn<T>(xp + b * N * D, N, D, k, true, par);
      write_lid<T>("knn_lid", tk, est, op + b * N);
    });
  });
  return out;
}

at::Tensor lid_profile_cpu(at::TensorList features, int64_t k, c10::string_view estimator) {
  const Estimator est = parse_estimator("lid_profile", estimator, k);
  const std::vector<at::Tensor> flat = profile_layers("lid_profile", features, k);
  const int64_t L = static_cast<int64_t>(flat.size());
  const int64_t N = flat[0].size(0);
  std::vector<double> cost(L);
  for (int64_t l = 0; l < L; ++l) cost[l] = double(N) * double(N) * double(flat[l].size(1));
  at::Tensor out = at::empty({L, N}, flat[0].options());
  AT_DISPATCH_FLOATING_TYPES(flat[0].scalar_type(), "naslid::lid_profile", [&] {
    using T = scalar_t;
    T* op = out.data_ptr<T>();
    run_tasks(L, by_cost(cost), [&](int64_t l, bool par) {
      const at::Tensor& f = flat[l];
      TopK<T> tk = self_knn<T>(f.data_ptr<T>(), N, f.size(1), k, true, par);
      write_lid<T>("lid_profile", tk, est, op + l * N);
    });
  });
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace naslid

TORCH_LIBRARY_IMPL(naslid, CPU, m) {
  m.impl("knn", &naslid::cpu::knn_cpu);
  m.impl("knn_lid", &naslid::cpu::knn_lid_cpu);
  m.impl("lid_profile", &naslid::cpu::lid_profile_cpu);
}
