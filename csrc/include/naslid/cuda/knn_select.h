// The CUDA kernels of naslid, written once as host+device phase functions (see block_exec.h):
//
//   knn_block   one block per query row i (of batch b): exact k-NN of x_i among the rows of y, and
//               optionally the LID of x_i from those k distances. Input: one row of the Gram matrix
//               G = xc yc^T of *centred* data (computed by cuBLAS / at::bmm on the host side) and the
//               centred squared norms. Phases:
//                 1. scan    each thread keeps a sorted top-K list (K = k + margin candidates) of the
//                            approximate distances |xc_i|^2 + |yc_j|^2 - 2 G_ij over columns
//                            j = tid, tid + T, ... (own index skipped when exclude_self);
//                 2. merge   log2(T) rounds of a pairwise merge tree (ping-pong buffers A -> B -> A);
//                            the block's K best candidates end in list 0;
//                 3. exact   the K candidates' distances recomputed exactly from the ORIGINAL
//                            features, sum_d (x_id - y_jd)^2 accumulated in double, groups of
//                            G = min(32, T) threads per candidate, partial sums through the view;
//                 4. rank    each candidate's rank under (distance, index) order (ties -> lower
//                            index); ranks < k are written out (knn) or kept sorted for LID;
//                 5. lid     thread 0 applies lid_from_sorted_sqdist (knn_lid / lid_profile).
//               The approximate Gram distances only choose candidates; every returned distance is
//               recomputed exactly, so cancellation in |x|^2 + |y|^2 - 2x.y and TF32 GEMMs only
//               matter if a true neighbour ranks below K by the approximate distance (margin).
//   lid_mle     elementwise: one thread per row of sorted squared distances.
//
// All threads of a block run every phase; per-thread state crossing a barrier lives in the view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include "naslid/cuda/block_exec.h"
#include "naslid/lid_math.h"

#if defined(__CUDACC__)
#define NASLID_EXEC_CHECK_DISABLE _Pragma("nv_exec_check_disable")
#else
#define NASLID_EXEC_CHECK_DISABLE
#endif

