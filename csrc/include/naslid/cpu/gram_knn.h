// CPU k-NN engine of naslid_ext: distances from the Gram form (full-precision GEMM tiles, symmetric
// when the reference set is the query set), running top-k selection per row, exact recomputation of
// ill-conditioned selected distances. Used by csrc/cpu/knn_cpu.cpp for knn, knn_lid and lid_profile.
//
// Shapes: X (N, D) row-major contiguous, Y (M, D); outputs dist (N, k) ascending, idx (N, k) int64.
//
// Numerics (see docs/ops_benchmarks.md):
//  * d_ij = max(0, n_i + n_j - 2 g_ij) with g = X Y^T in the input precision, never bf16/TF32
//    whatever torch's global matmul settings: from the BLAS (naslid/exact_gemm.h), or for the
//    float32 symmetric strips from naslid's FMA micro-kernels (naslid/cpu/sym_gram.h).
//    In the symmetric path n_i = g_ii (the Gram diagonal, so no extra pass over the data).
//  * Offset check: rho = mean|x|^2 / mean|x - mean|^2 is the average amplification of rounding
//    errors by cancellation. rho > kRhoMax: the data are translated by (a rounded copy of) their
//    mean and the Gram recomputed (distances are translation invariant; the rounded shift keeps
//    small-integer data exact).
//  * Per selected pair: kappa = (n_i + n_j) / d_ij > kappa_max<T>() (near-duplicates, exact
//    duplicates with d = 0): d_ij is recomputed from the input rows by direct differences with
//    double accumulation and the k list re-sorted by (distance, index).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "naslid/cpu/sym_choice.h"
#include "naslid/cpu/sym_gram.h"
#include "naslid/exact_gemm.h"
#include "naslid/lid_math.h"

namespace naslid {
namespace cpu {

// Above this mean cancellation factor the data are centred before the Gram product.
constexpr double kRhoMax = 2.0;

// Selected pairs whose cancellation factor (n_i + n_j) / d_ij exceeds this are recomputed exactly.
template <typename T>
inline T kappa_max();
template <>
inline float kappa_max<float>() {
  return 32.0f;
}
template <>
inline double kappa_max<double>() {
  return 1.0e4;
}

// Exact squared distance of two rows by direct differences, accumulated in double.
// Near-tie tolerance: two computed distances closer than tie_tol<T>() * (n_i + n_j) may be equal
// in exact arithmetic; both are then recomputed exactly so that ties go to the lower index.
template <typename T>
inline T tie_tol();
template <>
inline float tie_tol<float>() {
  return 1.0f / 131072.0f;  // 2^-17
}
template <>
inline double tie_tol<double>() {
  return 1.0 / 1099511627776.0;  // 2^-40
}

template <typename T>
inline double exact_sqdist(const T* a, const T* b, int64_t D) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t d = 0; d < D; ++d) {
    const double e = double(a[d]) - double(b[d]);
    s += e * e;
  }
  return s;
}

// Squared norm of a row: vectorised partial sums in T over chunks of 256, accumulated in double.
template <typename T>
inline double sqnorm(const T* x, int64_t D) {
  double total = 0;
  for (int64_t d0 = 0; d0 < D; d0 += 256) {
    const int64_t d1 = std::min(D, d0 + 256);
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = d0; d < d1; ++d) s += x[d] * x[d];
    total += double(s);
  }
  return total;
}

// Running top-k lists of N rows. k is the internal list length: one more than the requested
// kout when there are enough candidates, so that a tie at the k-th place can be resolved.
template <typename T>
struct TopK {
  int64_t n = 0, k = 0, kout = 0;
  std::vector<T> dist;       // (n, k)
  std::vector<int64_t> idx;  // (n, k)
  std::vector<int64_t> cnt;  // (n)
  std::vector<T> thr;        // (n) current k-th distance, +inf while fewer than k

  TopK(int64_t n_, int64_t kout_, int64_t candidates)
      : n(n_), k(std::min(kout_ + 1, candidates)), kout(kout_), dist(n_ * k), idx(n_ * k),
        cnt(n_, 0), thr(n_, std::numeric_limits<T>::infinity()) {}

