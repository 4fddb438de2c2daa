// The measured choice of the symmetric path's float32 strip kernel (contract in
// csrc/include/naslid/cpu/sym_choice.h).
#include "naslid/cpu/sym_choice.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "naslid/cpu/gram_knn.h"

namespace naslid {
namespace cpu {
namespace {

// Trial strips: at most this many rows/columns and features (one kKc chunk of the FMA kernels).
constexpr int64_t kTrialCols = 1024;
constexpr int64_t kTrialFeatures = 1024;
// The default kernel is kept unless another one is this much faster.
constexpr double kSwitchMargin = 0.95;

int ceil_log2(int64_t v) {
  int e = 0;
  while ((int64_t(1) << e) < v) ++e;
  return e;
}

// Multiply-adds per feature a kernel spends on a strip (rows, cols): the BLAS computes the whole
// strip, the FMA kernels only the micro-tiles on or above the diagonal (about the upper part).
double strip_work(SymKernel kern, int64_t rows, int64_t cols) {
  const double full = double(rows) * double(cols);
  return kern == SymKernel::kBlas ? full : full - 0.5 * double(rows) * double(rows - 1);
}

// The work of a whole symmetric pass over N rows with `kern`'s blocking (gram_knn.h).
double pass_work(SymKernel kern, int64_t N) {
  const int64_t bs = std::min(sym_block_rows(N, kern), N);
  double w = 0;
  for (int64_t b0 = 0; b0 < N; b0 += bs) w += strip_work(kern, std::min(bs, N - b0), N - b0);
  return w;
}

using Clock = std::chrono::steady_clock;

// Estimated time (ms) of the whole pass over X (N rows, first `dt` features) with `kern` in mode
// `par`: the best of three timed runs (after one warm-up) of the candidate's largest strip, at most
// kTrialCols wide, scaled by pass_work / strip_work. par: the FMA kernels split the features among
// the threads when N <= 1536 (as self_knn does), otherwise every thread runs a strip of its own
// (sym_parallel); the time per strip is then the wall time over the thread count.
double trial_ms(SymKernel kern, const float* X, int64_t N, int64_t D, int64_t dt, bool par) {
  const int64_t cols = std::min(N, kTrialCols);
  const int64_t rows = std::min(std::min(sym_block_rows(N, kern), N), cols);
  const bool split = par && kern != SymKernel::kBlas && N <= 1536;
  const int64_t copies =
      par && !split ? std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), 8)) : 1;
  const at::Tensor Xw = at::from_blob(const_cast<float*>(X), {cols, dt}, {D, 1},
                                      at::TensorOptions().dtype(at::kFloat));
  at::Tensor out = at::empty({copies, rows, cols}, at::TensorOptions().dtype(at::kFloat));
  auto one = [&](int64_t c) {
    at::Tensor tile = out.select(0, c);
    if (kern == SymKernel::kBlas) {
      gram_mm_cpu(tile, Xw.narrow(0, 0, rows), Xw);
    } else if (split) {
      gram_strip_f32_split(kern, X, D, rows, cols, dt, tile.data_ptr<float>());
    } else {
      gram_strip_f32(kern, X, D, rows, cols, dt, tile.data_ptr<float>());
    }
  };
  auto run = [&] {
    if (copies > 1) {
      at::parallel_for(0, copies, 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) one(c);
      });
    } else {
      one(0);
    }
  };
  run();  // warm-up (first touch of the output, the BLAS's buffers)
  double best = 1e300;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    run();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best / double(copies) * pass_work(kern, N) / strip_work(kern, rows, cols);
}

using Key = std::tuple<int, bool, int, int>;  // threads, par, n_class, d_class

std::mutex g_mutex;
std::map<Key, SymKernel> g_table;
std::vector<SymChoice> g_log;

}  // namespace

std::string sym_choice_mode() {
  if (sym_kernel_forced()) return "forced";
  return sym_kernel() == SymKernel::kBlas ? "capability" : "measured";
}

SymKernel choose_sym_kernel(const float* X, int64_t N, int64_t D, bool par) {
  if (sym_kernel_forced() || sym_kernel() == SymKernel::kBlas) return sym_kernel_for(D);
  const int threads = at::get_num_threads();
  const int n_class = ceil_log2(N), d_class = std::min(ceil_log2(D), ceil_log2(kTrialFeatures));
  const Key key{threads, par, n_class, d_class};
  std::lock_guard<std::mutex> lock(g_mutex);  // held while measuring: one trial per class
  const auto it = g_table.find(key);
  if (it != g_table.end()) return it->second;
  SymChoice c;
  c.threads = threads;
  c.par = par;
  c.n_class = n_class;
  c.d_class = d_class;
  c.n = N;
  c.d = D;
  c.why = "measured";
  const SymKernel dflt = sym_kernel_for(D);
  const int64_t dt = std::min(D, kTrialFeatures);
  double best_ms = 1e300, dflt_ms = 1e300;
  SymKernel best = dflt;
  for (int k = 0; k <= static_cast<int>(sym_kernel()); ++k) {
    const SymKernel kern = static_cast<SymKernel>(k);
    const double ms = trial_ms(kern, X, N, D, dt, par);
    c.candidates.push_back(sym_kernel_name(kern));
    c.est_ms.push_back(ms);
    if (kern == dflt) dflt_ms = ms;
    if (ms < best_ms) {
      best_ms = ms;
      best = kern;
    }
  }
  c.kernel = best_ms < kSwitchMargin * dflt_ms ? best : dflt;
  g_table.emplace(key, c.kernel);
  g_log.push_back(c);
  return c.kernel;
}

std::vector<SymChoice> sym_choices() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_log;
}

}  // namespace cpu
}  // namespace naslid
