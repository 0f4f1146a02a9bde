// The op table. Each ONNX op is one OpSchema entry: the versions it implements,
// the attributes it accepts, its type/shape inference and its lowering to the
// kernel IR. Families of ops live one file each under compiler/ops/ and are
// listed once in op_registry.cpp.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/kir/kir.h"
#include "compiler/support/status.h"

namespace kiln::ops {

struct AttrSpec {
  std::string_view name;
  ir::Attribute::Kind kind;
  bool required = false;
};

// Read-only view of a node for inference and lowering: attributes with
// defaults (kinds already validated against the schema), input types,
// constant inputs, and errors that name the node.
class NodeView {
 public:
  NodeView(const ir::Node& node, int opset) : node_(node), opset_(opset) {}

  const ir::Node& node() const { return node_; }
  int opset() const { return opset_; }  // the model's opset for this op's domain

  size_t numInputs() const { return node_.inputs.size(); }
  size_t numOutputs() const { return node_.outputs.size(); }
  bool hasInput(size_t i) const { return node_.input(i) != nullptr; }
  bool hasOutput(size_t i) const { return i < node_.outputs.size() && node_.outputs[i] != nullptr; }
  // Input i's type. An op reads this only for inputs it requires; when the
  // node leaves such an input out (an empty name, or fewer inputs than the
  // op takes), this records the error `missingInputStatus` returns and gives
  // an undefined type of unknown rank, so inference finishes without
  // touching a null value and the caller reports the missing input.
  const ir::TensorType& inputType(size_t i) const;
  // "input 1 is required, but the node leaves it out" for the first required
  // input read through inputType that is missing; ok otherwise.
  const Status& missingInputStatus() const { return missing_input_; }
  // The input's value when known at compile time (initializer or Constant).
  const ir::Tensor* constantInput(size_t i) const;

  bool hasAttr(const std::string& name) const { return node_.attribute(name) != nullptr; }
  int64_t attrInt(const std::string& name, int64_t fallback) const;
  float attrFloat(const std::string& name, float fallback) const;
  std::string attrString(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> attrInts(const std::string& name, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attrFloats(const std::string& name) const;
  const ir::Tensor* attrTensor(const std::string& name) const;

  // invalidInput / unsupported errors prefixed with "Conv 'name': ".
  Status error(const std::string& message) const;
  Status unsupportedError(const std::string& message) const;
  // "input 1 is required, but the node leaves it out".
  Status missingInputError(size_t i) const;

 private:
  const ir::Node& node_;
  int opset_;
  mutable Status missing_input_;
};

class InferContext : public NodeView {
 public:
  InferContext(ir::Node& node, int opset) : NodeView(node, opset), mutable_node_(node) {}
  // Sets output i's type. Every op's output shape passes through here, so
  // this is where hostile shapes are caught for all of them: a negative
  // dimension, or known dimensions whose size overflows or passes
  // ir::kMaxTensorBytes, becomes the error that `outputStatus` returns.
  void setOutputType(size_t i, ir::TensorType type);
  // Sets output i's type and its compile-time value (Constant and other ops
  // whose result is known during inference).
  void setOutputConstant(size_t i, ir::Tensor value);
  // The first bad output shape set, naming the node and output; ok otherwise.
  // Shape inference checks it after every op's infer function.
  const Status& outputStatus() const { return output_status_; }

 private:
  void checkOutputShape(size_t i, const ir::TensorType& type);

  ir::Node& mutable_node_;
  Status output_status_;
};

class LowerContext;
using InferFn = std::function<Status(InferContext&)>;
using LowerFn = std::function<Status(LowerContext&)>;

// The domain of Kiln's own ops, which passes write (kiln.ConvNhwc): never
// in what `--emit onnx` writes for other runtimes.
inline constexpr std::string_view kKilnDomain = "kiln";

struct OpSchema {
  std::string_view domain;  // "" for the default ONNX domain
  std::string_view name;
  std::vector<int> versions;  // ONNX since_versions this entry implements, ascending
  std::vector<AttrSpec> attributes;
  InferFn infer;
  LowerFn lower;
  // Inputs the op reads only for their dtype (CastLike's target_type): a
  // graph input used only there may come with any shape at run time.
  std::vector<size_t> dtype_only_inputs = {};
};

class OpRegistry {
 public:
  // All ops Kiln knows, built once on first use.
  static const OpRegistry& global();

  void add(OpSchema schema);
  const OpSchema* find(std::string_view domain, std::string_view name) const;
  std::vector<const OpSchema*> all() const;

  // The schema for `node` at `opset`, with its attributes validated: an
  // unknown op, an opset older than the op's first version, an unknown
  // attribute, a wrong attribute kind or a missing required one, or a node
  // without outputs is an error naming the node.
  Expected<const OpSchema*> resolve(const ir::Node& node, int64_t opset) const;

 private:
  std::map<std::string, OpSchema, std::less<>> ops_;
};

// Runs `schema`'s inference on ctx's node. A required input the node leaves
// out is the error, before whatever the op's own checks said of it; then a
// bad output shape (InferContext::outputStatus).
Status inferNode(const OpSchema& schema, InferContext& ctx);

// Registration functions, one per op family file.
void registerElementwiseOps(OpRegistry& registry);
void registerMatMulOps(OpRegistry& registry);
void registerConvOps(OpRegistry& registry);
void registerPoolOps(OpRegistry& registry);
void registerNormalizationOps(OpRegistry& registry);
void registerShapeOps(OpRegistry& registry);
void registerLossOps(OpRegistry& registry);
void registerConvTransposeOps(OpRegistry& registry);
void registerMathOps(OpRegistry& registry);
void registerLogicOps(OpRegistry& registry);
void registerCastOps(OpRegistry& registry);
void registerReduceOps(OpRegistry& registry);
void registerNormOps(OpRegistry& registry);
void registerIndexingOps(OpRegistry& registry);
void registerReshapingOps(OpRegistry& registry);
void registerSlicingOps(OpRegistry& registry);
void registerResizeOps(OpRegistry& registry);
void registerSamplingOps(OpRegistry& registry);
void registerRearrangeOps(OpRegistry& registry);
void registerEinsumOps(OpRegistry& registry);
void registerLinalgOps(OpRegistry& registry);
void registerSignalOps(OpRegistry& registry);
void registerTextOps(OpRegistry& registry);
void registerQuantizeOps(OpRegistry& registry);
void registerQuantizedLinearOps(OpRegistry& registry);
void registerTopKOps(OpRegistry& registry);
void registerRecurrentOps(OpRegistry& registry);
void registerControlFlowOps(OpRegistry& registry);
void registerSequenceOps(OpRegistry& registry);
void registerOptionalOps(OpRegistry& registry);

}  // namespace kiln::ops
