"""Build and install `naslid_ext` (LID ops, C++/CUDA extension `naslid_ext._C`) and `naslid` (search driver).

Build switches (environment variables):
  NASLID_CUDA=auto|0|1   auto (default): compile the CUDA kernels whenever nvcc and a CUDA build of
                         torch are present, with or without a visible GPU; 0: CPU only; 1: CUDA
                         required, fail loudly when it cannot be built.
  TORCH_CUDA_ARCH_LIST   default "8.0;9.0" (sm_80, sm_90) when no GPU is visible.
  NASLID_NATIVE=1|0      1 (default): -march=native for the CPU kernels; 0: portable x86-64 build.
  NASLID_MARCH=<arch>    -march=<arch> instead of native (e.g. haswell: a build for AVX2-only CPUs,
                         made on a newer one; the kernels of later instruction sets stay available
                         through their target attributes and are chosen at run time).
  NASLID_PTXAS_VERBOSE=1 print nvcc's per-kernel resource usage (registers, spills); CI sets it.
"""
import glob
import importlib.util
import os
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _read_version():
    """The version, from naslid_ext/_version.py (the one place it is written)."""
    import re

    with open(os.path.join(ROOT, "naslid_ext", "_version.py"), encoding="utf-8") as fh:
        m = re.search(r'^__version__ = "([^"]+)"', fh.read(), re.M)
    if m is None:
        sys.exit("setup.py: no __version__ = \"...\" line in naslid_ext/_version.py")
    return m.group(1)


VERSION = _read_version()


def _macro_token(text):
    """`text` as one preprocessor number token (the C++ side stringises it): shell- and ninja-safe.
    Characters other than letters, digits and '.' become '_' ('8.0;9.0+PTX' -> '8.0_9.0_PTX')."""
    import re

    return "v" + re.sub(r"[^0-9A-Za-z.]", "_", text)
#: what `naslid search` needs beyond the ops (scipy: rank statistics; scikit-learn: spectral
#: clustering, GMM, the digits data; tqdm: progress; pyyaml: configs; matplotlib, tensorboard: reports)
SEARCH_REQUIRES = ["scipy", "scikit-learn", "tqdm", "pyyaml", "matplotlib", "tensorboard"]


