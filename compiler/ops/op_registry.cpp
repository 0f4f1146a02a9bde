#include "compiler/ops/op_registry.h"

#include <algorithm>
#include <cassert>

namespace kiln::ops {
namespace {

// ONNX writes the default domain both as "" and as "ai.onnx".
std::string_view canonicalDomain(std::string_view domain) { return domain == "ai.onnx" ? std::string_view() : domain; }

std::string displayDomain(std::string_view domain) {
  return domain.empty() ? std::string("ai.onnx") : std::string(domain);
}

std::string tableKey(std::string_view domain, std::string_view name) {
  std::string key(canonicalDomain(domain));
  key += "::";
  key += name;
  return key;
}

const ir::Attribute* attributeOfKind(const ir::Node& node, const std::string& name, ir::Attribute::Kind kind) {
  const ir::Attribute* attr = node.attribute(name);
  return attr && attr->kind == kind ? attr : nullptr;
}

std::string versionList(const std::vector<int>& versions) {
  std::string out;
  for (int v : versions) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

Status checkAttributes(const ir::Node& node, const OpSchema& schema, int64_t opset) {
  auto where = [&] { return node.describe() + " (opset " + std::to_string(opset) + ")"; };
  for (const auto& entry : node.attributes) {
    const std::string& name = entry.first;
    const ir::Attribute& attr = entry.second;
    auto spec = std::find_if(schema.attributes.begin(), schema.attributes.end(),
                             [&](const AttrSpec& s) { return s.name == name; });
    if (spec == schema.attributes.end())
      return invalidInput(where() + ": unknown attribute '" + name + "'");
    if (spec->kind != attr.kind)
      return invalidInput(where() + ": attribute '" + name + "' is " + ir::Attribute::kindName(attr.kind) +
                          ", expected " + ir::Attribute::kindName(spec->kind));
  }
  for (const AttrSpec& spec : schema.attributes) {
    if (spec.required && !node.attribute(std::string(spec.name)))
      return invalidInput(where() + ": missing required attribute '" + std::string(spec.name) + "'");
  }
  return Status::ok();
}

// Variadic ops take any number of inputs or outputs in ONNX; Kiln takes up
// to `limit` (ir::kMaxNodeInputs, ir::kMaxNodeOutputs say why).
Status checkValueCount(const ir::Node& node, std::string_view what, size_t count, size_t limit) {
  if (count <= limit) return Status::ok();
  return invalidInput(node.describe() + ": has " + std::to_string(count) + " " + std::string(what) +
                      ", more than the " + std::to_string(limit) +
                      " Kiln accepts per node; split it into several nodes");
}

// The random ops, left out on purpose (the error says why).
bool isRandomOp(const ir::Node& node) {
  static const std::string_view kRandomOps[] = {"Bernoulli",     "Multinomial",      "RandomNormal",
                                                "RandomUniform", "RandomNormalLike", "RandomUniformLike"};
  return canonicalDomain(node.domain).empty() &&
         std::find(std::begin(kRandomOps), std::end(kRandomOps), node.op_type) != std::end(kRandomOps);
}

}  // namespace

const ir::TensorType& NodeView::inputType(size_t i) const {
  if (const ir::Value* value = node_.input(i)) return value->type;
  if (missing_input_.isOk()) missing_input_ = missingInputError(i);
  static const ir::TensorType kMissing;
  return kMissing;
}

Status inferNode(const OpSchema& schema, InferContext& ctx) {
  Status status = schema.infer(ctx);
  KILN_RETURN_IF_ERROR(ctx.missingInputStatus());
  KILN_RETURN_IF_ERROR(status);
  return ctx.outputStatus();
}

const ir::Tensor* NodeView::constantInput(size_t i) const {
  const ir::Value* value = node_.input(i);
  return value && value->constant ? &*value->constant : nullptr;
}

int64_t NodeView::attrInt(const std::string& name, int64_t fallback) const {
  const ir::Attribute* attr = attributeOfKind(node_, name, ir::Attribute::Kind::kInt);
  return attr ? attr->i : fallback;
}

float NodeView::attrFloat(const std::string& name, float fallback) const {
  const ir::Attribute* attr = attributeOfKind(node_, name, ir::Attribute::Kind::kFloat);
  return attr ? attr->f : fallback;
}

std::string NodeView::attrString(const std::string& name, const std::string& fallback) const {
  const ir::Attribute* attr = attributeOfKind(node_, name, ir::Attribute::Kind::kString);
  return attr ? attr->s : fallback;
}

std::vector<int64_t> NodeView::attrInts(const std::string& name, std::vector<int64_t> fallback) const {
  const ir::Attribute* attr = attributeOfKind(node_, name, ir::Attribute::Kind::kInts);
  return attr ? attr->ints : fallback;
}

std::vector<float> NodeView::attrFloats(const std::string& name) const {
  const ir::Attribute* attr = attributeOfKind(node_, name, ir::Attribute::Kind::kFloats);
  return attr ? attr->floats : std::vector<float>();
}

const ir::Tensor* NodeView::attrTensor(const std::string& name) const {
  const ir::Attribute* attr = attributeOfKind(node_, name, ir::Attribute::Kind::kTensor);
  return attr ? &attr->t : nullptr;
}

Status NodeView::error(const std::string& message) const { return invalidInput(node_.describe() + ": " + message); }

Status NodeView::missingInputError(size_t i) const {
  return error("input " + std::to_string(i) + " is required, but the node leaves it out");
}

Status NodeView::unsupportedError(const std::string& message) const {
  return unsupported(node_.describe() + ": " + message);
}

void InferContext::checkOutputShape(size_t i, const ir::TensorType& type) {
  if (!output_status_.isOk() || !type.shape) return;
  if (auto problem = ir::tensorSizeProblem(type.dtype, *type.shape))
    output_status_ = error("output " + std::to_string(i) + " would have shape " + ir::toString(*type.shape) + *problem);
}

void InferContext::setOutputType(size_t i, ir::TensorType type) {
  checkOutputShape(i, type);
  if (i < mutable_node_.outputs.size() && mutable_node_.outputs[i]) mutable_node_.outputs[i]->type = std::move(type);
}

void InferContext::setOutputConstant(size_t i, ir::Tensor value) {
  if (i >= mutable_node_.outputs.size() || !mutable_node_.outputs[i]) return;
  mutable_node_.outputs[i]->type = value.type();
  mutable_node_.outputs[i]->constant = std::move(value);
}

// Families whose output sizes depend on input data (nonzero.cpp, unique.cpp, nms.cpp).
void registerNonZeroOps(OpRegistry& registry);
void registerUniqueOps(OpRegistry& registry);
void registerNmsOps(OpRegistry& registry);
// The ai.onnx.preview.training domain (training.cpp).
void registerTrainingOps(OpRegistry& registry);
// Kiln's Winograd convolution steps, written by the winograd-conv pass (winograd.cpp).
void registerWinogradOps(OpRegistry& registry);
// Kiln's one-kernel attention, written by the recognize-attention pass (attention.cpp).
void registerAttentionOps(OpRegistry& registry);

// The one place op families are listed.
const OpRegistry& OpRegistry::global() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    registerElementwiseOps(r);
    registerMatMulOps(r);
    registerConvOps(r);
    registerPoolOps(r);
    registerNormalizationOps(r);
    registerShapeOps(r);
    registerLossOps(r);
    registerConvTransposeOps(r);
    registerMathOps(r);
    registerLogicOps(r);
    registerCastOps(r);
    registerReduceOps(r);
    registerNormOps(r);
    registerIndexingOps(r);
    registerReshapingOps(r);
    registerSlicingOps(r);
    registerResizeOps(r);
    registerSamplingOps(r);
    registerRearrangeOps(r);
    registerEinsumOps(r);
    registerLinalgOps(r);
    registerSignalOps(r);
    registerTextOps(r);
    registerQuantizeOps(r);
    registerQuantizedLinearOps(r);
    registerTopKOps(r);
    registerNonZeroOps(r);
    registerUniqueOps(r);
    registerNmsOps(r);
    registerRecurrentOps(r);
    registerControlFlowOps(r);
    registerSequenceOps(r);
    registerOptionalOps(r);
    registerTrainingOps(r);
    registerWinogradOps(r);
    registerAttentionOps(r);
    return r;
  }();
  return registry;
}

