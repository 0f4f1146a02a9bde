// The recurrent layers RNN, GRU and LSTM, every direction, activation, clip,
// layout, initial state, peephole and sequence length.
//
// A recurrence is sequential in time, and the kernel IR says "in order" with
// the order of stages: the node becomes one kernel whose stages are
//   xw[d, t, b, j]  = sum_i X[t, b, i] * W[d, j, i] + biases      (all steps at once)
//   hs[d, 0, b, h]  = initial_h (or 0); LSTM also cs[d, 0, b, h] = initial_c
//   then per step s, one to three stages that read hs[d, s] and write hs[d, s + 1]
//   (GRU: z and r, then h; LSTM: the four gates, then c, then h)
//   Y, Y_h, Y_c read back from the state history hs / cs.
// Both directions of a bidirectional layer run in the same stages (d is an
// axis). Step s of the reverse direction reads time len[b] - 1 - s, where
// len[b] is sequence_lens[b] (clamped to [0, T]) or T. Steps at or past
// len[b] carry the state over unchanged, so Y_h/Y_c are the states after each
// sequence's last step, and Y is 0 past len[b] (as ONNX Runtime does).
// The program grows by one to three stages per time step, so compile time
// grows linearly with the sequence length.
//
// Gate order and formulas are ONNX's: RNN  H = f(X W^T + H R^T + Wb + Rb);
// GRU z, r, h with linear_before_reset; LSTM i, o, f, c with peepholes
// P = [Pi, Po, Pf] and input_forget (f = 1 - i). `clip` bounds the inputs of
// the activations f and g (not h's input, the cell state).
#include <algorithm>
#include <cctype>
#include <string>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;
using kir::IterVar;
using Buffer = LowerContext::Buffer;

enum class CellKind { kRnn, kGru, kLstm };

struct CellDef {
  CellKind kind;
  int gates;                             // gate blocks in W and R
  std::vector<const char*> activations;  // defaults, per direction
};

const CellDef kRnn{CellKind::kRnn, 1, {"Tanh"}};
const CellDef kGru{CellKind::kGru, 3, {"Sigmoid", "Tanh"}};
const CellDef kLstm{CellKind::kLstm, 4, {"Sigmoid", "Tanh", "Tanh"}};

// ---- Activations ---------------------------------------------------------------

struct ActivationDef {
  const char* name;
  int params;  // 0: none, 1: alpha, 2: alpha and beta
  float alpha, beta;
};
constexpr ActivationDef kActivations[] = {
    {"Relu", 0, 0, 0},         {"Tanh", 0, 0, 0},        {"Sigmoid", 0, 0, 0},         {"Affine", 2, 1.0f, 0.0f},
    {"LeakyRelu", 1, 0.01f, 0}, {"ThresholdedRelu", 1, 1.0f, 0}, {"ScaledTanh", 2, 1.0f, 1.0f},
    {"HardSigmoid", 2, 0.2f, 0.5f}, {"Elu", 1, 1.0f, 0},   {"Softsign", 0, 0, 0},        {"Softplus", 0, 0, 0},
};

struct Activation {
  std::string name;
  double alpha = 0, beta = 0;
};

bool sameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

Expr sigmoid(Expr x) { return 1.0 / (1.0 + kir::exp(-x)); }

Expr activate(const Activation& a, Expr x) {
  DType t = x.dtype();
  Expr zero = Expr::constant(t, 0);
  const std::string& n = a.name;
  if (n == "Relu") return kir::max(x, 0.0);
  if (n == "Tanh") return kir::tanh(x);
  if (n == "Sigmoid") return sigmoid(x);
  if (n == "Affine") return x * a.alpha + a.beta;
  if (n == "LeakyRelu") return kir::select(x >= zero, x, x * a.alpha);
  if (n == "ThresholdedRelu") return kir::select(x > Expr::constant(t, a.alpha), x, zero);
  if (n == "ScaledTanh") return kir::tanh(x * a.beta) * a.alpha;
  if (n == "HardSigmoid") return kir::max(kir::min(x * a.alpha + a.beta, 1.0), 0.0);
  if (n == "Elu") return kir::select(x >= zero, x, (kir::exp(x) - 1.0) * a.alpha);
  if (n == "Softsign") return x / (1.0 + kir::abs(x));
  return kir::log(kir::exp(x) + 1.0);  // Softplus
}

