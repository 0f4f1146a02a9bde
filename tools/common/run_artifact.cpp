#include "tools/common/run_artifact.h"

#include <cmath>
#include <cstring>
#include <sstream>

namespace kiln::tools {

Status runtimeStatus(const kiln::Error& e) {
  switch (e.status()) {
    case KILN_ERROR_IO:
      return ioError(e.what());
    case KILN_ERROR_UNSUPPORTED:
      return unsupported(e.what());
    case KILN_ERROR_INVALID_ARTIFACT:
    case KILN_ERROR_INVALID_ARGUMENT:
    case KILN_ERROR_RUNTIME:
      return invalidInput(e.what());
    case KILN_OK:
      break;
  }
  return internalError(e.what());
}

Expected<std::vector<ir::Tensor>> runArtifact(const kiln::Model& model, kiln::Session& session,
                                              const std::vector<ir::Tensor>& inputs) {
  if (inputs.size() != model.numInputs())
    return invalidInput("the model takes " + std::to_string(model.numInputs()) + " inputs, got " +
                        std::to_string(inputs.size()));
  std::vector<kiln_tensor> in(inputs.size());
  std::vector<std::vector<const char*>> string_inputs(inputs.size());  // string tensors as the runtime takes them
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::Tensor& t = inputs[i];
    // numpy has no bfloat16: ONNX's test data and .npy files carry its bits as uint16.
    bool bfloat16_bits = t.dtype() == ir::DType::kUInt16 && model.input(i).dtype == KILN_BFLOAT16;
    if (t.dims().size() > KILN_MAX_RANK) return invalidInput("input " + std::to_string(i) + " has rank over 16");
    in[i].dtype = bfloat16_bits ? KILN_BFLOAT16 : static_cast<kiln_dtype>(t.dtype());
    in[i].rank = static_cast<int32_t>(t.dims().size());
    std::copy(t.dims().begin(), t.dims().end(), in[i].dims);
    in[i].data = const_cast<std::byte*>(t.bytes().data());
    in[i].bytes = t.bytes().size();
    if (t.dtype() == ir::DType::kString) {
      for (const std::string& s : t.strings()) string_inputs[i].push_back(s.c_str());
      in[i].data = string_inputs[i].data();
      in[i].bytes = string_inputs[i].size() * sizeof(const char*);
    }
  }
  std::vector<kiln_tensor> out(model.numOutputs());
  for (kiln_tensor& o : out) o.data = nullptr;  // the runtime allocates
  try {
    session.run(in, out);
  } catch (const kiln::Error& e) {
    return runtimeStatus(e);
  }
  std::vector<ir::Tensor> results;
  for (kiln_tensor& o : out) {
    std::vector<int64_t> dims(o.dims, o.dims + o.rank);
    if (o.dtype == KILN_STRING) {  // one block: the pointers, then the characters they point to
      auto* strings = static_cast<const char* const*>(o.data);
      results.push_back(ir::Tensor::fromStrings(std::move(dims), std::vector<std::string>(
                                                                     strings, strings + o.bytes / sizeof(const char*))));
      kiln_free(o.data);
      continue;
    }
    std::vector<std::byte> bytes(o.bytes);
    if (o.bytes) std::memcpy(bytes.data(), o.data, o.bytes);
    kiln_free(o.data);
    results.push_back(ir::Tensor::fromBytes(static_cast<ir::DType>(o.dtype), std::vector<int64_t>(o.dims, o.dims + o.rank),
                                            std::move(bytes)));
  }
  return results;
}

namespace {

std::string indexString(int64_t flat, const std::vector<int64_t>& dims) {
  std::vector<int64_t> index(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    index[d] = dims[d] ? flat % dims[d] : 0;
    flat = dims[d] ? flat / dims[d] : 0;
  }
  std::string s = "[";
  for (size_t d = 0; d < index.size(); ++d) s += (d ? "," : "") + std::to_string(index[d]);
  return s + "]";
}

}  // namespace

std::optional<std::string> compareTensors(const ir::Tensor& got, const ir::Tensor& want_as_stored, Tolerance tolerance) {
  ir::Tensor want = want_as_stored;
  // numpy has no bfloat16: expected outputs carry its bits as uint16.
  if (got.dtype() == ir::DType::kBFloat16 && want.dtype() == ir::DType::kUInt16) {
    auto bytes = want.bytes();
    want = ir::Tensor::fromBytes(ir::DType::kBFloat16, want.dims(), std::vector<std::byte>(bytes.begin(), bytes.end()));
  }
  if (got.dtype() != want.dtype())
    return "dtype " + std::string(ir::name(got.dtype())) + ", expected " + std::string(ir::name(want.dtype()));
  if (got.dims() != want.dims())
    return "shape " + ir::toString(ir::makeShape(got.dims())) + ", expected " + ir::toString(ir::makeShape(want.dims()));
  int64_t n = want.elementCount();
  if (want.dtype() == ir::DType::kString) {
    for (size_t i = 0; i < want.strings().size(); ++i)
      if (got.strings()[i] != want.strings()[i])
        return "element " + indexString(static_cast<int64_t>(i), want.dims()) + " is \"" + got.strings()[i] +
               "\", expected \"" + want.strings()[i] + "\"";
    return std::nullopt;
  }
  bool exact = !ir::isFloat(want.dtype());
  for (int64_t i = 0; i < n; ++i) {
    std::ostringstream os;
    if (exact) {
      if (got.intAt(i) == want.intAt(i) && (want.dtype() != ir::DType::kUInt64 || got.floatAt(i) == want.floatAt(i)))
        continue;
      os << "element " << indexString(i, want.dims()) << " is " << got.intAt(i) << ", expected " << want.intAt(i);
      return os.str();
    }
    double g = got.floatAt(i), w = want.floatAt(i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    double diff = std::fabs(g - w);
    if (diff <= tolerance.atol + tolerance.rtol * std::fabs(w)) continue;
    os.precision(9);
    os << "element " << indexString(i, want.dims()) << " is " << g << ", expected " << w << " (|diff| " << diff
       << " > atol " << tolerance.atol << " + rtol " << tolerance.rtol << " * |expected|)";
    return os.str();
  }
  return std::nullopt;
}

}  // namespace kiln::tools
