#include "codegen/cuda/contraction.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "compiler/kir/affine.h"
#include "compiler/kir/substitute.h"

namespace kiln::codegen::cuda {
namespace {

using kir::ExprNode;
using kir::IterVar;

// Variables collapsed into one matrix dimension: `extent` points, `stride`
// elements apart.
struct Dim {
  int64_t extent = 1;
  int64_t stride = 0;
};

// A batched matrix over (batch, rows, cols) variable groups: where its
// elements lie in parameter `param`.
struct Matrix {
  int param = -1;
  int64_t offset = 0;
  Dim batch, rows, cols;
};

struct Groups {
  std::vector<IterVar> batch, m, n, k;
};

int64_t product(const std::vector<IterVar>& vars) {
  int64_t p = 1;
  for (const IterVar& v : vars) p *= v.extent;
  return p;
}

// The variables (outermost first) as one dimension, when their
// coefficients nest as a row-major layout does.
std::optional<Dim> collapse(const kir::Affine& flat, const std::vector<IterVar>& vars) {
  Dim d;
  bool first = true;
  int64_t next = 0;
  for (size_t i = vars.size(); i-- > 0;) {
    const IterVar& v = vars[i];
    if (v.extent == 1) continue;
    int64_t c = flat.of(v.id);
    if (!first && c != next) return std::nullopt;
    if (first) d.stride = c;
    first = false;
    next = c * v.extent;
    d.extent *= v.extent;
  }
  return d;
}

bool contains(const std::vector<IterVar>& vars, int id) {
  return std::any_of(vars.begin(), vars.end(), [&](const IterVar& v) { return v.id == id; });
}

// `flat` as a batched matrix over the groups, when every variable it reads
// belongs to one of them and each group is strided; `elements` bounds what
// it may touch.
std::optional<Matrix> asMatrix(int param, const kir::Affine& flat, const std::vector<IterVar>& batch,
                               const std::vector<IterVar>& rows, const std::vector<IterVar>& cols, int64_t elements) {
  int64_t lo = flat.offset, hi = flat.offset;
  for (auto [var, c] : flat.coeff) {
    if (c == 0) continue;
    const std::vector<IterVar>* group = contains(batch, var) ? &batch : contains(rows, var) ? &rows
                                        : contains(cols, var)  ? &cols
                                                               : nullptr;
    if (!group) return std::nullopt;
    int64_t extent = std::find_if(group->begin(), group->end(), [id = var](const IterVar& v) { return v.id == id; })->extent;
    (c < 0 ? lo : hi) += c * (extent - 1);
  }
  if (lo < 0 || hi >= elements) return std::nullopt;
  auto b = collapse(flat, batch), r = collapse(flat, rows), c = collapse(flat, cols);
  if (!b || !r || !c) return std::nullopt;
  return Matrix{param, flat.offset, *b, *r, *c};
}

// A column-major rows x cols matrix whose element (i, j) lies at
// i * rs + j * cs: its leading dimension, when it is one.
std::optional<int64_t> leadingDim(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if (rows > 1 && rs != 1) return std::nullopt;
  int64_t ld = cols > 1 ? cs : rows;
  if (ld < rows || ld < 1) return std::nullopt;
  return ld;
}

struct Factor {
  uint32_t trans = 0;
  int64_t ld = 1;
};

// op(X) = the p x q matrix with (i, j) at i * sp + j * sq: X itself stored
// column-major, or its transpose.
std::optional<Factor> factor(int64_t p, int64_t q, int64_t sp, int64_t sq) {
  if (auto ld = leadingDim(p, q, sp, sq)) return Factor{0, *ld};
  if (auto ld = leadingDim(q, p, sq, sp)) return Factor{1, *ld};
  return std::nullopt;
}

// The row-major layout of a scratch matrix over `vars` (outermost first).
kir::Affine denseLayout(const std::vector<IterVar>& vars) {
  kir::Affine flat;
  int64_t stride = 1;
  for (size_t i = vars.size(); i-- > 0;) {
    flat.coeff[vars[i].id] = stride;
    stride *= vars[i].extent;
  }
  return flat;
}

std::vector<IterVar> concat(std::initializer_list<const std::vector<IterVar>*> lists) {
  std::vector<IterVar> out;
  for (const auto* l : lists) out.insert(out.end(), l->begin(), l->end());
  return out;
}

std::vector<int64_t> extents(const std::vector<IterVar>& vars) {
  std::vector<int64_t> out;
  for (const IterVar& v : vars) out.push_back(v.extent);
  return out;
}

std::vector<kir::Expr> indices(const std::vector<IterVar>& vars) {
  std::vector<kir::Expr> out;
  for (const IterVar& v : vars) out.emplace_back(v);
  return out;
}

bool containsReduce(const kir::Expr& e) {
  if (e->kind == ExprNode::Kind::kReduce) return true;
  return std::any_of(e->operands.begin(), e->operands.end(), containsReduce);
}

void collectReduces(const kir::Expr& e, std::vector<const ExprNode*>& out) {
  if (e->kind == ExprNode::Kind::kReduce) {
    if (std::find(out.begin(), out.end(), &*e) == out.end()) out.push_back(&*e);
    return;
  }
  for (const kir::Expr& op : e->operands) collectReduces(op, out);
}

bool storesAtAxes(const kir::Stage& stage) {
  if (stage.store_index.size() != stage.axes.size()) return false;
  for (size_t d = 0; d < stage.axes.size(); ++d)
    if (stage.store_index[d]->kind != ExprNode::Kind::kVar || stage.store_index[d]->var_id != stage.axes[d].id)
      return false;
  return true;
}

class GemmPlanner {
 public:
  GemmPlanner(const kir::Kernel& kernel, const kir::Stage& stage, const ExprNode& reduce, kir::Affine output,
              artifact::CudaPrecision precision, const GemmBindings& bindings)
      : kernel_(kernel),
        stage_(stage),
        reduce_(reduce),
        output_(std::move(output)),
        aliases_(bindings.aliases),
        scalar_(bindings.scalar),
        half_copy_(bindings.half_copy),
        constant_(bindings.constant),
        operand_type_(operandType(precision)),
        next_var_(kir::maxVarId(kernel) + 1) {
    plan_.gemm.precision = precision;
    s_ = reduce.operands[0]->operands[0];
    v_ = reduce.operands[0]->operands[1];
  }

