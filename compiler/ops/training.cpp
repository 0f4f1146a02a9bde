// The ai.onnx.preview.training domain (version 1): the optimizers Adagrad,
// Adam and Momentum, and Gradient.
//
// An optimizer takes a learning rate R and an iteration count T (scalars),
// then n tensors to optimize and, grouped by role, their gradients and
// states: Adagrad X1..Xn G1..Gn H1..Hn -> X1'..Xn' H1'..Hn'; Adam adds V
// before H and returns X' V' H'; Momentum takes X G V and returns X' V'.
// Each updated element depends only on the same element of its group, so
// every output is one elementwise kernel. With g = norm_coefficient * x + g
// (the regularization's gradient added):
//   Adagrad:  h' = h + g^2
//             x' = x - R / (1 + T * decay_factor) * g / (sqrt(h') + epsilon)
//   Adam:     v' = alpha * v + (1 - alpha) * g
//             h' = beta * h + (1 - beta) * g^2
//             r  = T > 0 ? R * sqrt(1 - beta^T) / (1 - alpha^T) : R   (bias correction)
//             x' = (1 - norm_coefficient_post) * (x - r * v' / (sqrt(h') + epsilon))
//   Momentum: v' = alpha * v + (T > 0 ? beta : 1) * g
//             x' = x - R * v'                     (mode "standard")
//             x' = x - R * (g + alpha * v')       (mode "nesterov")
//
// Gradient is registered here for its type inference only: the
// expand-gradient pass (passes/expand_gradient.cpp) replaces it with the
// backward nodes before lowering.
#include <functional>
#include <map>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

constexpr std::string_view kTrainingDomain = "ai.onnx.preview.training";

// The tensor roles of one optimizer: inputs after R and T, and the outputs
// (each output role is the input role of the state it updates).
struct OptimizerRoles {
  std::vector<std::string_view> inputs;
  std::vector<std::string_view> outputs;
};

const OptimizerRoles kAdagradRoles{{"X", "G", "H"}, {"X", "H"}};
const OptimizerRoles kAdamRoles{{"X", "G", "V", "H"}, {"X", "V", "H"}};
const OptimizerRoles kMomentumRoles{{"X", "G", "V"}, {"X", "V"}};

// The number of tensors optimized at once.
Expected<size_t> tensorCount(const NodeView& ctx, const OptimizerRoles& roles) {
  size_t per_input = roles.inputs.size();
  size_t variadic = ctx.numInputs() < 2 ? 0 : ctx.numInputs() - 2;
  if (variadic == 0 || variadic % per_input != 0)
    return ctx.error("expects R, T and " + std::to_string(per_input) + " inputs per optimized tensor, got " +
                     std::to_string(ctx.numInputs()) + " inputs");
  size_t n = variadic / per_input;
  if (ctx.numOutputs() != n * roles.outputs.size())
    return ctx.error("optimizes " + std::to_string(n) + " tensors, so it expects " +
                     std::to_string(n * roles.outputs.size()) + " outputs, got " + std::to_string(ctx.numOutputs()));
  return n;
}

Status expectScalar(const NodeView& ctx, size_t i, std::string_view role) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
  ir::Dim count = productDim(shape, 0, shape.size());
  if (count.isKnown() && count.value == 1) return Status::ok();
  return ctx.error(std::string(role) + " has shape " + ir::toString(shape) + ", expected a scalar (input " +
                   std::to_string(i) + ")");
}

Status inferOptimizer(InferContext& ctx, const OptimizerRoles& roles) {
  KILN_ASSIGN_OR_RETURN(size_t n, tensorCount(ctx, roles));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "R", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectScalar(ctx, 0, "R"));
  if (!ctx.hasInput(1) || ctx.inputType(1).dtype != ir::DType::kInt64)
    return ctx.error("T (the iteration count, input 1) must be an int64 scalar");
  KILN_RETURN_IF_ERROR(expectScalar(ctx, 1, "T"));
  for (size_t k = 0; k < n; ++k) {
    size_t x = 2 + k;
    std::string x_role = "X" + std::to_string(k + 1);
    KILN_RETURN_IF_ERROR(expectDType(ctx, x, x_role, DTypeClass::kFloat));
    KILN_ASSIGN_OR_RETURN(ir::Shape x_shape, inputShape(ctx, x, x_role));
    for (size_t r = 1; r < roles.inputs.size(); ++r) {
      size_t i = 2 + r * n + k;
      std::string role = std::string(roles.inputs[r]) + std::to_string(k + 1);
      KILN_RETURN_IF_ERROR(expectSameDType(ctx, x, i, role));
      KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
      bool same = shape.size() == x_shape.size();
      for (size_t d = 0; same && d < shape.size(); ++d) same = !conflictingDims(shape[d], x_shape[d]);
      if (!same)
        return ctx.error(role + " has shape " + ir::toString(shape) + ", expected " + ir::toString(x_shape) +
                         " like " + x_role + " (input " + std::to_string(i) + ")");
    }
    for (size_t o = 0; o < roles.outputs.size(); ++o)
      ctx.setOutputType(o * n + k, ctx.inputType(x));
  }
  return Status::ok();
}

