// naslid_ext._emu: the CUDA kernels of naslid (csrc/include/naslid/cuda/knn_select.h) run by the
// CPU grid emulator, through the very host pipeline the CUDA ops use (knn_pipeline.h), with at::bmm
// on CPU in place of cuBLAS. For tests only: every block, every thread, phase by phase.
//
// Common keyword arguments:
//   threads      threads per block (power of two <= 128); 0: what the CUDA launch would pick
//   gram_budget  Gram chunk size in elements; 0: the CUDA default (small values force many chunks)
//   smem_limit   shared-memory bytes per block before the scratch moves to global memory; 0: 48 KiB
//   order        0 forward, 1 reverse, 2 shuffled thread order within each phase
//   seed         seed of the shuffled order
//   tf32         round the GEMM inputs to TF32 as a GPU with allow_tf32 would (float32 only)
//   stats        also return a dict {launches, blocks, max_phases_per_block, threads, K, ...}
#include <torch/extension.h>

#include <string>
#include <tuple>
#include <vector>

#include "naslid/cuda/grid_emulator.h"
#include "naslid/cuda/knn_pipeline.h"

namespace py = pybind11;
using naslid::cuda::EmuLauncher;
using naslid::cuda::PipelineOptions;
using naslid::cuda::ThreadOrder;

namespace {

PipelineOptions make_options(int threads, int64_t gram_budget, int64_t smem_limit, bool tf32) {
  PipelineOptions o;
  // The CUDA knn kernel is bounded to 128 threads (__launch_bounds__ in csrc/cuda/knn_cuda.cu).
  TORCH_CHECK_VALUE(threads >= 0 && (threads & (threads - 1)) == 0 && threads <= 128,
                    "naslid_ext._emu: threads must be 0 or a power of two <= 128, got ", threads);
  o.threads = threads;
  if (gram_budget > 0) o.gram_budget_elems = gram_budget;
  if (smem_limit > 0) o.smem_limit = static_cast<std::size_t>(smem_limit);
  o.tf32_round_gram_inputs = tf32;
  return o;
}

EmuLauncher make_launcher(int order, uint64_t seed) {
  TORCH_CHECK_VALUE(order >= 0 && order <= 2, "naslid_ext._emu: order must be 0, 1 or 2, got ", order);
  EmuLauncher l;
  l.order = static_cast<ThreadOrder>(order);
  l.seed = seed;
  return l;
}

void check_cpu(const char* op, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), "naslid_ext._emu.", op, ": the emulator takes CPU tensors, got ",
                    t.device());
}

py::dict stats_of(const EmuLauncher& l) {
  py::dict d;
  d["launches"] = l.launches;
  d["blocks"] = l.blocks;
  d["max_phases_per_block"] = l.max_phases_per_block;
  return d;
}

py::object knn(const at::Tensor& x, const at::Tensor& y, int64_t k, bool exclude_self, int threads,
               int64_t gram_budget, int64_t smem_limit, int order, uint64_t seed, bool tf32, bool stats) {
  check_cpu("knn", x);
  check_cpu("knn", y);
  const PipelineOptions o = make_options(threads, gram_budget, smem_limit, tf32);
  EmuLauncher l = make_launcher(order, seed);
  auto r = naslid::cuda::knn_op(x, y, k, exclude_self, o, l);
  py::tuple res = py::make_tuple(std::get<0>(r), std::get<1>(r));
  if (stats) return py::make_tuple(res, stats_of(l));
  return res;
}

py::object knn_lid(const at::Tensor& x, int64_t k, const std::string& estimator, int threads,
                   int64_t gram_budget, int64_t smem_limit, int order, uint64_t seed, bool tf32,
                   bool stats) {
  check_cpu("knn_lid", x);
  const PipelineOptions o = make_options(threads, gram_budget, smem_limit, tf32);
  EmuLauncher l = make_launcher(order, seed);
  at::Tensor r = naslid::cuda::knn_lid_op(x, k, estimator, o, l);
  if (stats) return py::make_tuple(r, stats_of(l));
  return py::cast(r);
}

