"""Build script of the ``pdeop`` distribution.

Install torch first (``pip install torch==2.13.0``), then this package with
``pip install --no-build-isolation -e .`` so that the C++ extension is compiled against the torch
that is already installed. ``PDEOP_NO_EXT=1`` skips the extension; pdeop then runs its pure-PyTorch
kernels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "solvers" / "version.py").read_text()).group(1)

RUNTIME_REQUIREMENTS = [
    "torch>=2.4",
    "numpy>=1.24",
    "scipy>=1.11",
    "h5py>=3.8",
    "h5netcdf>=1.2",
    "xarray>=2023.6",
    "matplotlib>=3.7",
    "pyyaml>=6.0",
    "safetensors>=0.4",
    "neuraloperator>=1.0",
    "pyamg>=5.0",
    "tqdm>=4.60",
]

EXTRAS = {
    # threadpoolctl: tests/test_benchmarks.py imports every benchmark's required modules (skr's included)
    "test": ["pytest>=7", "tensorboard>=2.10", "hypothesis>=6", "threadpoolctl>=3", "dask[distributed]>=2024.1"],
    # pdeop generate --workers N / --scheduler ADDRESS (pde_data.distributed)
    "dask": ["dask[distributed]>=2024.1"],
    # optional TensorBoard scalars of a run's history (training.tensorboard: true)
    "tensorboard": ["tensorboard>=2.10"],
    # what benchmarks/ imports beyond the runtime requirements: threadpoolctl (skr*.py, required);
    # exponax and JAX (spectral_generators.py, an optional competitor: its rows are skipped without them)
    "bench": ["threadpoolctl>=3", "exponax>=0.1", "jax>=0.4", "dask[distributed]>=2024.1"],
}


def _extension_modules() -> tuple[list, dict]:
    """Return the torch extension modules and the build_ext command class.

    The CPU extension is always built; CUDA sources only when the installed torch has CUDA.
    ``PDEOP_NO_EXT=1`` builds nothing.
    """
    if os.environ.get("PDEOP_NO_EXT", "0") not in ("", "0"):
        return [], {}
    cpu_sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cpp"))
    if not cpu_sources:
        return [], {}
    import torch
    from torch.utils import cpp_extension

    openmp = ["-fopenmp"] if os.name != "nt" else ["/openmp"]
    # -ffp-contract=fast lets the multi-versioned loops use fused multiply-adds (csrc/cpu_dispatch.h);
    # -Wno-psabi silences notes about passing SIMD types between functions of different targets,
    # which only happens inside always-inlined helpers.
    cxx_flags = ["-O3", "-std=c++17", *openmp]
    if os.name != "nt":
        cxx_flags += ["-ffp-contract=fast", "-Wno-psabi"]
    define_macros: list = []
    cuda_sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cu"))
    # CUDA kernels need a CUDA build of torch and the CUDA toolkit, not a GPU at build time; a CPU
    # torch never sees the .cu files (nvcc on the machine is not enough).
    if torch.version.cuda is not None and cuda_sources and cpp_extension.CUDA_HOME:
        ext = cpp_extension.CUDAExtension(
            "operators._C",
            cpu_sources + cuda_sources,
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++17"]},
            extra_link_args=openmp,
            define_macros=define_macros + [("PDEOP_WITH_CUDA", None)],
        )
    else:
        ext = cpp_extension.CppExtension(
            "operators._C",
            cpu_sources,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=openmp,
            define_macros=define_macros,
        )
    return [ext], {"build_ext": cpp_extension.BuildExtension.with_options(no_python_abi_suffix=True)}


ext_modules, cmdclass = _extension_modules()

setup(
    name="pdeop",
    version=VERSION,
    description="Neural-operator PDE toolkit: fast dataset generation, operator training, safe export.",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "solvers",
        "pde_data",
        "pde_data.families",
        "pde_data.configs",
        "operators",
        "operators.commands",
        "operators.kernels",
        "operators.layers",
        "operators.models",
        "operators.training",
        "operators.physics",
    ],
    package_dir={"pde_data.configs": "configs"},
    package_data={"pde_data.configs": ["data/*/*.yaml", "train/*.yaml"], "operators.layers": ["rational_fits.json"]},
    install_requires=RUNTIME_REQUIREMENTS,
    extras_require=EXTRAS,
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    entry_points={"console_scripts": ["pdeop = operators.cli:main"]},
    zip_safe=False,
)
