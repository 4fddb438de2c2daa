// The AMX strip kernel (contract and numerics in csrc/include/naslid/cpu/sym_gram_amx.h).
//
// Per chunk of kc features (256 up to 128 columns, fewer for wider strips): the strip's columns
// (all its rows among them) are split into their three bfloat16 parts and packed twice, as tile
// rows (A: one row per sample, 32 features = 16 bfloat16 pairs) and transposed into AMX's
// pair-interleaved B layout (one row per feature pair, 16 samples), 16 x 16 words at a time with
// AVX-512 shuffles. Then every 32 x 32 block on or above
// the diagonal is 4 accumulator tiles (2 x 2 of 16 x 16), fed per 32 features by the six part
// products, ordered so that a loaded operand tile serves two or three of them (16 tile loads for 24
// TDPBF16PS). The packing of the next chunk is interleaved with the products of this one (one
// 16-sample x 32-feature group per 32-feature step), so the vector units split and transpose while
// the tile unit multiplies. Buffers are 64-byte aligned (tile rows that straddle cache lines halved
// the tile loads' rate) and their row strides are odd multiples of 64 bytes.
#include "naslid/cpu/sym_gram_amx.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define NASLID_AMX_KERNEL 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace naslid {
namespace cpu {

#ifdef NASLID_AMX_KERNEL
// GCC 12's AVX-512 intrinsics read an undefined __Y when inlined (GCC bug 105593, fixed in 13):
// false warnings, silenced for this file's kernels.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

// Features per chunk for a strip of npad (padded) columns: both chunks' packed parts, about
// 12 · kc · (rows + npad) bytes, stay within about 1 MB of a 2 MB L2. With 256 features whatever the
// width, the kernel ran 1.13x the AVX-512 one at 256 columns and 0.96x at 512 (parts of 1.5 and
// 2.7 MB); with this rule 1.6x and 1.4x. At least 64: with 32, the per-block stores of the
// accumulators outweighed the products (docs/ops_benchmarks.md).
int64_t chunk_features(int64_t npad) {
  return std::clamp<int64_t>(32768 / npad / 32 * 32, 64, 256);
}

struct TileConfig {
  uint8_t palette_id = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

#define NASLID_AMX_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,amx-tile,amx-bf16")))

// 16 x 16 transpose of 32-bit words: r[i] is row i; row j of the result goes to dst + j * ldd.
NASLID_AMX_TARGET inline void transpose16_store(__m512i r[16], uint32_t* dst, int64_t ldd) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // r[4i + c], 128-bit lane L: column 4L + c of rows 4i .. 4i + 3
  for (int c = 0; c < 4; ++c) {
    const __m512i a = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x88);
    const __m512i b = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xdd);
    const __m512i e = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x88);
    const __m512i f = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xdd);
    _mm512_store_si512(dst + c * ldd, _mm512_shuffle_i32x4(a, e, 0x88));
    _mm512_store_si512(dst + (4 + c) * ldd, _mm512_shuffle_i32x4(b, f, 0x88));
    _mm512_store_si512(dst + (8 + c) * ldd, _mm512_shuffle_i32x4(a, e, 0xdd));
    _mm512_store_si512(dst + (12 + c) * ldd, _mm512_shuffle_i32x4(b, f, 0xdd));
  }
}

// The packed parts of one chunk of kc features: A[p] (the strip's rows padded to 32, la words each),
// B[p] (kc / 2 rows of lb words: the columns padded to 32).
struct Packed {
  uint32_t* a;
  uint32_t* b;
  int64_t asz, bsz, la, lb, kc, arows;
};

// Lanes of v that are not 0 and not of magnitude in [2^-40, 2^40] (NaN and infinities included).
NASLID_AMX_TARGET inline __mmask16 out_of_range(__m512 v) {
  const __m512 a = _mm512_abs_ps(v);
  const __mmask16 in = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0x1p40f), _CMP_LE_OQ) &
                       (_mm512_cmp_ps_mask(a, _mm512_set1_ps(0x1p-40f), _CMP_GE_OQ) |
                        _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_EQ_OQ));
  return __mmask16(~in);
}