// The activations, `per_direction` for each of `directions`, with alpha and
// beta consumed in order by the functions that take them.
Expected<std::vector<Activation>> activations(const NodeView& ctx, const CellDef& def, int directions) {
  std::vector<std::string> names;
  if (const ir::Attribute* attr = ctx.node().attribute("activations")) names = attr->strings;
  size_t expected = def.activations.size() * static_cast<size_t>(directions);
  if (names.empty())
    for (int d = 0; d < directions; ++d) names.insert(names.end(), def.activations.begin(), def.activations.end());
  if (names.size() != expected)
    return ctx.error("activations lists " + std::to_string(names.size()) + " functions, expected " +
                     std::to_string(expected) + " (" + std::to_string(def.activations.size()) + " per direction)");
  std::vector<float> alphas = ctx.attrFloats("activation_alpha");
  std::vector<float> betas = ctx.attrFloats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  std::vector<Activation> out;
  for (const std::string& name : names) {
    const ActivationDef* found = nullptr;
    for (const ActivationDef& a : kActivations)
      if (sameName(a.name, name)) found = &a;
    if (!found) return ctx.unsupportedError("activation '" + name + "' is not one ONNX defines for recurrent layers");
    Activation a{found->name, found->alpha, found->beta};
    if (found->params >= 1 && next_alpha < alphas.size()) a.alpha = alphas[next_alpha++];
    if (found->params >= 2 && next_beta < betas.size()) a.beta = betas[next_beta++];
    out.push_back(a);
  }
  return out;
}

// ---- Inference -----------------------------------------------------------------

Expected<int> directionCount(const NodeView& ctx) {
  std::string direction = ctx.attrString("direction", "forward");
  if (direction == "forward" || direction == "reverse") return 1;
  if (direction == "bidirectional") return 2;
  return ctx.error("direction '" + direction + "' is not forward, reverse or bidirectional");
}

Status checkAttributes(const NodeView& ctx, const CellDef& def) {
  if (ctx.hasAttr("layout") && ctx.opset() < 14) return ctx.error("attribute 'layout' needs opset 14");
  if (ctx.hasAttr("output_sequence") && ctx.opset() >= 7)
    return ctx.error("attribute 'output_sequence' was removed in opset 7");
  int64_t layout = ctx.attrInt("layout", 0);
  if (layout != 0 && layout != 1) return ctx.error("layout " + std::to_string(layout) + " is not 0 or 1");
  if (ctx.hasAttr("clip") && !(ctx.attrFloat("clip", 0) > 0))
    return ctx.error("clip " + std::to_string(ctx.attrFloat("clip", 0)) + " must be positive");
  if (def.kind == CellKind::kGru && ctx.hasAttr("linear_before_reset") && ctx.opset() < 3)
    return ctx.error("attribute 'linear_before_reset' needs opset 3");
  KILN_ASSIGN_OR_RETURN(int directions, directionCount(ctx));
  return activations(ctx, def, directions).status();
}

// Input i has `dims` (unknown dims pass), for the message `role`.
Status expectDims(const NodeView& ctx, size_t i, std::string_view role, const ir::Shape& dims) {
  if (ctx.numInputs() <= i || !ctx.hasInput(i)) return Status::ok();
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShapeOfRank(ctx, i, role, dims.size()));
  for (size_t d = 0; d < dims.size(); ++d)
    if (conflictingDims(shape[d], dims[d]))
      return ctx.error(std::string(role) + " has shape " + ir::toString(shape) + ", expected " + ir::toString(dims) +
                       " (input " + std::to_string(i) + ")");
  return Status::ok();
}

