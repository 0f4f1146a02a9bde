// expand-gradient: replaces a Gradient node (ai.onnx.preview.training) by
// the nodes that compute its outputs, dy/dx for each x in its `xs`
// attribute, y being the value its `y` attribute names in the same graph.
//
// Reverse-mode differentiation: the nodes on a path from some x to y are
// visited last to first, each turning the adjoint of its output (dy/dout,
// starting from ones shaped like y, so a non-scalar y gives the gradient
// of the sum of its elements) into contributions to its inputs' adjoints,
// which add up where a value is read more than once. A contribution to an
// input that was broadcast is summed back to the input's shape (ReduceSum
// over the broadcast axes, then Reshape). Derivative rules:
//   Add, Sum: g            Sub: g, -g          Neg: -g         Identity: g
//   Mul: g*b, g*a          Div: g/b, -g*y/b    Exp: g*y
//   Relu: where(a > 0, g, 0)   Sigmoid: g*y*(1-y)   Tanh: g*(1-y*y)
//   MatMul (rank >= 2): g @ b^T, a^T @ g   (^T swaps the last two axes)
// Any other op on the path is an error naming it and its node. An x that y
// does not depend on gets a zero gradient. The Gradient's outputs keep
// their names: each becomes an Identity of its adjoint (remove-no-ops drops
// it at -O1 and above).
//
// Requires: shapes inferred; the values on the path have static shapes.
// Runs at every -O level after infer-shapes whenever the main graph has a
// Gradient (one in a subgraph is refused when lowered).
#include "passes/expand_gradient.h"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_set>

#include "compiler/support/half.h"
#include "passes/infer_shapes.h"