  std::optional<GemmStage> run() {
    group(0);
    if (product(groups_.batch) > 1 && std::min(product(groups_.m), product(groups_.n)) < kMinBatchedGemmSide)
      return std::nullopt;
    // D is laid out as the output is, so the epilogue reads it coalesced, or
    // is the output itself. Leading output axes may join the batch: an NCHW
    // output is then a batch of (pixels x channels) column-major matrices.
    for (size_t lead = 0; lead <= stage_.axes.size(); ++lead) {
      group(lead);
      auto c = asMatrix(-1, output_, groups_.batch, groups_.m, groups_.n, INT64_MAX);
      if (!c || !layoutFor(*c)) continue;
      if (auto fused = directEpilogue(*c)) {
        c->param = stage_.buffer;
        applyEpilogue(*fused);
        return finish(*c);
      }
      c_layout_ = stage_.axes;
      return finish(scratchMatrix(c_layout_, groups_.batch, groups_.m, groups_.n, operand_type_));
    }
    group(0);
    c_layout_ = concat({&groups_.batch, &groups_.m, &groups_.n});
    return finish(scratchMatrix(c_layout_, groups_.batch, groups_.m, groups_.n, operand_type_));
  }

 private:
  // Batch axes: read by both operands (or among the first `lead` axes);
  // rows: read by S (or by neither); columns: read by V only.
  void group(size_t lead) {
    groups_ = Groups{};
    for (size_t a = 0; a < stage_.axes.size(); ++a) {
      const IterVar& v = stage_.axes[a];
      bool in_s = kir::dependsOn(s_, v.id), in_v = kir::dependsOn(v_, v.id);
      if (a < lead || (in_s && in_v)) groups_.batch.push_back(v);
      else if (in_v) groups_.n.push_back(v);
      else groups_.m.push_back(v);
    }
    groups_.k = reduce_.reduce_vars;
  }

  // What cuBLASLt computes around the product when it writes the output
  // itself: relu?(alpha * sum + bias + C).
  struct FusedEpilogue {
    bool relu = false;
    double alpha = 1.0;
    std::optional<Matrix> bias, residual;
  };

