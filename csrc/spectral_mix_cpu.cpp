// CPU kernels of the per-mode complex product C[m, n, k] = sum_r A[m, r, k] B[r, n, k], which
// computes the spectral mixing and both of its gradients (pdeop_ops.h), and their dispatch:
//   * channel-major operands ([B, C, modes] with the modes contiguous, e.g. slices of an rfft
//     output): the "lanes" kernel of this file, which vectorises over the modes;
//   * mode-major operands (channels contiguous, modes outermost, as DFT-by-matmul pipelines and
//     einsum produce them): one ordinary GEMM per mode, by ATen's batched GEMM on views
//     (mode_product_batched; MKL's kernels run near peak there, and no copy is needed).
// The output layout follows the operands (registration.cpp), and decides the kernel here.
//
// Lanes kernel. For fixed (m, r, n) the product is an element-wise complex multiply-add along the
// modes, so W/2 consecutive modes form one vector and nothing is transposed. A is packed into
// "duplicated" split form, (re, re, ...) and (im, im, ...) per mode; B is packed interleaved
// (re, im, re, im, ...). Then
//     acc1 += [re A, re A, ..] * [re B, im B, ..],   acc2 += [im A, im A, ..] * [re B, im B, ..]
// are plain fused multiply-adds, and one shuffle per micro-tile gives the complex result
// (Simd::complex_sum). Packed A: [mode tile][m block][r][RM][re | im][W]; packed B:
// [mode tile][column block][r][RN][W]; both zero-padded to whole tiles and blocks, conjugated
// where asked, and filled in one parallel pass that reads each source in its memory order (any
// strides, so slices need no copy first). Packing B tile-major matters: one tile of B read in
// place is a set of lines one mode-line apart, which collide in the caches.
//
// A task owns one mode tile and a chunk of m blocks, sweeping all column blocks; the RM x RN
// accumulators stay in registers for the whole contraction over r, and the tile of packed B is
// reused from cache across the chunk. Compiled for AVX-512 (2 x 4 tile), AVX2+FMA and the
// baseline (2 x 2), chosen at run time (cpu_dispatch.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu_dispatch.h"
#include "pdeop_ops.h"

namespace pdeop {
namespace {

// m blocks per task: a task reuses its tile of B (from cache) for this many blocks of A rows.
constexpr int64_t kBlocksPerChunk = 8;
// Least work worth a thread: packed values for the packing pass, complex multiply-adds for the
// product.
constexpr int64_t kPackGrain = 1 << 15;
constexpr int64_t kComputeGrain = 1 << 18;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::vector<int64_t> mode_offsets(const ModeOperand& op, const ModeProduct& product) {
  // Row-major odometer over the mode axes; the offset is updated incrementally as digits roll over.
  const int axes = product.mode_axes;
  std::vector<int64_t> offsets;
  offsets.reserve(static_cast<size_t>(product.num_modes()));
  int64_t index[kMaxModeAxes] = {};
  int64_t offset = 0;
  for (int64_t k = 0, total = product.num_modes(); k < total; ++k) {
    offsets.push_back(offset);
    for (int d = axes - 1; d >= 0; --d) {
      if (++index[d] < product.modes[d]) {
        offset += op.stride_mode[d];
        break;
      }
      offset -= (product.modes[d] - 1) * op.stride_mode[d];
      index[d] = 0;
    }
  }
  return offsets;
}

namespace {

bool contiguous_modes(const std::vector<int64_t>& offsets) {
  for (size_t k = 0; k < offsets.size(); ++k) {
    if (offsets[k] != static_cast<int64_t>(k)) return false;
  }
  return true;
}

// Everything a task reads and writes.
template <typename T>
struct ProductPlan {
  const T* a = nullptr;                 // packed A
  const T* b = nullptr;                 // packed B
  T* out = nullptr;                     // C, contiguous [M][N][K] complex (as T values)
  int64_t rows = 0, inner = 0, cols = 0, num_modes = 0;
  int64_t tiles = 0, m_blocks = 0, chunk = 1, m_chunks = 0;
};

// The lines (free index f, contracted index r; all modes) of an operand, visited in the source's
// memory order (the index with the larger stride outermost) so that the reads stream.
struct LineOrder {
  bool free_outer = true;
  int64_t free = 0, inner = 0;