  // Copies the first kout entries of every row to dist_out / idx_out ((n, kout) row-major).
  void write(T* dist_out, int64_t* idx_out) const {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t < kout; ++t) {
        if (dist_out) dist_out[i * kout + t] = dist[i * k + t];
        if (idx_out) idx_out[i * kout + t] = idx[i * k + t];
      }
  }

  inline void insert(int64_t row, T d, int64_t j) {
    T* dr = dist.data() + row * k;
    int64_t* ir = idx.data() + row * k;
    cnt[row] = topk_insert<T>(dr, ir, cnt[row], k, d, j);
    if (cnt[row] == k) thr[row] = dr[k - 1];
  }
};

constexpr int64_t kChunk = 64;

// One chunk of squared distances d_c = max(0, n0 + nrm[c] - 2 g[c]) into buf (c < cl); true when
// any of them is within its threshold thr_of(c) (a scalar for a row scan, per row for a column scan).
template <typename T, typename Thr>
inline bool chunk_distances(T n0, const T* g, const T* nrm, int64_t cl, T* buf, const Thr& thr_of) {
  int any = 0;
#pragma omp simd reduction(| : any)
  for (int64_t c = 0; c < cl; ++c) {
    T d = n0 + nrm[c] - T(2) * g[c];
    d = d > T(0) ? d : T(0);
    buf[c] = d;
    any |= (d <= thr_of(c)) ? 1 : 0;
  }
  return any != 0;
}

// Candidates a row scan selects before inserting while the row's list is not yet full.
constexpr int64_t kSeed = 4 * kChunk;

// The unsigned integer type of T's size: non-negative floats (+0 to +inf) order as their bits do.
template <typename T>
struct FloatBits;
template <>
struct FloatBits<float> {
  using U = uint32_t;
};
template <>
struct FloatBits<double> {
  using U = uint64_t;
};