// Loads of one optimized tensor's group at the output's element.
struct TensorGroup {
  Expr r, t, positive_t;  // R and T in the compute dtype, T > 0
  std::map<std::string_view, Expr> values;  // role -> element in the compute dtype
  ir::DType dtype;
  Expr constant(double value) const { return Expr::constant(dtype, value); }
  Expr operator[](std::string_view role) const { return values.at(role); }
};

Expr loadScalar(const LowerContext::Buffer& buffer) {
  return buffer.load(std::vector<Expr>(buffer.rank(), Expr::index(0)));
}

// The formula for output `role` of one group, written as in the header.
using UpdateFn = std::function<Expr(const NodeView&, const TensorGroup&, std::string_view role)>;

Expr regularizedGradient(const NodeView& ctx, const TensorGroup& g) {
  return g.constant(ctx.attrFloat("norm_coefficient", 0.0f)) * g["X"] + g["G"];
}

Expr adagradUpdate(const NodeView& ctx, const TensorGroup& g, std::string_view role) {
  Expr grad = regularizedGradient(ctx, g);
  Expr h_new = g["H"] + grad * grad;
  if (role == "H") return h_new;
  Expr rate = g.r / (g.constant(1) + g.t * g.constant(ctx.attrFloat("decay_factor", 0.0f)));
  Expr epsilon = g.constant(ctx.attrFloat("epsilon", 1e-6f));
  return g["X"] - rate * grad / (kir::sqrt(h_new) + epsilon);
}

Expr adamUpdate(const NodeView& ctx, const TensorGroup& g, std::string_view role) {
  double alpha = ctx.attrFloat("alpha", 0.9f);
  double beta = ctx.attrFloat("beta", 0.999f);
  Expr grad = regularizedGradient(ctx, g);
  Expr v_new = g.constant(alpha) * g["V"] + g.constant(1 - alpha) * grad;
  if (role == "V") return v_new;
  Expr h_new = g.constant(beta) * g["H"] + g.constant(1 - beta) * (grad * grad);
  if (role == "H") return h_new;
  Expr corrected = g.r * kir::sqrt(g.constant(1) - kir::binary(kir::BinaryOp::kPow, g.constant(beta), g.t)) /
                   (g.constant(1) - kir::binary(kir::BinaryOp::kPow, g.constant(alpha), g.t));
  Expr rate = kir::select(g.positive_t, corrected, g.r);
  Expr epsilon = g.constant(ctx.attrFloat("epsilon", 1e-6f));
  Expr x_new = g["X"] - rate * (v_new / (kir::sqrt(h_new) + epsilon));
  return g.constant(1 - double(ctx.attrFloat("norm_coefficient_post", 0.0f))) * x_new;
}

Expr momentumUpdate(const NodeView& ctx, const TensorGroup& g, std::string_view role) {
  Expr alpha = g.constant(ctx.attrFloat("alpha", 0.0f));
  Expr grad = regularizedGradient(ctx, g);
  // The gradient's coefficient is 1 at the first iteration.
  Expr beta = kir::select(g.positive_t, g.constant(ctx.attrFloat("beta", 0.0f)), g.constant(1));
  Expr v_new = alpha * g["V"] + beta * grad;
  if (role == "V") return v_new;
  if (ctx.attrString("mode", "") == "nesterov") return g["X"] - g.r * (grad + alpha * v_new);
  return g["X"] - g.r * v_new;
}

Status checkMomentumMode(const NodeView& ctx) {
  std::string mode = ctx.attrString("mode", "");
  if (mode == "standard" || mode == "nesterov") return Status::ok();
  return ctx.error("mode is '" + mode + "', expected 'standard' or 'nesterov'");
}

