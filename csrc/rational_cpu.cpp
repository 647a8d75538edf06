// CPU kernels of the group-rational activation F(x) = P(x)/Q(x) and its backward.
//
// x is seen as [outer, C, inner] (pdeop_ops.h): for each outer index, the channels of a group are
// one contiguous run of (C / G) * inner values. Two loop shapes cover every layout:
//   * runs:    run >= kMinRun (channels-first [B, C, *spatial], or channels-last with wide groups
//              such as [B*L, 768] in 8 groups): one coefficient set per run, broadcast in the loop;
//   * pattern: shorter runs (channels-last with narrow groups): coefficients repeat with period
//              C * inner along the flat data, so they are expanded once into per-position arrays
//              (chunks small enough for L1) and the loop runs along whole rows, vectorised across
//              channels of different groups.
// Both loops are plain element-wise SIMD loops (OpenMP `simd`), compiled for several instruction
// sets (cpu_dispatch.h).
//
// Coefficient gradients: every parallel task reduces its own elements (SIMD partial sums in the
// input precision over at most a few thousand elements, then float64) into its own slot; the slots
// are combined in task order after the parallel loop. No atomics, and the result does not depend
// on the number of threads (the task split depends only on the shape).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_dispatch.h"
#include "pdeop_ops.h"

namespace pdeop {
namespace {

constexpr int64_t kMinRun = 32;        // shortest contiguous run worth a broadcast loop
constexpr int64_t kRunTile = 8192;     // elements of one run handled by one task
constexpr int64_t kPatternRow = 256;   // minimum values per pattern row (whole periods)
constexpr int64_t kChunk = 256;        // columns per pattern task: its coefficients and sums fit in L1
constexpr int64_t kTaskValues = 16384; // values per pattern task (rows are accumulated in T, then float64)

// One group's coefficients; b holds |b_j|.
template <typename T>
struct Coef {
  T a0, a1, a2, a3, a4, a5;
  T b1, b2, b3, b4;
};

template <typename T>
PDEOP_INLINE T sign_of(T v) {
  return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));  // sign(0) = 0, as torch.sign
}

template <typename T>
PDEOP_INLINE T numerator_at(T v, const Coef<T>& c) {
  return c.a0 + v * (c.a1 + v * (c.a2 + v * (c.a3 + v * (c.a4 + v * c.a5))));
}

template <typename T>
PDEOP_INLINE T denominator_at(T av, const Coef<T>& c) {
  return T(1) + av * (c.b1 + av * (c.b2 + av * (c.b3 + av * c.b4)));
}

// Coefficient set of position e of a pattern: arrays [10][period] (a0..a5, |b1|..|b4|).
template <typename T>
PDEOP_INLINE Coef<T> pattern_coef(const T* __restrict coef, int64_t stride, int64_t e) {
  return Coef<T>{coef[e],          coef[stride + e],     coef[2 * stride + e],
                 coef[3 * stride + e], coef[4 * stride + e], coef[5 * stride + e],
                 coef[6 * stride + e], coef[7 * stride + e], coef[8 * stride + e],
                 coef[9 * stride + e]};
}

// Backward of one element: grad_x, and the weights whose power sums give the coefficient
// gradients: da_i = sum u x^i (u = g/Q), db_j = sign(b_j) sum w |x|^j (w = -g P/Q^2).
template <typename T>
struct PointGrad {
  T grad_x, u, w;
};

template <typename T>
PDEOP_INLINE PointGrad<T> point_grad(T v, T g, const Coef<T>& c) {
  const T av = std::abs(v);
  const T p = numerator_at(v, c);
  const T dp = c.a1 + v * (T(2) * c.a2 + v * (T(3) * c.a3 + v * (T(4) * c.a4 + v * (T(5) * c.a5))));
  const T q = denominator_at(av, c);
  const T dq = sign_of(v) * (c.b1 + av * (T(2) * c.b2 + av * (T(3) * c.b3 + av * (T(4) * c.b4))));
  const T inv_q = T(1) / q;
  const T u = g * inv_q;
  const T ratio = p * inv_q;
  return PointGrad<T>{u * (dp - ratio * dq), u, -u * ratio};
}

template <typename T>
PDEOP_MULTIVERSION void forward_run(const T* __restrict x, T* __restrict y, int64_t n, Coef<T> c) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    y[i] = numerator_at(v, c) / denominator_at(std::abs(v), c);
  }
}