def _cuda_mode():
    mode = os.environ.get("NASLID_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"setup.py: NASLID_CUDA must be auto, 0 or 1, got {mode!r}")
    return mode


def _want_cuda(torch, cpp_extension):
    mode = _cuda_mode()
    if mode == "0":
        return False
    nvcc_ok = cpp_extension.CUDA_HOME is not None and (
        shutil.which("nvcc") or os.path.exists(os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc"))
    )
    torch_cuda = torch.version.cuda is not None
    if mode == "1" and not (nvcc_ok and torch_cuda):
        sys.exit(
            "setup.py: NASLID_CUDA=1 but CUDA cannot be built: "
            f"nvcc found={bool(nvcc_ok)} (CUDA_HOME={cpp_extension.CUDA_HOME}), "
            f"torch CUDA build={torch_cuda} (torch {torch.__version__}). Install the CUDA toolkit "
            "and a CUDA build of torch, or set NASLID_CUDA=0."
        )
    return bool(nvcc_ok and torch_cuda)


def _nvidia_wheel_includes(cuda_home):
    """Include folders of the `nvidia-*` wheels that provide headers the toolkit lacks.

    ATen's CUDA headers include cuSPARSE/cuBLAS headers; a minimal system toolkit may not ship them,
    but the nvidia wheels torch depends on do (site-packages/nvidia/<lib>/include). They are added
    with -idirafter so that they only fill gaps and never shadow the toolkit's own headers.
    """
    needed = ["cusparse.h", "cublas_v2.h", "cublasLt.h", "cusolverDn.h", "curand.h", "cufft.h"]
    toolkit_inc = os.path.join(cuda_home or "", "include")
    missing = [h for h in needed if not os.path.exists(os.path.join(toolkit_inc, h))]
    if not missing:
        return []
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for base in spec.submodule_search_locations:
        for inc in sorted(glob.glob(os.path.join(base, "*", "include"))):
            if any(os.path.exists(os.path.join(inc, h)) for h in missing) and inc not in dirs:
                dirs.append(inc)
    return dirs


def _resolve_cuda_home():
    """Point CUDA_HOME at the toolkit that owns `nvcc`.

    torch guesses CUDA_HOME as the parent of the folder holding `nvcc`; a wrapper such as
    /usr/local/bin/nvcc would make that /usr/local and miss lib64/libcudart. nvcc itself knows its
    toolkit: `nvcc --dryrun` prints `TOP=<toolkit>/bin/..`.
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    if not nvcc:
        return
    import subprocess

    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "naslid_probe.cu", "-o", os.devnull], capture_output=True, text=True,
                             timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return
    for line in out.splitlines():
        if "TOP=" in line:
            top = os.path.normpath(line.split("TOP=", 1)[1].strip())
            if os.path.isdir(os.path.join(top, "include")):
                os.environ["CUDA_HOME"] = top
            return


def _extensions():
    _resolve_cuda_home()
    import torch
    from torch.utils import cpp_extension

    with_cuda = _want_cuda(torch, cpp_extension)
    sources = sorted(
        glob.glob(os.path.join("csrc", "*.cpp"))
        + glob.glob(os.path.join("csrc", "cpu", "*.cpp"))
    )
    cxx = ["-O3", "-fopenmp"]
    if os.environ.get("NASLID_MARCH"):
        cxx.append(f"-march={os.environ['NASLID_MARCH']}")
    elif os.environ.get("NASLID_NATIVE", "1") == "1":
        cxx.append("-march=native")
    define_macros = [("NASLID_VERSION_TOKEN", _macro_token(VERSION))]
    extra = {"cxx": cxx}
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    if with_cuda:
        if "TORCH_CUDA_ARCH_LIST" not in os.environ and not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        define_macros.append(("NASLID_WITH_CUDA", None))
        define_macros.append(("NASLID_CUDA_ARCHS_TOKEN", _macro_token(os.environ.get("TORCH_CUDA_ARCH_LIST", ""))))
        nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]
        if os.environ.get("NASLID_PTXAS_VERBOSE", "0") == "1":
            nvcc.append("-Xptxas=-v")
        for inc in _nvidia_wheel_includes(cpp_extension.CUDA_HOME):
            cxx += ["-idirafter", inc]
            nvcc += ["-Xcompiler", f"-idirafter{inc}"]
        extra["nvcc"] = nvcc
        ext_cls = cpp_extension.CUDAExtension
    else:
        ext_cls = cpp_extension.CppExtension
    print(f"setup.py: building naslid_ext._C with CUDA={with_cuda} "
          f"(NASLID_CUDA={_cuda_mode()}, TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST')})")
    exts = [
        ext_cls(
            name="naslid_ext._C",
            sources=sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args=extra,
            extra_link_args=["-fopenmp"],
        )
    ]
    # The grid emulator: runs the CUDA kernels' phase functions (csrc/include/naslid/cuda/*.h) on
    # the CPU over a whole grid, so that tests execute the CUDA kernel logic without a GPU.
    emu_sources = sorted(glob.glob(os.path.join("csrc", "emu", "*.cpp")))
    if emu_sources:
        exts.append(
            cpp_extension.CppExtension(
                name="naslid_ext._emu",
                sources=emu_sources,
                include_dirs=include_dirs,
                extra_compile_args={"cxx": ["-O2"]},
            )
        )
    return exts


def _cmdclass():
    from torch.utils import cpp_extension

    return {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}


setup(
    name="naslid",
    version=VERSION,
    description="NAS-LID: LID ops for PyTorch (C++/CUDA) and a neural architecture search driver",
    packages=find_packages(where=".", include=["naslid_ext", "naslid_ext.*"])
    + find_packages(where="python", include=["naslid", "naslid.*"]),
    package_dir={"naslid_ext": "naslid_ext", "naslid": "python/naslid"},
    package_data={"naslid": ["configs/*.yaml"]},
    ext_modules=_extensions(),
    cmdclass=_cmdclass(),
    python_requires=">=3.10",
    # The LID ops (naslid_ext) need torch and numpy only; the search driver's dependencies are the
    # `search` extra (pip install -e .[search]); requirements.txt / scripts/setup.sh install all.
    install_requires=["torch>=2.6", "numpy"],
    extras_require={
        "search": SEARCH_REQUIRES,
        "faiss": ["faiss-gpu"],
        "test": SEARCH_REQUIRES + ["pytest", "pytest-benchmark", "pytest-timeout", "scikit-dimension",
                                   "faiss-gpu"],
    },
    entry_points={"console_scripts": ["naslid=naslid.cli:main"]},
    zip_safe=False,
)