// A cut for the k smallest eligible values of buf[0 .. len) (len <= kSeed; eligible: <= thr, and
// position not skip_c): a value v such that at least k eligible values are <= v and every eligible
// value below the k-th smallest is too (the k-th smallest itself, or the largest value of a set of
// exactly k); thr when fewer than k are eligible. The values are squared distances from
// chunk_distances (>= 0 or +inf, never NaN), so their bit patterns order as unsigned integers, and
// a bisection over the patterns between the smallest and the largest eligible one finds the cut
// by counting, a vectorised loop without data-dependent branches, where std::nth_element branches
// unpredictably on every comparison.
template <typename T>
inline T kth_eligible(const T* buf, int64_t len, int64_t k, T thr, int64_t skip_c) {
  using U = typename FloatBits<T>::U;
  U bits[kSeed];
  const U never = std::numeric_limits<U>::max();  // above every pattern of a value <= +inf
  U lo = never, hi = 0;
  int n_ok = 0;
#pragma omp simd reduction(min : lo) reduction(max : hi) reduction(+ : n_ok)
  for (int64_t c = 0; c < len; ++c) {
    U b;
    std::memcpy(&b, buf + c, sizeof(T));
    const bool ok = buf[c] <= thr && c != skip_c;
    bits[c] = ok ? b : never;
    lo = ok && b < lo ? b : lo;
    hi = ok && b > hi ? b : hi;
    n_ok += ok ? 1 : 0;
  }
  if (n_ok < k) return thr;
  const auto count_le = [&](U v) {
    int n = 0;  // int, not int64_t: the count stays in the vector lanes of the patterns
#pragma omp simd reduction(+ : n)
    for (int64_t c = 0; c < len; ++c) n += bits[c] <= v ? 1 : 0;
    return int64_t(n);
  };
  while (lo < hi) {  // invariant: at least k eligible patterns are <= hi, fewer than k are < lo
    const U mid = lo + (hi - lo) / 2;
    const int64_t n = count_le(mid);
    if (n == k) {  // exactly the k smallest lie at or below mid: any such cut selects them
      hi = mid;
      break;
    }
    if (n > k) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  T cut;
  std::memcpy(&cut, &hi, sizeof(T));
  return cut;
}

// Seeds a row's list from its first `len` (<= kSeed) candidates: their distances are computed at
// once, the list's length-th smallest eligible value `cut` is selected (kth_eligible), and only
// candidates at or below it are inserted. A candidate above `cut` can never enter the list (at
// least k candidates lie at or below it), so the list that results is the one incremental
// insertion gives, with about k insertions instead of k (1 + ln(len / k)), each of which shifts
// the list behind an unpredictable branch. Every row scan into a list that is not full yet starts
// here once it has more candidates than the list holds: at N = 128 (one strip, 127 candidates per
// row, k = 21) incremental insertion was most of a set's time outside the Gram strips
// (docs/ops_benchmarks.md, "Seeding every row's list").
template <typename T>
inline void seed_row(TopK<T>& tk, int64_t row, T ni, const T* g, const T* nrm, int64_t j0,
                     int64_t len, int64_t skip) {
  T buf[kSeed];
  const T thr = tk.thr[row];
  chunk_distances(ni, g, nrm, len, buf, [thr](int64_t) { return thr; });
  const T cut = kth_eligible(buf, len, tk.k, thr, skip - j0);
  for (int64_t c = 0; c < len; ++c) {
    const int64_t j = j0 + c;
    if (buf[c] <= cut && buf[c] <= tk.thr[row] && j != skip) tk.insert(row, buf[c], j);
  }
}

// Row-direction scan: candidates j = j0 + c (c < len) for one row with norm ni, Gram values g[c],
// reference norms nrm[c]; `skip` is a global index never inserted (the row itself, or -1).
template <typename T>
inline void scan_row(TopK<T>& tk, int64_t row, T ni, const T* g, const T* nrm, int64_t j0,
                     int64_t len, int64_t skip) {
  int64_t start = 0;
  if (tk.cnt[row] < tk.k && len > tk.k) {  // more candidates than the list holds, list not full
    start = std::min(len, kSeed);
    seed_row(tk, row, ni, g, nrm, j0, start, skip);
  }
  T buf[kChunk];
  for (int64_t c0 = start; c0 < len; c0 += kChunk) {
    const int64_t cl = std::min(kChunk, len - c0);
    const T thr = tk.thr[row];
    if (!chunk_distances(ni, g + c0, nrm + c0, cl, buf, [thr](int64_t) { return thr; })) continue;
    for (int64_t c = 0; c < cl; ++c) {
      const int64_t j = j0 + c0 + c;
      if (buf[c] <= tk.thr[row] && j != skip) tk.insert(row, buf[c], j);
    }
  }
}

// Column-direction scan (symmetric path): one candidate r (norm nr, Gram values g[c] = g_{r, j0+c})
// for the rows j0 .. j0+len-1.
template <typename T>
inline void scan_col(TopK<T>& tk, int64_t r, T nr, const T* g, const T* nrm, int64_t j0,
                     int64_t len) {
  T buf[kChunk];
  const T* thr = tk.thr.data() + j0;
  for (int64_t c0 = 0; c0 < len; c0 += kChunk) {
    const int64_t cl = std::min(kChunk, len - c0);
    const T* t = thr + c0;
    if (!chunk_distances(nr, g + c0, nrm + c0, cl, buf, [t](int64_t c) { return t[c]; })) continue;
    for (int64_t c = 0; c < cl; ++c) {
      if (buf[c] <= t[c]) tk.insert(j0 + c0 + c, buf[c], r);
    }
  }
}

template <typename F>
inline void maybe_parallel_for(bool par, int64_t begin, int64_t end, int64_t grain, const F& f) {
  if (par && end - begin > grain) {
    at::parallel_for(begin, end, grain, f);
  } else if (end > begin) {
    f(begin, end);
  }
}

// Wraps a raw row-major (rows, D) buffer as a tensor without copying.
template <typename T>
inline at::Tensor wrap(const T* p, int64_t rows, int64_t D) {
  return at::from_blob(const_cast<T*>(p), {rows, D},
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

// The kernel for the symmetric strips of the set X (N, D) in mode `par` (kBlas for float64; for
// float32 forced, or measured on X at its shape class's first use: naslid/cpu/sym_choice.h).
template <typename T>
inline SymKernel strip_kernel(const T* X, int64_t N, int64_t D, bool par) {
  if constexpr (std::is_same_v<T, float>) {
    return choose_sym_kernel(X, N, D, par);
  } else {
    return SymKernel::kBlas;
  }
}

// Block rows per strip of the symmetric path. BLAS strips: small blocks keep the wasted part of
// the diagonal blocks small. FMA micro-kernels: they skip the tiles below the diagonal, so larger
// blocks (multiples of their 6- and 3-row tiles) re-read the data less often; up to N = 256 one
// strip of all rows (one pass over the features and two synchronisations per set instead of four:
// 2-6 % faster at N = 128 and 256 than strips of 96 / 192 rows, docs/ops_benchmarks.md).
inline int64_t sym_block_rows(int64_t N, SymKernel kern) {
  if (kern != SymKernel::kBlas && N <= 256) return N;
  if (kern != SymKernel::kBlas && N <= 1536) return 192;
  if (N <= 160) return 32;
  if (N <= 1536) return 64;
  return 256;
}

// Strip tile (rows, cols) = X[b0 : b0+rows] · X[b0 : b0+cols]ᵀ of the symmetric path (X (N, D)
// row-major) by `kern` (strip_kernel): an FMA micro-kernel of naslid/cpu/sym_gram.h (split = true:
// its features shared among the threads), or the BLAS (which threads itself outside a parallel
// region).
template <typename T>
inline void sym_strip(SymKernel kern, bool split, at::Tensor& tile, const at::Tensor& X, int64_t b0,
                      int64_t rows, int64_t cols) {
  if constexpr (std::is_same_v<T, float>) {
    if (kern != SymKernel::kBlas) {
      const float* x = X.data_ptr<float>() + b0 * X.stride(0);
      if (split) {
        gram_strip_f32_split(kern, x, X.stride(0), rows, cols, X.size(1), tile.data_ptr<float>());
      } else {
        gram_strip_f32(kern, x, X.stride(0), rows, cols, X.size(1), tile.data_ptr<float>());
      }
      return;
    }
  }
  gram_mm_cpu(tile, X.narrow(0, b0, rows), X.narrow(0, b0, cols));
}

template <typename T>
inline at::Tensor centred_copy(const T* X, int64_t N, int64_t D, const std::vector<T>& c) {
  at::Tensor out = at::empty({N, D}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
  T* o = out.data_ptr<T>();
  at::parallel_for(0, N, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t d = 0; d < D; ++d) o[i * D + d] = X[i * D + d] - c[d];
  });
  return out;
}

// Final pass over the lists: exact recomputation of ill-conditioned pairs (from the input rows
// Xq / Xr), re-sort by (distance, index). nq: query norms, nr: reference norms (Gram precision).
template <typename T>
inline void refine(TopK<T>& tk, const T* Xq, const T* Xr, int64_t D, const T* nq, const T* nr,
                   bool par) {
  const T km = kappa_max<T>();
  const T tt = tie_tol<T>();
  const int64_t k = tk.k;
  maybe_parallel_for(par, 0, tk.n, 8, [&](int64_t b, int64_t e) {
    std::vector<T> tol(k);
    std::vector<char> redo(k);
    for (int64_t i = b; i < e; ++i) {
      T* dr = tk.dist.data() + i * k;
      int64_t* ir = tk.idx.data() + i * k;
      bool changed = false;
      for (int64_t t = 0; t < k; ++t) {
        const T scale = nq[i] + nr[ir[t]];
        tol[t] = tt * scale;
        redo[t] = !(dr[t] * km > scale);  // ill-conditioned (includes d == 0)
      }
      for (int64_t t = 0; t + 1 < k; ++t)  // near-ties: possibly equal in exact arithmetic
        if (dr[t + 1] - dr[t] <= tol[t] + tol[t + 1]) redo[t] = redo[t + 1] = 1;
      for (int64_t t = 0; t < k; ++t) {
        if (!redo[t]) continue;
        dr[t] = T(exact_sqdist<T>(Xq + i * D, Xr + ir[t] * D, D));
        changed = true;
      }
      if (!changed) continue;
      for (int64_t t = 1; t < k; ++t) {  // insertion sort by (distance, index)
        const T dv = dr[t];
        const int64_t iv = ir[t];
        int64_t p = t;
        while (p > 0 && (dr[p - 1] > dv || (dr[p - 1] == dv && ir[p - 1] > iv))) {
          dr[p] = dr[p - 1];
          ir[p] = ir[p - 1];
          --p;
        }
        dr[p] = dv;
        ir[p] = iv;
      }
    }
  });
}

// Symmetric self k-NN of one set on (possibly centred) data `Xg`, strip by strip; returns the mean
// cancellation factor rho. Norms (Gram diagonal) are written to `nrm` (N). Blocks are processed
// last-first so that every norm is known when first needed. split = false: sequential (the caller
// already runs one set per thread); split = true: each strip's features are shared among the
// threads (FMA kernels only), and so are its scans: a row task inserts only into its own row's
// list and a column chunk only into the lists of its own later rows (disjoint), and every list
// receives its candidates strip by strip as in the sequential pass, so the result is the same.
template <typename T>
inline double sym_pass(const T* Xg, int64_t N, int64_t D, TopK<T>& tk, std::vector<T>& nrm,
                       bool skip_self, SymKernel kern, bool split = false) {
  const int64_t bs = std::min(sym_block_rows(N, kern), N);
  const int64_t nblk = (N + bs - 1) / bs;
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor tbuf = at::empty({bs * N}, opts);
  at::Tensor X = wrap<T>(Xg, N, D);
  nrm.assign(N, T(0));
  double sum_all = 0.0, sum_diag = 0.0;
  for (int64_t blk = nblk - 1; blk >= 0; --blk) {
    const int64_t b0 = blk * bs, b1 = std::min(N, b0 + bs), rows = b1 - b0, cols = N - b0;
    at::Tensor tile = tbuf.narrow(0, 0, rows * cols).view({rows, cols});
    sym_strip<T>(kern, split, tile, X, b0, rows, cols);
    const T* t = tile.data_ptr<T>();
    for (int64_t r = 0; r < rows; ++r) nrm[b0 + r] = t[r * cols + r];
    // offset statistics: sum over the full Gram matrix (off-block entries count twice)
    for (int64_t r = 0; r < rows; ++r) {
      const T* tr = t + r * cols;
      T s_in = 0, s_out = 0;
#pragma omp simd reduction(+ : s_in)
      for (int64_t c = 0; c < rows; ++c) s_in += tr[c];
#pragma omp simd reduction(+ : s_out)
      for (int64_t c = rows; c < cols; ++c) s_out += tr[c];
      sum_all += double(s_in) + 2.0 * double(s_out);
      sum_diag += double(tr[r]);
    }
    const T* nb = nrm.data() + b0;
    // task ids: [0, rows) -> row-direction for row b0+task; [rows, rows + ncc) -> column chunk
    const int64_t later = N - b1;
    const int64_t cc = split ? 64 : 256;
    const int64_t ncc = (later + cc - 1) / cc;
    maybe_parallel_for(split, 0, rows + ncc, 1, [&](int64_t tb, int64_t te) {
      for (int64_t task = tb; task < te; ++task) {
        if (task < rows) {
          const int64_t i = b0 + task;
          scan_row<T>(tk, i, nb[task], t + task * cols, nb, b0, cols, skip_self ? i : -1);
        } else {
          const int64_t c0 = (task - rows) * cc, c1 = std::min(later, c0 + cc);
          for (int64_t r = 0; r < rows; ++r)
            scan_col<T>(tk, b0 + r, nb[r], t + r * cols + rows + c0, nb + rows + c0, b1 + c0,
                        c1 - c0);
        }
      }
    });
  }
  const double mean_sq = sum_diag / double(N);
  const double centred = mean_sq - sum_all / (double(N) * double(N));
  if (!(centred > 0.0)) return mean_sq > 0.0 ? std::numeric_limits<double>::infinity() : 1.0;
  return mean_sq / centred;
}

// Row norms of (possibly shifted) rows in double; returns sums for the offset check.
template <typename T>
inline void row_norms(const T* X, int64_t N, int64_t D, std::vector<T>& nrm, bool par) {
  nrm.assign(N, T(0));
  maybe_parallel_for(par, 0, N, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      nrm[i] = T(sqnorm<T>(X + i * D, D));
    }
  });
}


