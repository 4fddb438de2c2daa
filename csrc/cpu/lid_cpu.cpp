// CPU kernel of naslid::lid_mle (schema in csrc/ops.cpp): per-point LID from sorted k-NN squared
// distances (..., k) -> (...), through lid_from_sorted_sqdist (csrc/include/naslid/lid_math.h).
#include <ATen/ATen.h>
#include <atomic>
#include <cmath>
#include <tuple>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "naslid/op_checks.h"
#include "naslid/lid_math.h"

namespace naslid {
namespace cpu {
namespace {

// Per-point LID of sorted squared distances (..., k) -> (...); with `check`, also, in the same pass
// over each row, its input contract: counts of rows with a NaN/Inf entry, with a negative first
// entry, and not sorted ascending (a NaN breaks the order too), as a (3,) int64 tensor (undefined
// without `check`). naslid_ext.lid_mle's default check reads the counts instead of making three
// passes of its own, and re-checks in Python (for the message) only when one is non-zero.
std::tuple<at::Tensor, at::Tensor> lid_mle_rows(const at::Tensor& sqdist_in, c10::string_view estimator,
                                                bool check) {
  const Estimator est = check_lid_mle_args(estimator, sqdist_in);
  const at::Tensor sqdist = sqdist_in.contiguous();
  const int64_t k = sqdist.size(-1);
  const auto out_sizes = sqdist.sizes().slice(0, sqdist.dim() - 1);
  at::Tensor out = at::empty(out_sizes, sqdist.options());
  const int64_t rows = out.numel();
  std::atomic<int64_t> nonfinite{0}, negative{0}, unsorted{0};
  AT_DISPATCH_FLOATING_TYPES(sqdist.scalar_type(), "naslid::lid_mle", [&] {
    using T = scalar_t;
    const T* s = sqdist.data_ptr<T>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, rows, 4096, [&](int64_t b, int64_t e) {
      int64_t nf = 0, neg = 0, uns = 0;
      for (int64_t i = b; i < e; ++i) {
        const T* r = s + i * k;
        if (check) {
          bool finite = true, sorted = true;
          for (int64_t j = 0; j < k; ++j) {
            finite = finite && std::isfinite(r[j]);
            if (j > 0) sorted = sorted && (r[j] >= r[j - 1]);
          }
          nf += !finite;
          neg += r[0] < T(0);
          uns += !sorted;
        }
        o[i] = lid_from_sorted_sqdist<T, T>(r, k, est);
      }
      if (check) {
        nonfinite += nf;
        negative += neg;
        unsorted += uns;
      }
    });
  });
  if (!check) return {out, at::Tensor()};
  at::Tensor counts = at::empty({3}, sqdist.options().dtype(at::kLong));
  auto* c = counts.data_ptr<int64_t>();
  c[0] = nonfinite.load();
  c[1] = negative.load();
  c[2] = unsorted.load();
  return {out, counts};
}

at::Tensor lid_mle_cpu(const at::Tensor& sqdist, c10::string_view estimator) {
  return std::get<0>(lid_mle_rows(sqdist, estimator, false));
}

std::tuple<at::Tensor, at::Tensor> lid_mle_checked_cpu(const at::Tensor& sqdist, c10::string_view estimator) {
  return lid_mle_rows(sqdist, estimator, true);
}

}  // namespace
}  // namespace cpu
}  // namespace naslid

TORCH_LIBRARY_IMPL(naslid, CPU, m) {
  m.impl("lid_mle", &naslid::cpu::lid_mle_cpu);
  m.impl("_lid_mle_checked", &naslid::cpu::lid_mle_checked_cpu);
}
