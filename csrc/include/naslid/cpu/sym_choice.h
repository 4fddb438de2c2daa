// Which kernel computes the float32 strips of the symmetric k-NN path, chosen by measurement.
//
// The fastest strip kernel depends on the CPU more than on its instruction sets: the FMA
// micro-kernels (naslid/cpu/sym_gram.h) were tuned on AMD Zen 4 and lose to the BLAS strips on
// Intel Xeons from N = 512 up. So, as oneDNN's and cuDNN's benchmark modes do, at the first use of a
// shape class in a process every candidate (the BLAS strips and each FMA or AMX kernel the CPU and
// torch's CPU capability allow; AMX only for N <= 1536, sym_choice.cpp) is timed, single-threaded, on the actual input (its largest strip, at most
// 1024 rows and
// columns, its first min(D, 1024) features; the candidates in turn for five rounds, the best round
// of each: a few milliseconds), the whole pass's time is extrapolated from each candidate's own
// blocking, and the fastest is kept for the class.
//
// Shape class: (float32, torch's thread count, par (one set on all threads) or not, ceil(log2 N),
// ceil(log2 D) with every D >= 1024 in one class). The default (capability) kernel is kept unless
// another is at least 5 % faster, so that a class on the edge does not flip between runs.
//
// NASLID_CPU_SYRK_CACHE = <file>: decisions are also appended to that file, keyed by CPU model,
// torch's version, naslid's version, thread count and shape class, and read from it by later
// processes (why == "cached"): the same kernel, so bitwise-equal results, across processes.
//
// NASLID_CPU_SYRK = blas | avx2 | avx512 | amx forces one kernel (no measurement; the FMA and AMX
// kernels keep their fixed small-D rule, sym_kernel_for); NASLID_CPU_SYRK = auto (or unset) measures. Results do
// not depend on the choice beyond float32 rounding (the engine's exact refinement decides close
// pairs): tests/test_sym_gram.py runs the float64 oracle tests under each kernel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "naslid/cpu/sym_gram.h"

namespace naslid {
namespace cpu {

// One decision of choose_sym_kernel, for naslid_ext.build_info().
struct SymChoice {
  int threads = 1;          // torch's thread count when chosen
  bool par = false;         // one set on all threads (else: one set per thread)
  int n_class = 0;          // ceil(log2 N)
  int d_class = 0;          // ceil(log2 D), 10 for every D >= 1024
  int64_t n = 0, d = 0;     // the input that was measured
  SymKernel kernel = SymKernel::kBlas;
  std::string why;          // "measured" | "cached" (NASLID_CPU_SYRK_CACHE)
  std::vector<std::string> candidates;  // kernel names, measured order
  std::vector<double> est_ms;           // estimated pass time per candidate (first min(D, 1024) features)
};

// How the kernel is chosen in this process: "forced" (NASLID_CPU_SYRK names a kernel),
// "capability" (only the BLAS is available: no AVX2+FMA, or torch's capability DEFAULT) or
// "measured".
std::string sym_choice_mode();

// The strip kernel for the symmetric pass over X (N, D) row-major (row stride D) in mode `par`,
// measuring the candidates on X at the class's first use. Thread-safe (called from inside
// parallel regions: one set per thread).
SymKernel choose_sym_kernel(const float* X, int64_t N, int64_t D, bool par);

// Every decision made in this process so far, in the order made.
std::vector<SymChoice> sym_choices();

}  // namespace cpu
}  // namespace naslid