  // The GEMM may write the output when no operand reads the output's buffer
  // and the stage's value is the sum, optionally scaled by a constant
  // (exactly: a product by it, or a quotient by a power of two), plus a
  // vector along D's rows (a Linear/Gemm/Conv bias) and/or a tensor laid out
  // as the output (a residual), optionally under ReLU, all float32.
  // `c` is the output as a matrix over (batch, m, n).
  std::optional<FusedEpilogue> directEpilogue(const Matrix& c) const {
    if (readsParam(s_, stage_.buffer) || readsParam(v_, stage_.buffer)) return std::nullopt;
    FusedEpilogue fused;
    kir::Expr e = stage_.value;
    if (isBinary(e, kir::BinaryOp::kMax) && isConst(e->operands[1], 0.0)) {
      fused.relu = true;
      e = e->operands[0];
    }
    std::vector<kir::Expr> terms;
    if (!addends(e, terms)) return std::nullopt;
    bool has_sum = false;
    std::vector<kir::Expr> loads;
    for (const kir::Expr& t : terms) {
      if (auto alpha = scaledSum(t); alpha && !has_sum) {
        has_sum = true;
        fused.alpha = *alpha;
      } else if (t->kind == ExprNode::Kind::kLoad && t->dtype == ir::DType::kFloat32 && loads.size() < 2) {
        loads.push_back(t);
      } else {
        return std::nullopt;
      }
    }
    if (!has_sum) return std::nullopt;
    const bool transposed = *layoutFor(c);
    const std::vector<IterVar>& d_rows = transposed ? groups_.n : groups_.m;
    const std::vector<IterVar>& d_cols = transposed ? groups_.m : groups_.n;
    for (const kir::Expr& load : loads) {
      if (load->buffer == stage_.buffer || aliases_(load->buffer, stage_.buffer)) return std::nullopt;
      auto flat = kir::flatIndex(kernel_, *load);
      if (!flat) return std::nullopt;
      int64_t elements = kernel_.params[static_cast<size_t>(load->buffer)].elementCount();
      auto along_rows = asMatrix(load->buffer, *flat, groups_.batch, d_rows, d_cols, elements);
      auto as_output = asMatrix(load->buffer, *flat, groups_.batch, groups_.m, groups_.n, elements);
      auto still = [](const Dim& d) { return d.extent == 1 || d.stride == 0; };
      if (!fused.bias && along_rows && still(along_rows->batch) && still(along_rows->cols) &&
          (along_rows->rows.extent == 1 || along_rows->rows.stride == 1)) {
        fused.bias = along_rows;
      } else if (!fused.residual && as_output && sameLayout(*as_output, c)) {
        fused.residual = as_output;
      } else {
        return std::nullopt;
      }
    }
    return fused;
  }

  void applyEpilogue(const FusedEpilogue& fused) {
    artifact::CudaGemm& g = plan_.gemm;
    g.alpha = fused.alpha;
    g.epilogue = fused.relu ? (fused.bias ? artifact::GemmEpilogue::kReluBias : artifact::GemmEpilogue::kRelu)
                            : (fused.bias ? artifact::GemmEpilogue::kBias : artifact::GemmEpilogue::kNone);
    if (fused.bias) {
      plan_.bias = fused.bias->param;
      g.offset_bias = static_cast<uint64_t>(fused.bias->offset);
    }
    if (fused.residual) {
      plan_.cin = fused.residual->param;
      g.accumulate = 1;
      g.offset_cin = static_cast<uint64_t>(fused.residual->offset);
    }
  }

  static bool sameLayout(const Matrix& x, const Matrix& c) {
    auto same = [](const Dim& a, const Dim& b) { return a.extent == b.extent && (a.extent == 1 || a.stride == b.stride); };
    return same(x.batch, c.batch) && same(x.rows, c.rows) && same(x.cols, c.cols);
  }

  static bool isBinary(const kir::Expr& e, kir::BinaryOp op) {
    return e->kind == ExprNode::Kind::kBinary && static_cast<kir::BinaryOp>(e->op) == op &&
           e->dtype == ir::DType::kFloat32;
  }
  static bool isConst(const kir::Expr& e, double v) { return e->kind == ExprNode::Kind::kConst && e->value == v; }

  // The float32 terms of a sum of additions.
  static bool addends(const kir::Expr& e, std::vector<kir::Expr>& out) {
    if (isBinary(e, kir::BinaryOp::kAdd)) return addends(e->operands[0], out) && addends(e->operands[1], out);
    out.push_back(e);
    return out.size() <= 3;
  }