template <typename T>
PDEOP_MULTIVERSION void forward_pattern(const T* __restrict x, T* __restrict y, int64_t n,
                                        const T* __restrict coef, int64_t stride) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) {
    const Coef<T> c = pattern_coef(coef, stride, e);
    const T v = x[e];
    y[e] = numerator_at(v, c) / denominator_at(std::abs(v), c);
  }
}

// One run with broadcast coefficients; adds its 10 power sums to `sums`.
template <typename T>
PDEOP_MULTIVERSION void backward_run(const T* __restrict x, const T* __restrict g,
                                     T* __restrict gx, int64_t n, Coef<T> c, double* sums) {
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3, s4, s5, t1, t2, t3, t4)
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const PointGrad<T> d = point_grad(v, g[i], c);
    gx[i] = d.grad_x;
    const T u1 = d.u * v, u2 = u1 * v, u3 = u2 * v, u4 = u3 * v;
    s0 += d.u;
    s1 += u1;
    s2 += u2;
    s3 += u3;
    s4 += u4;
    s5 += u4 * v;
    const T av = std::abs(v);
    const T w1 = d.w * av, w2 = w1 * av, w3 = w2 * av;
    t1 += w1;
    t2 += w2;
    t3 += w3;
    t4 += w3 * av;
  }
  const T local[kCoefficientSums] = {s0, s1, s2, s3, s4, s5, t1, t2, t3, t4};
  for (int k = 0; k < kCoefficientSums; ++k) sums[k] += static_cast<double>(local[k]);
}

// One chunk of a pattern row; accumulates the power sums per position into acc [10][stride].
template <typename T>
PDEOP_MULTIVERSION void backward_pattern(const T* __restrict x, const T* __restrict g,
                                         T* __restrict gx, int64_t n, const T* __restrict coef,
                                         T* __restrict acc, int64_t stride) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) {
    const T v = x[e];
    const PointGrad<T> d = point_grad(v, g[e], pattern_coef(coef, stride, e));
    gx[e] = d.grad_x;
    const T u1 = d.u * v, u2 = u1 * v, u3 = u2 * v, u4 = u3 * v;
    acc[e] += d.u;
    acc[stride + e] += u1;
    acc[2 * stride + e] += u2;
    acc[3 * stride + e] += u3;
    acc[4 * stride + e] += u4;
    acc[5 * stride + e] += u4 * v;
    const T av = std::abs(v);
    const T w1 = d.w * av, w2 = w1 * av, w3 = w2 * av;
    acc[6 * stride + e] += w1;
    acc[7 * stride + e] += w2;
    acc[8 * stride + e] += w3;
    acc[9 * stride + e] += w3 * av;
  }
}

// Per-group coefficients, |b| taken, as float64 [G][10] read from the (checked) tensors.
std::vector<Coef<double>> group_coefficients(const at::Tensor& numerator, const at::Tensor& denominator,
                                             const RationalView& view) {
  const at::Tensor a = numerator.to(at::kDouble).contiguous().expand({view.groups, kNumeratorTerms}).contiguous();
  const at::Tensor b = denominator.to(at::kDouble).abs().contiguous();
  const double* pa = a.const_data_ptr<double>();
  const double* pb = b.const_data_ptr<double>();
  std::vector<Coef<double>> out(static_cast<size_t>(view.groups));
  for (int64_t g = 0; g < view.groups; ++g) {
    const double* ag = pa + g * kNumeratorTerms;
    const double* bg = pb + g * kDenominatorTerms;
    out[g] = Coef<double>{ag[0], ag[1], ag[2], ag[3], ag[4], ag[5], bg[0], bg[1], bg[2], bg[3]};
  }
  return out;
}

template <typename T>
Coef<T> cast_coef(const Coef<double>& c) {
  return Coef<T>{T(c.a0), T(c.a1), T(c.a2), T(c.a3), T(c.a4), T(c.a5),
                 T(c.b1), T(c.b2), T(c.b3), T(c.b4)};
}

// Group of position e (0 <= e < C * inner) of the flat pattern.
int64_t pattern_group(const RationalView& view, int64_t e) {
  return (e / view.inner) % view.channels / view.channels_per_group();
}

// The flat data of the pattern loop seen as rows of `width` values (whole periods C * inner of the
// coefficient pattern, at least kPatternRow), plus a shorter last row; each row is cut into column
// chunks of kChunk values. A task is one chunk of a stretch of rows.
struct PatternGrid {
  int64_t width = 0, rows = 0, tail = 0, chunks = 0, rows_per_task = 0, row_tasks = 0;