// Mean of the rows (double) and the cancellation factor rho = mean|x|^2 / mean|x - mean|^2 of
// the rows of X and Y together (pass Y = nullptr, M = 0 for one set). nx/ny: norms of the rows.
template <typename T>
inline double offset_factor(const T* X, int64_t N, const T* Y, int64_t M, int64_t D,
                            const std::vector<T>& nx, const std::vector<T>& ny,
                            std::vector<double>& mu) {
  mu.assign(D, 0.0);
  double* m = mu.data();
  for (int64_t i = 0; i < N; ++i) {
    const T* x = X + i * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) m[d] += double(x[d]);
  }
  for (int64_t i = 0; i < M; ++i) {
    const T* y = Y + i * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) m[d] += double(y[d]);
  }
  double msq = 0, mu2 = 0;
  for (int64_t i = 0; i < N; ++i) msq += double(nx[i]);
  for (int64_t i = 0; i < M; ++i) msq += double(ny[i]);
  msq /= double(N + M);
  for (int64_t d = 0; d < D; ++d) {
    mu[d] /= double(N + M);
    mu2 += mu[d] * mu[d];
  }
  const double centred = msq - mu2;
  if (!(centred > 0.0)) return msq > 0.0 ? std::numeric_limits<double>::infinity() : 1.0;
  return msq / centred;
}

