// The `naslid` torch.library namespace: every schema is declared here, once. Kernels are attached
// per device in csrc/cpu/*.cpp (TORCH_LIBRARY_IMPL(naslid, CPU, m)) and csrc/cuda/*.cu
// (TORCH_LIBRARY_IMPL(naslid, CUDA, m)); fake (meta) implementations live in naslid_ext/_fake.py.
//
// Shapes (B batch of point sets, N queries, M references, D features, k neighbours, L layers):
//   knn(x (B,N,D), y (B,M,D), k, exclude_self) -> (sqdist (B,N,k) x.dtype, idx (B,N,k) int64)
//       squared Euclidean, ascending, ties to the lower index; exclude_self drops reference index i
//       for query i (requires N == M).
//   lid_mle(sqdist (...,k), estimator) -> (...)            per-point LID from sorted sqdist
//   knn_lid(x (B,N,D), k, estimator) -> (B,N)              fused self-k-NN (exclude self) + LID
//   lid_profile(features L x (N,D_l), k, estimator) -> (L,N) per-layer, per-point LID
//   _knn_norms / _knn_lid_norms / _lid_profile_norms: the same plus squared row norms (private,
//       CPU only; naslid_ext's public functions use them for their default finiteness check)
//   _lid_mle_checked: lid_mle plus (3,) int64 counts of bad rows (non-finite, negative, unsorted)
// estimator: "naslid" | "levina". Inputs reach the kernels contiguous and float32/float64
// (naslid_ext validates and upcasts half types before calling).
#include <torch/extension.h>
#include <torch/library.h>

#include "naslid/cpu/sym_choice.h"
#include "naslid/cpu/sym_gram.h"
#include "naslid/exact_gemm.h"

