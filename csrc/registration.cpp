// Schemas of the `pdeop` custom ops, their CPU registrations, the shared argument checks and the
// Python module `operators._C` (importing it runs the registrations below).
//
// Fake (meta) kernels and autograd rules are registered from Python in operators/kernels/ops.py.
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/WrapDimUtils.h>
#include <torch/library.h>

#include "pdeop_ops.h"

namespace pdeop {

namespace {

bool is_real_floating(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

bool is_complex_floating(const at::Tensor& t) {
  return t.scalar_type() == at::kComplexFloat || t.scalar_type() == at::kComplexDouble;
}

void check_same_device_and_dtype(const at::Tensor& x, const at::Tensor& other, const char* name) {
  TORCH_CHECK(other.device() == x.device(), "pdeop: ", name, " must be on x's device ", x.device(),
              " (got ", other.device(), ")");
  TORCH_CHECK(other.scalar_type() == x.scalar_type(), "pdeop: ", name, " must have x's dtype ",
              x.scalar_type(), " (got ", other.scalar_type(), ")");
}

}  // namespace

RationalView check_rational(const at::Tensor& x, const at::Tensor& numerator,
                            const at::Tensor& denominator, int64_t groups, int64_t channel_dim) {
  TORCH_CHECK(x.dim() >= 1, "pdeop.rational: x must have at least one dimension (got a scalar)");
  TORCH_CHECK(is_real_floating(x), "pdeop.rational: x must be float32 or float64 (got ",
              x.scalar_type(), ")");
  check_same_device_and_dtype(x, numerator, "numerator");
  check_same_device_and_dtype(x, denominator, "denominator");
  TORCH_CHECK(groups >= 1, "pdeop.rational: groups must be >= 1 (got ", groups, ")");
  const int64_t dim = at::maybe_wrap_dim(channel_dim, x.dim());
  RationalView view;
  view.channels = x.size(dim);
  view.groups = groups;
  TORCH_CHECK(view.channels % groups == 0, "pdeop.rational: groups (", groups,
              ") must divide the number of channels (", view.channels, ")");
  for (int64_t d = 0; d < dim; ++d) view.outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) view.inner *= x.size(d);
  const bool shared = numerator.dim() == 1 && numerator.size(0) == kNumeratorTerms;
  const bool per_group = numerator.dim() == 2 && numerator.size(0) == groups &&
                         numerator.size(1) == kNumeratorTerms;
  TORCH_CHECK(shared || per_group, "pdeop.rational: numerator must have shape [6] or [", groups,
              ", 6] (got ", numerator.sizes(), ")");
  view.shared_numerator = shared;
  TORCH_CHECK(denominator.dim() == 2 && denominator.size(0) == groups &&
                  denominator.size(1) == kDenominatorTerms,
              "pdeop.rational: denominator must have shape [", groups, ", 4] (got ",
              denominator.sizes(), ")");
  return view;
}

namespace {

void check_spectral(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(is_complex_floating(x), "pdeop.spectral_mix: x must be complex64 or complex128 (got ",
              x.scalar_type(), ")");
  check_same_device_and_dtype(x, weight, "weight");
  TORCH_CHECK(x.dim() >= 3 && x.dim() <= 2 + kMaxModeAxes,
              "pdeop.spectral_mix: x must be [B, C_in, m_1..m_d] with 1 <= d <= ", kMaxModeAxes,
              " (got shape ", x.sizes(), ")");
  TORCH_CHECK(weight.dim() == x.dim(), "pdeop.spectral_mix: weight must be [C_in, C_out, m_1..m_d] "
              "with x's d (got weight ", weight.sizes(), " for x ", x.sizes(), ")");
  TORCH_CHECK(weight.size(0) == x.size(1), "pdeop.spectral_mix: weight.shape[0] must equal C_in = ",
              x.size(1), " (got ", weight.size(0), ")");
  for (int64_t d = 2; d < x.dim(); ++d) {
    TORCH_CHECK(weight.size(d) == x.size(d), "pdeop.spectral_mix: mode axis ", d - 2,
                " of weight must match x (got ", weight.sizes(), " for x ", x.sizes(), ")");
  }
}

// Fills the mode sizes and each operand's mode strides from `t`'s trailing axes.
void set_modes(ModeProduct& p, ModeOperand& op, const at::Tensor& t) {
  p.mode_axes = static_cast<int>(t.dim() - 2);
  for (int64_t d = 2; d < t.dim(); ++d) {
    p.modes[d - 2] = t.size(d);
    op.stride_mode[d - 2] = t.stride(d);
  }
}

ModeOperand operand(const at::Tensor& t, int64_t row_axis, int64_t col_axis, bool conj) {
  ModeOperand op;
  op.data = t.const_data_ptr();
  op.stride_row = t.stride(row_axis);
  op.stride_col = t.stride(col_axis);
  op.conj = conj;
  return op;
}

// Reads of raw memory must see the values, not a lazily conjugated or negated view.
at::Tensor resolved(const at::Tensor& t) { return t.resolve_conj().resolve_neg(); }

// The output [rows, cols, modes...] of a product of the tensors `a` and `b`: mode-major
// ([modes..., rows, cols] in memory) when either keeps its channels contiguous under its modes, as
// DFT-by-matmul pipelines produce them (the product then runs as a batched GEMM, and the layout
// carries through); else contiguous (the modes-as-lanes kernels). operators/kernels/ops.py's fake
// kernels apply the same rule.
at::Tensor mode_output(const at::Tensor& a, const at::Tensor& b, int64_t rows, int64_t cols) {
  const int64_t d = a.dim() - 2;
  std::vector<int64_t> sizes = {rows, cols};
  for (int64_t k = 0; k < d; ++k) sizes.push_back(a.size(2 + k));
  const auto options = a.options().memory_format(at::MemoryFormat::Contiguous);
  if (!is_mode_major(a) && !is_mode_major(b)) return at::empty(sizes, options);
  std::vector<int64_t> mode_first(sizes.begin() + 2, sizes.end());
  mode_first.push_back(rows);
  mode_first.push_back(cols);
  std::vector<int64_t> order = {d, d + 1};
  for (int64_t k = 0; k < d; ++k) order.push_back(k);
  return at::empty(mode_first, options).permute(order);
}

// out[row, col, k] = sum_r A[row, r, k] B[r, col, k] with A = a read along (a_row, a_col) and
// B = b read along (b_row, b_col), conjugated where asked.
at::Tensor mode_product(ModeProductKernel kernel, const at::Tensor& a_in,
                        int64_t a_row, int64_t a_col, bool a_conj, const at::Tensor& b_in, int64_t b_row,
                        int64_t b_col, bool b_conj) {
  const at::Tensor a = resolved(a_in);
  const at::Tensor b = resolved(b_in);
  ModeProduct p;
  p.rows = a.size(a_row);
  p.inner = a.size(a_col);
  p.cols = b.size(b_col);
  p.a = operand(a, a_row, a_col, a_conj);
  p.b = operand(b, b_row, b_col, b_conj);
  set_modes(p, p.a, a);
  set_modes(p, p.b, b);
  at::Tensor out = mode_output(a_in, b_in, p.rows, p.cols);
  if (out.numel() == 0) return out;
  if (p.inner == 0) return out.zero_();
  kernel(p, out);
  return out;
}

}  // namespace

void mode_product_batched(const ModeProduct& p, at::Tensor& out) {
  const int64_t K = p.num_modes();
  const auto options = out.options();
  // The operand as a [K, rows, cols] batch (a view when its mode axes merge, as in mode-major
  // layouts; a copy otherwise), lazily conjugated where asked.
  auto batch = [&](const ModeOperand& op, int64_t rows, int64_t cols) {
    std::vector<int64_t> sizes(p.modes, p.modes + p.mode_axes);
    std::vector<int64_t> strides(op.stride_mode, op.stride_mode + p.mode_axes);
    sizes.insert(sizes.end(), {rows, cols});
    strides.insert(strides.end(), {op.stride_row, op.stride_col});
    const at::Tensor t = at::from_blob(const_cast<void*>(op.data), sizes, strides, options).reshape({K, rows, cols});
    return op.conj ? t.conj() : t;
  };
  std::vector<int64_t> modes_first;
  for (int64_t d = 2; d < out.dim(); ++d) modes_first.push_back(d);
  modes_first.push_back(0);
  modes_first.push_back(1);
  at::Tensor out_batch = out.permute(modes_first).view({K, p.rows, p.cols});
  at::bmm_out(out_batch, batch(p.a, p.rows, p.inner), batch(p.b, p.inner, p.cols));
}

at::Tensor spectral_mix_forward_with(ModeProductKernel kernel, const at::Tensor& x, const at::Tensor& weight) {
  check_spectral(x, weight);
  // out[b, o] = sum_i x[b, i] w[i, o]
  return mode_product(kernel, x, 0, 1, false, weight, 0, 1, false);
}

at::Tensor spectral_mix_backward_input_with(ModeProductKernel kernel, const at::Tensor& grad,
                                            const at::Tensor& weight) {
  TORCH_CHECK(grad.dim() == weight.dim() && grad.dim() >= 2 && grad.size(1) == weight.size(1),
              "pdeop.spectral_mix_backward_input: grad_out must be [B, C_out, m..] for weight ",
              weight.sizes(), " (got ", grad.sizes(), ")");
  check_spectral(grad, weight.transpose(0, 1));  // grad [B, O] times w^T [O, I]
  // grad_x[b, i] = sum_o grad[b, o] conj(w[i, o])
  return mode_product(kernel, grad, 0, 1, false, weight, 1, 0, true);
}

at::Tensor spectral_mix_backward_weight_with(ModeProductKernel kernel, const at::Tensor& grad,
                                             const at::Tensor& x) {
  TORCH_CHECK(grad.dim() == x.dim() && grad.dim() >= 2 && grad.size(0) == x.size(0),
              "pdeop.spectral_mix_backward_weight: grad_out must be [B, C_out, m..] for x ", x.sizes(),
              " (got ", grad.sizes(), ")");
  check_spectral(x.transpose(0, 1), grad);  // x^T [I, B] times grad [B, O]
  // grad_w[i, o] = sum_b conj(x[b, i]) grad[b, o]
  return mode_product(kernel, x, 1, 0, true, grad, 0, 1, false);
}

namespace {

at::Tensor spectral_mix_forward_cpu(const at::Tensor& x, const at::Tensor& weight) {
  return spectral_mix_forward_with(mode_product_cpu, x, weight);
}

at::Tensor spectral_mix_backward_input_cpu(const at::Tensor& grad_out, const at::Tensor& weight) {
  return spectral_mix_backward_input_with(mode_product_cpu, grad_out, weight);
}

at::Tensor spectral_mix_backward_weight_cpu(const at::Tensor& grad_out, const at::Tensor& x) {
  return spectral_mix_backward_weight_with(mode_product_cpu, grad_out, x);
}

}  // namespace

}  // namespace pdeop