  LineOrder(int64_t free_stride, int64_t inner_stride, int64_t free_, int64_t inner_)
      : free_outer(std::abs(free_stride) >= std::abs(inner_stride)), free(free_), inner(inner_) {}

  int64_t outer() const { return free_outer ? free : inner; }

  template <typename Visit>
  void visit(int64_t o, const Visit& visit_line) const {
    const int64_t nested = free_outer ? inner : free;
    for (int64_t i = 0; i < nested; ++i) visit_line(free_outer ? o : i, free_outer ? i : o);
  }
};

// Writes one line of A (null: a padding row) into its slot of every tile, duplicated split form:
// [re re ...][im im ...], W values each.
template <typename T, int W>
void pack_a_line(const c10::complex<T>* line, const std::vector<int64_t>& offsets, bool contiguous,
                 T imag_sign, int64_t tiles, int64_t tile_stride, T* out) {
  constexpr int64_t P = W / 2;
  const int64_t num_modes = static_cast<int64_t>(offsets.size());
  for (int64_t tile = 0; tile < tiles; ++tile, out += tile_stride) {
    T* re = out;
    T* im = out + W;
    const int64_t first = tile * P;
    const int64_t lanes = line ? std::min(P, num_modes - first) : 0;
    if (contiguous && lanes == P) {
      for (int64_t l = 0; l < P; ++l) {
        const c10::complex<T> z = line[first + l];
        re[2 * l] = re[2 * l + 1] = z.real();
        im[2 * l] = im[2 * l + 1] = imag_sign * z.imag();
      }
      continue;
    }
    int64_t l = 0;
    for (; l < lanes; ++l) {
      const c10::complex<T> z = line[offsets[first + l]];
      re[2 * l] = re[2 * l + 1] = z.real();
      im[2 * l] = im[2 * l + 1] = imag_sign * z.imag();
    }
    for (; l < P; ++l) re[2 * l] = re[2 * l + 1] = im[2 * l] = im[2 * l + 1] = T(0);
  }
}

// Writes one line of B into its slot of every tile, interleaved complex, W values.
template <typename T, int W>
void pack_b_line(const c10::complex<T>* line, const std::vector<int64_t>& offsets, bool contiguous,
                 T imag_sign, int64_t tiles, int64_t tile_stride, T* out) {
  constexpr int64_t P = W / 2;
  const int64_t num_modes = static_cast<int64_t>(offsets.size());
  for (int64_t tile = 0; tile < tiles; ++tile, out += tile_stride) {
    const int64_t first = tile * P;
    const int64_t lanes = std::min(P, num_modes - first);
    if (contiguous && lanes == P && imag_sign > T(0)) {
      std::memcpy(out, line + first, sizeof(T) * W);
      continue;
    }
    int64_t l = 0;
    for (; l < lanes; ++l) {
      const c10::complex<T> z = line[offsets[first + l]];
      out[2 * l] = z.real();
      out[2 * l + 1] = imag_sign * z.imag();
    }
    std::fill(out + 2 * l, out + W, T(0));
  }
}

// Packs A into [tile][m block][r][RM][re | im][W] and B into [tile][column block][r][width][W]
// (blocks of RN columns, then blocks of one column), both in one parallel pass.
template <typename T, int W, int RM, int RN>
void pack_operands(const ModeProduct& product, int64_t tiles, T* a_dst, T* b_dst) {
  const int64_t R = product.inner, M = product.rows, N = product.cols;
  const int64_t padded_m = ceil_div(M, RM) * RM, blocked_n = N / RN * RN;
  const std::vector<int64_t> a_offsets = mode_offsets(product.a, product);
  const std::vector<int64_t> b_offsets = mode_offsets(product.b, product);
  const bool a_contiguous = contiguous_modes(a_offsets), b_contiguous = contiguous_modes(b_offsets);
  const T a_sign = product.a.conj ? T(-1) : T(1), b_sign = product.b.conj ? T(-1) : T(1);
  const auto* a_src = static_cast<const c10::complex<T>*>(product.a.data);
  const auto* b_src = static_cast<const c10::complex<T>*>(product.b.data);
  const LineOrder a_order(product.a.stride_row, product.a.stride_col, padded_m, R);
  const LineOrder b_order(product.b.stride_col, product.b.stride_row, N, R);
  const int64_t a_lines = a_order.outer(), total = a_lines + b_order.outer();
  const int64_t values_per_item = std::max<int64_t>(1, (M + N) * R * product.num_modes() / total);
  at::parallel_for(0, total, ceil_div(kPackGrain, values_per_item), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      if (o < a_lines) {
        a_order.visit(o, [&](int64_t m, int64_t r) {
          const c10::complex<T>* line = m < M ? a_src + m * product.a.stride_row + r * product.a.stride_col : nullptr;
          T* slot = a_dst + ((m / RM * R + r) * RM + m % RM) * 2 * W;
          pack_a_line<T, W>(line, a_offsets, a_contiguous, a_sign, tiles, padded_m * R * 2 * W, slot);
        });
      } else {
        b_order.visit(o - a_lines, [&](int64_t n, int64_t r) {
          const c10::complex<T>* line = b_src + r * product.b.stride_row + n * product.b.stride_col;
          const bool blocked = n < blocked_n;
          T* slot = b_dst + (blocked ? n / RN * RN : n) * R * W + (r * (blocked ? RN : 1) + (blocked ? n % RN : 0)) * W;
          pack_b_line<T, W>(line, b_offsets, b_contiguous, b_sign, tiles, R * N * W, slot);
        });
      }
    }
  });
}

// The RM x C micro-tile: rows m0.. of packed A block `a`, columns n0.. whose copied B block is `b`
// ([r][C][W]).
template <typename T, int VB, int RM, int C>
PDEOP_INLINE void micro_tile(const ProductPlan<T>& p, const T* a, const T* b, int64_t tile, int64_t m0,
                             int64_t n0) {
  using S = Simd<T, VB>;
  using vec = typename S::vec;
  constexpr int W = S::W;
  vec acc1[RM][C], acc2[RM][C];
  #pragma GCC unroll 8
  for (int mm = 0; mm < RM; ++mm) {
    #pragma GCC unroll 8
    for (int nn = 0; nn < C; ++nn) acc1[mm][nn] = acc2[mm][nn] = vec{};
  }
  for (int64_t r = 0; r < p.inner; ++r) {
    vec are[RM], aim[RM];
    #pragma GCC unroll 8
    for (int mm = 0; mm < RM; ++mm) {
      std::memcpy(&are[mm], a + (r * RM + mm) * 2 * W, sizeof(vec));
      std::memcpy(&aim[mm], a + (r * RM + mm) * 2 * W + W, sizeof(vec));
    }
    #pragma GCC unroll 8
    for (int nn = 0; nn < C; ++nn) {
      vec bv;
      std::memcpy(&bv, b + (r * C + nn) * W, sizeof(vec));
      #pragma GCC unroll 8
      for (int mm = 0; mm < RM; ++mm) {
        acc1[mm][nn] += are[mm] * bv;
        acc2[mm][nn] += aim[mm] * bv;
      }
    }
  }
  const int64_t values = 2 * std::min<int64_t>(W / 2, p.num_modes - tile * (W / 2));
  const int64_t rows = std::min<int64_t>(RM, p.rows - m0);
  for (int64_t mm = 0; mm < rows; ++mm) {
    #pragma GCC unroll 8
    for (int nn = 0; nn < C; ++nn) {
      T* out = p.out + (((m0 + mm) * p.cols + n0 + nn) * p.num_modes + tile * (W / 2)) * 2;
      S::store(out, S::complex_sum(acc1[mm][nn], acc2[mm][nn]), values);
    }
  }
}

// Register tile (rows x columns of complex vectors) per vector width: 2 x 4 with 32 AVX-512
// registers, 2 x 2 with 16 AVX2 or SSE registers.
template <int VB>
struct LanesTile {
  static constexpr int rm = 2, rn = VB == 64 ? 4 : 2;
};

// One task: a mode tile and a chunk of m blocks, all columns.
template <typename T>
struct LanesTask {
  template <int VB>
  static PDEOP_INLINE void run(const ProductPlan<T>* p, int64_t task) {
    constexpr int W = Simd<T, VB>::W, RM = LanesTile<VB>::rm, RN = LanesTile<VB>::rn;
    const int64_t tile = task / p->m_chunks;
    const int64_t first_block = task % p->m_chunks * p->chunk;
    const int64_t last_block = std::min(p->m_blocks, first_block + p->chunk);
    for (int64_t mb = first_block; mb < last_block; ++mb) {
      const T* a = p->a + (tile * p->m_blocks + mb) * p->inner * RM * 2 * W;
      const T* b = p->b + tile * p->inner * p->cols * W;
      int64_t n0 = 0;
      for (; n0 + RN <= p->cols; n0 += RN, b += p->inner * RN * W) {
        micro_tile<T, VB, RM, RN>(*p, a, b, tile, mb * RM, n0);
      }
      for (; n0 < p->cols; ++n0, b += p->inner * W) micro_tile<T, VB, RM, 1>(*p, a, b, tile, mb * RM, n0);
    }
  }
};

// Packs both operands, then runs the tasks.
template <typename T>
struct LanesProduct {
  template <int VB>
  static void run(const ModeProduct& product, at::Tensor& out) {
    constexpr int64_t W = Simd<T, VB>::W, RM = LanesTile<VB>::rm, RN = LanesTile<VB>::rn;
    ProductPlan<T> p;
    p.rows = product.rows;
    p.inner = product.inner;
    p.cols = product.cols;
    p.num_modes = product.num_modes();
    p.tiles = ceil_div(p.num_modes, W / 2);
    p.m_blocks = ceil_div(p.rows, RM);
    p.chunk = std::min<int64_t>(p.m_blocks, kBlocksPerChunk);
    p.m_chunks = ceil_div(p.m_blocks, p.chunk);
    const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    at::Tensor a_packed = at::empty({p.tiles * p.m_blocks * RM * p.inner * 2 * W}, options);
    at::Tensor b_packed = at::empty({p.tiles * p.inner * p.cols * W}, options);
    pack_operands<T, W, RM, RN>(product, p.tiles, a_packed.mutable_data_ptr<T>(), b_packed.mutable_data_ptr<T>());
    p.a = a_packed.const_data_ptr<T>();
    p.b = b_packed.const_data_ptr<T>();
    p.out = reinterpret_cast<T*>(out.mutable_data_ptr<c10::complex<T>>());
    // Small products run on one thread: a parallel region costs more than they do.
    const int64_t macs_per_task = p.chunk * RM * p.cols * p.inner * (W / 2);
    const ProductPlan<T>* plan = &p;
    at::parallel_for(0, p.tiles * p.m_chunks, ceil_div(kComputeGrain, macs_per_task), [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) Isa<VB>::template call<LanesTask<T>>(plan, task);
    });
  }
};

}  // namespace

void mode_product_cpu(const ModeProduct& product, at::Tensor& out) {
  const bool single = out.scalar_type() == at::kComplexFloat;
  TORCH_INTERNAL_ASSERT(single || out.scalar_type() == at::kComplexDouble);
  if (is_mode_major(out)) {
    mode_product_batched(product, out);
  } else if (single) {
    TORCH_INTERNAL_ASSERT(out.is_contiguous());
    run_widest<LanesProduct<float>>(product, out);
  } else {
    TORCH_INTERNAL_ASSERT(out.is_contiguous());
    run_widest<LanesProduct<double>>(product, out);
  }
}

}  // namespace pdeop
