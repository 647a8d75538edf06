// CPU kernel of the per-mode complex product for mode-major operands (channels contiguous, modes
// outermost): one small complex GEMM per Fourier mode, C_k[M, N] = A_k[M, R] B_k[R, N], written
// into a mode-major output ([modes..., M, N] in memory).
//
// The columns n are the vector lanes (W/2 complex values per vector, interleaved). The entries of
// A are broadcast: acc1 += re(a) * b_row and acc2 += im(a) * b_row are fused multiply-adds, and
// one shuffle per micro-tile gives the complex result (Simd::complex_sum) - the same trick as the
// lanes kernel, with broadcasts in place of packed duplicates, so A is read in place through any
// strides. B is read in place when its rows are contiguous, unconjugated and a whole number of
// vectors wide; otherwise (e.g. the transposed, conjugated weight of the input gradient) it is
// first packed per mode into zero-padded rows, [mode][R][N rounded up].
//
// One task per mode: a mode's blocks of A and B are a few kilobytes and stay in cache. Compiled
// for AVX-512 (4 x 2 vectors tile), AVX2+FMA and the baseline (2 x 2), chosen at run time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu_dispatch.h"
#include "pdeop_ops.h"

namespace pdeop {
namespace {

// Least complex multiply-adds worth a thread.
constexpr int64_t kGemmGrain = 1 << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename T>
struct GemmPlan {
  const c10::complex<T>* a = nullptr;
  int64_t a_row = 0, a_col = 0;    // complex elements
  const int64_t* a_modes = nullptr;
  bool a_conj = false;
  const T* b = nullptr;            // rows of W-multiple length, T values
  int64_t b_row = 0;               // T values
  const int64_t* b_modes = nullptr;  // T values
  c10::complex<T>* out = nullptr;
  int64_t out_row = 0;
  const int64_t* out_modes = nullptr;
  int64_t rows = 0, inner = 0, cols = 0, padded_cols = 0;
};

// Register tile: RM rows x NV vectors of columns.
template <int VB>
struct GemmTile {
  static constexpr int rm = VB == 64 ? 4 : 2, nv = 2;
};

// Rows m0.. (clamped to the last row: padding rows recompute it and are not stored) times the NV
// column vectors starting at n0, for mode k.
template <typename T, int VB, int RM, int NV>
PDEOP_INLINE void gemm_tile(const GemmPlan<T>& p, int64_t k, int64_t m0, int64_t n0) {
  using S = Simd<T, VB>;
  using vec = typename S::vec;
  constexpr int W = S::W, P = S::P;
  vec acc1[RM][NV], acc2[RM][NV];
  const c10::complex<T>* a[RM];
  #pragma GCC unroll 8
  for (int mm = 0; mm < RM; ++mm) {
    a[mm] = p.a + p.a_modes[k] + std::min<int64_t>(m0 + mm, p.rows - 1) * p.a_row;
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc1[mm][v] = acc2[mm][v] = vec{};
  }
  const T* b = p.b + p.b_modes[k] + 2 * n0;
  for (int64_t r = 0; r < p.inner; ++r) {
    vec bv[NV];
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + r * p.b_row + v * W, sizeof(vec));
    #pragma GCC unroll 8
    for (int mm = 0; mm < RM; ++mm) {
      const T* z = reinterpret_cast<const T*>(a[mm] + r * p.a_col);
      const vec re = S::broadcast(z[0]);
      const vec im = S::broadcast(z[1]);
      #pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        acc1[mm][v] += re * bv[v];
        acc2[mm][v] += im * bv[v];
      }
    }
  }
  const int64_t rows = std::min<int64_t>(RM, p.rows - m0);
  for (int64_t mm = 0; mm < rows; ++mm) {
    c10::complex<T>* out = p.out + p.out_modes[k] + (m0 + mm) * p.out_row + n0;
    #pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int64_t values = std::min<int64_t>(P, p.cols - n0 - v * P);
      if (values <= 0) break;
      // conj(a) b = re(a) b - i im(a) b
      const vec im_part = p.a_conj ? -acc2[mm][v] : acc2[mm][v];
      S::store(reinterpret_cast<T*>(out + v * P), S::complex_sum(acc1[mm][v], im_part), 2 * values);
    }
  }
}