  explicit PatternGrid(const RationalView& view) {
    const int64_t period = view.channels * view.inner;
    width = period * std::max<int64_t>(1, (kPatternRow + period - 1) / period);
    rows = view.numel() / width;
    tail = view.numel() % width;
    chunks = (width + kChunk - 1) / kChunk;
    rows_per_task = std::max<int64_t>(1, kTaskValues / std::min(width, kChunk));
    row_tasks = (rows + (tail > 0) + rows_per_task - 1) / rows_per_task;
  }

  int64_t tasks() const { return row_tasks * chunks; }

  // Values of chunk `chunk` in row `row` (the last row may be short, or miss the chunk).
  int64_t length(int64_t row, int64_t chunk) const {
    const int64_t row_values = row < rows ? width : (row == rows ? tail : 0);
    return std::max<int64_t>(0, std::min(kChunk, row_values - chunk * kChunk));
  }
};

// Coefficients of every column of a pattern row, chunk by chunk: [chunk][10][kChunk].
template <typename T>
std::vector<T> pattern_coefficients(const std::vector<Coef<double>>& groups, const RationalView& view,
                                    const PatternGrid& grid) {
  std::vector<T> coef(static_cast<size_t>(grid.chunks * kCoefficientSums * kChunk), T(0));
  for (int64_t e = 0; e < grid.width; ++e) {
    const Coef<double>& c = groups[pattern_group(view, e)];
    const double values[kCoefficientSums] = {c.a0, c.a1, c.a2, c.a3, c.a4, c.a5, c.b1, c.b2, c.b3, c.b4};
    T* chunk = coef.data() + e / kChunk * kCoefficientSums * kChunk;
    for (int k = 0; k < kCoefficientSums; ++k) chunk[k * kChunk + e % kChunk] = T(values[k]);
  }
  return coef;
}

template <typename T>
void forward_impl(const T* x, T* y, const RationalView& view, const std::vector<Coef<double>>& groups) {
  const int64_t run = view.run();
  if (run >= kMinRun) {
    const int64_t tiles = (run + kRunTile - 1) / kRunTile;
    at::parallel_for(0, view.outer * view.groups * tiles, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t row = task / tiles;
        const int64_t start = (task % tiles) * kRunTile;
        const Coef<T> c = cast_coef<T>(groups[row % view.groups]);
        const int64_t offset = row * run + start;
        forward_run<T>(x + offset, y + offset, std::min(kRunTile, run - start), c);
      }
    });
    return;
  }
  const PatternGrid grid(view);
  const std::vector<T> coef = pattern_coefficients<T>(groups, view, grid);
  at::parallel_for(0, grid.tasks(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t chunk = task % grid.chunks, first = task / grid.chunks * grid.rows_per_task;
      const T* chunk_coef = coef.data() + chunk * kCoefficientSums * kChunk;
      for (int64_t row = first; row < first + grid.rows_per_task; ++row) {
        const int64_t n = grid.length(row, chunk);
        if (n == 0) break;
        const int64_t offset = row * grid.width + chunk * kChunk;
        forward_pattern<T>(x + offset, y + offset, n, chunk_coef, kChunk);
      }
    }
  });
}