  // A compile-time float32 constant: a literal, or a load of a one-element constant.
  std::optional<double> constantValue(const kir::Expr& e) const {
    if (e->kind == ExprNode::Kind::kConst && e->dtype == ir::DType::kFloat32) return e->value;
    if (e->kind == ExprNode::Kind::kLoad && e->dtype == ir::DType::kFloat32) return scalar_(e->buffer);
    return std::nullopt;
  }

  // alpha when `e` is the sum times alpha, exactly (a quotient only by a
  // power of two, whose reciprocal is exact).
  std::optional<double> scaledSum(const kir::Expr& e) const {
    auto isSum = [&](const kir::Expr& x) { return &*x == &reduce_; };
    if (isSum(e)) return 1.0;
    if (isBinary(e, kir::BinaryOp::kMul)) {
      for (int i = 0; i < 2; ++i)
        if (auto a = constantValue(e->operands[1 - i]); a && isSum(e->operands[i]) && std::isfinite(*a)) return *a;
    }
    if (isBinary(e, kir::BinaryOp::kDiv) && isSum(e->operands[0])) {
      auto d = constantValue(e->operands[1]);
      int exponent = 0;
      if (d && std::frexp(*d, &exponent) == 0.5 && exponent > -100 && exponent < 100) return 1.0 / *d;
    }
    return std::nullopt;
  }

  bool readsParam(const kir::Expr& e, int param) const {
    if (e->kind == ExprNode::Kind::kLoad && (e->buffer == param || aliases_(e->buffer, param))) return true;
    return std::any_of(e->operands.begin(), e->operands.end(), [&](const kir::Expr& op) { return readsParam(op, param); });
  }

  // Option B (D = C transposed: columns of C are D's rows) when C is
  // row-major in (m, n); option A (D = C) when column-major.
  std::optional<bool> layoutFor(const Matrix& c) const {
    if (leadingDim(c.cols.extent, c.rows.extent, c.cols.stride, c.rows.stride)) return true;
    if (leadingDim(c.rows.extent, c.cols.extent, c.rows.stride, c.cols.stride)) return false;
    return std::nullopt;
  }

  Matrix scratchMatrix(const std::vector<IterVar>& layout, const std::vector<IterVar>& batch,
                       const std::vector<IterVar>& rows, const std::vector<IterVar>& cols,
                       ir::DType dtype = ir::DType::kFloat32) {
    int param = static_cast<int>(kernel_.params.size() + plan_.scratch.size());
    kir::BufferParam p;
    p.name = "gemm_scratch" + std::to_string(plan_.scratch.size());
    p.dtype = dtype;
    p.shape = extents(layout);
    if (p.shape.empty()) p.shape = {1};
    p.written = true;
    plan_.scratch.push_back(p);
    return *asMatrix(param, denseLayout(layout), batch, rows, cols, p.elementCount());
  }

  // `e` as a matrix read in place: a strided load (of a parameter with a
  // 16-bit copy, in the 16-bit precisions).
  std::optional<Matrix> inPlace(const kir::Expr& e, const std::vector<IterVar>& rows, bool left) const {
    const bool half = operand_type_ != ir::DType::kFloat32;
    if (e->kind != ExprNode::Kind::kLoad || e->dtype != ir::DType::kFloat32 || (half && !half_copy_(e->buffer)))
      return std::nullopt;
    auto flat = kir::flatIndex(kernel_, *e);
    if (!flat) return std::nullopt;
    int64_t elements = kernel_.params[static_cast<size_t>(e->buffer)].elementCount();
    auto m = asMatrix(e->buffer, *flat, groups_.batch, rows, groups_.k, elements);
    if (!m || !factorOf(*m, left)) return std::nullopt;
    return m;
  }

  // The inner dimension the GEMM runs with: K, or K padded to
  // kGemmAlignBytes when that costs no run-time work (neither operand is
  // read in place from an activation).
  int64_t paddedK() const {
    const int64_t k = product(groups_.k);
    const int64_t align = kGemmAlignBytes / static_cast<int64_t>(ir::byteSize(operand_type_));
    const int64_t padded = (k + align - 1) / align * align;
    if (padded == k) return k;
    for (auto [e, rows] : {std::pair{s_, &groups_.m}, std::pair{v_, &groups_.n}})
      if (inPlace(e, *rows, true) && !readsOnlyConstants(e, constant_)) return k;
    return padded;
  }

