// CUDA kernels of the group-rational activation (registered for the CUDA dispatch key).
//
// x is seen as [outer, C, inner] (pdeop_ops.h). The elements of group g form, for every outer
// index o, one contiguous run of M = (C / G) * inner values starting at o * C * inner + g * M; so a
// block given a group (blockIdx.y) and a stretch of its "group-local" indices e in [0, outer * M)
// touches only that group's coefficients.
//
// Backward: every thread accumulates the ten power sums of its elements in registers; the block
// reduces them (warp shuffles, then shared memory) and thread 0 either adds them with one atomic
// per coefficient per block, or - when torch.use_deterministic_algorithms(True) - writes them to
// its slot of a [G, blocks, 10] buffer that a second kernel sums in a fixed order. Everything is
// launched on the current stream.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "pdeop_ops.h"

namespace pdeop {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocksPerGroup = 1024;

template <typename T>
struct Accumulate {
  using type = T;  // float sums for float inputs (one value per block and coefficient), double for double
};

// Coefficients of every group, [G][10]: a0..a5, |b1|..|b4|, in x's dtype.
at::Tensor coefficient_table(const at::Tensor& numerator, const at::Tensor& denominator, int64_t groups) {
  return at::cat({numerator.expand({groups, kNumeratorTerms}), denominator.abs()}, 1).contiguous();
}

template <typename T>
__device__ __forceinline__ T sign_of(T v) {
  return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));  // sign(0) = 0
}

template <typename T>
__global__ void rational_forward_kernel(const T* __restrict__ x, T* __restrict__ y, const T* __restrict__ coef,
                                        int64_t n, int64_t inner, int64_t channels, int64_t per_group) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T* c = coef + (i / inner % channels / per_group) * kCoefficientSums;
    const T v = x[i];
    const T av = fabs(v);
    const T p = c[0] + v * (c[1] + v * (c[2] + v * (c[3] + v * (c[4] + v * c[5]))));
    const T q = T(1) + av * (c[6] + av * (c[7] + av * (c[8] + av * c[9])));
    y[i] = p / q;
  }
}

// atomicAdd on double exists from sm_60 on; older targets use a compare-and-swap loop.
__device__ __forceinline__ float atomic_add(float* address, float value) { return atomicAdd(address, value); }

__device__ __forceinline__ double atomic_add(double* address, double value) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 600
  return atomicAdd(address, value);
#else
  auto* bits = reinterpret_cast<unsigned long long*>(address);
  unsigned long long old = *bits, assumed;
  do {
    assumed = old;
    old = atomicCAS(bits, assumed, __double_as_longlong(value + __longlong_as_double(assumed)));
  } while (assumed != old);
  return __longlong_as_double(old);
#endif
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Block sum of `values` (kCoefficientSums per thread); the result is valid in thread 0.
template <typename A>
__device__ void block_sums(A (&values)[kCoefficientSums]) {
  __shared__ A partial[kCoefficientSums][kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int k = 0; k < kCoefficientSums; ++k) {
    const A v = warp_sum(values[k]);
    if (lane == 0) partial[k][warp] = v;
  }
  __syncthreads();
  if (warp == 0) {
    for (int k = 0; k < kCoefficientSums; ++k) {
      A v = lane < kThreads / 32 ? partial[k][lane] : A(0);
      values[k] = warp_sum(v);
    }
  }
}

// grid: (blocks per group, G). `sums` is [G][10] (atomic mode) or [G][blocks][10] (deterministic).
template <typename T>
__global__ void rational_backward_kernel(const T* __restrict__ x, const T* __restrict__ grad,
                                         T* __restrict__ grad_x, const T* __restrict__ coef,
                                         typename Accumulate<T>::type* __restrict__ sums, int64_t local_count,
                                         int64_t run, int64_t row, bool deterministic) {
  using A = typename Accumulate<T>::type;
  const int64_t group = blockIdx.y;
  const T* c = coef + group * kCoefficientSums;
  const T a0 = c[0], a1 = c[1], a2 = c[2], a3 = c[3], a4 = c[4], a5 = c[5];
  const T b1 = c[6], b2 = c[7], b3 = c[8], b4 = c[9];
  A acc[kCoefficientSums] = {};
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < local_count;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / run * row + group * run + e % run;
    const T v = x[i];
    const T g = grad[i];
    const T av = fabs(v);
    const T p = a0 + v * (a1 + v * (a2 + v * (a3 + v * (a4 + v * a5))));
    const T dp = a1 + v * (T(2) * a2 + v * (T(3) * a3 + v * (T(4) * a4 + v * (T(5) * a5))));
    const T q = T(1) + av * (b1 + av * (b2 + av * (b3 + av * b4)));
    const T dq = sign_of(v) * (b1 + av * (T(2) * b2 + av * (T(3) * b3 + av * (T(4) * b4))));
    const T inv_q = T(1) / q;
    const T u = g * inv_q;
    const T ratio = p * inv_q;
    grad_x[i] = u * (dp - ratio * dq);
    T power = u;
    for (int k = 0; k < kNumeratorTerms; ++k, power *= v) acc[k] += power;
    power = -u * ratio * av;
    for (int k = kNumeratorTerms; k < kCoefficientSums; ++k, power *= av) acc[k] += power;
  }
  block_sums(acc);
  if (threadIdx.x != 0) return;
  if (deterministic) {
    A* slot = sums + (group * gridDim.x + blockIdx.x) * kCoefficientSums;
    for (int k = 0; k < kCoefficientSums; ++k) slot[k] = acc[k];
  } else {
    for (int k = 0; k < kCoefficientSums; ++k) atomic_add(sums + group * kCoefficientSums + k, acc[k]);
  }
}

