// The measured choice of the symmetric path's float32 strip kernel (contract in
// csrc/include/naslid/cpu/sym_choice.h).
#include "naslid/cpu/sym_choice.h"

#include <ATen/Parallel.h>

#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <tuple>

#include "naslid/cpu/gram_knn.h"

namespace naslid {
namespace cpu {
namespace {

// Trial strips: at most this many rows/columns and features (one kKc chunk of the FMA kernels).
constexpr int64_t kTrialCols = 1024;
constexpr int64_t kTrialFeatures = 1024;
// The default kernel is kept unless another one is this much faster. 1: the fastest estimate
// wins. The trials favour the FMA kernels: at (4096, 512) on the Intel Xeon they put the BLAS strips
// 4-7 % ahead while the whole op ran 10 % faster with them (44 against 49 ms on 2 threads); with the
// earlier margin of 0.95 the FMA kernel was kept there in about half the processes
// (docs/ops_benchmarks.md).
constexpr double kSwitchMargin = 1.0;
// Timed rounds per candidate (after one warm-up run each); the best round counts.
constexpr int kRounds = 5;
// The AMX kernel is a candidate for sets up to this many rows (strips of at most this many
// columns). It packs every column of a strip for each strip, so on the large single sets its
// strips of 256 rows against up to N columns cost more than its products save: at (4096, 512) and
// (10000, 128) the whole op took 50.0 and 119.7 ms with it against 44.4 and 102.2 ms with the BLAS
// strips, while its one-strip trial on data in cache ranked it first (docs/ops_benchmarks.md).
constexpr int64_t kAmxMaxRows = 1536;

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

// One candidate's trial: its largest strip (at most kTrialCols wide) over the first `dt` features,
// timed on one thread, and the factor from the strip's time to the whole pass's. Every candidate
// runs single-threaded in the trial (the BLAS inside a parallel region, where it does not thread
// itself): on a loaded machine a threaded BLAS call's time is dominated by its threads waiting
// for each other (a 256 x 1024 x 512 sgemm: 1.6 ms on one thread, 30-120 ms on two, measured
// here), which says nothing about the pass, whose threads each run strips of their own
// (sym_parallel) or a share of the features (the split FMA strips). In mode par the pass's time
// is divided by the thread count.
struct Trial {
  SymKernel kern;
  int64_t rows, cols;
  double scale;  // pass time / strip time
};

Trial make_trial(SymKernel kern, int64_t N, bool par) {
  Trial t;
  t.kern = kern;
  t.cols = std::min(N, kTrialCols);
  t.rows = std::min(std::min(sym_block_rows(N, kern), N), t.cols);
  t.scale = pass_work(kern, N) / strip_work(kern, t.rows, t.cols) /
            (par ? double(std::max(1, at::get_num_threads())) : 1.0);
  return t;
}

void run_trial(const Trial& t, const float* X, int64_t D, int64_t dt, float* out) {
  if (t.kern == SymKernel::kBlas) {
    const at::Tensor Xw = at::from_blob(const_cast<float*>(X), {t.cols, dt}, {D, 1},
                                        at::TensorOptions().dtype(at::kFloat));
    at::Tensor tile = at::from_blob(out, {t.rows, t.cols}, at::TensorOptions().dtype(at::kFloat));
    gram_mm_cpu(tile, Xw.narrow(0, 0, t.rows), Xw);
  } else {
    gram_strip_f32(t.kern, X, D, t.rows, t.cols, dt, out);
  }
}

// Milliseconds of one single-threaded run_trial (inside a parallel region: on the first thread of
// a fresh one when called outside any).
double time_trial(const Trial& t, const float* X, int64_t D, int64_t dt, float* out) {
  double ms = 0;
  auto once = [&] {
    const auto t0 = Clock::now();
    run_trial(t, X, D, dt, out);
    ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  if (at::in_parallel_region() || at::get_num_threads() < 2) {
    once();
  } else {
    at::parallel_for(0, 2, 1, [&](int64_t b, int64_t) {
      if (b == 0) once();
    });
  }
  return ms;
}

using Key = std::tuple<int, bool, int, int>;  // threads, par, n_class, d_class

std::mutex g_mutex;
std::map<Key, SymKernel> g_table;
std::vector<SymChoice> g_log;

// ----- the optional on-disk cache (NASLID_CPU_SYRK_CACHE=<file>) -----
// One line per decision, "<key>\t<kernel>", the key naming the CPU model, torch's version (and so
// the BLAS it links), naslid's version, the thread count and the shape class; lines are appended as
// decisions are measured, and read once per process. The first line for a key wins.

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown CPU";
}

std::string cache_key(const Key& k) {
#define NASLID_CHOICE_STR2(x) #x
#define NASLID_CHOICE_STR(x) NASLID_CHOICE_STR2(x)
  static const std::string prefix = cpu_model() + "|torch " + TORCH_VERSION + "|naslid " +
#ifdef NASLID_VERSION_TOKEN
                                    NASLID_CHOICE_STR(NASLID_VERSION_TOKEN);
#else
                                    "?";
#endif
  std::ostringstream os;
  os << prefix << "|threads " << std::get<0>(k) << "|par " << std::get<1>(k) << "|n " << std::get<2>(k)
     << "|d " << std::get<3>(k);
  return os.str();
}

const char* cache_path() {
  const char* p = std::getenv("NASLID_CPU_SYRK_CACHE");
  return p != nullptr && *p != '\0' ? p : nullptr;
}

// The cached decisions (read once; called with g_mutex held).
const std::map<std::string, SymKernel>& disk_cache() {
  static std::map<std::string, SymKernel> cache;
  static bool loaded = false;
  if (loaded) return cache;
  loaded = true;
  if (cache_path() == nullptr) return cache;
  std::ifstream f(cache_path());
  std::string line;
  while (std::getline(f, line)) {
    const auto tab = line.rfind('\t');
    if (tab == std::string::npos) continue;
    const std::string name = line.substr(tab + 1);
    const SymKernel k = sym_kernel_from_name(name.c_str(), SymKernel::kBlas);
    if (std::string(sym_kernel_name(k)) != name) continue;  // not a kernel name: skip the line
    cache.emplace(line.substr(0, tab), k);
  }
  return cache;
}

void append_to_disk_cache(const Key& k, SymKernel kern) {
  if (cache_path() == nullptr) return;
  std::ofstream f(cache_path(), std::ios::app);
  if (f) f << cache_key(k) << '\t' << sym_kernel_name(kern) << '\n';
}

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
  const auto& disk = disk_cache();
  const auto hit = disk.find(cache_key(key));
  if (hit != disk.end() && static_cast<int>(hit->second) <= static_cast<int>(sym_kernel())) {
    c.why = "cached";
    c.kernel = hit->second;
    g_table.emplace(key, c.kernel);
    g_log.push_back(c);
    return c.kernel;
  }
  c.why = "measured";
  const bool amx_ok = N <= kAmxMaxRows;
  SymKernel dflt = sym_kernel_for(D);
  if (dflt == SymKernel::kAmx && !amx_ok) dflt = SymKernel::kAvx512;
  const int64_t dt = std::min(D, kTrialFeatures);
  std::vector<Trial> trials;
  for (int k = 0; k <= static_cast<int>(sym_kernel()); ++k)
    if (static_cast<SymKernel>(k) != SymKernel::kAmx || amx_ok)
      trials.push_back(make_trial(static_cast<SymKernel>(k), N, par));
  std::vector<float> out(size_t(std::min(N, kTrialCols) * std::min(N, kTrialCols)));
  for (const Trial& t : trials) time_trial(t, X, D, dt, out.data());  // warm-up
  // the candidates in turn, round after round (all see the same machine state); best round each
  std::vector<double> best_round(trials.size(), 1e300);
  for (int round = 0; round < kRounds; ++round)
    for (size_t i = 0; i < trials.size(); ++i)
      best_round[i] = std::min(best_round[i], time_trial(trials[i], X, D, dt, out.data()));
  double best_ms = 1e300, dflt_ms = 1e300;
  SymKernel best = dflt;
  for (size_t i = 0; i < trials.size(); ++i) {
    const double ms = best_round[i] * trials[i].scale;
    c.candidates.push_back(sym_kernel_name(trials[i].kern));
    c.est_ms.push_back(ms);
    if (trials[i].kern == dflt) dflt_ms = ms;
    if (ms < best_ms) {
      best_ms = ms;
      best = trials[i].kern;
    }
  }
  c.kernel = best_ms < kSwitchMargin * dflt_ms ? best : dflt;
  g_table.emplace(key, c.kernel);
  g_log.push_back(c);
  append_to_disk_cache(key, c.kernel);
  return c.kernel;
}

std::vector<SymChoice> sym_choices() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_log;
}

}  // namespace cpu
}  // namespace naslid