// Shift used to centre: the mean, each component rounded to 8 significant bits (any shift is
// exact for distances; the rounding keeps data on a coarse grid exactly representable).
template <typename T>
inline std::vector<T> round_shift(const std::vector<double>& mu) {
  std::vector<T> c(mu.size());
  for (size_t d = 0; d < mu.size(); ++d) {
    int e = 0;
    const double f = std::frexp(mu[d], &e);
    c[d] = T(std::ldexp(std::nearbyint(std::ldexp(f, 8)), e - 8));
  }
  return c;
}

// Merges the lists of `other` into `tk` (same rows): top-k of the union by (distance, index).
template <typename T>
inline void merge_into(TopK<T>& tk, const TopK<T>& other, bool par) {
  maybe_parallel_for(par, 0, tk.n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t t = 0; t < other.cnt[i]; ++t) {
        const T d = other.dist[i * other.k + t];
        if (d <= tk.thr[i]) tk.insert(i, d, other.idx[i * other.k + t]);
      }
  });
}

// Parallel symmetric self k-NN of one large set: the threads take row blocks (largest first) and
// run their GEMMs single-threaded, each into its own lists (column-direction updates touch rows of
// other blocks); the lists are merged at the end. One parallel region: few synchronisations.
template <typename T>
inline void sym_parallel(const T* Xg, int64_t N, int64_t D, TopK<T>& tk, const std::vector<T>& nrm,
                         bool skip_self, SymKernel kern) {
  const int64_t bs = std::min(sym_block_rows(N, kern), N);
  const int64_t nblk = (N + bs - 1) / bs;
  const int64_t nth = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), nblk));
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor X = wrap<T>(Xg, N, D);
  std::vector<TopK<T>> lists;
  lists.reserve(nth);
  lists.push_back(std::move(tk));
  for (int64_t t = 1; t < nth; ++t) lists.emplace_back(lists[0]);
  std::atomic<int64_t> next{0};
  at::parallel_for(0, nth, 1, [&](int64_t tb, int64_t te) {
    for (int64_t th = tb; th < te; ++th) {
      TopK<T>& my = lists[th];
      at::Tensor tbuf = at::empty({bs * N}, opts);
      for (int64_t blk = next.fetch_add(1); blk < nblk; blk = next.fetch_add(1)) {
        const int64_t b0 = blk * bs, b1 = std::min(N, b0 + bs), rows = b1 - b0, cols = N - b0;
        at::Tensor tile = tbuf.narrow(0, 0, rows * cols).view({rows, cols});
        sym_strip<T>(kern, false, tile, X, b0, rows, cols);
        const T* t = tile.data_ptr<T>();
        const T* nb = nrm.data() + b0;
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = b0 + r;
          scan_row<T>(my, i, nb[r], t + r * cols, nb, b0, cols, skip_self ? i : -1);
        }
        const int64_t later = N - b1, cc = 512;
        for (int64_t c0 = 0; c0 < later; c0 += cc) {
          const int64_t c1 = std::min(later, c0 + cc);
          for (int64_t r = 0; r < rows; ++r)
            scan_col<T>(my, b0 + r, nb[r], t + r * cols + rows + c0, nb + rows + c0, b1 + c0,
                        c1 - c0);
        }
      }
    }
  });
  for (int64_t t = 1; t < nth; ++t) merge_into<T>(lists[0], lists[t], true);
  tk = std::move(lists[0]);
}