// Second stage of the deterministic mode: out[g][k] = sum over blocks b, in order, of partial[g][b][k].
template <typename A>
__global__ void sum_block_partials(const A* __restrict__ partial, A* __restrict__ out, int64_t groups,
                                   int64_t blocks) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= groups * kCoefficientSums) return;
  const int64_t group = j / kCoefficientSums, k = j % kCoefficientSums;
  A total = A(0);
  for (int64_t b = 0; b < blocks; ++b) total += partial[(group * blocks + b) * kCoefficientSums + k];
  out[j] = total;
}

int64_t blocks_for(int64_t count) {
  return std::max<int64_t>(1, std::min<int64_t>(kMaxBlocksPerGroup, (count + kThreads * 4 - 1) / (kThreads * 4)));
}

at::Tensor rational_forward_cuda(const at::Tensor& x_in, const at::Tensor& numerator,
                                 const at::Tensor& denominator, int64_t groups, int64_t channel_dim) {
  const RationalView view = check_rational(x_in, numerator, denominator, groups, channel_dim);
  const c10::cuda::OptionalCUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.resolve_neg().contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() == 0) return y;
  const at::Tensor coef = coefficient_table(numerator, denominator, groups);
  const int64_t n = x.numel();
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pdeop_rational_forward_cuda", [&] {
    rational_forward_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), coef.const_data_ptr<scalar_t>(), n,
        view.inner, view.channels, view.channels_per_group());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rational_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& numerator,
    const at::Tensor& denominator, int64_t groups, int64_t channel_dim) {
  const RationalView view = check_rational(x_in, numerator, denominator, groups, channel_dim);
  TORCH_CHECK(groups <= 65535, "pdeop.rational_backward: CUDA supports at most 65535 groups (got ", groups, ")");
  TORCH_CHECK(grad_in.sizes() == x_in.sizes() && grad_in.scalar_type() == x_in.scalar_type() &&
                  grad_in.device() == x_in.device(),
              "pdeop.rational_backward: grad_out must have x's shape, dtype and device");
  const c10::cuda::OptionalCUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.resolve_neg().contiguous();
  const at::Tensor grad = grad_in.resolve_neg().contiguous();
  at::Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  const at::Tensor coef = coefficient_table(numerator, denominator, groups);
  const int64_t run = view.channels_per_group() * view.inner;
  const int64_t local_count = view.outer * run;
  const int64_t blocks = blocks_for(local_count);
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  at::Tensor sums = at::zeros({groups, kCoefficientSums}, x.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (local_count > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pdeop_rational_backward_cuda", [&] {
      using A = typename Accumulate<scalar_t>::type;
      at::Tensor target = deterministic ? at::empty({groups, blocks, kCoefficientSums}, x.options()) : sums;
      const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(groups));
      rational_backward_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), grad.const_data_ptr<scalar_t>(), grad_x.mutable_data_ptr<scalar_t>(),
          coef.const_data_ptr<scalar_t>(), target.mutable_data_ptr<A>(), local_count, run,
          view.channels * view.inner, deterministic);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (deterministic) {
        const int64_t outputs = groups * kCoefficientSums;
        sum_block_partials<A><<<(outputs + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
            target.const_data_ptr<A>(), sums.mutable_data_ptr<A>(), groups, blocks);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  at::Tensor grad_numerator = sums.narrow(1, 0, kNumeratorTerms);
  if (view.shared_numerator) grad_numerator = grad_numerator.sum(0);
  const at::Tensor grad_denominator = sums.narrow(1, kNumeratorTerms, kDenominatorTerms) * denominator.sign();
  return {grad_x, grad_numerator.contiguous(), grad_denominator.contiguous()};
}

}  // namespace

}  // namespace pdeop

TORCH_LIBRARY_IMPL(pdeop, CUDA, m) {
  m.impl("rational_forward", &pdeop::rational_forward_cuda);
  m.impl("rational_backward", &pdeop::rational_backward_cuda);
}
