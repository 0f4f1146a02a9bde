#include "compiler/ops/infer_checks.h"

#include <algorithm>
#include <string>

namespace kiln::ops {
namespace {

std::string inputLabel(std::string_view role, size_t i) {
  return std::string(role) + " (input " + std::to_string(i) + ")";
}

bool inClass(ir::DType dtype, DTypeClass allowed) {
  switch (allowed) {
    case DTypeClass::kFloat: return ir::isFloat(dtype);
    case DTypeClass::kNumeric: return ir::isFloat(dtype) || ir::isInteger(dtype);
    case DTypeClass::kAnyKernel: return dtype != ir::DType::kString && dtype != ir::DType::kUndefined;
    case DTypeClass::kAnyData: return dtype != ir::DType::kUndefined;
  }
  return false;
}

constexpr const char* kClassNames[] = {"a float type", "a numeric type", "a numeric or bool type",
                                       "a numeric, bool or string type"};

}  // namespace

Status expectInputCount(const NodeView& node, size_t min, size_t max) {
  size_t n = node.numInputs();
  if (n < min || n > max) {
    std::string expected = min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max);
    return node.error("expects " + expected + " inputs, got " + std::to_string(n));
  }
  // ONNX has no required input after an optional one, so the first `min` are
  // the required ones.
  for (size_t i = 0; i < min; ++i)
    if (!node.hasInput(i)) return node.missingInputError(i);
  return Status::ok();
}

Status expectOutputCount(const NodeView& node, size_t max) {
  if (node.numOutputs() >= 1 && node.numOutputs() <= max) return Status::ok();
  return node.error("expects 1 to " + std::to_string(max) + " outputs, got " + std::to_string(node.numOutputs()));
}

Expected<ir::Shape> inputShape(const NodeView& node, size_t i, std::string_view role) {
  if (!node.hasInput(i)) return node.error(std::string(role) + " is missing (input " + std::to_string(i) + ")");
  const ir::TensorType& type = node.inputType(i);
  if (!type.shape) return node.unsupportedError("the rank of " + inputLabel(role, i) + " is unknown");
  return *type.shape;
}

Expected<ir::Shape> inputShapeOfRank(const NodeView& node, size_t i, std::string_view role, size_t rank) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(node, i, role));
  if (shape.size() != rank)
    return node.error(std::string(role) + " has rank " + std::to_string(shape.size()) + ", expected " +
                      std::to_string(rank) + " (input " + std::to_string(i) + ")");
  return shape;
}

Expected<ir::Shape> inputShapeOfMinRank(const NodeView& node, size_t i, std::string_view role, size_t min_rank) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(node, i, role));
  if (shape.size() < min_rank)
    return node.error(std::string(role) + " has rank " + std::to_string(shape.size()) + ", expected at least " +
                      std::to_string(min_rank) + " (input " + std::to_string(i) + ")");
  return shape;
}

Status expectDType(const NodeView& node, size_t i, std::string_view role, DTypeClass allowed) {
  if (!node.hasInput(i)) return node.error(std::string(role) + " is missing (input " + std::to_string(i) + ")");
  ir::DType dtype = node.inputType(i).dtype;
  if (inClass(dtype, allowed)) return Status::ok();
  return node.error(std::string(role) + " has dtype " + std::string(ir::name(dtype)) + ", expected " +
                               kClassNames[static_cast<int>(allowed)] + " (input " + std::to_string(i) + ")");
}

Status expectSameDType(const NodeView& node, size_t i, size_t j, std::string_view role_j) {
  ir::DType a = node.inputType(i).dtype;
  ir::DType b = node.inputType(j).dtype;
  if (a == b) return Status::ok();
  return node.error(std::string(role_j) + " has dtype " + std::string(ir::name(b)) + ", expected " +
                    std::string(ir::name(a)) + " like input " + std::to_string(i) + " (input " + std::to_string(j) +
                    ")");
}

Expected<int64_t> normalizeAxis(const NodeView& node, int64_t axis, int64_t rank, std::string_view what) {
  if (axis < -rank || axis >= rank)
    return node.error(std::string(what) + " " + std::to_string(axis) + " is out of range for rank " +
                      std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

Expected<std::vector<int64_t>> normalizeAxes(const NodeView& node, std::vector<int64_t> axes, int64_t rank) {
  for (int64_t& axis : axes) {
    KILN_ASSIGN_OR_RETURN(axis, normalizeAxis(node, axis, rank, "axis"));
  }
  std::vector<int64_t> sorted = axes;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return node.error("axes repeat an axis");
  return axes;
}

Expected<std::vector<int64_t>> constantInts(const NodeView& node, size_t i, std::string_view role) {
  const ir::Tensor* value = node.constantInput(i);
  if (!value)
    return node.unsupportedError(std::string(role) + " (input " + std::to_string(i) +
                                 ") is computed at run time; Kiln needs it to be a constant");
  if (ir::isFloat(value->dtype()) || value->dtype() == ir::DType::kString || value->dims().size() > 1)
    return node.error(std::string(role) + " must be a 1-D integer tensor, got " + value->type().toString() +
                      " (input " + std::to_string(i) + ")");
  return value->toInts();
}

Status rejectMovedAttributes(const NodeView& node, int since, std::initializer_list<const char*> names) {
  if (node.opset() < since) return Status::ok();
  for (const char* name : names)
    if (node.hasAttr(name))
      return node.error(std::string("attribute '") + name + "' is an input since opset " + std::to_string(since));
  return Status::ok();
}

ir::Dim productDim(const ir::Shape& shape, size_t begin, size_t end) {
  int64_t product = 1;
  for (size_t i = begin; i < end; ++i) {
    if (!shape[i].isKnown()) return ir::Dim{};
    // An overflowing product (hostile dims) is not a size: unknown, and the
    // output shape check in InferContext::setOutputType rejects what it makes.
    if (__builtin_mul_overflow(product, shape[i].value, &product)) return ir::Dim{};
  }
  return ir::Dim::known(product);
}

bool sameDim(const ir::Dim& a, const ir::Dim& b) {
  if (a.isKnown() || b.isKnown()) return a.value == b.value;
  return !a.symbol.empty() && a.symbol == b.symbol;
}

bool conflictingDims(const ir::Dim& a, const ir::Dim& b) { return a.isKnown() && b.isKnown() && a.value != b.value; }

Status expectBias(const NodeView& node, size_t i, int64_t filters) {
  KILN_RETURN_IF_ERROR(expectSameDType(node, 0, i, "bias"));
  KILN_ASSIGN_OR_RETURN(ir::Shape b, inputShapeOfRank(node, i, "bias", 1));
  if (conflictingDims(b[0], ir::Dim::known(filters)))
    return node.error("bias has " + ir::toString(b) + " elements, expected " + std::to_string(filters));
  return Status::ok();
}

}  // namespace kiln::ops