void OpRegistry::add(OpSchema schema) {
  assert(!schema.versions.empty() && std::is_sorted(schema.versions.begin(), schema.versions.end()));
  std::string key = tableKey(schema.domain, schema.name);
  assert(!ops_.count(key) && "op registered twice");
  ops_.emplace(std::move(key), std::move(schema));
}

const OpSchema* OpRegistry::find(std::string_view domain, std::string_view name) const {
  auto it = ops_.find(tableKey(domain, name));
  return it == ops_.end() ? nullptr : &it->second;
}

std::vector<const OpSchema*> OpRegistry::all() const {
  std::vector<const OpSchema*> out;
  out.reserve(ops_.size());
  for (const auto& [key, schema] : ops_) out.push_back(&schema);
  return out;
}

Expected<const OpSchema*> OpRegistry::resolve(const ir::Node& node, int64_t opset) const {
  const OpSchema* schema = find(node.domain, node.op_type);
  std::string where = " (domain '" + displayDomain(canonicalDomain(node.domain)) + "', opset " +
                      std::to_string(opset) + ") at node '" + node.name + "'";
  if (!schema && isRandomOp(node))
    return unsupported(node.describe() + ": random sampling is not supported; Kiln compiles deterministic inference");
  if (!schema) return unsupported("unsupported op '" + node.op_type + "'" + where);
  // Versions are since_versions: the entry in force at `opset` is the newest
  // one not after it. Older opsets predate the op entirely.
  if (opset < schema->versions.front())
    return invalidInput("op '" + node.op_type + "'" + where + " predates the op's first version " +
                       std::to_string(schema->versions.front()) + " (Kiln implements versions " +
                       versionList(schema->versions) + ")");
  KILN_RETURN_IF_ERROR(checkAttributes(node, *schema, opset));
  KILN_RETURN_IF_ERROR(checkValueCount(node, "inputs", node.inputs.size(), ir::kMaxNodeInputs));
  KILN_RETURN_IF_ERROR(checkValueCount(node, "outputs", node.outputs.size(), ir::kMaxNodeOutputs));
  // Every ONNX op has at least one output; a node that lists none (or only
  // empty names) would be lowered with nothing to write.
  if (std::none_of(node.outputs.begin(), node.outputs.end(), [](const ir::Value* v) { return v != nullptr; }))
    return invalidInput(node.describe() + ": the node has no outputs; every op writes at least one");
  return schema;
}

}  // namespace kiln::ops
