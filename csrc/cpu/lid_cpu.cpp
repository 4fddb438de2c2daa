// CPU kernel of naslid::lid_mle (schema in csrc/ops.cpp): per-point LID from sorted k-NN squared
// distances (..., k) -> (...), through lid_from_sorted_sqdist (csrc/include/naslid/lid_math.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "naslid/op_checks.h"
#include "naslid/lid_math.h"

namespace naslid {
namespace cpu {
namespace {

at::Tensor lid_mle_cpu(const at::Tensor& sqdist_in, c10::string_view estimator) {
  const Estimator est = check_lid_mle_args(estimator, sqdist_in);
  const at::Tensor sqdist = sqdist_in.contiguous();
  const int64_t k = sqdist.size(-1);
  const auto out_sizes = sqdist.sizes().slice(0, sqdist.dim() - 1);
  at::Tensor out = at::empty(out_sizes, sqdist.options());
  const int64_t rows = out.numel();
  AT_DISPATCH_FLOATING_TYPES(sqdist.scalar_type(), "naslid::lid_mle", [&] {
    using T = scalar_t;
    const T* s = sqdist.data_ptr<T>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, rows, 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) o[i] = lid_from_sorted_sqdist<T, T>(s + i * k, k, est);
    });
  });
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace naslid

TORCH_LIBRARY_IMPL(naslid, CPU, m) { m.impl("lid_mle", &naslid::cpu::lid_mle_cpu); }
