#include "tools/common/values.h"

#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx-data_pb.h>

#include <climits>
#include <cstring>
#include <filesystem>

#include "compiler/onnx/importer.h"
#include "compiler/onnx/mapped_file.h"
#include "tools/common/tensor_files.h"

namespace kiln::tools {
namespace {

template <typename Proto>
Expected<Proto> parseProtoFile(const std::string& path, const char* what) {
  auto file = mapValueFile(path);
  if (!file) return file.status();
  auto bytes = (*file)->bytes();
  if (bytes.size() > static_cast<size_t>(INT_MAX)) return unsupported("'" + path + "': larger than protobuf's 2 GiB limit");
  google::protobuf::io::CodedInputStream stream(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                static_cast<int>(bytes.size()));
  stream.SetTotalBytesLimit(INT_MAX);
  Proto proto;
  if (!proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
    return invalidInput("'" + path + "': not a valid ONNX " + what + " file");
  return proto;
}

Expected<std::vector<ir::Tensor>> sequenceTensors(const onnx::SequenceProto& proto, const std::string& path) {
  if (proto.elem_type() != onnx::SequenceProto::TENSOR && proto.elem_type() != onnx::SequenceProto::UNDEFINED)
    return invalidInput("'" + path + "': not an ONNX SequenceProto of tensors (elem_type " +
                        std::to_string(proto.elem_type()) + "); a sequence input is read from one");
  std::string dir = std::filesystem::path(path).parent_path().string();
  std::vector<ir::Tensor> tensors;
  for (int k = 0; k < proto.tensor_values_size(); ++k) {
    auto t = frontend::tensorFromProto(proto.tensor_values(k), dir.empty() ? "." : dir);
    if (!t) return t.status().withContext("'" + path + "' element " + std::to_string(k));
    tensors.push_back(t.take());
  }
  return tensors;
}

// A tensor or sequence as the runtime takes it; `strings` keeps the
// pointer arrays of string tensors alive for the run.
kiln_tensor toKilnTensor(const ir::Tensor& t, kiln_dtype model_dtype, std::vector<std::vector<const char*>>& strings) {
  kiln_tensor out{};
  // numpy has no bfloat16: ONNX's test data carries its bits as uint16.
  bool bfloat16_bits = t.dtype() == ir::DType::kUInt16 && model_dtype == KILN_BFLOAT16;
  out.dtype = bfloat16_bits ? KILN_BFLOAT16 : static_cast<kiln_dtype>(t.dtype());
  out.rank = static_cast<int32_t>(std::min<size_t>(t.dims().size(), KILN_MAX_RANK));
  std::copy(t.dims().begin(), t.dims().begin() + out.rank, out.dims);
  out.data = const_cast<std::byte*>(t.bytes().data());
  out.bytes = t.bytes().size();
  if (t.dtype() == ir::DType::kString) {
    strings.emplace_back();
    for (const std::string& s : t.strings()) strings.back().push_back(s.c_str());
    out.data = strings.back().data();
    out.bytes = strings.back().size() * sizeof(const char*);
  }
  return out;
}

ir::Tensor fromKilnTensor(const kiln_tensor& o) {
  std::vector<int64_t> dims(o.dims, o.dims + o.rank);
  if (o.dtype == KILN_STRING) {  // one block: the pointers, then the characters they point to
    auto* strings = static_cast<const char* const*>(o.data);
    return ir::Tensor::fromStrings(std::move(dims),
                                   std::vector<std::string>(strings, strings + o.bytes / sizeof(const char*)));
  }
  std::vector<std::byte> bytes(o.bytes);
  if (o.bytes) std::memcpy(bytes.data(), o.data, o.bytes);
  return ir::Tensor::fromBytes(static_cast<ir::DType>(o.dtype), std::move(dims), std::move(bytes));
}

bool isSequenceKind(kiln_value_kind kind) { return kind == KILN_KIND_SEQUENCE || kind == KILN_KIND_OPTIONAL_SEQUENCE; }

}  // namespace

const char* Value::kindName(kiln_value_kind kind) {
  switch (kind) {
    case KILN_KIND_TENSOR: return "tensor";
    case KILN_KIND_SEQUENCE: return "sequence";
    case KILN_KIND_OPTIONAL_TENSOR: return "optional tensor";
    case KILN_KIND_OPTIONAL_SEQUENCE: return "optional sequence";
  }
  return "unknown";
}

Expected<Value> readValueFile(const std::string& path, kiln_value_kind kind) {
  Value value;
  value.kind = kind;
  bool pb = std::filesystem::path(path).extension() == ".pb";
  if (kind == KILN_KIND_TENSOR || (kind == KILN_KIND_OPTIONAL_TENSOR && !pb)) {
    KILN_ASSIGN_OR_RETURN(ir::Tensor t, readTensorFile(path));
    value.tensors.push_back(std::move(t));
    return value;
  }
  if (!pb) return invalidInput("'" + path + "': a " + std::string(Value::kindName(kind)) + " is read from an ONNX .pb file");
  if (kind == KILN_KIND_SEQUENCE) {
    KILN_ASSIGN_OR_RETURN(auto proto, parseProtoFile<onnx::SequenceProto>(path, "SequenceProto"));
    KILN_ASSIGN_OR_RETURN(value.tensors, sequenceTensors(proto, path));
    return value;
  }
  KILN_ASSIGN_OR_RETURN(auto proto, parseProtoFile<onnx::OptionalProto>(path, "OptionalProto"));
  value.present = proto.has_tensor_value() || proto.has_sequence_value();
  if (!value.present) return value;
  if (kind == KILN_KIND_OPTIONAL_TENSOR) {
    if (!proto.has_tensor_value()) return invalidInput("'" + path + "': the optional holds a sequence, expected a tensor");
    std::string dir = std::filesystem::path(path).parent_path().string();
    auto t = frontend::tensorFromProto(proto.tensor_value(), dir.empty() ? "." : dir);
    if (!t) return t.status().withContext("'" + path + "'");
    value.tensors.push_back(t.take());
    return value;
  }
  if (!proto.has_sequence_value()) return invalidInput("'" + path + "': the optional holds a tensor, expected a sequence");
  KILN_ASSIGN_OR_RETURN(value.tensors, sequenceTensors(proto.sequence_value(), path));
  return value;
}

Expected<std::vector<Value>> runArtifactValues(const kiln::Model& model, kiln::Session& session,
                                               const std::vector<Value>& inputs) {
  if (inputs.size() != model.numInputs())
    return invalidInput("the model takes " + std::to_string(model.numInputs()) + " inputs, got " +
                        std::to_string(inputs.size()));
  std::vector<kiln_value> in(inputs.size());
  std::vector<std::vector<kiln_tensor>> elements(inputs.size());
  std::vector<std::vector<const char*>> strings;  // moving a vector keeps its elements where they are
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    auto dtype = model.input(i).dtype;
    in[i].kind = v.kind;
    in[i].present = v.present ? 1 : 0;
    for (const ir::Tensor& t : v.tensors) {
      if (t.dims().size() > KILN_MAX_RANK) return invalidInput("input " + std::to_string(i) + " has rank over 16");
      elements[i].push_back(toKilnTensor(t, dtype, strings));
    }
    if (isSequenceKind(v.kind)) {
      in[i].count = elements[i].size();
      in[i].elements = elements[i].data();
    } else if (!elements[i].empty()) {
      in[i].tensor = elements[i][0];
    } else if (v.kind == KILN_KIND_TENSOR) {
      return invalidInput("input " + std::to_string(i) + " has no tensor");
    }
  }
  std::vector<kiln_value> out(model.numOutputs());
  try {
    session.runValues(in, out);
  } catch (const kiln::Error& e) {
    return runtimeStatus(e);
  }
  std::vector<Value> results;
  for (kiln_value& o : out) {
    Value v;
    v.kind = o.kind;
    v.present = o.present != 0;
    if (v.present && isSequenceKind(o.kind))
      for (size_t k = 0; k < o.count; ++k) v.tensors.push_back(fromKilnTensor(o.elements[k]));
    else if (v.present)
      v.tensors.push_back(fromKilnTensor(o.tensor));
    kiln_value_release(&o);
    results.push_back(std::move(v));
  }
  return results;
}

std::optional<std::string> compareValues(const Value& got, const Value& want, Tolerance tolerance) {
  // An expected optional may be stored as what it holds, a sequence as an optional.
  if (isSequenceKind(got.kind) != isSequenceKind(want.kind))
    return std::string("a ") + Value::kindName(got.kind) + ", expected a " + Value::kindName(want.kind);
  if (got.present != want.present)
    return std::string(got.present ? "holds a value" : "is empty") + ", expected " +
           (want.present ? "a value" : "an empty optional");
  if (got.tensors.size() != want.tensors.size())
    return std::to_string(got.tensors.size()) + " elements, expected " + std::to_string(want.tensors.size());
  for (size_t k = 0; k < want.tensors.size(); ++k)
    if (auto diff = compareTensors(got.tensors[k], want.tensors[k], tolerance))
      return isSequenceKind(want.kind) ? "element " + std::to_string(k) + ": " + *diff : *diff;
  return std::nullopt;
}

}  // namespace kiln::tools
