// CUDA kernels of the `naslid` ops (knn, knn_lid, lid_profile, lid_mle).
//
// The kernel bodies are the host+device block drivers of naslid/cuda/knn_select.h, the host side
// (centring, cuBLAS Gram chunks via at::bmm, launch plan) is naslid/cuda/knn_pipeline.h: the CPU
// grid emulator (csrc/emu/grid_emulator.cpp) runs the very same code, which is how the tests
// execute these kernels without a GPU. This file only adds the launches and the registrations.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <string>
#include <tuple>

#include "naslid/cuda/knn_pipeline.h"
#include "naslid/cuda/knn_select.h"

namespace naslid {
namespace cuda {
namespace {

constexpr int kMaxKnnThreads = 128;  // plan_knn never picks more (with 256, sm_90 spilled 4 bytes)
constexpr int kLidMleThreads = 256;

// One block per query row (blockIdx.x: row of the chunk, blockIdx.y: batch of the chunk).
// Scratch: dynamic shared memory, or this block's slice of `gscratch` when it does not fit.
template <typename scalar_t>
__global__ void __launch_bounds__(kMaxKnnThreads)
    knn_select_kernel(const KnnParams<scalar_t> p, unsigned char* gscratch) {
  extern __shared__ __align__(16) unsigned char smem[];
  unsigned char* base =
      gscratch != nullptr
          ? gscratch + (static_cast<std::size_t>(blockIdx.y) * gridDim.x + blockIdx.x) * p.lay.bytes
          : smem;
  const SmemView sm{base, p.lay.bytes};
  DeviceBlock ex;
  knn_block(ex, p, static_cast<int64_t>(blockIdx.x), static_cast<int64_t>(blockIdx.y), sm);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kLidMleThreads) lid_mle_kernel(const LidMleParams<scalar_t> p) {
  DeviceBlock ex;
  lid_mle_block(ex, p, static_cast<int64_t>(blockIdx.x));
}

// Launcher of the shared pipeline: every kernel on the given (current) stream, launch-checked.
struct CudaLauncher {
  cudaStream_t stream;

  template <typename scalar_t>
  void knn(const KnnPlan& pl, int64_t grid_x, int64_t grid_y, const KnnParams<scalar_t>& p,
           unsigned char* gscratch) {
    TORCH_CHECK(pl.threads >= 1 && pl.threads <= kMaxKnnThreads, "naslid::knn: bad block size ",
                pl.threads);
    TORCH_CHECK(grid_y <= 65535 && grid_x <= 2147483647LL, "naslid::knn: grid ", grid_x, "x",
                grid_y, " too large");
    const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y));
    const std::size_t smem = pl.global_scratch ? 0 : pl.lay.bytes;
    knn_select_kernel<scalar_t><<<grid, pl.threads, smem, stream>>>(p, gscratch);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename scalar_t>
  void lid_mle(int64_t blocks, int threads, const LidMleParams<scalar_t>& p) {
    TORCH_CHECK(threads == kLidMleThreads, "naslid::lid_mle: bad block size ", threads);
    lid_mle_kernel<scalar_t><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

void check_cuda(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.is_cuda(), op, ": ", arg, " must be a CUDA tensor here, got ", t.device());
}

std::tuple<at::Tensor, at::Tensor> knn_cuda(const at::Tensor& x, const at::Tensor& y, int64_t k,
                                            bool exclude_self) {
  check_cuda("naslid::knn", "x", x);
  check_cuda("naslid::knn", "y", y);
  const c10::cuda::CUDAGuard guard(x.device());
  CudaLauncher l{at::cuda::getCurrentCUDAStream()};
  return knn_op(x, y, k, exclude_self, PipelineOptions{}, l);
}

at::Tensor knn_lid_cuda(const at::Tensor& x, int64_t k, c10::string_view estimator) {
  check_cuda("naslid::knn_lid", "x", x);
  const c10::cuda::CUDAGuard guard(x.device());
  CudaLauncher l{at::cuda::getCurrentCUDAStream()};
  return knn_lid_op(x, k, std::string(estimator), PipelineOptions{}, l);
}

at::Tensor lid_profile_cuda(at::TensorList features, int64_t k, c10::string_view estimator) {
  TORCH_CHECK_VALUE(!features.empty(), "naslid::lid_profile: features must hold at least one layer");
  for (const auto& f : features) check_cuda("naslid::lid_profile", "features[l]", f);
  const c10::cuda::CUDAGuard guard(features[0].device());
  CudaLauncher l{at::cuda::getCurrentCUDAStream()};
  return lid_profile_op(features, k, std::string(estimator), PipelineOptions{}, l);
}

at::Tensor lid_mle_cuda(const at::Tensor& sqdist, c10::string_view estimator) {
  check_cuda("naslid::lid_mle", "sqdist", sqdist);
  const c10::cuda::CUDAGuard guard(sqdist.device());
  CudaLauncher l{at::cuda::getCurrentCUDAStream()};
  return lid_mle_op(sqdist, std::string(estimator), kLidMleThreads, l);
}

}  // namespace
}  // namespace cuda
}  // namespace naslid

TORCH_LIBRARY_IMPL(naslid, CUDA, m) {
  m.impl("knn", &naslid::cuda::knn_cuda);
  m.impl("knn_lid", &naslid::cuda::knn_lid_cuda);
  m.impl("lid_profile", &naslid::cuda::lid_profile_cuda);
  m.impl("lid_mle", &naslid::cuda::lid_mle_cuda);
}