TORCH_LIBRARY(pdeop, m) {
  const std::vector<at::Tag> tags = {at::Tag::pt2_compliant_tag};
  m.def("rational_forward(Tensor x, Tensor numerator, Tensor denominator, int groups, "
        "int channel_dim) -> Tensor", tags);
  m.def("rational_backward(Tensor grad_out, Tensor x, Tensor numerator, Tensor denominator, "
        "int groups, int channel_dim) -> (Tensor, Tensor, Tensor)", tags);
  m.def("spectral_mix_forward(Tensor x, Tensor weight) -> Tensor", tags);
  m.def("spectral_mix_backward_input(Tensor grad_out, Tensor weight) -> Tensor", tags);
  m.def("spectral_mix_backward_weight(Tensor grad_out, Tensor x) -> Tensor", tags);
}

TORCH_LIBRARY_IMPL(pdeop, CPU, m) {
  m.impl("rational_forward", &pdeop::rational_forward_cpu);
  m.impl("rational_backward", &pdeop::rational_backward_cpu);
  m.impl("spectral_mix_forward", &pdeop::spectral_mix_forward_cpu);
  m.impl("spectral_mix_backward_input", &pdeop::spectral_mix_backward_input_cpu);
  m.impl("spectral_mix_backward_weight", &pdeop::spectral_mix_backward_weight_cpu);
}

#ifdef PDEOP_WITH_CUDA
#define PDEOP_HAS_CUDA_KERNELS 1
#else
#define PDEOP_HAS_CUDA_KERNELS 0
#endif

// `import operators._C` loads this library (running the registrations above) and exposes
// WITH_CUDA (whether CUDA kernels were compiled in) and MAX_MODE_AXES (pdeop::kMaxModeAxes).
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C",
                               "pdeop custom ops (registered under torch.ops.pdeop).", -1, nullptr};
  PyObject* m = PyModule_Create(&module);
  if (m != nullptr && (PyModule_AddIntConstant(m, "WITH_CUDA", PDEOP_HAS_CUDA_KERNELS) != 0 ||
                       PyModule_AddIntConstant(m, "MAX_MODE_AXES", pdeop::kMaxModeAxes) != 0)) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
