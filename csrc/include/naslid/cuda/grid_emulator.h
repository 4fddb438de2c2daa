// CPU grid emulator: runs the CUDA block drivers of knn_select.h over a whole grid, every block,
// every thread, phase by phase. Host-only (never included by .cu files).
//
// Faithfulness checks built in:
//  * each block's scratch (the SmemView) starts poisoned with 0xFF bytes (NaN for floats, -1 for
//    ints), so a read of something no thread wrote in an earlier phase shows up in the results;
//  * threads of a phase run in a configurable order (forward / reverse / shuffled per phase), so a
//    phase reading what another thread of the same phase writes (a missing __syncthreads) makes
//    the output depend on the order, which the tests compare bit for bit.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "naslid/cuda/knn_pipeline.h"
#include "naslid/cuda/knn_select.h"

namespace naslid {
namespace cuda {

enum class ThreadOrder : int { kForward = 0, kReverse = 1, kShuffled = 2 };

// One emulated thread block: `each(f)` runs f(tid) for every thread, then "synchronises" (returns).
class EmuBlock {
 public:
  EmuBlock(int threads, ThreadOrder order, uint64_t seed)
      : order_(order), rng_(seed), tids_(static_cast<std::size_t>(threads)) {
    std::iota(tids_.begin(), tids_.end(), 0);
    if (order_ == ThreadOrder::kReverse) std::reverse(tids_.begin(), tids_.end());
  }
  template <typename F>
  void each(F&& f) {
    if (order_ == ThreadOrder::kShuffled) std::shuffle(tids_.begin(), tids_.end(), rng_);
    for (int t : tids_) f(t);
    ++phases_;
  }
  int threads() const { return static_cast<int>(tids_.size()); }
  int64_t phases() const { return phases_; }

 private:
  ThreadOrder order_;
  std::mt19937_64 rng_;
  std::vector<int> tids_;
  int64_t phases_ = 0;
};

// Launcher for the shared pipeline (knn_pipeline.h) that emulates each launch on the CPU.
struct EmuLauncher {
  ThreadOrder order = ThreadOrder::kForward;
  uint64_t seed = 0;
  // Statistics of the last op (for tests: prove several blocks / chunks / phases ran).
  int64_t launches = 0, blocks = 0, max_phases_per_block = 0;

  template <typename scalar_t>
  void knn(const KnnPlan& pl, int64_t grid_x, int64_t grid_y, const KnnParams<scalar_t>& p,
           unsigned char* /*global_scratch: the emulator always gives each block its own buffer*/) {
    ++launches;
    const int64_t nblocks = grid_x * grid_y;
    blocks += nblocks;
    std::vector<int64_t> phases(static_cast<std::size_t>(nblocks), 0);
    at::parallel_for(0, nblocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<unsigned char> buf(pl.lay.bytes);
      for (int64_t blk = begin; blk < end; ++blk) {
        std::fill(buf.begin(), buf.end(), static_cast<unsigned char>(0xFF));
        EmuBlock ex(pl.threads, order, seed * 1000003ull + static_cast<uint64_t>(blk));
        const SmemView sm{buf.data(), buf.size()};
        knn_block(ex, p, blk % grid_x, blk / grid_x, sm);
        phases[static_cast<std::size_t>(blk)] = ex.phases();
      }
    });
    for (int64_t v : phases) max_phases_per_block = std::max(max_phases_per_block, v);
  }

  template <typename scalar_t>
  void lid_mle(int64_t nblocks, int threads, const LidMleParams<scalar_t>& p) {
    ++launches;
    blocks += nblocks;
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      EmuBlock ex(threads, order, seed * 1000003ull + static_cast<uint64_t>(blk));
      lid_mle_block(ex, p, blk);
      max_phases_per_block = std::max(max_phases_per_block, ex.phases());
    }
  }
};

}  // namespace cuda
}  // namespace naslid