// Self k-NN of one set X (N, D): top-k over j != i (or over all j when !skip_self).
// par = false: sequential (the caller runs one set per thread; norms from the Gram diagonal,
// offset check after the pass). par = true: one set using all threads: up to N = 1536 with the
// FMA kernels, the sequential pass with each strip's features split among the threads (balanced
// whatever the triangle's shape); otherwise the threads take row blocks (norms and offset check by
// a first pass over the data).
// raw_nrm (N, may be null): receives the squared norms of X's rows as the pass computed them
// (before any centring): a row holding NaN/Inf has a non-finite norm, so they are the finiteness
// check of naslid_ext's public functions at no extra pass.
template <typename T>
inline TopK<T> self_knn(const T* X, int64_t N, int64_t D, int64_t k, bool skip_self, bool par,
                        T* raw_nrm = nullptr) {
  const int64_t cand = skip_self ? N - 1 : N;
  TopK<T> tk(N, k, cand);
  std::vector<T> nrm;
  const SymKernel kern = strip_kernel<T>(X, N, D, par);
  const bool split = par && N <= 1536 && kern != SymKernel::kBlas;
  if (!par || split) {
    const double rho = sym_pass<T>(X, N, D, tk, nrm, skip_self, kern, split);
    if (raw_nrm != nullptr) std::copy(nrm.begin(), nrm.end(), raw_nrm);
    if (rho > kRhoMax) {
      std::vector<double> mu;
      offset_factor<T>(X, N, nullptr, 0, D, nrm, nrm, mu);
      at::Tensor Xc = centred_copy<T>(X, N, D, round_shift<T>(mu));
      tk = TopK<T>(N, k, cand);
      sym_pass<T>(Xc.data_ptr<T>(), N, D, tk, nrm, skip_self, kern, split);
    }
  } else {
    row_norms<T>(X, N, D, nrm, true);
    if (raw_nrm != nullptr) std::copy(nrm.begin(), nrm.end(), raw_nrm);
    std::vector<double> mu;
    const T* Xg = X;
    at::Tensor Xc;
    if (offset_factor<T>(X, N, nullptr, 0, D, nrm, nrm, mu) > kRhoMax) {
      Xc = centred_copy<T>(X, N, D, round_shift<T>(mu));
      Xg = Xc.data_ptr<T>();
      row_norms<T>(Xg, N, D, nrm, true);
    }
    sym_parallel<T>(Xg, N, D, tk, nrm, skip_self, kern);
  }
  refine<T>(tk, X, X, D, nrm.data(), nrm.data(), par);
  return tk;
}