namespace kiln::passes {
namespace {

constexpr std::string_view kTrainingDomain = "ai.onnx.preview.training";

bool isGradient(const ir::Node& node) { return node.op_type == "Gradient" && node.domain == kTrainingDomain; }

std::string uniqueName(const ir::Graph& graph, const std::string& base) {
  std::string name = base;
  for (int i = 1; graph.findValue(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

ir::Attribute intsAttribute(std::vector<int64_t> values) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kInts;
  a.ints = std::move(values);
  return a;
}

template <typename T>
ir::Tensor filledWith(ir::DType dtype, const std::vector<int64_t>& dims, T value) {
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  std::vector<T> data(static_cast<size_t>(count), value);
  return ir::Tensor::fromValues<T>(dtype, dims, std::span<const T>(data));
}

// A float tensor of `dims` whose elements are all `value`.
ir::Tensor filledTensor(ir::DType dtype, const std::vector<int64_t>& dims, double value) {
  switch (dtype) {
    case ir::DType::kFloat64: return filledWith<double>(dtype, dims, value);
    case ir::DType::kFloat16: return filledWith<uint16_t>(dtype, dims, floatToHalf(static_cast<float>(value)));
    case ir::DType::kBFloat16: return filledWith<uint16_t>(dtype, dims, floatToBfloat16(static_cast<float>(value)));
    default: return filledWith<float>(ir::DType::kFloat32, dims, static_cast<float>(value));
  }
}

class BackwardBuilder;
using DerivativeRule = Status (BackwardBuilder::*)(const ir::Node&, ir::Value*);

// The backward nodes of one Gradient node, appended to its graph.
class BackwardBuilder {
 public:
  BackwardBuilder(ir::Graph& graph, ir::Node& gradient, int64_t opset)
      : graph_(graph), gradient_(gradient), opset_(opset) {}

  Status run();

  // Derivative rules: `g` is the adjoint of the node's output 0.
  Status addRule(const ir::Node& n, ir::Value* g) {
    for (size_t i = 0; i < n.inputs.size(); ++i) KILN_RETURN_IF_ERROR(give(n, i, g));
    return Status::ok();
  }
  Status subRule(const ir::Node& n, ir::Value* g) {
    KILN_RETURN_IF_ERROR(give(n, 0, g));
    return giveIfReached(n, 1, [&] { return add("Neg", {g}, g->type); });
  }
  Status negRule(const ir::Node& n, ir::Value* g) {
    return giveIfReached(n, 0, [&] { return add("Neg", {g}, g->type); });
  }
  Status mulRule(const ir::Node& n, ir::Value* g) {
    KILN_RETURN_IF_ERROR(giveIfReached(n, 0, [&] { return add("Mul", {g, n.inputs[1]}, g->type); }));
    return giveIfReached(n, 1, [&] { return add("Mul", {g, n.inputs[0]}, g->type); });
  }
  Status divRule(const ir::Node& n, ir::Value* g) {
    KILN_RETURN_IF_ERROR(giveIfReached(n, 0, [&] { return add("Div", {g, n.inputs[1]}, g->type); }));
    return giveIfReached(n, 1, [&] {
      ir::Value* gy = add("Mul", {g, n.outputs[0]}, g->type);
      return add("Neg", {add("Div", {gy, n.inputs[1]}, g->type)}, g->type);
    });
  }
  Status expRule(const ir::Node& n, ir::Value* g) {
    return giveIfReached(n, 0, [&] { return add("Mul", {g, n.outputs[0]}, g->type); });
  }
  Status reluRule(const ir::Node& n, ir::Value* g) {
    return giveIfReached(n, 0, [&] {
      ir::Value* zero = scalar(g->type.dtype, 0);
      ir::Value* positive = add("Greater", {n.inputs[0], zero}, {ir::DType::kBool, n.inputs[0]->type.shape});
      return add("Where", {positive, g, zero}, g->type);
    });
  }
  Status sigmoidRule(const ir::Node& n, ir::Value* g) {
    return giveIfReached(n, 0, [&] {
      ir::Value* y = n.outputs[0];
      ir::Value* slope = add("Mul", {y, add("Sub", {scalar(y->type.dtype, 1), y}, y->type)}, y->type);
      return add("Mul", {g, slope}, g->type);
    });
  }
  Status tanhRule(const ir::Node& n, ir::Value* g) {
    return giveIfReached(n, 0, [&] {
      ir::Value* y = n.outputs[0];
      ir::Value* slope = add("Sub", {scalar(y->type.dtype, 1), add("Mul", {y, y}, y->type)}, y->type);
      return add("Mul", {g, slope}, g->type);
    });
  }
  Status matMulRule(const ir::Node& n, ir::Value* g);

 private:
  Status backward(const ir::Node& node);
  Expected<std::vector<int64_t>> dimsOf(const ir::Value& value) const;
  std::string newName() { return gradient_.name + "/grad" + std::to_string(counter_++); }

  // A node of one output with the type given (the pass knows every shape on
  // the path; shape inference runs again afterwards).
  ir::Value* add(const std::string& op, std::vector<ir::Value*> inputs, ir::TensorType type,
                 std::map<std::string, ir::Attribute> attributes = {}) {
    ir::Node* node = graph_.addNode(op, newName());
    node->inputs = std::move(inputs);
    node->attributes = std::move(attributes);
    ir::Value* out = graph_.addValue(uniqueName(graph_, node->name), std::move(type));
    out->producer = node;
    node->outputs = {out};
    return out;
  }
  ir::Value* constant(ir::Tensor value) {
    ir::Value* v = graph_.addValue(uniqueName(graph_, newName()));
    v->type = value.type();
    v->constant = std::move(value);
    return v;
  }
  ir::Value* scalar(ir::DType dtype, double value) { return constant(filledTensor(dtype, {}, value)); }
  ir::Value* int64Constant(std::vector<int64_t> values) {
    auto n = static_cast<int64_t>(values.size());
    return constant(ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {n}, std::span<const int64_t>(values)));
  }

  // `g` summed over the axes along which input i was broadcast.
  Expected<ir::Value*> reduceTo(ir::Value* g, const ir::Value& input);
  // Adds `contribution` (input i's shape, or broadcast to it) to input i's adjoint.
  Status give(const ir::Node& n, size_t i, ir::Value* contribution);
  // The same, building the contribution only for an input that depends on an x.
  Status giveIfReached(const ir::Node& n, size_t i, const std::function<ir::Value*()>& contribution) {
    return reached_.count(n.inputs[i]) ? give(n, i, contribution()) : Status::ok();
  }

  ir::Graph& graph_;
  ir::Node& gradient_;
  int64_t opset_;  // of the default domain: ReduceSum's axes are an input from 13
  std::map<const ir::Value*, ir::Value*> adjoint_;
  std::unordered_set<const ir::Value*> reached_;  // values depending on some x
  int counter_ = 0;
};

const std::map<std::string, DerivativeRule, std::less<>>& derivativeRules() {
  static const std::map<std::string, DerivativeRule, std::less<>> kRules = {
      {"Add", &BackwardBuilder::addRule},         {"Sum", &BackwardBuilder::addRule},
      {"Identity", &BackwardBuilder::addRule},    {"Sub", &BackwardBuilder::subRule},
      {"Neg", &BackwardBuilder::negRule},         {"Mul", &BackwardBuilder::mulRule},
      {"Div", &BackwardBuilder::divRule},         {"Exp", &BackwardBuilder::expRule},
      {"Relu", &BackwardBuilder::reluRule},       {"Sigmoid", &BackwardBuilder::sigmoidRule},
      {"Tanh", &BackwardBuilder::tanhRule},       {"MatMul", &BackwardBuilder::matMulRule},
  };
  return kRules;
}

std::string ruleList() {
  std::string out;
  for (const auto& [op, rule] : derivativeRules()) out += (out.empty() ? "" : ", ") + op;
  return out;
}

Expected<std::vector<int64_t>> BackwardBuilder::dimsOf(const ir::Value& value) const {
  if (value.type.shape)
    if (auto dims = ir::knownDims(*value.type.shape)) return *dims;
  return unsupported(gradient_.describe() + ": '" + value.name + "' on the path from xs to y has shape " +
                     (value.type.shape ? ir::toString(*value.type.shape) : "of unknown rank") +
                     "; gradients are computed for static shapes only");
}

Expected<ir::Value*> BackwardBuilder::reduceTo(ir::Value* g, const ir::Value& input) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> from, dimsOf(*g));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> to, dimsOf(input));
  if (from == to) return g;
  if (from.size() < to.size())
    return internalError(gradient_.describe() + ": a contribution to '" + input.name + "' has fewer axes than it");
  size_t lead = from.size() - to.size();  // broadcasting only prepends axes
  std::vector<int64_t> axes, kept = from;
  for (size_t d = 0; d < from.size(); ++d) {
    if (d < lead || (to[d - lead] == 1 && from[d] != 1)) {
      axes.push_back(static_cast<int64_t>(d));
      kept[d] = 1;
    }
  }
  ir::TensorType kept_type{g->type.dtype, ir::makeShape(kept)};
  ir::Value* sum = g;
  if (!axes.empty()) {
    std::map<std::string, ir::Attribute> attributes;
    attributes.emplace("keepdims", [] {
      ir::Attribute a;
      a.kind = ir::Attribute::Kind::kInt;
      a.i = 1;
      return a;
    }());
    if (opset_ >= 13) {
      sum = add("ReduceSum", {g, int64Constant(axes)}, kept_type, std::move(attributes));
    } else {
      attributes.emplace("axes", intsAttribute(axes));
      sum = add("ReduceSum", {g}, kept_type, std::move(attributes));
    }
  }
  if (kept == to) return sum;
  return add("Reshape", {sum, int64Constant(to)}, input.type);
}

