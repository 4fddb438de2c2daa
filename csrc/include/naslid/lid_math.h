// Maths shared by the CPU kernels, the CUDA kernels and the grid emulator: written once, marked
// host+device. Nothing here allocates, launches or touches ATen: plain scalars and pointers only.
//
// Conventions (the contract of every backend, documented in naslid_ext):
//  * distances are *squared* Euclidean (the faiss / pytorch3d convention);
//  * the one and only factor 0.5 turning log(s_j / s_k) of squared distances into log(r_j / r_k)
//    lives in `lid_from_sorted_sqdist` below;
//  * degenerate neighbourhoods give the limit of the formula, never NaN/Inf for finite input:
//      - a zero distance among the k neighbours (a duplicate point)   -> LID 0,
//      - all k neighbours at the same positive distance (sum of logs 0) -> LID = lid_cap<T>()
//        (1 / machine epsilon of the compute type: 8.4e6 for float, 4.5e15 for double).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define NASLID_HD __host__ __device__ __forceinline__
#else
#define NASLID_HD inline
#endif

namespace naslid {

enum class Estimator : int32_t {
  kNasLid = 0,  // -k / sum_{j=1..k} log(r_j / r_k)        (NAS-LID released code, k >= 2)
  kLevina = 1,  // (k-1) / sum_{j=1..k-1} log(r_k / r_j)    (Levina-Bickel / scikit-dimension, k >= 2)
};

// Smallest k the MLE ops accept, for both estimators: with k = 1 "naslid" sums one zero term
// (always the 1/eps cap) and "levina" is 0/0. (k-NN itself takes k >= 1.)
constexpr int64_t kMinLidK = 2;

template <typename T>
NASLID_HD T lid_cap() {
  return T(1) / std::numeric_limits<T>::epsilon();
}

// LID of one point from its k nearest-neighbour squared distances, sorted ascending.
//   s: pointer to k values (stride `stride` between consecutive neighbours), s[0] <= ... <= s[k-1].
// Accumulates in acc_t (float for float/half inputs, double for double).
template <typename acc_t, typename scalar_t>
NASLID_HD acc_t lid_from_sorted_sqdist(const scalar_t* s, int64_t k, Estimator est,
                                       int64_t stride = 1) {
  const acc_t sk = static_cast<acc_t>(s[(k - 1) * stride]);
  if (!(sk > acc_t(0))) return acc_t(0);  // all k neighbours coincide with the point
  const int64_t terms = (est == Estimator::kNasLid) ? k : k - 1;
  acc_t sum = 0;  // sum_j log(s_k / s_j) >= 0  (squared distances)
  for (int64_t j = 0; j < terms; ++j) {
    const acc_t sj = static_cast<acc_t>(s[j * stride]);
    if (!(sj > acc_t(0))) return acc_t(0);  // a duplicate among the neighbours: limit is 0
    sum += log(sk / sj);
  }
  // log(r_k / r_j) = 0.5 * log(s_k / s_j): the single place where the square is undone.
  const acc_t log_sum = acc_t(0.5) * sum;
  const acc_t numer = static_cast<acc_t>(terms);
  const acc_t cap = lid_cap<acc_t>();
  if (!(log_sum * cap > numer)) return cap;  // equidistant neighbours: capped, finite
  return numer / log_sum;
}

// Insert (d, i) into a running top-k list sorted ascending by (distance, index): ties go to the
// lower index. `dist`/`idx` hold `count` valid entries (count <= k). Returns the new count.
// O(k) insertion: k is small (NAS-LID uses 20).
template <typename acc_t>
NASLID_HD int64_t topk_insert(acc_t* dist, int64_t* idx, int64_t count, int64_t k, acc_t d,
                              int64_t i) {
  if (count == k) {
    const acc_t wd = dist[k - 1];
    const int64_t wi = idx[k - 1];
    if (d > wd || (d == wd && i > wi)) return count;  // not better than the current k-th
  } else {
    ++count;
  }
  int64_t p = count - 1;
  while (p > 0 && (dist[p - 1] > d || (dist[p - 1] == d && idx[p - 1] > i))) {
    dist[p] = dist[p - 1];
    idx[p] = idx[p - 1];
    --p;
  }
  dist[p] = d;
  idx[p] = i;
  return count;
}

// Squared distance from the Gram form, clamped at 0 against cancellation:
//   |x|^2 + |y|^2 - 2 x.y
template <typename acc_t>
NASLID_HD acc_t sqdist_from_gram(acc_t xx, acc_t yy, acc_t xy) {
  const acc_t d = xx + yy - acc_t(2) * xy;
  return d > acc_t(0) ? d : acc_t(0);
}

}  // namespace naslid