Status inferRecurrent(InferContext& ctx, const CellDef& def) {
  bool lstm = def.kind == CellKind::kLstm;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, lstm ? 8 : 6));
  KILN_RETURN_IF_ERROR(expectOutputCount(ctx, lstm ? 3 : 2));
  KILN_RETURN_IF_ERROR(checkAttributes(ctx, def));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  for (size_t i : {1, 2, 3, 5, 6, 7})
    if (ctx.numInputs() > i && ctx.hasInput(i)) KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, i, "input"));
  if (ctx.numInputs() > 4 && ctx.hasInput(4) && ctx.inputType(4).dtype != DType::kInt32)
    return ctx.error("sequence_lens has dtype " + std::string(ir::name(ctx.inputType(4).dtype)) +
                     ", expected int32 (input 4)");
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, 0, "X", 3));
  KILN_ASSIGN_OR_RETURN(ir::Shape r, inputShapeOfRank(ctx, 2, "R", 3));
  KILN_ASSIGN_OR_RETURN(int directions, directionCount(ctx));
  bool batch_first = ctx.attrInt("layout", 0) == 1;
  ir::Dim seq = batch_first ? x[1] : x[0];
  ir::Dim batch = batch_first ? x[0] : x[1];
  ir::Dim hidden = ctx.hasAttr("hidden_size") ? ir::Dim::known(ctx.attrInt("hidden_size", 0)) : r[2];
  if (!hidden.isKnown() || hidden.value <= 0)
    return ctx.error("hidden_size must be a positive attribute or R's last dim, got " + ir::toString(ir::Shape{hidden}));
  ir::Dim d = ir::Dim::known(directions);
  ir::Dim gates = ir::Dim::known(def.gates * hidden.value);
  KILN_RETURN_IF_ERROR(expectDims(ctx, 1, "W", {d, gates, x[2]}));
  KILN_RETURN_IF_ERROR(expectDims(ctx, 2, "R", {d, gates, hidden}));
  KILN_RETURN_IF_ERROR(expectDims(ctx, 3, "B", {d, ir::Dim::known(2 * gates.value)}));
  KILN_RETURN_IF_ERROR(expectDims(ctx, 4, "sequence_lens", {batch}));
  ir::Shape state = batch_first ? ir::Shape{batch, d, hidden} : ir::Shape{d, batch, hidden};
  KILN_RETURN_IF_ERROR(expectDims(ctx, 5, "initial_h", state));
  KILN_RETURN_IF_ERROR(expectDims(ctx, 6, "initial_c", state));
  KILN_RETURN_IF_ERROR(expectDims(ctx, 7, "P", {d, ir::Dim::known(3 * hidden.value)}));
  DType dtype = ctx.inputType(0).dtype;
  ctx.setOutputType(0, {dtype, batch_first ? ir::Shape{batch, seq, d, hidden} : ir::Shape{seq, d, batch, hidden}});
  ctx.setOutputType(1, {dtype, state});
  if (lstm) ctx.setOutputType(2, {dtype, state});
  return Status::ok();
}

// ---- Lowering ------------------------------------------------------------------

class RecurrentLowering {
 public:
  RecurrentLowering(LowerContext& ctx, const CellDef& def) : ctx_(ctx), def_(def), kb_(ctx.newKernel()) {}

  Status run() {
    std::vector<int64_t> x_dims = ctx_.inputDims(0);
    std::vector<int64_t> r_dims = ctx_.inputDims(2);
    batch_first_ = ctx_.attrInt("layout", 0) == 1;
    steps_ = batch_first_ ? x_dims[1] : x_dims[0];
    batch_ = batch_first_ ? x_dims[0] : x_dims[1];
    hidden_ = r_dims[2];
    directions_ = r_dims[0];
    std::string direction = ctx_.attrString("direction", "forward");
    reverse_only_ = direction == "reverse";
    KILN_ASSIGN_OR_RETURN(acts_, activations(ctx_, def_, static_cast<int>(directions_)));
    clip_ = ctx_.hasAttr("clip") ? ctx_.attrFloat("clip", 0) : 0.0;
    dtype_ = computeDType(ctx_.inputDType(0));
    x_ = ctx_.input(0);
    r_ = ctx_.input(2);
    if (has(3)) bias_ = ctx_.input(3);
    if (has(4)) lens_ = ctx_.input(4);
    if (has(7)) peep_ = ctx_.input(7);
    hs_ = ctx_.temp("h", dtype_, {directions_, steps_ + 1, batch_, hidden_});
    if (def_.kind == CellKind::kLstm) cs_ = ctx_.temp("c", dtype_, {directions_, steps_ + 1, batch_, hidden_});
    emitInputProjection();
    emitInitialState(hs_, 5);
    if (def_.kind == CellKind::kLstm) emitInitialState(cs_, 6);
    for (int64_t s = 0; s < steps_; ++s) emitStep(s);
    emitOutputs();
    return Status::ok();
  }