namespace naslid {
namespace cuda {

// Byte offsets of the arrays of one knn block's scratch (all 16-byte aligned).
struct KnnLayout {
  std::size_t a_d, a_i;  // T lists of K (distance, index), interleaved: entry j of list t at j*T+t
  std::size_t b_d, b_i;  // max(T/2,1) lists of K, interleaved with stride max(T/2,1)
  std::size_t ex_d;      // K exact distances (double)
  std::size_t red;       // T partial sums (double)
  std::size_t srt;       // k sorted exact distances (double), LID mode only
  std::size_t bytes;     // total
};

NASLID_HD KnnLayout knn_layout(int threads, int64_t K, int64_t k, std::size_t acc_size,
                               bool want_lid) {
  const std::size_t T = static_cast<std::size_t>(threads);
  const std::size_t nb = T > 1 ? T / 2 : 1;
  const std::size_t KK = static_cast<std::size_t>(K);
  KnnLayout l;
  std::size_t o = 0;
  l.a_d = o; o += align16(T * KK * acc_size);
  l.a_i = o; o += align16(T * KK * sizeof(int32_t));
  l.b_d = o; o += align16(nb * KK * acc_size);
  l.b_i = o; o += align16(nb * KK * sizeof(int32_t));
  l.ex_d = o; o += align16(KK * sizeof(double));
  l.red = o; o += align16(T * sizeof(double));
  l.srt = o; o += align16(want_lid ? static_cast<std::size_t>(k) * sizeof(double) : 0);
  l.bytes = o;
  return l;
}

// Everything one knn launch needs (passed by value to the kernel). Shapes:
//   x (B, N, D), y (B, M, D) original features, contiguous;
//   gram (gridDim.y, rows, M): G[b0 + by][r0 + bx][j] = xc_{r0+bx} . yc_j of batch b0 + by;
//   xx (B, N), yy (B, M): squared norms of the centred rows;
//   out_d (B, N, k) sqdist, out_i (B, N, k) int64 (knn mode) or out_lid (B, N) (LID mode).
template <typename scalar_t>
struct KnnParams {
  const scalar_t* x;
  const scalar_t* y;
  const scalar_t* gram;
  const scalar_t* xx;
  const scalar_t* yy;
  scalar_t* out_d;
  int64_t* out_i;
  scalar_t* out_lid;
  int64_t N, M, D, k, K;
  int64_t b0, r0, rows;
  int32_t threads;
  bool exclude_self;
  bool want_lid;
  Estimator est;
  KnnLayout lay;
};

// Number of candidates kept from the approximate (Gram) distances: k plus a margin against
// rounding in the Gram matrix (TF32 included), never more than the valid references.
NASLID_HD int64_t knn_candidates(int64_t k, int64_t valid_refs) {
  const int64_t margin = k > 16 ? k : 16;
  const int64_t K = k + margin;
  return K < valid_refs ? K : valid_refs;
}

// Insert (d, j) into a full, sentinel-padded list of K entries sorted by (distance, index),
// stored with stride `s`. Ties go to the lower index.
template <typename acc_t>
NASLID_HD void list_insert(acc_t* ld, int32_t* li, int64_t s, int64_t K, acc_t d, int32_t j) {
  const acc_t wd = ld[(K - 1) * s];
  if (d > wd || (d == wd && j > li[(K - 1) * s])) return;
  int64_t p = K - 1;
  while (p > 0) {
    const acc_t pd = ld[(p - 1) * s];
    if (!(pd > d || (pd == d && li[(p - 1) * s] > j))) break;
    ld[p * s] = pd;
    li[p * s] = li[(p - 1) * s];
    --p;
  }
  ld[p * s] = d;
  li[p * s] = j;
}

// ---- knn phases ------------------------------------------------------------------------------

// Phase 1: thread `tid` scans columns tid, tid+T, ... of its block's Gram row.
template <typename scalar_t>
NASLID_HD void knn_phase_scan(const KnnParams<scalar_t>& p, int64_t bx, int64_t by, int tid,
                              const SmemView& sm) {
  using acc_t = scalar_t;
  const int64_t T = p.threads, K = p.K;
  acc_t* ld = sm.at<acc_t>(p.lay.a_d) + tid;
  int32_t* li = sm.at<int32_t>(p.lay.a_i) + tid;
  for (int64_t j = 0; j < K; ++j) {
    ld[j * T] = std::numeric_limits<acc_t>::infinity();
    li[j * T] = std::numeric_limits<int32_t>::max();
  }
  const int64_t b = p.b0 + by, i = p.r0 + bx;
  const scalar_t* g = p.gram + (by * p.rows + bx) * p.M;
  const acc_t xi = static_cast<acc_t>(p.xx[b * p.N + i]);
  const scalar_t* yy = p.yy + b * p.M;
  for (int64_t j = tid; j < p.M; j += T) {
    if (p.exclude_self && j == i) continue;
    const acc_t d = sqdist_from_gram<acc_t>(xi, static_cast<acc_t>(yy[j]), static_cast<acc_t>(g[j]));
    list_insert<acc_t>(ld, li, T, K, d, static_cast<int32_t>(j));
  }
}

// Phase 2 (round r = 0, 1, ...): thread p < n/2 merges lists 2p and 2p+1 of the source buffer
// (A for even rounds, B for odd) into list p of the other buffer. n = T >> r lists remain.
template <typename scalar_t>
NASLID_HD void knn_phase_merge(const KnnParams<scalar_t>& p, int round, int tid,
                               const SmemView& sm) {
  using acc_t = scalar_t;
  const int64_t T = p.threads, K = p.K;
  const int64_t n = T >> round;
  if (tid >= n / 2) return;
  const int64_t sa = T, sb = T > 1 ? T / 2 : 1;
  const bool from_a = (round % 2) == 0;
  const acc_t* sd = sm.at<acc_t>(from_a ? p.lay.a_d : p.lay.b_d);
  const int32_t* si = sm.at<int32_t>(from_a ? p.lay.a_i : p.lay.b_i);
  acc_t* dd = sm.at<acc_t>(from_a ? p.lay.b_d : p.lay.a_d);
  int32_t* di = sm.at<int32_t>(from_a ? p.lay.b_i : p.lay.a_i);
  const int64_t ss = from_a ? sa : sb, ds = from_a ? sb : sa;
  const acc_t* ad = sd + 2 * tid;
  const int32_t* ai = si + 2 * tid;
  const acc_t* bd = sd + 2 * tid + 1;
  const int32_t* bi = si + 2 * tid + 1;
  int64_t ia = 0, ib = 0;
  for (int64_t o = 0; o < K; ++o) {  // ia + ib == o < K: neither list runs out
    const acc_t da = ad[ia * ss], db = bd[ib * ss];
    const int32_t ja = ai[ia * ss], jb = bi[ib * ss];
    if (da < db || (da == db && ja <= jb)) {
      dd[o * ds + tid] = da;
      di[o * ds + tid] = ja;
      ++ia;
    } else {
      dd[o * ds + tid] = db;
      di[o * ds + tid] = jb;
      ++ib;
    }
  }
}

// Number of merge rounds (log2 T) and where the block's final candidate list lives.
NASLID_HD int knn_merge_rounds(int threads) {
  int r = 0;
  while ((threads >> r) > 1) ++r;
  return r;
}

template <typename scalar_t>
NASLID_HD const int32_t* knn_final_idx(const KnnParams<scalar_t>& p, const SmemView& sm,
                                       int64_t* stride) {
  const bool in_a = knn_merge_rounds(p.threads) % 2 == 0;
  *stride = in_a ? p.threads : (p.threads > 1 ? p.threads / 2 : 1);
  return sm.at<int32_t>(in_a ? p.lay.a_i : p.lay.b_i);
}

NASLID_HD int knn_group_size(int threads) { return threads < 32 ? threads : 32; }

// Phase 3a: group g = tid / G handles candidate c0 + g; lane l sums features l, l+G, ...
template <typename scalar_t>
NASLID_HD void knn_phase_exact_partial(const KnnParams<scalar_t>& p, int64_t bx, int64_t by,
                                       int64_t c0, int tid, const SmemView& sm) {
  const int G = knn_group_size(p.threads);
  const int64_t c = c0 + tid / G;
  const int64_t l = tid % G;
  double* red = sm.at<double>(p.lay.red);
  if (c >= p.K) {
    red[tid] = 0.0;
    return;
  }
  int64_t fs;
  const int32_t* fi = knn_final_idx(p, sm, &fs);
  const int64_t j = fi[c * fs];
  const int64_t b = p.b0 + by, i = p.r0 + bx;
  const scalar_t* xr = p.x + (b * p.N + i) * p.D;
  const scalar_t* yr = p.y + (b * p.M + j) * p.D;
  double s = 0.0;
  for (int64_t d = l; d < p.D; d += G) {
    const double t = static_cast<double>(xr[d]) - static_cast<double>(yr[d]);
    s += t * t;
  }
  red[tid] = s;
}

// Phase 3b: lane 0 of each group adds its group's G partial sums (fixed order: deterministic).
template <typename scalar_t>
NASLID_HD void knn_phase_exact_sum(const KnnParams<scalar_t>& p, int64_t c0, int tid,
                                   const SmemView& sm) {
  const int G = knn_group_size(p.threads);
  const int64_t c = c0 + tid / G;
  if (tid % G != 0 || c >= p.K) return;
  const double* red = sm.at<double>(p.lay.red);
  double s = 0.0;
  for (int q = 0; q < G; ++q) s += red[tid + q];
  sm.at<double>(p.lay.ex_d)[c] = s;
}

// Phase 4: rank of each candidate under (exact distance, index); the k best are written out.
template <typename scalar_t>
NASLID_HD void knn_phase_rank(const KnnParams<scalar_t>& p, int64_t bx, int64_t by, int tid,
                              const SmemView& sm) {
  int64_t fs;
  const int32_t* fi = knn_final_idx(p, sm, &fs);
  const double* ex = sm.at<double>(p.lay.ex_d);
  const int64_t b = p.b0 + by, i = p.r0 + bx;
  for (int64_t c = tid; c < p.K; c += p.threads) {
    const double d = ex[c];
    const int32_t j = fi[c * fs];
    int64_t rank = 0;
    for (int64_t e = 0; e < p.K; ++e) {
      const double de = ex[e];
      const int32_t je = fi[e * fs];
      rank += (de < d || (de == d && je < j)) ? 1 : 0;
    }
    if (rank >= p.k) continue;
    if (p.want_lid) {
      sm.at<double>(p.lay.srt)[rank] = d;
    } else {
      const int64_t o = (b * p.N + i) * p.k + rank;
      p.out_d[o] = static_cast<scalar_t>(d);
      p.out_i[o] = j;
    }
  }
}

// Phase 5 (LID mode): thread 0 turns the k sorted exact distances into the point's LID.
template <typename scalar_t>
NASLID_HD void knn_phase_lid(const KnnParams<scalar_t>& p, int64_t bx, int64_t by, int tid,
                             const SmemView& sm) {
  if (tid != 0) return;
  const int64_t b = p.b0 + by, i = p.r0 + bx;
  const double* s = sm.at<double>(p.lay.srt);
  // Computed in double from the double exact distances, then capped at the input dtype's cap
  // (1/eps: the finite value lid_math.h documents for equidistant neighbourhoods).
  const double lid = lid_from_sorted_sqdist<double, double>(s, p.k, p.est);
  const double cap = static_cast<double>(lid_cap<scalar_t>());
  p.out_lid[b * p.N + i] = static_cast<scalar_t>(lid < cap ? lid : cap);
}

// The block driver: the same sequence of phases and barriers on the GPU and in the emulator.
NASLID_EXEC_CHECK_DISABLE
template <class Exec, typename scalar_t>
NASLID_HD void knn_block(Exec& ex, const KnnParams<scalar_t>& p, int64_t bx, int64_t by,
                         const SmemView& sm) {
  ex.each([&](int t) { knn_phase_scan(p, bx, by, t, sm); });
  const int rounds = knn_merge_rounds(p.threads);
  for (int r = 0; r < rounds; ++r) ex.each([&](int t) { knn_phase_merge(p, r, t, sm); });
  const int64_t per_round = p.threads / knn_group_size(p.threads);
  for (int64_t c0 = 0; c0 < p.K; c0 += per_round) {
    ex.each([&](int t) { knn_phase_exact_partial(p, bx, by, c0, t, sm); });
    ex.each([&](int t) { knn_phase_exact_sum(p, c0, t, sm); });
  }
  ex.each([&](int t) { knn_phase_rank(p, bx, by, t, sm); });
  if (p.want_lid) ex.each([&](int t) { knn_phase_lid(p, bx, by, t, sm); });
}

// ---- lid_mle -----------------------------------------------------------------------------------

// s (rows, k) sorted squared distances -> out (rows). Grid-stride over rows, one thread per row.
template <typename scalar_t>
struct LidMleParams {
  const scalar_t* s;
  scalar_t* out;
  int64_t rows, k;
  int64_t blocks;
  int32_t threads;
  Estimator est;
};

template <typename scalar_t>
NASLID_HD void lid_mle_phase(const LidMleParams<scalar_t>& p, int64_t block, int tid) {
  using acc_t = scalar_t;  // float for float, double for double (lid_math.h convention)
  for (int64_t r = block * p.threads + tid; r < p.rows; r += p.blocks * p.threads) {
    p.out[r] = static_cast<scalar_t>(lid_from_sorted_sqdist<acc_t, scalar_t>(p.s + r * p.k, p.k, p.est));
  }
}

NASLID_EXEC_CHECK_DISABLE
template <class Exec, typename scalar_t>
NASLID_HD void lid_mle_block(Exec& ex, const LidMleParams<scalar_t>& p, int64_t block) {
  ex.each([&](int t) { lid_mle_phase(p, block, t); });
}

}  // namespace cuda
}  // namespace naslid
