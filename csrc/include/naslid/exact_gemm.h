// Gram products in full input precision, whatever the user's global matmul settings.
//
// torch's float32 matmul follows process-wide flags: torch.set_float32_matmul_precision("medium")
// runs CPU float32 GEMMs in bfloat16 on CPUs with AVX512-BF16/AMX (relative error ~1e-3), and
// allow_tf32 runs CUDA ones in TF32. The k-NN engines take their distances from Gram products, so
// they must not inherit those settings (docs/ops_api.md, "Exactness").
//
//  * CPU: the BLAS that torch links (MKL in the x86 wheels, OpenBLAS elsewhere) is called directly
//    through its Fortran entry points sgemm_/dgemm_, found at run time in libtorch_cpu's symbol
//    scope. These never look at torch's flags. Where no such symbol exists, at::mm_out runs under
//    Float32PrecisionGuard (below).
//  * CUDA: at::bmm (cuBLAS) under Float32PrecisionGuard.
//
// Float32PrecisionGuard sets torch's float32 matmul precision to "ieee" for its scope and restores
// it afterwards. The flags are process-wide: the guard counts nested and concurrent holders under
// a mutex, so the first one in saves and the last one out restores; other threads' GEMMs in that
// window run in full precision (slower, never less exact).
//
// The environment variable NASLID_CPU_GEMM=aten forces the at::mm path (read once; tests use it to
// exercise the guard).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace naslid {

class Float32PrecisionGuard {
 public:
  Float32PrecisionGuard() {
    std::lock_guard<std::mutex> lock(mu());
    if (depth()++ == 0) {
      auto& ctx = at::globalContext();
      saved_mkldnn() = ctx.float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL);
      saved_cuda() = ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL);
      ctx.setFloat32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL,
                              at::Float32Precision::IEEE);
      ctx.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL,
                              at::Float32Precision::IEEE);
    }
  }
  ~Float32PrecisionGuard() {
    std::lock_guard<std::mutex> lock(mu());
    if (--depth() == 0) {
      auto& ctx = at::globalContext();
      ctx.setFloat32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL, saved_mkldnn());
      ctx.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL, saved_cuda());
    }
  }
  Float32PrecisionGuard(const Float32PrecisionGuard&) = delete;
  Float32PrecisionGuard& operator=(const Float32PrecisionGuard&) = delete;

 private:
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static int& depth() {
    static int d = 0;
    return d;
  }
  static at::Float32Precision& saved_mkldnn() {
    static at::Float32Precision p = at::Float32Precision::NONE;
    return p;
  }
  static at::Float32Precision& saved_cuda() {
    static at::Float32Precision p = at::Float32Precision::NONE;
    return p;
  }
};

namespace blas {

using sgemm_t = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                         const float*, const int*, const float*, const int*, const float*, float*,
                         const int*);
using dgemm_t = void (*)(const char*, const char*, const int*, const int*, const int*, const double*,
                         const double*, const int*, const double*, const int*, const double*, double*,
                         const int*);

struct Entry {
  sgemm_t sgemm = nullptr;
  dgemm_t dgemm = nullptr;
};

// The Fortran BLAS entry points in the scope of the library that defines at::mm_out (libtorch_cpu
// and its dependencies), or none (NASLID_CPU_GEMM=aten, or a build without them).
inline const Entry& entry() {
  static const Entry e = [] {
    Entry r;
    const char* env = std::getenv("NASLID_CPU_GEMM");
    if (env != nullptr && std::strcmp(env, "aten") == 0) return r;
    Dl_info info;
    using mm_fn = at::Tensor& (*)(at::Tensor&, const at::Tensor&, const at::Tensor&);
    mm_fn anchor = &at::mm_out;
    if (dladdr(reinterpret_cast<void*>(anchor), &info) == 0 || info.dli_fname == nullptr) return r;
    void* h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (h == nullptr) return r;
    r.sgemm = reinterpret_cast<sgemm_t>(dlsym(h, "sgemm_"));
    r.dgemm = reinterpret_cast<dgemm_t>(dlsym(h, "dgemm_"));
    if (r.sgemm == nullptr || r.dgemm == nullptr) r = Entry{};
    return r;
  }();
  return e;
}

}  // namespace blas

// "blas" when the CPU Gram products call the BLAS directly, "aten" when they go through at::mm_out
// under Float32PrecisionGuard.
inline std::string cpu_gemm_backend() { return blas::entry().sgemm ? "blas" : "aten"; }

// C (rows, cols) = A (rows, D) * B (cols, D)^T for row-major CPU tensors whose rows are contiguous
// (stride(1) == 1; any row stride), C contiguous. Full input precision (see the header comment).
inline void gram_mm_cpu(at::Tensor& C, const at::Tensor& A, const at::Tensor& B) {
  const int64_t rows = A.size(0), cols = B.size(0), D = A.size(1);
  const auto& e = blas::entry();
  const bool small = rows < (int64_t(1) << 31) && cols < (int64_t(1) << 31) && D < (int64_t(1) << 31) &&
                     A.stride(0) < (int64_t(1) << 31) && B.stride(0) < (int64_t(1) << 31);
  if (e.sgemm != nullptr && small && A.stride(1) == 1 && B.stride(1) == 1 && C.is_contiguous() &&
      rows > 0 && cols > 0 && D > 0) {
    // column-major view: C^T (cols x rows) = B (cols x D) * A^T, with B and A stored as D-major
    const int m = int(cols), n = int(rows), kk = int(D), lda = int(B.stride(0)),
              ldb = int(A.stride(0)), ldc = int(cols);
    const char ta = 'T', tb = 'N';
    if (A.scalar_type() == at::kFloat) {
      const float one = 1.f, zero = 0.f;
      e.sgemm(&ta, &tb, &m, &n, &kk, &one, B.data_ptr<float>(), &lda, A.data_ptr<float>(), &ldb,
              &zero, C.data_ptr<float>(), &ldc);
      return;
    }
    if (A.scalar_type() == at::kDouble) {
      const double one = 1.0, zero = 0.0;
      e.dgemm(&ta, &tb, &m, &n, &kk, &one, B.data_ptr<double>(), &lda, A.data_ptr<double>(), &ldb,
              &zero, C.data_ptr<double>(), &ldc);
      return;
    }
  }
  Float32PrecisionGuard guard;
  at::mm_out(C, A, B.t());
}

// Batched Gram (Bt, rows, cols) = A (Bt, rows, D) @ Bm (Bt, D, cols) in full input precision on
// any device (the CUDA pipeline and its CPU emulator). Bm is the transposed reference block.
inline at::Tensor gram_bmm(const at::Tensor& A, const at::Tensor& Bm) {
  if (A.device().is_cpu()) {
    at::Tensor out = at::empty({A.size(0), A.size(1), Bm.size(2)}, A.options());
    const at::Tensor Ar = A.stride(2) == 1 ? A : A.contiguous();
    const at::Tensor Bt = Bm.transpose(1, 2);
    const at::Tensor Br = Bt.stride(2) == 1 ? Bt : Bt.contiguous();
    for (int64_t b = 0; b < A.size(0); ++b) {
      at::Tensor c = out.select(0, b);
      gram_mm_cpu(c, Ar.select(0, b), Br.select(0, b));
    }
    return out;
  }
  Float32PrecisionGuard guard;
  return at::bmm(A, Bm).contiguous();
}

}  // namespace naslid