 private:
  static bool present(const Buffer& b) { return b.index() >= 0; }
  bool has(size_t i) const { return ctx_.numInputs() > i && ctx_.hasInput(i); }
  int64_t gateWidth() const { return def_.gates * hidden_; }
  Expr c(double v) const { return Expr::constant(dtype_, v); }
  Expr load(const Buffer& b, std::vector<Expr> index) const { return toCompute(b.load(std::move(index))); }

  // X[t, b, i] in either layout.
  Expr xAt(Expr t, Expr b, Expr i) const { return batch_first_ ? load(x_, {b, t, i}) : load(x_, {t, b, i}); }

  // The sequence length of batch b, clamped to [0, T].
  Expr length(Expr b) const {
    if (!present(lens_)) return Expr::index(steps_);
    return kir::min(kir::max(kir::cast(DType::kInt64, lens_.load({b})), Expr::index(0)), Expr::index(steps_));
  }
  Expr isReverse(Expr d) const {
    if (reverse_only_) return Expr::constant(DType::kBool, 1);
    if (directions_ == 1) return Expr::constant(DType::kBool, 0);
    return kir::eq(d, Expr::index(1));
  }
  // The time step s of direction d reads (for batch b), kept in range.
  Expr timeOf(Expr d, Expr b, Expr s) const {
    Expr backward = kir::max(length(b) - Expr::index(1) - s, Expr::index(0));
    return kir::select(isReverse(d), backward, s);
  }

  // Activation `which` (0: f, 1: g, 2: h) of direction d, with clip when asked.
  Expr act(int which, Expr d, Expr x, bool clipped = true) const {
    if (clipped && clip_ > 0) x = kir::max(kir::min(x, clip_), -clip_);
    size_t per = def_.activations.size();
    Expr forward = activate(acts_[static_cast<size_t>(which)], x);
    if (directions_ == 1) return forward;
    return kir::select(kir::eq(d, Expr::index(0)), forward, activate(acts_[per + static_cast<size_t>(which)], x));
  }

  // xw[d, t, b, j] = X W^T + Wb + Rb (GRU with linear_before_reset keeps Rbh apart).
  void emitInputProjection() {
    std::vector<int64_t> in_dims = ctx_.inputDims(1);
    Buffer w = ctx_.input(1);
    xw_ = ctx_.temp("xw", dtype_, {directions_, steps_, batch_, gateWidth()});
    IterVar d = kb_.var("d", directions_), t = kb_.var("t", steps_), b = kb_.var("b", batch_);
    IterVar j = kb_.var("j", gateWidth()), i = kb_.var("i", in_dims[2]);
    Expr value = kir::reduce(kir::ReduceOp::kSum, {i}, xAt(t, b, i) * load(w, {d, j, i}));
    if (present(bias_)) {
      Expr rb = load(bias_, {d, Expr(j) + Expr::index(gateWidth())});
      if (def_.kind == CellKind::kGru && linearBeforeReset())
        rb = kir::select(Expr(j) < Expr::index(2 * hidden_), rb, c(0));
      value = value + load(bias_, {d, j}) + rb;
    }
    kb_.compute(xw_, {d, t, b, j}, value);
  }

  bool linearBeforeReset() const { return ctx_.attrInt("linear_before_reset", 0) != 0; }

  void emitInitialState(const Buffer& state, size_t input) {
    IterVar d = kb_.var("d", directions_), b = kb_.var("b", batch_), h = kb_.var("h", hidden_);
    Expr value = c(0);
    if (has(input)) {
      Buffer init = ctx_.input(input);
      value = batch_first_ ? load(init, {b, d, h}) : load(init, {d, b, h});
    }
    kb_.computeAt(state, {d, b, h}, {d, Expr::index(0), b, h}, value);
  }