// One task: the whole product of mode k.
template <typename T>
struct GemmTask {
  template <int VB>
  static PDEOP_INLINE void run(const GemmPlan<T>* p, int64_t k) {
    constexpr int RM = GemmTile<VB>::rm, NV = GemmTile<VB>::nv, P = Simd<T, VB>::P;
    for (int64_t m0 = 0; m0 < p->rows; m0 += RM) {
      int64_t n0 = 0;
      for (; n0 + NV * P <= p->padded_cols; n0 += NV * P) gemm_tile<T, VB, RM, NV>(*p, k, m0, n0);
      for (; n0 < p->cols; n0 += P) gemm_tile<T, VB, RM, 1>(*p, k, m0, n0);
    }
  }
};

template <typename T>
struct GemmProduct {
  template <int VB>
  static void run(const ModeProduct& product, at::Tensor& out) {
    constexpr int64_t P = Simd<T, VB>::P;
    const int64_t K = product.num_modes(), R = product.inner, N = product.cols;
    GemmPlan<T> p;
    p.rows = product.rows;
    p.inner = R;
    p.cols = N;
    const std::vector<int64_t> a_modes = mode_offsets(product.a, product.modes);
    p.a = static_cast<const c10::complex<T>*>(product.a.data);
    p.a_row = product.a.stride_row;
    p.a_col = product.a.stride_col;
    p.a_modes = a_modes.data();
    p.a_conj = product.a.conj;

    ModeOperand out_operand;
    for (int64_t d = 2; d < out.dim(); ++d) out_operand.stride_mode[d - 2] = out.stride(d);
    const std::vector<int64_t> out_modes = mode_offsets(out_operand, product.modes);
    p.out = out.mutable_data_ptr<c10::complex<T>>();
    p.out_row = out.stride(0);
    p.out_modes = out_modes.data();

    std::vector<int64_t> b_modes = mode_offsets(product.b, product.modes);
    at::Tensor b_packed;
    if (product.b.stride_col == 1 && !product.b.conj && N % P == 0) {
      p.b = static_cast<const T*>(product.b.data);
      p.b_row = 2 * product.b.stride_row;
      for (int64_t& offset : b_modes) offset *= 2;
      p.padded_cols = N;
    } else {
      p.padded_cols = ceil_div(N, P) * P;
      b_packed = at::zeros({K * R * p.padded_cols * 2}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
      auto* dst = reinterpret_cast<c10::complex<T>*>(b_packed.mutable_data_ptr<T>());
      const auto* src = static_cast<const c10::complex<T>*>(product.b.data);
      const ModeOperand& b = product.b;
      at::parallel_for(0, K, ceil_div(1 << 15, R * N), [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
          for (int64_t r = 0; r < R; ++r) {
            c10::complex<T>* row = dst + (k * R + r) * p.padded_cols;
            const c10::complex<T>* line = src + b_modes[k] + r * b.stride_row;
            for (int64_t n = 0; n < N; ++n) row[n] = b.conj ? std::conj(line[n * b.stride_col]) : line[n * b.stride_col];
          }
        }
      });
      p.b = b_packed.const_data_ptr<T>();
      p.b_row = 2 * p.padded_cols;
      for (int64_t k = 0; k < K; ++k) b_modes[k] = 2 * k * R * p.padded_cols;
    }
    p.b_modes = b_modes.data();

    const GemmPlan<T>* plan = &p;
    at::parallel_for(0, K, ceil_div(kGemmGrain, p.rows * R * N), [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) Isa<VB>::template call<GemmTask<T>>(plan, k);
    });
  }
};

}  // namespace

void mode_gemm_cpu(const ModeProduct& product, at::Tensor& out) {
  if (out.scalar_type() == at::kComplexFloat) {
    run_widest<GemmProduct<float>>(product, out);
  } else {
    run_widest<GemmProduct<double>>(product, out);
  }
}

}  // namespace pdeop
