// FMA micro-kernels for strips of a symmetric float32 Gram matrix (contract and reasons in
// csrc/include/naslid/cpu/sym_gram.h). Each kernel is compiled for its instruction set with a
// target attribute and chosen at run time, so one build runs on AVX2-only and AVX-512 CPUs.
#include "naslid/cpu/sym_gram.h"

#include "naslid/cpu/sym_gram_amx.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NASLID_X86_KERNELS 1
#include <immintrin.h>
#endif

namespace naslid {
namespace cpu {
namespace {

// Features per chunk: a chunk of the strip's rows (4 KB each) stays in L2 while the micro-tiles
// sweep it. Measured best or within 2 % of best at N = 128..512 (docs/ops_benchmarks.md).
constexpr int64_t kKc = 1024;

#ifdef NASLID_X86_KERNELS

// The micro-tile loop shared by both instruction sets. V: vector type; W: lanes; R x C tile; P
// columns per panel. For every chunk [k0, k0 + kc) of features, every panel of P columns (its
// chunk, P x 4 KB, stays in L2 while the row tiles sweep it) and every tile (r0.., c0..) with
// c0 >= r0: R·C accumulators of lane-wise products, then one horizontal sum each, stored (first
// chunk) or added. Rows/columns past the end read the last one again (their sums are dropped).
// While the first row tile of a panel sweeps its columns, it prefetches their next chunk into L2
// (strips up to 512 columns, whose two chunks fit in L2): the rows' first reads of a chunk come
// from memory otherwise (NB201 profile at N = 128: the 17 layers, 80 MB, took 28 % longer than the
// same layers one by one with their data in cache; the prefetch took the profile from 15.3 to 13.4 ms).
// MASK(rem) is the tail mask of a chunk with `rem` features past its last full vector;
// STORE(acc_row, o, nc, first) sums a row's C accumulators horizontally into o[0 .. nc).

// The full vectors of one chunk for one tile (used inside NASLID_SYM_KERNEL_BODY); PREFETCH runs
// once per column and vector step.
#define NASLID_SYM_K_LOOP(LOAD, FMA, PREFETCH)                                                             \
  for (int64_t k = 0; k < kv; k += W) {                                                            \
    V av[R];                                                                                       \
    _Pragma("GCC unroll 8") for (int i = 0; i < R; ++i) av[i] = LOAD(a[i] + k);                    \
    _Pragma("GCC unroll 8") for (int j = 0; j < C; ++j) {                                          \
      PREFETCH;                                                                                    \
      const V bv = LOAD(b[j] + k);                                                                 \
      _Pragma("GCC unroll 8") for (int i = 0; i < R; ++i) acc[i][j] = FMA(av[i], bv, acc[i][j]);   \
    }                                                                                              \
  }

#define NASLID_SYM_KERNEL_BODY(LOAD, MLOAD, FMA, ZERO, STORE, MASK)                                \
  for (int64_t k0 = 0; k0 < D; k0 += kKc) {                                                        \
    const int64_t kl = std::min(kKc, D - k0), kv = kl / W * W;                                     \
    const int rem = int(kl - kv);                                                                  \
    const auto mask = MASK(rem);                                                                   \
    const bool first = k0 == 0;                                                                    \
    const bool pf = k0 + kKc < D && cols <= 512;                                                   \
    for (int64_t p0 = 0; p0 < cols; p0 += P) {                                                     \
      const int64_t p1 = std::min(cols, p0 + P);                                                   \
      for (int64_t r0 = 0; r0 < rows && r0 < p1; r0 += R) {                                        \
        const float* a[R];                                                                         \
        for (int i = 0; i < R; ++i) a[i] = X + std::min<int64_t>(r0 + i, rows - 1) * ld + k0;      \
        for (int64_t c0 = std::max(r0, p0); c0 < p1; c0 += C) {                                    \
          const float* b[C];                                                                       \
          for (int j = 0; j < C; ++j) b[j] = X + std::min<int64_t>(c0 + j, p1 - 1) * ld + k0;      \
          V acc[R][C];                                                                             \
          _Pragma("GCC unroll 8") for (int i = 0; i < R; ++i)                                      \
              _Pragma("GCC unroll 8") for (int j = 0; j < C; ++j) acc[i][j] = ZERO;                \
          if (pf && r0 == 0) {  /* the first row tile also fetches the next chunk of its columns */ \
            NASLID_SYM_K_LOOP(LOAD, FMA, _mm_prefetch(reinterpret_cast<const char*>(b[j] + kKc + k), _MM_HINT_T1)) \
          } else {                                                                                 \
            NASLID_SYM_K_LOOP(LOAD, FMA, (void)0)                                                      \
          }                                                                                        \
          if (rem != 0) {                                                                          \
            V av[R];                                                                               \
            _Pragma("GCC unroll 8") for (int i = 0; i < R; ++i) av[i] = MLOAD(a[i] + kv, mask);    \
            _Pragma("GCC unroll 8") for (int j = 0; j < C; ++j) {                                  \
              const V bv = MLOAD(b[j] + kv, mask);                                                 \
              _Pragma("GCC unroll 8") for (int i = 0; i < R; ++i) acc[i][j] = FMA(av[i], bv, acc[i][j]); \
            }                                                                                      \
          }                                                                                        \
          const int nc = int(std::min<int64_t>(C, p1 - c0));                                       \
          _Pragma("GCC unroll 8") for (int i = 0; i < R; ++i) {                                    \
            if (r0 + i >= rows) break;                                                             \
            STORE(acc[i], out + (r0 + i) * cols + c0, nc, first);                                  \
          }                                                                                        \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

// AVX-512: 6 x 4 tile, 24 accumulators + 6 row vectors + 1 column vector of the 32 registers.
// The 4 sums of a row: lanes summed pairwise by unpack/shuffle, then the four 128-bit quarters.
__attribute__((target("avx512f,tune=generic"))) inline void store4_avx512(const __m512* a, float* o,
                                                                         int nc, bool first) {
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a[0], a[1]), _mm512_unpackhi_ps(a[0], a[1]));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a[2], a[3]), _mm512_unpackhi_ps(a[2], a[3]));
  const __m512 t = _mm512_add_ps(_mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm512_shuffle_ps(s01, s23, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(t),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  if (nc == 4) {
    _mm_storeu_ps(o, first ? q : _mm_add_ps(_mm_loadu_ps(o), q));
    return;
  }
  alignas(16) float v[4];
  _mm_store_ps(v, q);
  for (int j = 0; j < nc; ++j) o[j] = first ? v[j] : o[j] + v[j];
}

#define NASLID_MASK16(rem) __mmask16((1u << (rem)) - 1u)
#define NASLID_MLOAD16(p, m) _mm512_maskz_loadu_ps(m, p)
__attribute__((target("avx512f,tune=generic"))) void strip_avx512(const float* X, int64_t ld, int64_t rows,
                                                     int64_t cols, int64_t D, float* out) {
  constexpr int R = 6, C = 4, W = 16;
  constexpr int64_t P = 32 * C;
  using V = __m512;
  NASLID_SYM_KERNEL_BODY(_mm512_loadu_ps, NASLID_MLOAD16, _mm512_fmadd_ps, _mm512_setzero_ps(),
                         store4_avx512, NASLID_MASK16)
}
#undef NASLID_MASK16
#undef NASLID_MLOAD16

// AVX2: 3 x 4 tile, 12 accumulators + 3 row vectors + 1 column vector: all 16 registers of an
// AVX2-only CPU, no spill (the 4 x 3 tile needed 17: built with -march=haswell it took 1.10x the
// time of this one on the NB201 profile at N = 256, docs/ops_benchmarks.md).
alignas(32) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

__attribute__((target("avx2,fma,tune=generic"))) inline void store_avx2(const __m256* a, float* o,
                                                                        int nc, bool first) {
  for (int j = 0; j < nc; ++j) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a[j]), _mm256_extractf128_ps(a[j], 1));
    const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
    const float v = _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
    o[j] = first ? v : o[j] + v;
  }
}

#define NASLID_MASK8(rem) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - (rem)))
#define NASLID_MLOAD8(p, m) _mm256_maskload_ps(p, m)
__attribute__((target("avx2,fma,tune=generic"))) void strip_avx2(const float* X, int64_t ld, int64_t rows,
                                                    int64_t cols, int64_t D, float* out) {
  constexpr int R = 3, C = 4, W = 8;
  constexpr int64_t P = 32 * C;
  using V = __m256;
  NASLID_SYM_KERNEL_BODY(_mm256_loadu_ps, NASLID_MLOAD8, _mm256_fmadd_ps, _mm256_setzero_ps(),
                         store_avx2, NASLID_MASK8)
}
#undef NASLID_MASK8
#undef NASLID_MLOAD8

#undef NASLID_SYM_KERNEL_BODY

#endif  // NASLID_X86_KERNELS

}  // namespace

const char* sym_kernel_name(SymKernel k) {
  switch (k) {
    case SymKernel::kAmx:
      return "amx";
    case SymKernel::kAvx512:
      return "avx512";
    case SymKernel::kAvx2:
      return "avx2";
    default:
      return "blas";
  }
}

SymKernel sym_kernel_from_name(const char* name, SymKernel fallback) {
  for (SymKernel k : {SymKernel::kBlas, SymKernel::kAvx2, SymKernel::kAvx512, SymKernel::kAmx})
    if (name != nullptr && std::strcmp(name, sym_kernel_name(k)) == 0) return k;
  return fallback;
}

SymKernel sym_kernel_supported() {
#ifdef NASLID_X86_KERNELS
  static const SymKernel k = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return amx_usable() ? SymKernel::kAmx : SymKernel::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SymKernel::kAvx2;
    return SymKernel::kBlas;
  }();
  return k;
#else
  return SymKernel::kBlas;
#endif
}