// k-NN of queries X (N, D) among references Y (M, D) (distinct sets); exclude_self drops j == i.
// Row blocks of X are independent: par = true hands them to the threads (single-threaded GEMMs).
// raw_nx (N) / raw_ny (M), may be null: the squared norms of the rows of X / Y (as self_knn's raw_nrm).
template <typename T>
inline TopK<T> cross_knn(const T* X, int64_t N, const T* Y, int64_t M, int64_t D, int64_t k,
                         bool exclude_self, bool par, T* raw_nx = nullptr, T* raw_ny = nullptr) {
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  std::vector<T> nx, ny;
  row_norms<T>(X, N, D, nx, par);
  row_norms<T>(Y, M, D, ny, par);
  if (raw_nx != nullptr) std::copy(nx.begin(), nx.end(), raw_nx);
  if (raw_ny != nullptr) std::copy(ny.begin(), ny.end(), raw_ny);
  std::vector<double> mu;
  at::Tensor Xc, Yc;
  const T* Xg = X;
  const T* Yg = Y;
  if (offset_factor<T>(X, N, Y, M, D, nx, ny, mu) > kRhoMax) {
    const std::vector<T> c = round_shift<T>(mu);
    Xc = centred_copy<T>(X, N, D, c);
    Yc = centred_copy<T>(Y, M, D, c);
    Xg = Xc.data_ptr<T>();
    Yg = Yc.data_ptr<T>();
    row_norms<T>(Xg, N, D, nx, par);
    row_norms<T>(Yg, M, D, ny, par);
  }
  TopK<T> tk(N, k, exclude_self ? M - 1 : M);
  const int64_t bs = std::min<int64_t>(N, par ? 128 : 256);
  const int64_t cm = std::min<int64_t>(M, 4096);
  const int64_t nblk = (N + bs - 1) / bs;
  at::Tensor Xt = wrap<T>(Xg, N, D), Yt = wrap<T>(Yg, M, D);
  maybe_parallel_for(par, 0, nblk, 1, [&](int64_t bb, int64_t be) {
    at::Tensor tbuf = at::empty({bs * cm}, opts);
    for (int64_t blk = bb; blk < be; ++blk) {
      const int64_t b0 = blk * bs, rows = std::min(bs, N - b0);
      for (int64_t c0 = 0; c0 < M; c0 += cm) {
        const int64_t cols = std::min(cm, M - c0);
        at::Tensor tile = tbuf.narrow(0, 0, rows * cols).view({rows, cols});
        gram_mm_cpu(tile, Xt.narrow(0, b0, rows), Yt.narrow(0, c0, cols));
        const T* t = tile.data_ptr<T>();
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = b0 + r;
          scan_row<T>(tk, i, nx[i], t + r * cols, ny.data() + c0, c0, cols,
                      exclude_self ? i : -1);
        }
      }
    }
  });
  refine<T>(tk, X, Y, D, nx.data(), ny.data(), par);
  return tk;
}

// Runs `f(task, par)` for every task in [0, n): tasks in the order given (put the most expensive
// first) are handed out dynamically to the threads when there are enough of them, each running
// sequentially inside (its GEMMs single-threaded); otherwise one after the other, each parallel
// inside.
template <typename F>
inline void run_tasks(int64_t n, const std::vector<int64_t>& order, const F& f) {
  const int64_t nth = at::get_num_threads();
  if (n <= 0) return;
  if (at::in_parallel_region()) {
    for (int64_t t = 0; t < n; ++t) f(order[t], false);
    return;
  }
  if (nth < 2) {  // one thread: the sequential path (no extra passes over the data)
    for (int64_t t = 0; t < n; ++t) f(order[t], false);
    return;
  }
  if (n < 2) {
    for (int64_t t = 0; t < n; ++t) f(order[t], true);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, nth, 1, [&](int64_t, int64_t) {
    for (int64_t t = next.fetch_add(1); t < n; t = next.fetch_add(1)) f(order[t], false);
  });
}

}  // namespace cpu
}  // namespace naslid