// Splits and packs samples [r0, r0 + 16) x features [k, k + 32) of a chunk with kl features of n
// samples (rows past n and features past kl are zeros), and with `prefetch` asks for the same
// features of the next chunk (rows 4 KB or more apart defeat the hardware prefetchers; the layers of
// a profile come from memory). Returns false if a value is out of range.
NASLID_AMX_TARGET inline bool pack_group(const float* X, int64_t ld, int64_t n, int64_t kl,
                                         const Packed& pk, int64_t r0, int64_t k, bool prefetch) {
  const __m512 keep_hi = _mm512_castsi512_ps(_mm512_set1_epi32(int(0xFFFF0000u)));
  __mmask16 bad = 0;
  __m512i w[3][16];
  const int64_t na = std::clamp<int64_t>(kl - k, 0, 16), nb = std::clamp<int64_t>(kl - k - 16, 0, 16);
  for (int i = 0; i < 16; ++i) {
    const int64_t r = r0 + i;
    __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
    if (r < n) {
      const float* x = X + r * ld + k;
      if (prefetch) {  // the next chunk's features of this row, into L1 (faster than L2 here)
        _mm_prefetch(reinterpret_cast<const char*>(x + pk.kc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(x + pk.kc + 16), _MM_HINT_T0);
      }
      if (nb == 16) {
        v0 = _mm512_loadu_ps(x);
        v1 = _mm512_loadu_ps(x + 16);
      } else {
        v0 = _mm512_maskz_loadu_ps(__mmask16((1u << na) - 1u), x);
        v1 = _mm512_maskz_loadu_ps(__mmask16((1u << nb) - 1u), x + 16);
      }
    }
    bad |= out_of_range(v0) | out_of_range(v1);
    // x = hi + mid + lo exactly; each part is exact in bfloat16, so the conversions do not round
    const __m512 h0 = _mm512_and_ps(v0, keep_hi), h1 = _mm512_and_ps(v1, keep_hi);
    const __m512 s0 = _mm512_sub_ps(v0, h0), s1 = _mm512_sub_ps(v1, h1);
    const __m512 m0 = _mm512_and_ps(s0, keep_hi), m1 = _mm512_and_ps(s1, keep_hi);
    w[0][i] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(h1, h0));
    w[1][i] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(m1, m0));
    w[2][i] = reinterpret_cast<__m512i>(
        _mm512_cvtne2ps_pbh(_mm512_sub_ps(s1, m1), _mm512_sub_ps(s0, m0)));
    if (r < pk.arows) {  // tile rows: only the strip's rows are ever the left operand
      uint32_t* arow = pk.a + r * pk.la + k / 2;
      for (int p = 0; p < 3; ++p) _mm512_store_si512(arow + p * pk.asz, w[p][i]);
    }
  }
  for (int p = 0; p < 3; ++p) transpose16_store(w[p], pk.b + p * pk.bsz + (k / 2) * pk.lb + r0, pk.lb);
  return bad == 0;
}

// pack_group for group g (16 samples x 32 features, row blocks outer) of chunk c of the strip's
// n columns of X (D features, chunks of pk.kc), prefetching chunk c + 1 where there is one.
NASLID_AMX_TARGET inline bool pack_chunk_group(const float* X, int64_t ld, int64_t n, int64_t D,
                                               const Packed& pk, int64_t c, int64_t g) {
  const int64_t k0 = c * pk.kc, gpr = pk.kc / 32;
  return pack_group(X + k0, ld, n, std::min(pk.kc, D - k0), pk, g / gpr * 16, g % gpr * 32,
                    D - k0 > pk.kc);
}

}  // namespace

bool amx_usable() {
  static const bool usable = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
    if (!amx_bf16 || !amx_tile || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
      return false;
    unsigned a1, b1, c1, d1;  // AVX512_BF16: CPUID.(7, 1):EAX bit 5
    if (!__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) || !((a1 >> 5) & 1u)) return false;
    if (const char* isa = std::getenv("ONEDNN_MAX_CPU_ISA")) {
      std::string s(isa);
      for (char& ch : s) ch = char(std::toupper(static_cast<unsigned char>(ch)));
      if (!s.empty() && s != "ALL" && s.find("AMX") == std::string::npos) return false;
    }
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return usable;
}