bool sym_kernel_forced() {
  static const bool forced = [] {
    const char* env = std::getenv("NASLID_CPU_SYRK");
    return env != nullptr && sym_kernel_from_name(env, SymKernel::kBlas) ==
                                 sym_kernel_from_name(env, SymKernel::kAvx512);
  }();
  return forced;
}

SymKernel sym_kernel() {
  static const SymKernel k = [] {
    const SymKernel cpu = sym_kernel_supported();
    const std::string cap = at::get_cpu_capability();  // "AVX512" | "AVX2" | "DEFAULT" | ...
    // AMX has no capability level of its own in ATen: AVX512 allows it (ONEDNN_MAX_CPU_ISA caps it)
    const SymKernel torch_cap = cap == "AVX512" ? SymKernel::kAmx
                                : cap == "AVX2" ? SymKernel::kAvx2
                                                : SymKernel::kBlas;
    const SymKernel want = sym_kernel_from_name(std::getenv("NASLID_CPU_SYRK"), torch_cap);
    return static_cast<int>(want) <= static_cast<int>(cpu) ? want : cpu;
  }();
  return k;
}

SymKernel sym_kernel_for(int64_t D) {
  const SymKernel k = sym_kernel();
  if (k == SymKernel::kAvx512 || k == SymKernel::kAmx) return D >= 128 ? k : SymKernel::kBlas;
  if (k == SymKernel::kAvx2) return D >= 256 ? k : SymKernel::kBlas;
  return SymKernel::kBlas;
}

