// Declarations shared by the translation units of the pdeop custom ops (CPU and CUDA).
//
// Two op families live in the `pdeop` namespace:
//   * rational_forward / rational_backward: the group-rational (GR-KAN) activation P(x)/Q(x),
//     P = a0 + a1 x + ... + a5 x^5, Q = 1 + |b1||x| + ... + |b4||x|^4, sign(0) = 0.
//   * spectral_mix_forward / spectral_mix_backward_input / spectral_mix_backward_weight:
//     out[b, o, k] = sum_i x[b, i, k] w[i, o, k] for every Fourier mode k (complex values; any
//     number of mode axes up to kMaxModeAxes).
//
// The argument checks live in registration.cpp so that the CPU and the CUDA kernels apply exactly
// the same rules; the kernels themselves only see the views described by the structs below.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>
#include <vector>

namespace pdeop {

constexpr int kNumeratorTerms = 6;    // a0..a5
constexpr int kDenominatorTerms = 4;  // b1..b4
constexpr int kCoefficientSums = kNumeratorTerms + kDenominatorTerms;

// x seen as [outer, channels, inner]: channel c is in group c / (channels / groups), so for each
// outer index the values of one group form one contiguous run of (channels / groups) * inner.
struct RationalView {
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
  int64_t groups = 1;
  bool shared_numerator = true;  // numerator [6] (true) or [G, 6]

  int64_t numel() const { return outer * channels * inner; }
  int64_t channels_per_group() const { return channels / groups; }
  // Values of one group per outer index, contiguous: (C / G) * inner.
  int64_t run() const { return channels_per_group() * inner; }
};

// Validates (x, numerator, denominator, groups, channel_dim) and returns the view of x.
RationalView check_rational(const at::Tensor& x, const at::Tensor& numerator,
                            const at::Tensor& denominator, int64_t groups, int64_t channel_dim);

// Most mode axes (spatial dimensions of the spectral convolution) the kernels take. A fixed bound keeps
// the structs below plain values that a CUDA kernel can take by value; operators/kernels reads it
// (operators._C.MAX_MODE_AXES) and runs the pure-PyTorch reference beyond it.
constexpr int kMaxModeAxes = 8;

// A complex operand of the per-mode product C[m, n, k] = sum_r A[m, r, k] B[r, n, k], read in
// place through strides (counted in complex elements) so that slices of an FFT output need no copy.
// `conj` reads the conjugate.
struct ModeOperand {
  const void* data = nullptr;
  int64_t stride_row = 0;
  int64_t stride_col = 0;
  int64_t stride_mode[kMaxModeAxes] = {};
  bool conj = false;
};

// The whole product: sizes, mode grid (axes 0 .. mode_axes - 1, row-major) and both operands.
struct ModeProduct {
  int64_t rows = 0;    // M
  int64_t inner = 0;   // R (contracted)
  int64_t cols = 0;    // N
  int mode_axes = 0;
  int64_t modes[kMaxModeAxes] = {};
  ModeOperand a;       // [M, R, modes]
  ModeOperand b;       // [R, N, modes]

  int64_t num_modes() const {
    int64_t count = 1;
    for (int d = 0; d < mode_axes; ++d) count *= modes[d];
    return count;
  }
};

// CPU kernels (always built).
at::Tensor rational_forward_cpu(const at::Tensor& x, const at::Tensor& numerator,
                                const at::Tensor& denominator, int64_t groups, int64_t channel_dim);
std::tuple<at::Tensor, at::Tensor, at::Tensor> rational_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& numerator,
    const at::Tensor& denominator, int64_t groups, int64_t channel_dim);

// Whether a [M, N, modes...] tensor keeps its channels contiguous and its modes outermost.
inline bool is_mode_major(const at::Tensor& t) { return t.stride(1) < t.stride(t.dim() - 1); }

// Offsets (in complex elements) of the modes of an operand, in row-major mode order.
std::vector<int64_t> mode_offsets(const ModeOperand& op, const ModeProduct& product);

// Computes the product into `out` [M, N, modes...], laid out as registration.cpp allocates it:
// contiguous, or mode-major ([modes..., M, N] in memory).
void mode_product_cpu(const ModeProduct& product, at::Tensor& out);
// The product for a mode-major `out` on any device: then both operands usually are batches of
// ordinary matrices, one per mode, and the vendor's batched GEMM (MKL, cuBLAS) through at::bmm is
// already the fastest way to multiply them (registration.cpp).
void mode_product_batched(const ModeProduct& product, at::Tensor& out);

// The spectral-mixing ops around a device's product kernel: check, resolve lazy conjugation,
// allocate the output, describe the product, run the kernel.
using ModeProductKernel = void (*)(const ModeProduct&, at::Tensor&);
at::Tensor spectral_mix_forward_with(ModeProductKernel kernel, const at::Tensor& x,
                                     const at::Tensor& weight);
at::Tensor spectral_mix_backward_input_with(ModeProductKernel kernel, const at::Tensor& grad_out,
                                            const at::Tensor& weight);
at::Tensor spectral_mix_backward_weight_with(ModeProductKernel kernel, const at::Tensor& grad_out,
                                             const at::Tensor& x);

}  // namespace pdeop
