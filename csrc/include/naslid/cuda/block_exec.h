// Execution model shared by the CUDA kernels and the CPU grid emulator.
//
// A kernel body is written once, as host+device code:
//   * *phase functions* `f(params, block, tid, smem)`: what ONE thread does between two barriers;
//   * a *block driver* `template <class Exec> void body(Exec& ex, ...)` that sequences the phases
//     with `ex.each([&](int tid) { phase(..., tid, ...); })`. The driver's own control flow must be
//     uniform across the block (it may depend on params and the block index, never on a thread).
//
// `ex.each(f)` means "every thread of the block runs f(tid), then the block waits at a barrier":
//   * on the GPU (DeviceBlock) it is `f(threadIdx.x); __syncthreads();`;
//   * in the emulator (EmuBlock, grid_emulator.h) it is a loop over all tids, in a configurable
//     order (forward, reverse, shuffled), so that a phase reading what another thread writes in the
//     same phase (a missing barrier) changes the result and is caught by the tests.
// Values that must survive a barrier live in the SmemView (shared memory on the GPU, a poisoned
// buffer per block in the emulator), never in locals: that is what makes the emulation faithful.
// No warp shuffles are used: every exchange between threads goes through the SmemView.
#pragma once

#include <cstddef>
#include <cstdint>

#include "naslid/lid_math.h"

namespace naslid {
namespace cuda {

// Byte view of one block's scratch: dynamic shared memory on the GPU, or a per-block slice of a
// global workspace when the scratch is too large for shared memory, or a host buffer in the
// emulator. Offsets come from a layout computed on the host (see knn_select.h).
struct SmemView {
  unsigned char* base;
  std::size_t bytes;

  template <typename T>
  NASLID_HD T* at(std::size_t offset) const {
    return reinterpret_cast<T*>(base + offset);
  }
};

// Round `n` up to a multiple of 16 bytes (alignment of every array in a layout).
NASLID_HD std::size_t align16(std::size_t n) { return (n + 15) & ~static_cast<std::size_t>(15); }

#if defined(__CUDACC__)
// The real block: one CUDA thread block. Only used from __global__ functions.
struct DeviceBlock {
  template <typename F>
  __device__ __forceinline__ void each(F&& f) const {
    f(static_cast<int>(threadIdx.x));
    __syncthreads();
  }
  __device__ __forceinline__ int threads() const { return static_cast<int>(blockDim.x); }
};
#endif

}  // namespace cuda
}  // namespace naslid