  // sum_k H[d, s, b, k] * R[d, row, k]; with `reset`, GRU's (r * H) in place of H.
  Expr recurrent(Expr d, Expr b, Expr s, Expr row, bool reset = false) {
    IterVar k = kb_.var("k", hidden_);
    Expr h = hs_.load({d, s, b, k});
    if (reset) h = gates_.load({d, b, Expr(k) + Expr::index(hidden_)}) * h;
    return kir::reduce(kir::ReduceOp::kSum, {k}, h * load(r_, {d, row, k}));
  }

  // The new state, or the old one past the sequence's end.
  Expr carry(Expr b, int64_t s, Expr updated, Expr old) const {
    if (!present(lens_)) return updated;
    return kir::select(Expr::index(s) < length(b), updated, old);
  }

  void emitStep(int64_t step) {
    Expr s = Expr::index(step);
    Expr next = Expr::index(step + 1);
    if (def_.kind == CellKind::kRnn) {
      IterVar d = kb_.var("d", directions_), b = kb_.var("b", batch_), h = kb_.var("h", hidden_);
      Expr pre = xw_.load({d, timeOf(d, b, s), b, h}) + recurrent(d, b, s, h);
      kb_.computeAt(hs_, {d, b, h}, {d, next, b, h}, carry(b, step, act(0, d, pre), hs_.load({d, s, b, h})));
      return;
    }
    int64_t width = def_.kind == CellKind::kGru ? 2 * hidden_ : gateWidth();
    if (!present(gates_)) gates_ = ctx_.temp("gates", dtype_, {directions_, batch_, width});
    {
      IterVar d = kb_.var("d", directions_), b = kb_.var("b", batch_), j = kb_.var("j", width);
      Expr pre = xw_.load({d, timeOf(d, b, s), b, j}) + recurrent(d, b, s, j);
      kb_.compute(gates_, {d, b, j}, def_.kind == CellKind::kGru ? act(0, d, pre) : pre);
    }
    if (def_.kind == CellKind::kGru) emitGruState(step);
    else emitLstmState(step);
  }

  // H' = (1 - z) * g(X Wh + (r * H) Rh + Rbh + Wbh) + z * H, or with
  // linear_before_reset g(X Wh + r * (H Rh + Rbh) + Wbh).
  void emitGruState(int64_t step) {
    Expr s = Expr::index(step);
    IterVar d = kb_.var("d", directions_), b = kb_.var("b", batch_), h = kb_.var("h", hidden_);
    Expr row = Expr(h) + Expr::index(2 * hidden_);
    Expr z = gates_.load({d, b, h});
    Expr r = gates_.load({d, b, Expr(h) + Expr::index(hidden_)});
    Expr pre = xw_.load({d, timeOf(d, b, s), b, row});
    if (linearBeforeReset()) {
      Expr rb = present(bias_) ? load(bias_, {d, row + Expr::index(gateWidth())}) : c(0);
      pre = pre + r * (recurrent(d, b, s, row) + rb);
    } else {
      pre = pre + recurrent(d, b, s, row, true);
    }
    Expr old = hs_.load({d, s, b, h});
    Expr updated = (1.0 - z) * act(1, d, pre) + z * old;
    kb_.computeAt(hs_, {d, b, h}, {d, Expr::index(step + 1), b, h}, carry(b, step, updated, old));
  }

  Expr peephole(Expr d, Expr h, int64_t block, Expr cell) const {
    if (!present(peep_)) return c(0);
    return load(peep_, {d, h + Expr::index(block * hidden_)}) * cell;
  }

