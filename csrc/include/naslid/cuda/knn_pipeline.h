// Host side of the CUDA ops, shared verbatim by the real CUDA op (csrc/cuda/knn_cuda.cu, with a
// launcher that starts kernels on the current stream) and the grid emulator (csrc/emu/, with a
// launcher that runs the same block drivers on the CPU). Only ATen calls (at::bmm = cuBLAS on CUDA)
// and the kernel launches happen here; all per-element work is in knn_select.h.
//
// A launcher provides:
//   template <class S> void knn(const KnnPlan&, int64_t grid_x, int64_t grid_y,
//                               const KnnParams<S>&, unsigned char* global_scratch);
//   template <class S> void lid_mle(int64_t blocks, int threads, const LidMleParams<S>&);
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "naslid/exact_gemm.h"
#include "naslid/op_checks.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "naslid/cuda/knn_select.h"

namespace naslid {
namespace cuda {

// Tunables of one call. The defaults are what the CUDA op uses; the emulator may shrink them to
// exercise several blocks per row chunk, several chunks and small thread counts.
struct PipelineOptions {
  int threads = 0;                              // threads per knn block; 0: choose (plan_knn)
  int64_t gram_budget_elems = int64_t(1) << 24;  // Gram chunk (B', R', M) at most this many elements
  int64_t scratch_budget_bytes = int64_t(64) << 20;  // global scratch when shared memory is too small
  std::size_t smem_limit = 48 * 1024;           // dynamic shared memory per block (no opt-in)
  bool tf32_round_gram_inputs = false;          // emulator only: round GEMM inputs to TF32 (10-bit)
};

struct KnnPlan {
  int threads;
  int64_t K;  // candidates per row
  KnnLayout lay;
  bool global_scratch;  // the per-block scratch lives in global memory (too big for shared)
  int64_t rows_per_chunk, batches_per_chunk;
};

inline int64_t next_pow2(int64_t v) {
  int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Launch plan of one knn / knn_lid call (pure function of the sizes: the emulator reuses it).
// Threads per block: ~8 Gram columns per thread for the scan, but 128 when D >= 512 (then the exact
// re-computation, K * D per row, dominates and wants more lanes); 32..128, halved while the
// scratch does not fit in shared memory.
inline KnnPlan plan_knn(int64_t B, int64_t N, int64_t M, int64_t D, int64_t k, bool exclude_self,
                        std::size_t acc_size, bool want_lid, const PipelineOptions& opt) {
  KnnPlan pl;
  pl.K = knn_candidates(k, M - (exclude_self ? 1 : 0));
  int T;
  if (opt.threads > 0) {
    T = opt.threads;
  } else {
    const int64_t by_cols = next_pow2((M + 7) / 8), by_feats = D >= 512 ? 128 : 32;
    T = static_cast<int>(std::min<int64_t>(128, std::max<int64_t>({32, by_cols, by_feats})));
    while (T > 32 && knn_layout(T, pl.K, k, acc_size, want_lid).bytes > opt.smem_limit) T /= 2;
  }
  pl.threads = T;
  pl.lay = knn_layout(T, pl.K, k, acc_size, want_lid);
  pl.global_scratch = pl.lay.bytes > opt.smem_limit;
  int64_t rows = std::max<int64_t>(1, opt.gram_budget_elems / std::max<int64_t>(M, 1));
  if (pl.global_scratch) {
    rows = std::min<int64_t>(rows, std::max<int64_t>(1, opt.scratch_budget_bytes /
                                                            static_cast<int64_t>(pl.lay.bytes)));
  }
  if (N <= rows) {
    pl.rows_per_chunk = N;
    pl.batches_per_chunk = std::min<int64_t>({B, std::max<int64_t>(1, rows / std::max<int64_t>(N, 1)),
                                              int64_t(65535)});
  } else {
    pl.rows_per_chunk = rows;
    pl.batches_per_chunk = 1;
  }
  return pl;
}

// Round float32 values to TF32 (10 explicit mantissa bits, round half away from zero), the
// precision of the GEMM inputs when torch.backends.cuda.matmul.allow_tf32 is on.
inline at::Tensor round_to_tf32(const at::Tensor& t) {
  if (t.scalar_type() != at::kFloat) return t;
  at::Tensor bits = t.contiguous().view(at::kInt);
  at::Tensor r = at::bitwise_and(bits.add(0x1000), static_cast<int64_t>(~0x1FFF));
  return r.view(at::kFloat);
}

// The k-NN pipeline: centring, Gram chunks (at::bmm), one knn_block per query row.
// x (B, N, D), y (B, M, D) contiguous, same dtype/device. Writes out_d/out_i (B, N, k) in knn
// mode, out_lid (B, N) in LID mode (want_lid).
template <class Launcher>
void knn_forward(const at::Tensor& x, const at::Tensor& y, bool y_is_x, int64_t k,
                 bool exclude_self, bool want_lid, Estimator est, at::Tensor* out_d,
                 at::Tensor* out_i, at::Tensor* out_lid, const PipelineOptions& opt,
                 Launcher& launch) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), M = y.size(1);
  if (B == 0 || N == 0) return;
  // Centre on the references' mean: distances are unchanged, the Gram form loses far less to
  // cancellation (BN+ReLU features have a large common mean).
  const at::Tensor mean = y.mean({1}, /*keepdim=*/true);
  const at::Tensor xc = (x - mean).contiguous();
  const at::Tensor yc = y_is_x ? xc : (y - mean).contiguous();
  const at::Tensor xx = xc.square().sum({2}).contiguous();
  const at::Tensor yy = y_is_x ? xx : yc.square().sum({2}).contiguous();
  at::Tensor xg = xc, ygt;
  if (opt.tf32_round_gram_inputs) {
    xg = round_to_tf32(xc);
    ygt = (y_is_x ? xg : round_to_tf32(yc)).transpose(1, 2);
  } else {
    ygt = yc.transpose(1, 2);
  }
  const std::size_t acc_size = x.scalar_type() == at::kDouble ? sizeof(double) : sizeof(float);
  const KnnPlan pl = plan_knn(B, N, M, D, k, exclude_self, acc_size, want_lid, opt);
  at::Tensor scratch;
  if (pl.global_scratch) {
    scratch = at::empty({pl.batches_per_chunk * pl.rows_per_chunk * static_cast<int64_t>(pl.lay.bytes)},
                        x.options().dtype(at::kByte));
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "naslid_knn_forward", [&] {
    for (int64_t b0 = 0; b0 < B; b0 += pl.batches_per_chunk) {
      const int64_t b1 = std::min(B, b0 + pl.batches_per_chunk);
      for (int64_t r0 = 0; r0 < N; r0 += pl.rows_per_chunk) {
        const int64_t r1 = std::min(N, r0 + pl.rows_per_chunk);
        const at::Tensor gram =
            gram_bmm(xg.slice(0, b0, b1).slice(1, r0, r1), ygt.slice(0, b0, b1));
        KnnParams<scalar_t> p;
        p.x = x.data_ptr<scalar_t>();
        p.y = y.data_ptr<scalar_t>();
        p.gram = gram.data_ptr<scalar_t>();
        p.xx = xx.data_ptr<scalar_t>();
        p.yy = yy.data_ptr<scalar_t>();
        p.out_d = want_lid ? nullptr : out_d->data_ptr<scalar_t>();
        p.out_i = want_lid ? nullptr : out_i->data_ptr<int64_t>();
        p.out_lid = want_lid ? out_lid->data_ptr<scalar_t>() : nullptr;
        p.N = N; p.M = M; p.D = D; p.k = k; p.K = pl.K;
        p.b0 = b0; p.r0 = r0; p.rows = r1 - r0;
        p.threads = pl.threads;
        p.exclude_self = exclude_self;
        p.want_lid = want_lid;
        p.est = est;
        p.lay = pl.lay;
        launch.knn(pl, r1 - r0, b1 - b0, p,
                   pl.global_scratch ? scratch.data_ptr<uint8_t>() : nullptr);
      }
    }
  });
}

// knn op body: x (B, N, D), y (B, M, D) -> (sqdist (B, N, k), idx (B, N, k) int64).
template <class Launcher>
std::tuple<at::Tensor, at::Tensor> knn_op(const at::Tensor& x_in, const at::Tensor& y_in, int64_t k,
                                          bool exclude_self, const PipelineOptions& opt,
                                          Launcher& launch) {
  check_knn_args("knn", x_in, y_in, k, exclude_self);
  const bool y_is_x = x_in.is_same(y_in);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor y = y_is_x ? x : y_in.contiguous();
  at::Tensor d = at::empty({x.size(0), x.size(1), k}, x.options());
  at::Tensor i = at::empty({x.size(0), x.size(1), k}, x.options().dtype(at::kLong));
  knn_forward(x, y, y_is_x, k, exclude_self, false, Estimator::kNasLid, &d, &i, nullptr, opt, launch);
  return {d, i};
}

// knn_lid op body: x (B, N, D) -> LID (B, N) from the k nearest other points.
template <class Launcher>
at::Tensor knn_lid_op(const at::Tensor& x_in, int64_t k, const std::string& estimator,
                      const PipelineOptions& opt, Launcher& launch) {
  const Estimator est = parse_estimator("knn_lid", estimator, k);
  check_self_set("knn_lid", "x", x_in, 3, k);
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty({x.size(0), x.size(1)}, x.options());
  knn_forward(x, x, true, k, true, true, est, nullptr, nullptr, &out, opt, launch);
  return out;
}

// lid_profile op body: L tensors (N, ...) -> LID (L, N). Each layer is flattened to (N, D_l); layers
// of equal D_l are stacked into one batch (B = number of such layers), so that one Gram bmm and one
// kernel launch serve them all (NB201: 3 groups for 17 layers) and the grid has B*N blocks.
template <class Launcher>
at::Tensor lid_profile_op(at::TensorList features, int64_t k, const std::string& estimator,
                          const PipelineOptions& opt, Launcher& launch) {
  const Estimator est = parse_estimator("lid_profile", estimator, k);
  const std::vector<at::Tensor> flat = profile_layers("lid_profile", features, k);
  const int64_t N = flat[0].size(0);
  const int64_t L = static_cast<int64_t>(flat.size());
  std::vector<std::vector<int64_t>> groups;  // layer indices of equal D, in order of appearance
  for (int64_t l = 0; l < L; ++l) {
    bool placed = false;
    for (auto& g : groups) {
      if (flat[g[0]].size(1) == flat[l].size(1)) {
        g.push_back(l);
        placed = true;
        break;
      }
    }
    if (!placed) groups.push_back({l});
  }
  at::Tensor out = at::empty({L, N}, flat[0].options());
  for (const auto& g : groups) {
    if (g.size() == 1) {
      const at::Tensor x = flat[g[0]].unsqueeze(0).contiguous();
      at::Tensor row = out.select(0, g[0]).view({1, N});
      knn_forward(x, x, true, k, true, true, est, nullptr, nullptr, &row, opt, launch);
      continue;
    }
    std::vector<at::Tensor> members;
    for (int64_t l : g) members.push_back(flat[l]);
    const at::Tensor x = at::stack(members, 0);  // (G, N, D), contiguous
    at::Tensor lid = at::empty({x.size(0), N}, x.options());
    knn_forward(x, x, true, k, true, true, est, nullptr, nullptr, &lid, opt, launch);
    for (std::size_t q = 0; q < g.size(); ++q) out.select(0, g[q]).copy_(lid.select(0, static_cast<int64_t>(q)));
  }
  return out;
}

// lid_mle op body: sqdist (..., k) sorted ascending -> LID (...).
template <class Launcher>
at::Tensor lid_mle_op(const at::Tensor& sqdist, const std::string& estimator, int threads,
                      Launcher& launch) {
  const Estimator est = check_lid_mle_args(estimator, sqdist);
  const int64_t k = sqdist.size(-1);
  const at::Tensor s = sqdist.contiguous();
  std::vector<int64_t> shape(s.sizes().begin(), s.sizes().end() - 1);
  at::Tensor out = at::empty(shape, s.options());
  if (out.numel() == 0) return out;
  const int T = threads > 0 ? threads : 256;
  const int64_t rows = out.numel();
  const int64_t blocks = std::min<int64_t>((rows + T - 1) / T, 4096);
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "naslid_lid_mle", [&] {
    LidMleParams<scalar_t> p;
    p.s = s.data_ptr<scalar_t>();
    p.out = out.data_ptr<scalar_t>();
    p.rows = rows;
    p.k = k;
    p.blocks = blocks;
    p.threads = T;
    p.est = est;
    launch.lid_mle(blocks, T, p);
  });
  return out;
}

}  // namespace cuda
}  // namespace naslid