// Backward; returns the float64 power sums per group, [G][10].
template <typename T>
std::vector<double> backward_impl(const T* x, const T* g, T* gx, const RationalView& view,
                                  const std::vector<Coef<double>>& groups) {
  std::vector<double> sums(static_cast<size_t>(view.groups * kCoefficientSums), 0.0);
  const int64_t run = view.run();
  if (run >= kMinRun) {
    const int64_t tiles = (run + kRunTile - 1) / kRunTile;
    const int64_t tasks = view.outer * view.groups * tiles;
    std::vector<double> partial(static_cast<size_t>(tasks * kCoefficientSums), 0.0);
    at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t row = task / tiles;
        const int64_t start = (task % tiles) * kRunTile;
        const Coef<T> c = cast_coef<T>(groups[row % view.groups]);
        const int64_t offset = row * run + start;
        backward_run<T>(x + offset, g + offset, gx + offset, std::min(kRunTile, run - start), c,
                        partial.data() + task * kCoefficientSums);
      }
    });
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t group = task / tiles % view.groups;
      for (int k = 0; k < kCoefficientSums; ++k) {
        sums[group * kCoefficientSums + k] += partial[task * kCoefficientSums + k];
      }
    }
    return sums;
  }
  const PatternGrid grid(view);
  const std::vector<T> coef = pattern_coefficients<T>(groups, view, grid);
  std::vector<int64_t> group_of(static_cast<size_t>(grid.width));
  for (int64_t e = 0; e < grid.width; ++e) group_of[e] = pattern_group(view, e);
  const int64_t slot = view.groups * kCoefficientSums;
  std::vector<double> partial(static_cast<size_t>(grid.tasks() * slot), 0.0);
  at::parallel_for(0, grid.tasks(), 1, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(static_cast<size_t>(kCoefficientSums * kChunk));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t chunk = task % grid.chunks, first = task / grid.chunks * grid.rows_per_task;
      const T* chunk_coef = coef.data() + chunk * kCoefficientSums * kChunk;
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t row = first; row < first + grid.rows_per_task; ++row) {
        const int64_t n = grid.length(row, chunk);
        if (n == 0) break;
        const int64_t offset = row * grid.width + chunk * kChunk;
        backward_pattern<T>(x + offset, g + offset, gx + offset, n, chunk_coef, acc.data(), kChunk);
      }
      double* out = partial.data() + task * slot;
      const int64_t columns = std::min(kChunk, grid.width - chunk * kChunk);
      for (int k = 0; k < kCoefficientSums; ++k) {
        const T* row = acc.data() + k * kChunk;
        for (int64_t e = 0; e < columns; ++e) {
          out[group_of[chunk * kChunk + e] * kCoefficientSums + k] += row[e];
        }
      }
    }
  });
  for (int64_t task = 0; task < grid.tasks(); ++task) {
    for (int64_t j = 0; j < slot; ++j) sums[j] += partial[task * slot + j];
  }
  return sums;
}

}  // namespace

at::Tensor rational_forward_cpu(const at::Tensor& x_in, const at::Tensor& numerator,
                                const at::Tensor& denominator, int64_t groups, int64_t channel_dim) {
  const RationalView view = check_rational(x_in, numerator, denominator, groups, channel_dim);
  const at::Tensor x = x_in.resolve_neg().contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  if (x.numel() == 0) return y;
  const std::vector<Coef<double>> coefs = group_coefficients(numerator, denominator, view);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pdeop_rational_forward_cpu", [&] {
    forward_impl<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), view, coefs);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rational_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& numerator,
    const at::Tensor& denominator, int64_t groups, int64_t channel_dim) {
  const RationalView view = check_rational(x_in, numerator, denominator, groups, channel_dim);
  TORCH_CHECK(grad_in.sizes() == x_in.sizes(), "pdeop.rational_backward: grad_out must have x's shape ",
              x_in.sizes(), " (got ", grad_in.sizes(), ")");
  TORCH_CHECK(grad_in.scalar_type() == x_in.scalar_type() && grad_in.device() == x_in.device(),
              "pdeop.rational_backward: grad_out must have x's dtype and device");
  const at::Tensor x = x_in.resolve_neg().contiguous();
  const at::Tensor grad = grad_in.resolve_neg().contiguous();
  at::Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  std::vector<double> sums(static_cast<size_t>(view.groups * kCoefficientSums), 0.0);
  if (x.numel() > 0) {
    const std::vector<Coef<double>> coefs = group_coefficients(numerator, denominator, view);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pdeop_rational_backward_cpu", [&] {
      sums = backward_impl<scalar_t>(x.const_data_ptr<scalar_t>(), grad.const_data_ptr<scalar_t>(),
                                     grad_x.mutable_data_ptr<scalar_t>(), view, coefs);
    });
  }
  const at::Tensor table =
      at::from_blob(sums.data(), {view.groups, kCoefficientSums}, at::TensorOptions().dtype(at::kDouble))
          .clone();
  at::Tensor grad_numerator = table.narrow(1, 0, kNumeratorTerms);
  if (view.shared_numerator) grad_numerator = grad_numerator.sum(0);
  const at::Tensor grad_denominator =
      table.narrow(1, kNumeratorTerms, kDenominatorTerms) * denominator.to(at::kDouble).sign();
  return {grad_x, grad_numerator.to(numerator.scalar_type()).contiguous(),
          grad_denominator.to(denominator.scalar_type()).contiguous()};
}

}  // namespace pdeop