  // C' = f * C + i * g(c~); H' = o * h(C'), with gates in the order i, o, f, c.
  void emitLstmState(int64_t step) {
    Expr s = Expr::index(step), next = Expr::index(step + 1);
    bool input_forget = ctx_.attrInt("input_forget", 0) != 0;
    {
      IterVar d = kb_.var("d", directions_), b = kb_.var("b", batch_), h = kb_.var("h", hidden_);
      Expr old = cs_.load({d, s, b, h});
      auto gate = [&](int64_t block) { return gates_.load({d, b, Expr(h) + Expr::index(block * hidden_)}); };
      Expr i = act(0, d, gate(0) + peephole(d, h, 0, old));
      Expr f = input_forget ? 1.0 - i : act(0, d, gate(2) + peephole(d, h, 2, old));
      Expr updated = f * old + i * act(1, d, gate(3));
      kb_.computeAt(cs_, {d, b, h}, {d, next, b, h}, carry(b, step, updated, old));
    }
    IterVar d = kb_.var("d", directions_), b = kb_.var("b", batch_), h = kb_.var("h", hidden_);
    Expr cell = cs_.load({d, next, b, h});
    Expr o = act(0, d, gates_.load({d, b, Expr(h) + Expr::index(hidden_)}) + peephole(d, h, 1, cell));
    Expr updated = o * act(2, d, cell, false);
    kb_.computeAt(hs_, {d, b, h}, {d, next, b, h}, carry(b, step, updated, hs_.load({d, s, b, h})));
  }

  void emitOutputs() {
    if (ctx_.hasOutput(0)) {
      Buffer y = ctx_.output(0);
      IterVar t = kb_.var("t", steps_), d = kb_.var("d", directions_), b = kb_.var("b", batch_),
              h = kb_.var("h", hidden_);
      Expr step = kir::select(isReverse(d), kir::max(length(b) - Expr::index(1) - Expr(t), Expr::index(0)), Expr(t));
      Expr value = kir::select(Expr(t) < length(b), hs_.load({d, step + Expr::index(1), b, h}), c(0));
      std::vector<IterVar> axes = batch_first_ ? std::vector<IterVar>{b, t, d, h} : std::vector<IterVar>{t, d, b, h};
      kb_.compute(y, axes, kir::cast(y.dtype(), value));
    }
    emitFinalState(1, hs_);
    if (def_.kind == CellKind::kLstm) emitFinalState(2, cs_);
  }

  void emitFinalState(size_t output, const Buffer& history) {
    if (!ctx_.hasOutput(output)) return;
    Buffer y = ctx_.output(output);
    IterVar d = kb_.var("d", directions_), b = kb_.var("b", batch_), h = kb_.var("h", hidden_);
    Expr value = kir::cast(y.dtype(), history.load({d, Expr::index(steps_), b, h}));
    kb_.compute(y, batch_first_ ? std::vector<IterVar>{b, d, h} : std::vector<IterVar>{d, b, h}, value);
  }

  LowerContext& ctx_;
  const CellDef& def_;
  kir::KernelBuilder& kb_;
  bool batch_first_ = false, reverse_only_ = false;
  int64_t steps_ = 0, batch_ = 0, hidden_ = 0, directions_ = 1;
  double clip_ = 0;
  DType dtype_ = DType::kFloat32;
  std::vector<Activation> acts_;
  Buffer x_, r_, bias_, lens_, peep_, hs_, cs_, xw_, gates_;
};

std::vector<AttrSpec> recurrentAttributes(const CellDef& def) {
  std::vector<AttrSpec> attrs = {{"activation_alpha", Kind::kFloats}, {"activation_beta", Kind::kFloats},
                                 {"activations", Kind::kStrings},     {"clip", Kind::kFloat},
                                 {"direction", Kind::kString},        {"hidden_size", Kind::kInt},
                                 {"layout", Kind::kInt},              {"output_sequence", Kind::kInt}};
  if (def.kind == CellKind::kGru) attrs.push_back({"linear_before_reset", Kind::kInt});
  if (def.kind == CellKind::kLstm) attrs.push_back({"input_forget", Kind::kInt});
  return attrs;
}

void add(OpRegistry& registry, std::string_view name, std::vector<int> versions, const CellDef& def) {
  registry.add(OpSchema{"", name, std::move(versions), recurrentAttributes(def),
                        [&def](InferContext& ctx) { return inferRecurrent(ctx, def); },
                        [&def](LowerContext& ctx) { return RecurrentLowering(ctx, def).run(); }});
}

}  // namespace

void registerRecurrentOps(OpRegistry& registry) {
  add(registry, "RNN", {1, 7, 14}, kRnn);
  add(registry, "GRU", {1, 3, 7, 14}, kGru);
  add(registry, "LSTM", {1, 7, 14}, kLstm);
}

}  // namespace kiln::ops
