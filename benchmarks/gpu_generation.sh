#!/usr/bin/env bash
# GPU checks of the spectral generators (issue 12) for a lent GPU machine, in the manner of
# ../shared/tools/gpu-check (whose `prepare` step downloads the wheels the device image lacks into .gpu/whl).
#
#   1. here, from the repository root:  ../shared/tools/gpu-check prepare      (h5netcdf etc. for pdeop generate)
#   2. device run:  command "bash benchmarks/gpu_generation.sh",  carry [".gpu"],  timeout_s 480
#   3. results under $OUT: summary.txt, tests.log, generation_scale_gpu.json (+ .log), generate.log
#
# What it does (about 5 minutes on an H100/H200):
#   - the torch-port tests, including the CUDA one (both Navier-Stokes schemes on cuFFT vs NumPy to 1e-10);
#   - benchmarks/generation_scale.py --gpu: samples/s on the GPU vs one CPU core for Navier-Stokes 256^2
#     (ETDRK4 and classic, float64 and float32) and KS (target: >= 50x one core for NS 256^2 batched);
#   - pdeop generate --device cuda of a small fno-fast set at 256^2 against --device cpu (stored values equal
#     to one float32 ulp), and `pdeop info` of the GPU file.
set -u -o pipefail
scratch=$(mktemp -d); OUT=${OUT:-$scratch/out}; mkdir -p "$OUT"; export PYTHONUNBUFFERED=1
S="$OUT/summary.txt"; : > "$S"
say() { echo "$*" | tee -a "$S"; }
say "== device"; nvidia-smi -L 2>&1 | tee -a "$S"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1 | tee -a "$S"
if [ -d .gpu/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$scratch/site" .gpu/whl/*.whl \
      > "$OUT/pip.log" 2>&1 || say "wheel install failed (see pip.log)"
fi
export PYTHONPATH=$scratch/site:$PWD PDEOP_NO_EXT=1
say "== torch-port tests (CUDA test included)"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/solvers/test_torch_steppers.py -rs 2>&1 | tee "$OUT/tests.log" \
    | tail -4 | tee -a "$S"
say "== generation_scale --gpu"
( cd benchmarks && timeout 200 python3 generation_scale.py --gpu --out "$OUT/generation_scale_gpu.json" ) \
    > "$OUT/generation_scale_gpu.log" 2>&1 && grep -A12 "^gpu" "$OUT/generation_scale_gpu.log" | tee -a "$S" \
    || { say "generation_scale --gpu failed"; tail -20 "$OUT/generation_scale_gpu.log" | tee -a "$S"; }
say "== pdeop generate --device cuda vs --device cpu (fno-fast at 256^2, T = 2)"
args=(generate navier-stokes --preset fno-fast --samples 2 --set T=2 --quiet)
(
  timeout 120 python3 -m operators.cli "${args[@]}" --device cuda --out "$scratch/gpu.h5" &&
  timeout 120 python3 -m operators.cli "${args[@]}" --out "$scratch/cpu.h5" &&
  python3 -m operators.cli info "$scratch/gpu.h5" &&
  python3 - "$scratch/cpu.h5" "$scratch/gpu.h5" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    x, y = a["w"][()].astype(np.float64), b["w"][()].astype(np.float64)
ulps = np.abs(x - y) / (np.abs(x) * 2.0**-23 + np.finfo(np.float32).tiny)
print(f"cpu vs cuda file: max difference {np.abs(x - y).max():.3g}, max {ulps.max():.3g} float32 ulp "
      f"({'OK' if ulps.max() <= 1 else 'MORE THAN ONE ULP'})")
EOF
) > "$OUT/generate.log" 2>&1; tail -3 "$OUT/generate.log" | tee -a "$S"
say "== done"