  // An operand read in place when it can be, else packed into a scratch
  // matrix of the operand type (k innermost, or rows innermost when the
  // operand reads along the output's innermost axis: coalesced reads for the
  // packing). With `k_padded` > K, always packed, over one inner variable
  // of that extent: points past K are zeros.
  Matrix operand(const kir::Expr& e, const std::vector<IterVar>& rows, bool left, int64_t k_padded) {
    const int64_t k = product(groups_.k);
    if (k_padded == k)
      if (auto m = inPlace(e, rows, left)) return *m;
    std::vector<IterVar> inner = groups_.k;
    kir::Expr value = e;
    if (k_padded != k) {
      IterVar padded;
      padded.id = next_var_++;
      padded.extent = k_padded;
      inner = {padded};
      // The original inner variables from the padded one (clamped, so the
      // loads stay in bounds where the select discards them).
      std::map<int, kir::Expr> split;
      kir::Expr at = kir::min(kir::Expr(padded), kir::Expr::index(k - 1));
      int64_t stride = 1;
      for (size_t i = groups_.k.size(); i-- > 0;) {
        split[groups_.k[i].id] = (at / kir::Expr::index(stride)) % kir::Expr::index(groups_.k[i].extent);
        stride *= groups_.k[i].extent;
      }
      value = kir::select(kir::Expr(padded) < kir::Expr::index(k), kir::substitute(e, split),
                          kir::Expr::constant(ir::DType::kFloat32, 0.0));
    }
    bool rows_inner = !stage_.axes.empty() && contains(rows, stage_.axes.back().id);
    // An operand that no batch variable reads is packed once, for every
    // batch (stride 0).
    std::vector<IterVar> batch;
    for (const IterVar& v : groups_.batch)
      if (kir::dependsOn(e, v.id)) batch = groups_.batch;
    std::vector<IterVar> layout = rows_inner ? concat({&batch, &inner, &rows}) : concat({&batch, &rows, &inner});
    Matrix m = scratchMatrix(layout, groups_.batch, rows, inner, operand_type_);
    kir::Stage pack;
    pack.buffer = m.param;
    pack.axes = layout;
    pack.store_index = indices(layout);
    pack.value = value;
    plan_.packs.push_back(std::move(pack));
    return m;
  }

  // op(X) as the left factor (rows x k) or the right one (k x rows).
  static std::optional<Factor> factorOf(const Matrix& x, bool left) {
    return left ? factor(x.rows.extent, x.cols.extent, x.rows.stride, x.cols.stride)
                : factor(x.cols.extent, x.rows.extent, x.cols.stride, x.rows.stride);
  }

  GemmStage finish(const Matrix& c) {
    // Option B: D (n x m) = V (n x k) * S^T (k x m); option A: D (m x n) = S (m x k) * V^T (k x n).
    const bool transposed = *layoutFor(c);
    const int64_t k = paddedK();
    Matrix left = transposed ? operand(v_, groups_.n, true, k) : operand(s_, groups_.m, true, k);
    Matrix right = transposed ? operand(s_, groups_.m, false, k) : operand(v_, groups_.n, false, k);
    Factor fa = *factorOf(left, true), fb = *factorOf(right, false);
    const int64_t m = product(groups_.m), n = product(groups_.n);
    artifact::CudaGemm& g = plan_.gemm;
    g.trans_a = fa.trans;
    g.trans_b = fb.trans;
    g.m = static_cast<uint64_t>(transposed ? n : m);
    g.n = static_cast<uint64_t>(transposed ? m : n);
    g.k = static_cast<uint64_t>(k);
    g.lda = fa.ld;
    g.ldb = fb.ld;
    g.ldc = transposed ? *leadingDim(c.cols.extent, c.rows.extent, c.cols.stride, c.rows.stride)
                       : *leadingDim(c.rows.extent, c.cols.extent, c.rows.stride, c.cols.stride);
    g.batch = static_cast<uint32_t>(product(groups_.batch));
    g.stride_a = left.batch.stride;
    g.stride_b = right.batch.stride;
    g.stride_c = c.batch.stride;
    g.offset_a = static_cast<uint64_t>(left.offset);
    g.offset_b = static_cast<uint64_t>(right.offset);
    g.offset_c = static_cast<uint64_t>(c.offset);
    g.type_a = g.type_b = operand_type_ == ir::DType::kFloat16    ? artifact::GemmOperand::kFloat16
                          : operand_type_ == ir::DType::kBFloat16 ? artifact::GemmOperand::kBFloat16
                                                                  : artifact::GemmOperand::kFloat32;
    plan_.a = left.param;
    plan_.b = right.param;
    plan_.c = c.param;
    if (c.param != stage_.buffer) {
      // In the 16-bit precisions the product reaches the epilogue kernel
      // rounded to the operand type (half the bytes written and read).
      const kir::BufferParam& scratch = plan_.scratch[static_cast<size_t>(c.param) - kernel_.params.size()];
      kir::Expr product =
          kir::KernelBuilder::Buffer(c.param, scratch.dtype, scratch.shape)
              .load(c_layout_.empty() ? std::vector<kir::Expr>{kir::Expr::index(0)} : indices(c_layout_));
      if (scratch.dtype != ir::DType::kFloat32) {
        product = kir::cast(ir::DType::kFloat32, product);
        g.type_d = g.type_a;
      }
      kir::Stage epilogue = stage_;
      epilogue.value = kir::rewrite(stage_.value, [&](const kir::Expr& e) { return &*e == &reduce_ ? product : e; });
      plan_.epilogue = std::move(epilogue);
    }
    return std::move(plan_);
  }