py::object lid_profile(const std::vector<at::Tensor>& features, int64_t k, const std::string& estimator,
                       int threads, int64_t gram_budget, int64_t smem_limit, int order, uint64_t seed,
                       bool tf32, bool stats) {
  for (const auto& f : features) check_cpu("lid_profile", f);
  const PipelineOptions o = make_options(threads, gram_budget, smem_limit, tf32);
  EmuLauncher l = make_launcher(order, seed);
  at::Tensor r = naslid::cuda::lid_profile_op(features, k, estimator, o, l);
  if (stats) return py::make_tuple(r, stats_of(l));
  return py::cast(r);
}

py::object lid_mle(const at::Tensor& sqdist, const std::string& estimator, int threads, int order,
                   uint64_t seed, bool stats) {
  check_cpu("lid_mle", sqdist);
  make_options(threads, 0, 0, false);
  EmuLauncher l = make_launcher(order, seed);
  at::Tensor r = naslid::cuda::lid_mle_op(sqdist, estimator, threads, l);
  if (stats) return py::make_tuple(r, stats_of(l));
  return py::cast(r);
}

py::dict plan(int64_t B, int64_t N, int64_t M, int64_t D, int64_t k, bool exclude_self, bool is_double,
              bool want_lid, int threads, int64_t gram_budget, int64_t smem_limit) {
  const PipelineOptions o = make_options(threads, gram_budget, smem_limit, false);
  const auto pl = naslid::cuda::plan_knn(B, N, M, D, k, exclude_self, is_double ? 8 : 4, want_lid, o);
  py::dict d;
  d["threads"] = pl.threads;
  d["K"] = pl.K;
  d["smem_bytes"] = pl.lay.bytes;
  d["global_scratch"] = pl.global_scratch;
  d["rows_per_chunk"] = pl.rows_per_chunk;
  d["batches_per_chunk"] = pl.batches_per_chunk;
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "naslid_ext._emu: the CUDA kernels of naslid run by a CPU grid emulator (tests only)";
  m.def("knn", &knn, "Emulated naslid::knn: x (B,N,D), y (B,M,D) -> (sqdist (B,N,k), idx (B,N,k))",
        py::arg("x"), py::arg("y"), py::arg("k"), py::arg("exclude_self"), py::arg("threads") = 0,
        py::arg("gram_budget") = 0, py::arg("smem_limit") = 0, py::arg("order") = 0, py::arg("seed") = 0,
        py::arg("tf32") = false, py::arg("stats") = false);
  m.def("knn_lid", &knn_lid, "Emulated naslid::knn_lid: x (B,N,D) -> LID (B,N)", py::arg("x"),
        py::arg("k"), py::arg("estimator") = "naslid", py::arg("threads") = 0, py::arg("gram_budget") = 0,
        py::arg("smem_limit") = 0, py::arg("order") = 0, py::arg("seed") = 0, py::arg("tf32") = false,
        py::arg("stats") = false);
  m.def("lid_profile", &lid_profile, "Emulated naslid::lid_profile: L x (N,...) -> LID (L,N)",
        py::arg("features"), py::arg("k"), py::arg("estimator") = "naslid", py::arg("threads") = 0,
        py::arg("gram_budget") = 0, py::arg("smem_limit") = 0, py::arg("order") = 0, py::arg("seed") = 0,
        py::arg("tf32") = false, py::arg("stats") = false);
  m.def("lid_mle", &lid_mle, "Emulated naslid::lid_mle: sqdist (...,k) -> LID (...)", py::arg("sqdist"),
        py::arg("estimator") = "naslid", py::arg("threads") = 0, py::arg("order") = 0, py::arg("seed") = 0,
        py::arg("stats") = false);
  m.def("plan", &plan, "The CUDA launch plan of a knn call (threads, K, scratch, chunks)", py::arg("B"),
        py::arg("N"), py::arg("M"), py::arg("D"), py::arg("k"), py::arg("exclude_self"), py::arg("is_double") = false,
        py::arg("want_lid") = false, py::arg("threads") = 0, py::arg("gram_budget") = 0,
        py::arg("smem_limit") = 0);
}
