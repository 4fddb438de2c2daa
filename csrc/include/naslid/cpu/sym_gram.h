// Strips of a symmetric float32 Gram matrix by hand-written FMA micro-kernels (AVX2 and AVX-512),
// for the symmetric k-NN path of csrc/include/naslid/cpu/gram_knn.h.
//
// Why not the BLAS: the symmetric path needs the strips X_b · X_{b0:}ᵀ of a small set (N = 128 is
// NAS-LID's batch) with a large feature dimension. As separate sgemm calls they are 62.5 % of the
// full product's FLOPs but take ~80 % of its time (each call repacks the later rows), and torch's
// BLAS exports no SYRK. The kernels here compute dot products of rows directly from the row-major
// data, R rows by C columns at a time with R·C vector accumulators, over chunks of kKc features
// (the strip's chunk stays in L2), and only the micro-tiles on or above the diagonal. They run at
// about the full sgemm's rate, so the strip costs about its FLOP share (docs/ops_benchmarks.md).
//
// Numerics: float32 products with FMA, per-lane sums over a chunk, one float sum per chunk: the same
// error class as the BLAS's blocked sums (the k-NN engine's refinement and tie handling are
// unchanged). Whatever torch's matmul precision flags say, never bf16/TF32.
//
// A fourth kernel, "amx", computes the same strips on Intel AMX tiles from exact three-part
// bfloat16 splits of the float32 values (float32-class error; naslid/cpu/sym_gram_amx.h), where the
// CPU and the OS allow it.
//
// Kernel choice: NASLID_CPU_SYRK = blas | avx2 | avx512 | amx forces one (a kernel the CPU lacks
// falls back to the best it has); otherwise the fastest of the BLAS and the kernels up to torch's
// CPU capability (at::get_cpu_capability(), so ATEN_CPU_CAPABILITY=avx2 caps it at the AVX2 kernel
// as it does for ATen's own kernels; AVX512 allows AMX, which ONEDNN_MAX_CPU_ISA without an AMX
// level turns off) is measured per shape class (naslid/cpu/sym_choice.h). Off x86-64, and for
// float64, the BLAS strips.
#pragma once

#include <cstdint>
#include <string>

namespace naslid {
namespace cpu {

enum class SymKernel { kBlas = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };

// "blas" | "avx2" | "avx512" | "amx".
const char* sym_kernel_name(SymKernel k);

// The kernel named "blas" | "avx2" | "avx512" | "amx" (sym_kernel_name's inverse); `fallback` for any
// other name or nullptr.
SymKernel sym_kernel_from_name(const char* name, SymKernel fallback);

// The best kernel this CPU can run (kBlas off x86-64 or without AVX2+FMA; kAmx where
// amx_usable(), naslid/cpu/sym_gram_amx.h).
SymKernel sym_kernel_supported();

// The best FMA kernel the symmetric path may use: the one NASLID_CPU_SYRK forces, else torch's CPU
// capability as far as the CPU goes (read once). Which kernel runs on a given input is
// choose_sym_kernel's decision (naslid/cpu/sym_choice.h): forced, or measured among the BLAS and
// the FMA kernels up to this one.
SymKernel sym_kernel();

// True when NASLID_CPU_SYRK names a kernel ("blas" | "avx2" | "avx512" | "amx"); unset or "auto":
// measured.
bool sym_kernel_forced();

// The kernel for float32 strips with D features when forced (and the default the measurement
// must beat): sym_kernel(), or kBlas where the BLAS is as fast (few features: the per-tile
// horizontal sums outweigh the short dot products; crossover D = 128 for AVX-512, 256 for AVX2 on
// AMD Zen 4, docs/ops_benchmarks.md).
SymKernel sym_kernel_for(int64_t D);

// Strip of the Gram matrix of X (row-major, row stride ld >= D, 64-bit sizes):
//   out[r * cols + c] = <X[r], X[c]>  for 0 <= r < rows, 0 <= c < cols (rows <= cols),
// i.e. X[0:rows] · X[0:cols]ᵀ, (rows, cols) row-major. The diagonal block (c < rows) is computed
// once and mirrored, so it is exactly symmetric. `kern` must not be kBlas and must be supported
// (kAmx: a strip with values outside AMX's range is computed by the AVX-512 kernel instead).
void gram_strip_f32(SymKernel kern, const float* X, int64_t ld, int64_t rows, int64_t cols,
                    int64_t D, float* out);

// gram_strip_f32 with the features split among torch's threads (each thread's sums of its share
// go to a buffer of its own, added at the end): one set's strips on all cores with balanced work,
// for a single small set with many features (naslid_ext.lid on one layer). Call from outside a
// parallel region; with one thread it is gram_strip_f32.
void gram_strip_f32_split(SymKernel kern, const float* X, int64_t ld, int64_t rows, int64_t cols,
                          int64_t D, float* out);

}  // namespace cpu
}  // namespace naslid
