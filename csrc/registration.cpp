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
  TORCH_CHECK(x.dim() >= 3 && x.dim() <= 5,
              "pdeop.spectral_mix: x must be [B, C_in, m_1..m_d] with d = 1, 2 or 3 (got shape ",
              x.sizes(), ")");
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

// The output [rows, cols, modes...] of a product whose first operand is `like`: mode-major
// ([modes..., rows, cols] in memory) when `like` keeps its channels contiguous under its modes, as
// DFT-by-matmul pipelines produce them, so that the layout carries through; else contiguous.
// operators/kernels/ops.py's fake kernels apply the same rule.
at::Tensor mode_output(const at::Tensor& like, int64_t rows, int64_t cols) {
  const int64_t d = like.dim() - 2;
  std::vector<int64_t> sizes = {rows, cols};
  for (int64_t k = 0; k < d; ++k) sizes.push_back(like.size(2 + k));
  const auto options = like.options().memory_format(at::MemoryFormat::Contiguous);
  if (!is_mode_major(like)) return at::empty(sizes, options);
  std::vector<int64_t> mode_first(sizes.begin() + 2, sizes.end());
  mode_first.push_back(rows);
  mode_first.push_back(cols);
  std::vector<int64_t> order = {d, d + 1};
  for (int64_t k = 0; k < d; ++k) order.push_back(k);
  return at::empty(mode_first, options).permute(order);
}

void run_product(ModeProductKernel kernel, const ModeProduct& p, at::Tensor& out) {
  if (out.numel() == 0) return;
  if (p.inner == 0) {
    out.zero_();
    return;
  }
  kernel(p, out);
}

}  // namespace

at::Tensor spectral_mix_forward_with(ModeProductKernel kernel, const at::Tensor& x_in,
                                     const at::Tensor& weight_in) {
  check_spectral(x_in, weight_in);
  const at::Tensor x = resolved(x_in);
  const at::Tensor weight = resolved(weight_in);
  // out[b, o] = sum_i x[b, i] w[i, o]
  ModeProduct p;
  p.rows = x.size(0);
  p.inner = x.size(1);
  p.cols = weight.size(1);
  p.a = operand(x, 0, 1, false);
  p.b = operand(weight, 0, 1, false);
  set_modes(p, p.a, x);
  set_modes(p, p.b, weight);
  at::Tensor out = mode_output(x, p.rows, p.cols);
  run_product(kernel, p, out);
  return out;
}

at::Tensor spectral_mix_backward_input_with(ModeProductKernel kernel, const at::Tensor& grad_in,
                                            const at::Tensor& weight_in) {
  TORCH_CHECK(grad_in.dim() == weight_in.dim() && grad_in.dim() >= 2 &&
                  grad_in.size(1) == weight_in.size(1),
              "pdeop.spectral_mix_backward_input: grad_out must be [B, C_out, m..] for weight ",
              weight_in.sizes(), " (got ", grad_in.sizes(), ")");
  check_spectral(grad_in, weight_in.transpose(0, 1));  // grad [B, O] times w^T [O, I]
  const at::Tensor grad = resolved(grad_in);
  const at::Tensor weight = resolved(weight_in);
  // grad_x[b, i] = sum_o grad[b, o] conj(w[i, o])
  ModeProduct p;
  p.rows = grad.size(0);
  p.inner = grad.size(1);
  p.cols = weight.size(0);
  p.a = operand(grad, 0, 1, false);
  p.b = operand(weight, 1, 0, true);
  set_modes(p, p.a, grad);
  set_modes(p, p.b, weight);
  at::Tensor out = mode_output(grad, p.rows, p.cols);
  run_product(kernel, p, out);
  return out;
}

at::Tensor spectral_mix_backward_weight_with(ModeProductKernel kernel, const at::Tensor& grad_in,
                                             const at::Tensor& x_in) {
  TORCH_CHECK(grad_in.dim() == x_in.dim() && grad_in.dim() >= 2 && grad_in.size(0) == x_in.size(0),
              "pdeop.spectral_mix_backward_weight: grad_out must be [B, C_out, m..] for x ",
              x_in.sizes(), " (got ", grad_in.sizes(), ")");
  check_spectral(x_in.transpose(0, 1), grad_in);  // x^T [I, B] times grad [B, O]
  const at::Tensor grad = resolved(grad_in);
  const at::Tensor x = resolved(x_in);
  // grad_w[i, o] = sum_b conj(x[b, i]) grad[b, o]
  ModeProduct p;
  p.rows = x.size(1);
  p.inner = x.size(0);
  p.cols = grad.size(1);
  p.a = operand(x, 1, 0, true);
  p.b = operand(grad, 0, 1, false);
  set_modes(p, p.a, x);
  set_modes(p, p.b, grad);
  at::Tensor out = mode_output(grad, p.rows, p.cols);
  run_product(kernel, p, out);
  return out;
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
// WITH_CUDA: whether CUDA kernels were compiled in.
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C",
                               "pdeop custom ops (registered under torch.ops.pdeop).", -1, nullptr};
  PyObject* m = PyModule_Create(&module);
  if (m != nullptr && PyModule_AddIntConstant(m, "WITH_CUDA", PDEOP_HAS_CUDA_KERNELS) != 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