// One kernel per output: out[i] = update(R, T, the group's elements at i).
Status lowerOptimizer(LowerContext& ctx, const OptimizerRoles& roles, const UpdateFn& update) {
  KILN_ASSIGN_OR_RETURN(size_t n, tensorCount(ctx, roles));
  for (size_t o = 0; o < roles.outputs.size(); ++o) {
    for (size_t k = 0; k < n; ++k) {
      size_t out_index = o * n + k;
      if (!ctx.hasOutput(out_index)) continue;
      ctx.newKernel(std::string(roles.outputs[o]) + std::to_string(k + 1));
      kir::KernelBuilder& kb = ctx.builder();
      LowerContext::Buffer out = ctx.output(out_index);
      TensorGroup group;
      group.dtype = computeDType(out.dtype());
      group.r = kir::cast(group.dtype, loadScalar(ctx.input(0)));
      Expr t = loadScalar(ctx.input(1));
      group.t = kir::cast(group.dtype, t);
      group.positive_t = t > Expr::index(0);
      std::vector<kir::IterVar> axes = kb.vars(out.shape(), "e");
      for (size_t r = 0; r < roles.inputs.size(); ++r)
        group.values.emplace(roles.inputs[r], toCompute(ctx.input(2 + r * n + k).load(asExprs(axes))));
      kb.compute(out, axes, kir::cast(out.dtype(), update(ctx, group, roles.outputs[o])));
    }
  }
  return Status::ok();
}

void addOptimizer(OpRegistry& registry, std::string_view name, std::vector<AttrSpec> attributes,
                  const OptimizerRoles& roles, UpdateFn update, std::function<Status(const NodeView&)> check = {}) {
  registry.add(OpSchema{kTrainingDomain, name, {1}, std::move(attributes),
                        [&roles, check](InferContext& ctx) {
                          if (check) KILN_RETURN_IF_ERROR(check(ctx));
                          return inferOptimizer(ctx, roles);
                        },
                        [&roles, update](LowerContext& ctx) { return lowerOptimizer(ctx, roles, update); }});
}

// Gradient: output i has the type of xs[i], the node's input i.
Status inferGradient(InferContext& ctx) {
  const ir::Attribute* xs = ctx.node().attribute("xs");
  size_t count = xs ? xs->strings.size() : 0;
  if (count == 0 || ctx.numOutputs() != count || ctx.numInputs() < count)
    return ctx.error("expects one output per name in xs (" + std::to_string(count) + ") and the xs values first among " +
                     "its inputs, got " + std::to_string(ctx.numInputs()) + " inputs and " +
                     std::to_string(ctx.numOutputs()) + " outputs");
  for (size_t i = 0; i < count; ++i) {
    if (!ctx.hasInput(i) || ctx.node().inputs[i]->name != xs->strings[i])
      return ctx.error("input " + std::to_string(i) + " must be xs[" + std::to_string(i) + "] '" + xs->strings[i] + "'");
    KILN_RETURN_IF_ERROR(expectDType(ctx, i, "xs[" + std::to_string(i) + "]", DTypeClass::kFloat));
    ctx.setOutputType(i, ctx.inputType(i));
  }
  return Status::ok();
}

Status lowerGradient(LowerContext& ctx) {
  return ctx.unsupportedError(
      "Gradient is expanded into backward nodes by the expand-gradient pass in the graph that holds it; "
      "a Gradient inside a subgraph (If, Loop or Scan body) is not supported");
}

}  // namespace

void registerTrainingOps(OpRegistry& registry) {
  addOptimizer(registry, "Adagrad",
               {{"decay_factor", Kind::kFloat}, {"epsilon", Kind::kFloat}, {"norm_coefficient", Kind::kFloat}},
               kAdagradRoles, adagradUpdate);
  addOptimizer(registry, "Adam",
               {{"alpha", Kind::kFloat},
                {"beta", Kind::kFloat},
                {"epsilon", Kind::kFloat},
                {"norm_coefficient", Kind::kFloat},
                {"norm_coefficient_post", Kind::kFloat}},
               kAdamRoles, adamUpdate);
  addOptimizer(registry, "Momentum",
               {{"alpha", Kind::kFloat, true},
                {"beta", Kind::kFloat, true},
                {"mode", Kind::kString, true},
                {"norm_coefficient", Kind::kFloat, true}},
               kMomentumRoles, momentumUpdate, checkMomentumMode);
  registry.add(OpSchema{kTrainingDomain,
                        "Gradient",
                        {1},
                        {{"xs", Kind::kStrings, true}, {"y", Kind::kString, true}, {"zs", Kind::kStrings}},
                        inferGradient,
                        lowerGradient});
}

}  // namespace kiln::ops