  const kir::Kernel& kernel_;
  const kir::Stage& stage_;
  const ExprNode& reduce_;
  kir::Affine output_;  // where the stage stores each point of its axes (flat, in its buffer)
  const std::function<bool(int, int)>& aliases_;
  const std::function<std::optional<double>(int)>& scalar_;
  const std::function<bool(int)>& half_copy_;
  const std::function<bool(int)>& constant_;
  ir::DType operand_type_;
  int next_var_;  // the next unused iteration variable id (a padded inner dimension's)
  kir::Expr s_, v_;
  Groups groups_;
  std::vector<IterVar> c_layout_;  // a scratch D's variables, outermost first
  GemmStage plan_;
};

}  // namespace

ir::DType operandType(artifact::CudaPrecision precision) {
  switch (precision) {
    case artifact::CudaPrecision::kFp16: return ir::DType::kFloat16;
    case artifact::CudaPrecision::kBf16: return ir::DType::kBFloat16;
    default: return ir::DType::kFloat32;
  }
}

bool readsOnlyConstants(const kir::Expr& e, const std::function<bool(int)>& constant) {
  if (e->kind == ExprNode::Kind::kLoad && !constant(e->buffer)) return false;
  return std::all_of(e->operands.begin(), e->operands.end(),
                     [&](const kir::Expr& op) { return readsOnlyConstants(op, constant); });
}

std::optional<GemmStage> planGemm(const kir::Kernel& kernel, const kir::Stage& stage, artifact::CudaPrecision precision,
                                  const GemmBindings& bindings) {
  if (stage.kind != kir::Stage::Kind::kStore || stage.axes.empty()) return std::nullopt;
  if (!kir::storesDistinctAffine(stage) || kir::isDynamic(kernel, stage)) return std::nullopt;
  // The output's layout: the axes' row-major layout, or where an affine
  // store index puts each point (a transposed, reshaped output: D may still
  // be the output, with its leading dimension and batch stride).
  std::optional<kir::Affine> output;
  if (storesAtAxes(stage) && kernel.params[static_cast<size_t>(stage.buffer)].shape == extents(stage.axes))
    output = denseLayout(stage.axes);
  else
    output = kir::flatStoreIndex(kernel, stage);
  if (!output) return std::nullopt;
  std::vector<const ExprNode*> reduces;
  collectReduces(stage.value, reduces);
  if (reduces.size() != 1) return std::nullopt;
  const ExprNode& reduce = *reduces[0];
  if (static_cast<kir::ReduceOp>(reduce.op) != kir::ReduceOp::kSum || reduce.dtype != ir::DType::kFloat32)
    return std::nullopt;
  const ExprNode& body = *reduce.operands[0];
  if (body.kind != ExprNode::Kind::kBinary || static_cast<kir::BinaryOp>(body.op) != kir::BinaryOp::kMul ||
      body.dtype != ir::DType::kFloat32)
    return std::nullopt;
  if (containsReduce(body.operands[0]) || containsReduce(body.operands[1])) return std::nullopt;
  int64_t flops = 2 * product(reduce.reduce_vars);
  for (const IterVar& v : stage.axes) flops *= v.extent;
  if (flops < kMinGemmFlops) return std::nullopt;
  return GemmPlanner(kernel, stage, reduce, std::move(*output), precision, bindings).run();
}

}  // namespace kiln::codegen::cuda