Status BackwardBuilder::give(const ir::Node& n, size_t i, ir::Value* contribution) {
  const ir::Value* input = n.inputs[i];
  if (!input || !reached_.count(input)) return Status::ok();
  KILN_ASSIGN_OR_RETURN(ir::Value* reduced, reduceTo(contribution, *input));
  auto it = adjoint_.find(input);
  if (it == adjoint_.end()) adjoint_.emplace(input, reduced);
  else it->second = add("Add", {it->second, reduced}, input->type);
  return Status::ok();
}

// y = a @ b over the last two axes (batch axes broadcast):
// da = g @ b^T, db = a^T @ g, each summed back over a broadcast batch.
Status BackwardBuilder::matMulRule(const ir::Node& n, ir::Value* g) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> a, dimsOf(*n.inputs[0]));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> b, dimsOf(*n.inputs[1]));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> y, dimsOf(*n.outputs[0]));
  if (a.size() < 2 || b.size() < 2)
    return unsupported(gradient_.describe() + ": the derivative of " + n.describe() +
                       " is implemented for operands of rank 2 or more; an operand has rank 1");
  auto transposed = [&](ir::Value* v) {
    std::vector<int64_t> dims = *dimsOf(*v);
    std::vector<int64_t> perm(dims.size());
    for (size_t d = 0; d < perm.size(); ++d) perm[d] = static_cast<int64_t>(d);
    std::swap(perm[perm.size() - 2], perm[perm.size() - 1]);
    std::swap(dims[dims.size() - 2], dims[dims.size() - 1]);
    std::map<std::string, ir::Attribute> attributes;
    attributes.emplace("perm", intsAttribute(perm));
    return add("Transpose", {v}, {v->type.dtype, ir::makeShape(dims)}, std::move(attributes));
  };
  auto withLast2 = [&](const std::vector<int64_t>& last) {  // y's batch axes, then `last`'s two
    std::vector<int64_t> dims(y.begin(), y.end() - 2);
    dims.insert(dims.end(), last.end() - 2, last.end());
    return ir::TensorType{g->type.dtype, ir::makeShape(dims)};
  };
  KILN_RETURN_IF_ERROR(giveIfReached(n, 0, [&] { return add("MatMul", {g, transposed(n.inputs[1])}, withLast2(a)); }));
  return giveIfReached(n, 1, [&] { return add("MatMul", {transposed(n.inputs[0]), g}, withLast2(b)); });
}