namespace {

// The upper part (c >= r) of strip_*'s output for features [0, D) of X, without the mirror.
void strip_upper(SymKernel kern, const float* X, int64_t ld, int64_t rows, int64_t cols, int64_t D,
                 float* out) {
#ifdef NASLID_X86_KERNELS
  if (kern == SymKernel::kAmx) {
    // values outside AMX's range (naslid/cpu/sym_gram_amx.h): the whole strip again with AVX-512
    if (!strip_amx(X, ld, rows, cols, D, out)) strip_avx512(X, ld, rows, cols, D, out);
  } else if (kern == SymKernel::kAvx512) {
    strip_avx512(X, ld, rows, cols, D, out);
  } else {
    strip_avx2(X, ld, rows, cols, D, out);
  }
#endif
}

void check_strip_args(SymKernel kern, int64_t rows, int64_t cols) {
  TORCH_CHECK(rows >= 0 && rows <= cols, "gram_strip_f32: rows (", rows, ") must be in [0, cols = ",
              cols, "]");
  TORCH_CHECK(kern != SymKernel::kBlas &&
                  static_cast<int>(kern) <= static_cast<int>(sym_kernel_supported()),
              "gram_strip_f32: kernel '", sym_kernel_name(kern), "' is not available on this CPU "
              "(best: '", sym_kernel_name(sym_kernel_supported()), "')");
}

void mirror_diagonal_block(int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 1; r < rows; ++r)  // the diagonal block's lower triangle, from its upper one
    for (int64_t c = 0; c < r; ++c) out[r * cols + c] = out[c * cols + r];
}

}  // namespace

void gram_strip_f32_split(SymKernel kern, const float* X, int64_t ld, int64_t rows, int64_t cols,
                          int64_t D, float* out) {
  check_strip_args(kern, rows, cols);
  // shares of at least 512 features, whole 16-float vectors
  const int64_t nth = std::min<int64_t>(at::get_num_threads(), std::max<int64_t>(1, D / 512));
  if (nth < 2 || rows == 0 || at::in_parallel_region()) {
    gram_strip_f32(kern, X, ld, rows, cols, D, out);
    return;
  }
  const int64_t share = (D / nth + 15) / 16 * 16;
  std::vector<std::vector<float>> part(nth - 1);
  at::parallel_for(0, nth, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t d0 = std::min(D, t * share), d1 = t + 1 == nth ? D : std::min(D, d0 + share);
      float* dst = out;
      if (t > 0) {
        part[t - 1].resize(rows * cols);
        dst = part[t - 1].data();
      }
      if (d1 > d0) {
        strip_upper(kern, X + d0, ld, rows, cols, d1 - d0, dst);
      } else {
        std::fill(dst, dst + rows * cols, 0.f);
      }
    }
  });
  for (const auto& p : part)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = r; c < cols; ++c) out[r * cols + c] += p[r * cols + c];
  mirror_diagonal_block(rows, cols, out);
}

void gram_strip_f32(SymKernel kern, const float* X, int64_t ld, int64_t rows, int64_t cols,
                    int64_t D, float* out) {
  check_strip_args(kern, rows, cols);
  if (rows == 0) return;
  if (D == 0) {
    std::fill(out, out + rows * cols, 0.f);
    return;
  }
  strip_upper(kern, X, ld, rows, cols, D, out);
  mirror_diagonal_block(rows, cols, out);
}

}  // namespace cpu
}  // namespace naslid