TORCH_LIBRARY(naslid, m) {
  m.def("knn(Tensor x, Tensor y, int k, bool exclude_self) -> (Tensor, Tensor)");
  m.def("lid_mle(Tensor sqdist, str estimator) -> Tensor");
  m.def("knn_lid(Tensor x, int k, str estimator) -> Tensor");
  m.def("lid_profile(Tensor[] features, int k, str estimator) -> Tensor");
  // The same with the squared row norms the kernels compute anyway (naslid_ext's finiteness check
  // at no extra pass); a non-finite k-th distance gives NaN LID instead of the overflow error.
  // CPU only. x's norms (B, N) and y's (B, M); layer norms (L, N).
  m.def("_knn_norms(Tensor x, Tensor y, int k, bool exclude_self) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("_knn_lid_norms(Tensor x, int k, str estimator) -> (Tensor, Tensor)");
  m.def("_lid_profile_norms(Tensor[] features, int k, str estimator) -> (Tensor, Tensor)");
  // lid_mle plus its input contract checked in the same pass: (3,) int64 counts of rows with a
  // NaN/Inf entry, a negative first entry, an unsorted order. CPU only.
  m.def("_lid_mle_checked(Tensor sqdist, str estimator) -> (Tensor, Tensor)");
}

namespace {
// The MKLDNN float32 matmul precision as seen inside a Float32PrecisionGuard (tests: the guard
// must read "ieee" whatever the caller set).
std::string precision_inside_guard() {
  naslid::Float32PrecisionGuard guard;
  return at::precision2str(
      at::globalContext().float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL));
}

// X[0:rows] · Xᵀ (rows, N) for X (N, D) float32 by the symmetric path's strip kernel `kernel`
// ("avx2" | "avx512" | "amx"), split = true: its features shared among torch's threads (tests compare it
// with a float64 product).
at::Tensor gram_strip(const at::Tensor& x, int64_t rows, const std::string& kernel, bool split) {
  TORCH_CHECK_VALUE(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu(),
                    "_gram_strip: x must be a 2-D float32 CPU tensor, got ", x.sizes(), " ",
                    x.scalar_type(), " on ", x.device());
  TORCH_CHECK_VALUE(rows >= 0 && rows <= x.size(0), "_gram_strip: rows (", rows,
                    ") must be in [0, N = ", x.size(0), "]");
  const auto kern = naslid::cpu::sym_kernel_from_name(kernel.c_str(), naslid::cpu::SymKernel::kBlas);
  TORCH_CHECK_VALUE(kern != naslid::cpu::SymKernel::kBlas,
                    "_gram_strip: kernel must be 'avx2', 'avx512' or 'amx', got '", kernel, "'");
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty({rows, xc.size(0)}, xc.options());
  if (split) {
    naslid::cpu::gram_strip_f32_split(kern, xc.data_ptr<float>(), xc.size(1), rows, xc.size(0),
                                      xc.size(1), out.data_ptr<float>());
  } else {
    naslid::cpu::gram_strip_f32(kern, xc.data_ptr<float>(), xc.size(1), rows, xc.size(0), xc.size(1),
                                out.data_ptr<float>());
  }
  return out;
}

std::string cpu_sym_kernel() { return naslid::cpu::sym_kernel_name(naslid::cpu::sym_kernel()); }

std::string cpu_sym_kernel_supported() {
  return naslid::cpu::sym_kernel_name(naslid::cpu::sym_kernel_supported());
}

// The strip-kernel decisions of this process (naslid/cpu/sym_choice.h), for naslid_ext.build_info.
pybind11::list cpu_kernel_choices() {
  pybind11::list out;
  for (const auto& c : naslid::cpu::sym_choices()) {
    pybind11::dict d;
    d["threads"] = c.threads;
    d["par"] = c.par;
    d["n_class"] = c.n_class;
    d["d_class"] = c.d_class;
    d["n"] = c.n;
    d["d"] = c.d;
    d["kernel"] = naslid::cpu::sym_kernel_name(c.kernel);
    d["why"] = c.why;
    pybind11::dict est;
    for (size_t i = 0; i < c.candidates.size(); ++i) est[pybind11::str(c.candidates[i])] = c.est_ms[i];
    d["est_ms"] = est;
    out.append(d);
  }
  return out;
}

// What setup.py compiled in: the version, the CUDA architectures (empty without CUDA), passed as
// one preprocessor token each, 'v' + text with every character but [0-9A-Za-z.] made '_'
// (setup.py's _macro_token; naslid_ext._build_info decodes them).
#define NASLID_STR2(x) #x
#define NASLID_STR(x) NASLID_STR2(x)
std::string build_version() {
#ifdef NASLID_VERSION_TOKEN
  return NASLID_STR(NASLID_VERSION_TOKEN);
#else
  return "";
#endif
}

std::string build_cuda_archs() {
#ifdef NASLID_CUDA_ARCHS_TOKEN
  return NASLID_STR(NASLID_CUDA_ARCHS_TOKEN);
#else
  return "";
#endif
}

bool built_with_cuda() {
#ifdef NASLID_WITH_CUDA
  return true;
#else
  return false;
#endif
}
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "naslid_ext._C: kernels registered under torch.ops.naslid";
  m.def("built_with_cuda", &built_with_cuda, "True when the CUDA kernels were compiled in.");
  m.def("_precision_inside_guard", &precision_inside_guard,
        "torch's MKLDNN float32 matmul precision inside naslid's Float32PrecisionGuard (tests).");
  m.def("cpu_gemm_backend", &naslid::cpu_gemm_backend,
        "'blas' when CPU Gram products call the BLAS directly, 'aten' when they run at::mm under a "
        "full-precision guard (naslid/exact_gemm.h).");
  m.def("cpu_sym_kernel", &cpu_sym_kernel,
        "The best strip kernel the symmetric CPU path may use: 'amx' | 'avx512' | 'avx2' | 'blas' "
        "(naslid/cpu/sym_gram.h; NASLID_CPU_SYRK forces it, else torch's CPU capability caps it).");
  m.def("cpu_kernel_mode", &naslid::cpu::sym_choice_mode,
        "How the float32 strip kernel is chosen: 'measured' | 'forced' | 'capability' "
        "(naslid/cpu/sym_choice.h).");
  m.def("cpu_kernel_choices", &cpu_kernel_choices,
        "The strip-kernel decisions of this process: list of dicts (threads, par, n_class, d_class, "
        "n, d, kernel, why, est_ms).");
  m.def("build_version", &build_version,
        "The naslid version setup.py compiled in, as a token ('v0.1.0'; '' if none).");
  m.def("build_cuda_archs", &build_cuda_archs,
        "TORCH_CUDA_ARCH_LIST the CUDA kernels were compiled for, as a token ('v8.0_9.0'; '' "
        "without CUDA).");
  m.def("cpu_sym_kernel_supported", &cpu_sym_kernel_supported,
        "The best float32 Gram kernel this CPU can run: 'amx' | 'avx512' | 'avx2' | 'blas'.");
  m.def("_gram_strip", &gram_strip, "x[:rows] @ x.T by the strip kernel 'avx2'|'avx512'|'amx' (tests).",
        pybind11::arg("x"), pybind11::arg("rows"), pybind11::arg("kernel"), pybind11::arg("split") = false);
}