Status BackwardBuilder::backward(const ir::Node& node) {
  auto rule = derivativeRules().find(node.op_type);
  if (rule == derivativeRules().end() || !(node.domain.empty() || node.domain == "ai.onnx"))
    return unsupported(gradient_.describe() + ": y depends on xs through " + node.describe() + " (domain '" +
                       (node.domain.empty() ? "ai.onnx" : node.domain) +
                       "'), which has no derivative rule; Kiln differentiates " + ruleList());
  auto g = adjoint_.find(node.outputs[0]);
  if (g == adjoint_.end()) return Status::ok();  // output 0 does not lead to y
  return (this->*rule->second)(node, g->second);
}

Status BackwardBuilder::run() {
  const ir::Attribute* xs = gradient_.attribute("xs");
  const ir::Attribute* y_attr = gradient_.attribute("y");
  ir::Value* y = y_attr ? graph_.findValue(y_attr->s) : nullptr;
  if (!y)
    return invalidInput(gradient_.describe() + ": y '" + (y_attr ? y_attr->s : "") +
                        "' names no value of the graph that holds the node");
  if (!ir::isFloat(y->type.dtype))
    return invalidInput(gradient_.describe() + ": y '" + y->name + "' has dtype " +
                        std::string(ir::name(y->type.dtype)) + "; gradients are of float values");
  size_t count = xs ? xs->strings.size() : 0;
  for (size_t i = 0; i < count; ++i) reached_.insert(gradient_.inputs[i]);
  // The nodes on a path from an x to y: reached from an x, and read on the way to y.
  std::vector<const ir::Node*> path;
  for (const auto& node : graph_.nodes()) {
    bool reads_x = std::any_of(node->inputs.begin(), node->inputs.end(),
                               [&](const ir::Value* v) { return v && reached_.count(v); });
    for (const auto& [key, a] : node->attributes)
      for (const auto& sub : a.graphs)
        for (const ir::Value* v : sub->outerReads()) reads_x = reads_x || reached_.count(v) > 0;
    if (!reads_x || node.get() == &gradient_) continue;
    for (const ir::Value* out : node->outputs)
      if (out) reached_.insert(out);
    path.push_back(node.get());
  }
  if (reached_.count(y)) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> y_dims, dimsOf(*y));
    adjoint_.emplace(y, constant(filledTensor(y->type.dtype, y_dims, 1)));
  }
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    const ir::Node& node = **it;
    bool leads_to_y = std::any_of(node.outputs.begin(), node.outputs.end(),
                                  [&](const ir::Value* v) { return v && adjoint_.count(v); });
    if (leads_to_y) KILN_RETURN_IF_ERROR(backward(node));
  }
  // Each output becomes an Identity of its x's adjoint, keeping its name.
  std::vector<ir::Value*> outputs = gradient_.outputs;
  std::vector<ir::Value*> results;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const ir::Value* x = gradient_.inputs[i];
    auto it = adjoint_.find(x);
    if (it != adjoint_.end()) {
      results.push_back(it->second);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, dimsOf(*x));
    results.push_back(constant(filledTensor(x->type.dtype, dims, 0)));
  }
  std::string name = gradient_.name;
  graph_.eraseNode(&gradient_);
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i]) continue;
    ir::Node* identity = graph_.addNode("Identity", name + "/output" + std::to_string(i));
    identity->inputs = {results[i]};
    identity->outputs = {outputs[i]};
    outputs[i]->producer = identity;
    outputs[i]->producer_output = 0;
  }
  return Status::ok();
}

}  // namespace

bool hasGradient(const ir::Graph& graph) {
  return std::any_of(graph.nodes().begin(), graph.nodes().end(), [](const auto& n) { return isGradient(*n); });
}

Status expandGradients(ir::Model& model) {
  ir::Graph& graph = model.graph;
  while (true) {
    auto it = std::find_if(graph.nodes().begin(), graph.nodes().end(), [](const auto& n) { return isGradient(*n); });
    if (it == graph.nodes().end()) break;
    BackwardBuilder builder(graph, **it, model.opsetFor(""));
    KILN_RETURN_IF_ERROR(builder.run());
  }
  KILN_RETURN_IF_ERROR(graph.sortTopologically());
  return inferShapes(model);
}

}  // namespace kiln::passes
