// The AMX strip kernel of the symmetric float32 Gram path (Intel Sapphire Rapids and later), for
// csrc/cpu/sym_gram.cpp. Contract of the strip: naslid/cpu/sym_gram.h (gram_strip_f32).
//
// Float32 precision from bfloat16 tiles: every x is split exactly into three bfloat16 parts,
// x = hi + mid + lo (hi = x with its low 16 bits cleared, mid the same of x - hi, lo = x - hi - mid,
// which has at most 8 significant bits; |mid| < 2^-7 |x|, |lo| < 2^-14 |x|), and <x, y> is the sum
// of six of the nine partial products (hi·hi, hi·mid, mid·hi, hi·lo, lo·hi, mid·mid). A product of
// two bfloat16 numbers is exact in float32, and TDPBF16PS accumulates in float32 (round to nearest
// even), so the error is float32 accumulation error (a chunk of kc <= 256 features is one chain of
// 6 · kc additions per output, chunks added in float32) plus the three dropped products (mid·lo,
// lo·mid, lo·lo), less than 2^-20 · sum |x_d y_d| together: at most 16 units of float32 rounding of
// |x| |y|, against the FMA kernels' sqrt(D)-sized accumulation error (8.3 units measured at D = 1,
// 4-6 at D = 1000-16384). Distances that close to a tie are recomputed exactly by the k-NN engine
// (its tie tolerance is 2^-17 of the norms). Denormal bfloat16 parts and products are flushed to zero by AMX,
// so every value must be 0 or have magnitude in [2^-40, 2^40] (then every kept product is normal);
// the kernel checks this while it splits the values and gives up on a strip that has any other
// value (NaN, infinities, huge or tiny numbers), which the caller then computes with AVX-512.
#pragma once

#include <cstdint>

namespace naslid {
namespace cpu {

// True when this CPU has AMX-TILE and AMX-BF16, the OS lets this process use the tile state
// (arch_prctl(ARCH_REQ_XCOMP_PERM), asked once), and ONEDNN_MAX_CPU_ISA, when set, names an AMX
// level (so the emulated "AVX-512 without AMX" setting, ONEDNN_MAX_CPU_ISA=AVX512_CORE, turns it
// off as it does for oneDNN). Off x86-64 or without compiler support: false.
bool amx_usable();

// The tiles on or above the diagonal of X[0:rows] · X[0:cols]ᵀ ((rows, cols) row-major, rows <= cols)
// into out, in 32 x 32 blocks (entries below the diagonal inside a diagonal block are written too
// and are overwritten by the caller's mirror). Requires amx_usable(). Returns false, with out
// partly written, when a value of X[0:cols, 0:D] is outside {0} ∪ ±[2^-40, 2^40].
bool strip_amx(const float* X, int64_t ld, int64_t rows, int64_t cols, int64_t D, float* out);

}  // namespace cpu
}  // namespace naslid
