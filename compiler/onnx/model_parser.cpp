// Parses an ONNX ModelProto while leaving the raw_data of the main graph's
// initializers in the caller's buffer. The protobuf classes copy every bytes
// field into a std::string; for a model that is mostly weights that doubles
// peak memory and the load time. So the outer layers (ModelProto.graph,
// GraphProto.initializer, TensorProto.raw_data) are walked here at the wire
// level, and every other run of fields is handed to the generated parser.
// A side effect: a model whose weights sit in raw_data may exceed protobuf's
// 2 GiB message limit as long as every other part stays below it.
#include <google/protobuf/io/coded_stream.h>

#include <climits>
#include <cstdint>

#include "compiler/onnx/import_detail.h"

namespace kiln::frontend::detail {
namespace {

// ONNX field numbers (onnx.proto) that the hand parser descends into.
constexpr uint32_t kModelGraphField = 7;
constexpr uint32_t kGraphInitializerField = 5;
constexpr uint32_t kTensorRawDataField = 9;

constexpr uint32_t kWireVarint = 0;
constexpr uint32_t kWireFixed64 = 1;
constexpr uint32_t kWireLengthDelimited = 2;
constexpr uint32_t kWireFixed32 = 5;

class WireReader {
 public:
  explicit WireReader(std::span<const std::byte> bytes) : bytes_(bytes) {}

  bool atEnd() const { return pos_ == bytes_.size(); }
  size_t position() const { return pos_; }

  Status readTag(uint32_t& field, uint32_t& wire_type) {
    uint64_t tag = 0;
    KILN_RETURN_IF_ERROR(readVarint(tag));
    field = static_cast<uint32_t>(tag >> 3);
    wire_type = static_cast<uint32_t>(tag & 7);
    if (field == 0 || tag > UINT32_MAX) return malformed("invalid field tag");
    return Status::ok();
  }

  Status readLengthDelimited(std::span<const std::byte>& payload) {
    uint64_t length = 0;
    KILN_RETURN_IF_ERROR(readVarint(length));
    if (length > bytes_.size() - pos_) return malformed("a field runs past the end of its message");
    payload = bytes_.subspan(pos_, static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return Status::ok();
  }

  Status skipField(uint32_t wire_type) {
    uint64_t ignored = 0;
    std::span<const std::byte> payload;
    switch (wire_type) {
      case kWireVarint: return readVarint(ignored);
      case kWireFixed64: return skipBytes(8);
      case kWireFixed32: return skipBytes(4);
      case kWireLengthDelimited: return readLengthDelimited(payload);
      default: return malformed("unsupported wire type " + std::to_string(wire_type));
    }
  }

 private:
  Status readVarint(uint64_t& value) {
    value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) return malformed("truncated varint");
      auto byte = static_cast<uint8_t>(bytes_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return Status::ok();
    }
    return malformed("varint longer than 10 bytes");
  }

  Status skipBytes(size_t n) {
    if (n > bytes_.size() - pos_) return malformed("truncated fixed-size field");
    pos_ += n;
    return Status::ok();
  }

  Status malformed(const std::string& what) const {
    return invalidInput(what + " (at byte " + std::to_string(pos_) + " of a " + std::to_string(bytes_.size()) +
                        "-byte message)");
  }

  std::span<const std::byte> bytes_;
  size_t pos_ = 0;
};

// Merges a run of complete fields into `message` with the generated parser.
Status mergeFields(std::span<const std::byte> run, google::protobuf::MessageLite& message) {
  if (run.empty()) return Status::ok();
  if (run.size() > static_cast<size_t>(INT_MAX))
    return invalidInput("a " + message.GetTypeName() + " part is larger than protobuf's 2 GiB limit");
  google::protobuf::io::CodedInputStream stream(reinterpret_cast<const uint8_t*>(run.data()),
                                                static_cast<int>(run.size()));
  stream.SetTotalBytesLimit(INT_MAX);
  if (!message.MergePartialFromCodedStream(&stream) || !stream.ConsumedEntireMessage() ||
      stream.CurrentPosition() != static_cast<int>(run.size()))
    return invalidInput("malformed " + message.GetTypeName() + " message");
  return Status::ok();
}

// Walks `bytes` field by field; fields for which `descend` returns true were
// consumed by it, the others are merged into `message` in runs.
template <typename Descend>
Status parseFields(std::span<const std::byte> bytes, google::protobuf::MessageLite& message, Descend descend) {
  WireReader reader(bytes);
  size_t run_start = 0;
  while (!reader.atEnd()) {
    size_t field_start = reader.position();
    uint32_t field = 0, wire_type = 0;
    KILN_RETURN_IF_ERROR(reader.readTag(field, wire_type));
    if (wire_type == kWireLengthDelimited) {
      std::span<const std::byte> payload;
      bool handled = false;
      KILN_RETURN_IF_ERROR(reader.readLengthDelimited(payload));
      KILN_RETURN_IF_ERROR(descend(field, payload, handled));
      if (handled) {
        KILN_RETURN_IF_ERROR(mergeFields(bytes.subspan(run_start, field_start - run_start), message));
        run_start = reader.position();
      }
      continue;
    }
    KILN_RETURN_IF_ERROR(reader.skipField(wire_type));
  }
  return mergeFields(bytes.subspan(run_start), message);
}

Status parseInitializer(std::span<const std::byte> bytes, onnx::TensorProto& tensor, RawDataSpans& spans) {
  return parseFields(bytes, tensor, [&](uint32_t field, std::span<const std::byte> payload, bool& handled) {
    if (field != kTensorRawDataField) return Status::ok();
    spans[&tensor] = payload;  // a repeated singular field: the last one wins, as in protobuf
    handled = true;
    return Status::ok();
  });
}

Status parseGraph(std::span<const std::byte> bytes, onnx::GraphProto& graph, RawDataSpans& spans) {
  return parseFields(bytes, graph, [&](uint32_t field, std::span<const std::byte> payload, bool& handled) {
    if (field != kGraphInitializerField) return Status::ok();
    handled = true;
    return parseInitializer(payload, *graph.add_initializer(), spans);
  });
}

}  // namespace

Expected<std::unique_ptr<ParsedModel>> parseModel(std::span<const std::byte> bytes) {
  auto parsed = std::make_unique<ParsedModel>();
  KILN_RETURN_IF_ERROR(
      parseFields(bytes, parsed->proto, [&](uint32_t field, std::span<const std::byte> payload, bool& handled) {
        if (field != kModelGraphField) return Status::ok();
        handled = true;
        return parseGraph(payload, *parsed->proto.mutable_graph(), parsed->raw_data);
      }));
  return parsed;
}

}  // namespace kiln::frontend::detail