NASLID_AMX_TARGET bool strip_amx(const float* X, int64_t ld, int64_t rows, int64_t cols, int64_t D,
                                 float* out) {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.rows[i] = 16;
    cfg.colsb[i] = 64;
  }
  _tile_loadconfig(&cfg);
  const int64_t npad = (cols + 31) / 32 * 32, arows = (rows + 31) / 32 * 32, lb = npad + 16;
  const int64_t kc = chunk_features(npad), la = kc / 2 + 16, gpr = kc / 32;  // strides: odd x 64 B
  const int64_t asz = arows * la, bsz = kc / 2 * lb, bufsz = 3 * (asz + bsz);
  thread_local std::vector<uint32_t> storage;
  storage.resize(size_t(2 * bufsz + 16));
  uint32_t* base = reinterpret_cast<uint32_t*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) &
                                               ~uintptr_t(63));
  auto packed = [&](int64_t chunk) {
    uint32_t* a = base + (chunk & 1) * bufsz;
    return Packed{a, a + 3 * asz, asz, bsz, la, lb, kc, arows};
  };
  const int64_t groups = npad / 16 * gpr, nch = (D + kc - 1) / kc;
  const int64_t sa = la * 4, sb = lb * 4;
  alignas(64) float acc[4][256];
  bool ok = true;
  for (int64_t g = 0; g < groups; ++g) ok &= pack_chunk_group(X, ld, cols, D, packed(0), 0, g);
  for (int64_t c = 0; c < nch && ok; ++c) {
    const int64_t k0 = c * kc, kl = std::min(kc, D - k0), qn = (kl + 31) / 32;
    const Packed cur = packed(c), nxt = packed(c + 1);
    int64_t g = c + 1 < nch ? 0 : groups;  // groups of the next chunk packed so far
    for (int64_t i0 = 0; i0 < rows; i0 += 32)
      for (int64_t j0 = i0; j0 < cols; j0 += 32) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        const uint32_t* ah = cur.a + i0 * la;
        const uint32_t* bh = cur.b + j0;
        for (int64_t q = 0; q < qn; ++q, ah += 16, bh += 16 * lb) {
          const uint32_t *am = ah + asz, *al = ah + 2 * asz, *bm = bh + bsz, *bl = bh + 2 * bsz;
#define NASLID_AMX_DP4           \
  _tile_dpbf16ps(0, 4, 6);      \
  _tile_dpbf16ps(1, 4, 7);      \
  _tile_dpbf16ps(2, 5, 6);      \
  _tile_dpbf16ps(3, 5, 7);
          _tile_loadd(4, ah, sa);  // hi x (hi, mid, lo)
          _tile_loadd(5, ah + 16 * la, sa);
          _tile_loadd(6, bh, sb);
          _tile_loadd(7, bh + 16, sb);
          NASLID_AMX_DP4
          _tile_loadd(6, bm, sb);
          _tile_loadd(7, bm + 16, sb);
          NASLID_AMX_DP4
          _tile_loadd(6, bl, sb);
          _tile_loadd(7, bl + 16, sb);
          NASLID_AMX_DP4
          _tile_loadd(4, al, sa);  // lo x hi
          _tile_loadd(5, al + 16 * la, sa);
          _tile_loadd(6, bh, sb);
          _tile_loadd(7, bh + 16, sb);
          NASLID_AMX_DP4
          _tile_loadd(4, am, sa);  // mid x (hi, mid)
          _tile_loadd(5, am + 16 * la, sa);
          NASLID_AMX_DP4
          _tile_loadd(6, bm, sb);
          _tile_loadd(7, bm + 16, sb);
          NASLID_AMX_DP4
#undef NASLID_AMX_DP4
          if (g < groups) {  // a group of the next chunk while the tiles multiply
            ok &= pack_chunk_group(X, ld, cols, D, nxt, c + 1, g);
            ++g;
          }
        }
        _tile_stored(0, acc[0], 64);
        _tile_stored(1, acc[1], 64);
        _tile_stored(2, acc[2], 64);
        _tile_stored(3, acc[3], 64);
        for (int t = 0; t < 4; ++t) {
          const int64_t ri = i0 + (t >> 1) * 16, cj = j0 + (t & 1) * 16;
          if (ri >= rows || cj >= cols || cj + 16 <= ri) continue;  // outside, or below the diagonal
          const int nr = int(std::min<int64_t>(16, rows - ri));
          const __mmask16 cm = __mmask16(cols - cj >= 16 ? 0xFFFFu : (1u << (cols - cj)) - 1u);
          for (int i = 0; i < nr; ++i) {
            float* o = out + (ri + i) * cols + cj;
            const __m512 v = _mm512_load_ps(acc[t] + i * 16);
            _mm512_mask_storeu_ps(o, cm, c == 0 ? v : _mm512_add_ps(_mm512_maskz_loadu_ps(cm, o), v));
          }
        }
      }
    for (; g < groups; ++g)
      ok &= pack_chunk_group(X, ld, cols, D, nxt, c + 1, g);
  }
  _tile_release();
  return ok;
}

#pragma GCC diagnostic pop

#else  // no AMX kernel in this build

bool amx_usable() { return false; }

bool strip_amx(const float*, int64_t, int64_t, int64_t, int64_t, float*) { return false; }

#endif

}  // namespace cpu
}  // namespace naslid
