// CUDA kernel of the per-mode complex product C[m, n, k] = sum_r A[m, r, k] B[r, n, k] behind the
// spectral-mixing ops (registered for the CUDA dispatch key; pdeop_ops.h describes the product).
//
// Mode-major operands (channels contiguous, modes outermost) are batches of ordinary matrices and go
// to cuBLAS through at::bmm (mode_product_batched). Otherwise one thread computes one output value,
// reading both operands in place through their strides (any slice, conjugation applied on load);
// consecutive threads take consecutive modes, so that channel-major loads and stores are coalesced.
// Launched on the current stream.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/complex.h>
#include <torch/library.h>

#include <algorithm>

#include "pdeop_ops.h"

namespace pdeop {
namespace {

constexpr int kThreads = 256;

// The mode grid and each tensor's strides along it (complex elements), axes 0 .. axes - 1.
struct ModeStrides {
  int axes;
  int64_t size[kMaxModeAxes];
  int64_t a[kMaxModeAxes], b[kMaxModeAxes], out[kMaxModeAxes];
};

struct DeviceProduct {
  int64_t rows, inner, cols, num_modes;
  int64_t a_row, a_col, b_row, b_col, out_row, out_col;
  bool a_conj, b_conj, mode_major;
  ModeStrides modes;
};

template <typename T>
__global__ void mode_product_kernel(const c10::complex<T>* __restrict__ a, const c10::complex<T>* __restrict__ b,
                                    c10::complex<T>* __restrict__ out, DeviceProduct p) {
  const int64_t total = p.rows * p.cols * p.num_modes;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t m, n, k;
    if (p.mode_major) {  // i = (k * M + m) * N + n
      n = i % p.cols;
      m = i / p.cols % p.rows;
      k = i / (p.cols * p.rows);
    } else {  // i = (m * N + n) * K + k
      k = i % p.num_modes;
      n = i / p.num_modes % p.cols;
      m = i / (p.num_modes * p.cols);
    }
    // k in row-major order over the mode axes: peel the digits off from the last axis.
    int64_t a_mode = 0, b_mode = 0, out_mode = 0;
    for (int d = p.modes.axes - 1; d >= 0; --d) {
      const int64_t digit = k % p.modes.size[d];
      k /= p.modes.size[d];
      a_mode += digit * p.modes.a[d];
      b_mode += digit * p.modes.b[d];
      out_mode += digit * p.modes.out[d];
    }
    const c10::complex<T>* a_line = a + m * p.a_row + a_mode;
    const c10::complex<T>* b_line = b + n * p.b_col + b_mode;
    T re = T(0), im = T(0);
    for (int64_t r = 0; r < p.inner; ++r) {
      const c10::complex<T> u = a_line[r * p.a_col];
      const c10::complex<T> v = b_line[r * p.b_row];
      const T ur = u.real(), ui = p.a_conj ? -u.imag() : u.imag();
      const T vr = v.real(), vi = p.b_conj ? -v.imag() : v.imag();
      re += ur * vr - ui * vi;
      im += ur * vi + ui * vr;
    }
    out[m * p.out_row + n * p.out_col + out_mode] = c10::complex<T>(re, im);
  }
}

void mode_product_cuda(const ModeProduct& product, at::Tensor& out) {
  const c10::cuda::OptionalCUDAGuard guard(out.device());
  if (is_mode_major(out)) {  // batches of ordinary matrices: cuBLAS through at::bmm
    mode_product_batched(product, out);
    return;
  }
  DeviceProduct p;
  p.rows = product.rows;
  p.inner = product.inner;
  p.cols = product.cols;
  p.num_modes = product.num_modes();
  p.a_row = product.a.stride_row;
  p.a_col = product.a.stride_col;
  p.b_row = product.b.stride_row;
  p.b_col = product.b.stride_col;
  p.out_row = out.stride(0);
  p.out_col = out.stride(1);
  p.a_conj = product.a.conj;
  p.b_conj = product.b.conj;
  p.mode_major = is_mode_major(out);
  p.modes.axes = product.mode_axes;
  for (int d = 0; d < kMaxModeAxes; ++d) {
    const bool used = d < product.mode_axes;
    p.modes.size[d] = used ? product.modes[d] : 1;
    p.modes.a[d] = used ? product.a.stride_mode[d] : 0;
    p.modes.b[d] = used ? product.b.stride_mode[d] : 0;
    p.modes.out[d] = used ? out.stride(2 + d) : 0;
  }
  const int64_t total = p.rows * p.cols * p.num_modes;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, 65535));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (out.scalar_type() == at::kComplexFloat) {
    mode_product_kernel<float><<<blocks, kThreads, 0, stream>>>(
        static_cast<const c10::complex<float>*>(product.a.data), static_cast<const c10::complex<float>*>(product.b.data),
        out.mutable_data_ptr<c10::complex<float>>(), p);
  } else {
    mode_product_kernel<double><<<blocks, kThreads, 0, stream>>>(
        static_cast<const c10::complex<double>*>(product.a.data),
        static_cast<const c10::complex<double>*>(product.b.data), out.mutable_data_ptr<c10::complex<double>>(), p);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor spectral_mix_forward_cuda(const at::Tensor& x, const at::Tensor& weight) {
  return spectral_mix_forward_with(mode_product_cuda, x, weight);
}

at::Tensor spectral_mix_backward_input_cuda(const at::Tensor& grad_out, const at::Tensor& weight) {
  return spectral_mix_backward_input_with(mode_product_cuda, grad_out, weight);
}

at::Tensor spectral_mix_backward_weight_cuda(const at::Tensor& grad_out, const at::Tensor& x) {
  return spectral_mix_backward_weight_with(mode_product_cuda, grad_out, x);
}

}  // namespace
}  // namespace pdeop

TORCH_LIBRARY_IMPL(pdeop, CUDA, m) {
  m.impl("spectral_mix_forward", &pdeop::spectral_mix_forward_cuda);
  m.impl("spectral_mix_backward_input", &pdeop::spectral_mix_backward_input_cuda);
  m.impl("spectral_mix_backward_weight", &pdeop::spectral_mix_backward_weight_cuda);
}
