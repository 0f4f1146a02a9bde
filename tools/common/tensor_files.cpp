#include "tools/common/tensor_files.h"

#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "compiler/onnx/importer.h"
#include "compiler/support/half.h"
#include "string_fns.h"

namespace kiln::tools {
namespace {

constexpr std::string_view kNpyMagic = "\x93NUMPY";

struct NpyCode {
  std::string_view descr;
  ir::DType dtype;
};

// Little-endian codes; one-byte types also appear with '|' (no byte order).
// The first code of a dtype is the one writeNpy uses.
constexpr std::array<NpyCode, 15> kNpyCodes = {{
    {"<f4", ir::DType::kFloat32},
    {"<f8", ir::DType::kFloat64},
    {"<f2", ir::DType::kFloat16},
    {"|i1", ir::DType::kInt8},
    {"<i1", ir::DType::kInt8},
    {"<i2", ir::DType::kInt16},
    {"<i4", ir::DType::kInt32},
    {"<i8", ir::DType::kInt64},
    {"|u1", ir::DType::kUInt8},
    {"<u1", ir::DType::kUInt8},
    {"<u2", ir::DType::kUInt16},
    {"<u4", ir::DType::kUInt32},
    {"<u8", ir::DType::kUInt64},
    {"|b1", ir::DType::kBool},
    {"<b1", ir::DType::kBool},
}};

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// Parses the Python dict literal of a .npy header:
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class NpyHeaderParser {
 public:
  explicit NpyHeaderParser(std::string_view text) : text_(text) {}

  Expected<NpyHeader> parse() {
    NpyHeader header;
    bool has_descr = false, has_order = false, has_shape = false;
    if (!consume('{')) return fail("expected '{'");
    while (!consume('}')) {
      KILN_ASSIGN_OR_RETURN(std::string key, parseString());
      if (!consume(':')) return fail("expected ':' after '" + key + "'");
      if (key == "descr") {
        KILN_ASSIGN_OR_RETURN(header.descr, parseString());
        has_descr = true;
      } else if (key == "fortran_order") {
        KILN_ASSIGN_OR_RETURN(header.fortran_order, parseBool());
        has_order = true;
      } else if (key == "shape") {
        KILN_ASSIGN_OR_RETURN(header.shape, parseShape());
        has_shape = true;
      } else {
        return fail("unexpected key '" + key + "'");
      }
      if (!consume(',') && !peek('}')) return fail("expected ',' or '}'");
    }
    if (!has_descr || !has_order || !has_shape) return fail("'descr', 'fortran_order' and 'shape' are required");
    return header;
  }

 private:
  void skipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  bool peek(char c) {
    skipSpace();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  bool consume(char c) {
    if (!peek(c)) return false;
    ++pos_;
    return true;
  }
  bool consumeWord(std::string_view word) {
    skipSpace();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  Status fail(const std::string& what) const {
    return invalidInput("malformed .npy header (" + what + " at offset " + std::to_string(pos_) + ")");
  }

  Expected<std::string> parseString() {
    skipSpace();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) return fail("expected a string");
    char quote = text_[pos_++];
    size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) return fail("unterminated string");
    std::string out(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return out;
  }

  Expected<bool> parseBool() {
    if (consumeWord("True")) return true;
    if (consumeWord("False")) return false;
    return fail("expected True or False");
  }

  Expected<std::vector<int64_t>> parseShape() {
    std::vector<int64_t> shape;
    if (!consume('(')) return fail("expected '(' to start the shape");
    while (!consume(')')) {
      skipSpace();
      int64_t dim = -1;
      auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), dim);
      if (ec != std::errc() || dim < 0) return fail("expected a dimension");
      pos_ = static_cast<size_t>(end - text_.data());
      shape.push_back(dim);
      if (!consume(',') && !peek(')')) return fail("expected ',' or ')' in the shape");
    }
    return shape;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

uint32_t readLittleEndian(std::span<const std::byte> bytes) {
  uint32_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

Expected<ir::DType> npyDType(const std::string& descr) {
  for (const NpyCode& code : kNpyCodes)
    if (code.descr == descr) return code.dtype;
  if (!descr.empty() && descr[0] == '>')
    return unsupported("big-endian data ('" + descr + "') is not supported; save it little-endian");
  return unsupported("dtype '" + descr + "' is not supported (expected a little-endian bool, integer or float)");
}

// ---- Strings: numpy's fixed-width '<U<n>' (UTF-32) and '|S<n>' (bytes) ----
// Each element is n characters, shorter strings padded with NULs. Object
// arrays ('|O') are pickles and are refused.

// n of "<U12" / "|S12", or 0 when `descr` is neither.
size_t stringWidth(const std::string& descr, char kind) {
  if (descr.size() < 3 || (descr[0] != '<' && descr[0] != '|') || descr[1] != kind) return 0;
  size_t n = 0;
  auto [end, ec] = std::from_chars(descr.data() + 2, descr.data() + descr.size(), n);
  return ec == std::errc() && end == descr.data() + descr.size() ? n : 0;
}


// The code points of `s`; a byte that does not start valid UTF-8 becomes
// U+FFFD, as in any UTF-8 decoder that replaces rather than refuses.
std::u32string utf32(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    char32_t c = 0;
    size_t n = strings::decodeUtf8(s, i, c);
    out += n ? c : U'\uFFFD';
    i += n ? n : 1;
  }
  return out;
}

Expected<ir::Tensor> parseNpyStrings(std::span<const std::byte> data, const NpyHeader& header) {
  size_t unicode = stringWidth(header.descr, 'U'), bytes = stringWidth(header.descr, 'S');
  size_t width = unicode ? unicode * 4 : bytes;
  KILN_ASSIGN_OR_RETURN(int64_t count, ir::elementCount(header.shape));
  if (width == 0 || static_cast<uint64_t>(count) > data.size() / width || static_cast<uint64_t>(count) * width != data.size())
    return invalidInput("data is " + std::to_string(data.size()) + " bytes, which does not hold " +
                        std::to_string(count) + " strings of dtype '" + header.descr + "'");
  std::vector<std::string> strings;
  for (int64_t e = 0; e < count; ++e) {
    const std::byte* p = data.data() + static_cast<size_t>(e) * width;
    std::string s;
    if (unicode) {
      for (size_t k = 0; k < unicode; ++k) {
        char32_t c = static_cast<char32_t>(readLittleEndian(std::span<const std::byte>(p + 4 * k, 4)));
        if (c == 0) break;
        if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
          return invalidInput("string " + std::to_string(e) + " holds an invalid code point");
        strings::appendUtf8(c, s);
      }
    } else {
      for (size_t k = 0; k < bytes && p[k] != std::byte{0}; ++k) s += static_cast<char>(p[k]);
    }
    strings.push_back(std::move(s));
  }
  return ir::Tensor::fromStrings(header.shape, std::move(strings));
}

// Borrows the data from `owner` when it is given (and keeps the bytes alive);
// copies it otherwise.
Expected<ir::Tensor> parseNpy(std::span<const std::byte> bytes, std::shared_ptr<const void> owner) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), kNpyMagic.data(), kNpyMagic.size()) != 0)
    return invalidInput("not a .npy file (no \\x93NUMPY magic)");
  auto major = static_cast<uint8_t>(bytes[6]);
  if (major < 1 || major > 3) return unsupported(".npy format version " + std::to_string(major) + " is not supported");
  size_t length_bytes = major == 1 ? 2 : 4;
  size_t prefix = 8 + length_bytes;
  if (bytes.size() < prefix) return invalidInput("truncated .npy header");
  size_t header_len = readLittleEndian(bytes.subspan(8, length_bytes));
  if (header_len > bytes.size() - prefix) return invalidInput("truncated .npy header");
  std::string_view text(reinterpret_cast<const char*>(bytes.data()) + prefix, header_len);
  KILN_ASSIGN_OR_RETURN(NpyHeader header, NpyHeaderParser(text).parse());
  if (header.fortran_order)
    return unsupported("Fortran-ordered arrays are not supported; save with np.ascontiguousarray(x)");
  if (stringWidth(header.descr, 'U') || stringWidth(header.descr, 'S'))
    return parseNpyStrings(bytes.subspan(prefix + header_len), header);
  if (header.descr == "|O")
    return unsupported("object arrays (dtype 'O') are not supported; save strings as np.str_ ('<U') arrays");
  KILN_ASSIGN_OR_RETURN(ir::DType dtype, npyDType(header.descr));
  KILN_ASSIGN_OR_RETURN(int64_t count, ir::elementCount(header.shape));
  size_t payload = bytes.size() - prefix - header_len;
  int64_t size = ir::byteSize(dtype);
  if (count > INT64_MAX / size || static_cast<uint64_t>(count * size) != payload)
    return invalidInput("data is " + std::to_string(payload) + " bytes, but " + std::string(ir::name(dtype)) + "[" +
                        ir::toString(ir::makeShape(header.shape)) + "] needs " +
                        (count > INT64_MAX / size ? std::string("more") : std::to_string(count * size)));
  auto data = bytes.subspan(prefix + header_len);
  bool aligned = reinterpret_cast<uintptr_t>(data.data()) % static_cast<uintptr_t>(size) == 0;
  if (owner && aligned && std::endian::native == std::endian::little)
    return ir::Tensor::borrow(dtype, std::move(header.shape), std::move(owner), data.data(), data.size());
  return ir::Tensor::fromBytes(dtype, std::move(header.shape), std::vector<std::byte>(data.begin(), data.end()));
}

std::string extensionOf(const std::string& path) { return std::filesystem::path(path).extension().string(); }

}  // namespace

Expected<std::shared_ptr<const frontend::MappedFile>> mapValueFile(const std::string& path) {
  std::error_code ec;
  uintmax_t file_bytes = std::filesystem::file_size(path, ec);  // on error, open says why
  long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGE_SIZE);
  uintmax_t memory_bytes =
      pages > 0 && page_bytes > 0 ? static_cast<uintmax_t>(pages) * static_cast<uintmax_t>(page_bytes) : UINTMAX_MAX;
  if (!ec && file_bytes > memory_bytes)
    return ioError("'" + path + "' is " + std::to_string(file_bytes) + " bytes, more than this machine's memory (" +
                   std::to_string(memory_bytes) + " bytes)");
  return frontend::MappedFile::open(path);
}

Expected<ir::Tensor> readNpy(const std::string& path) {
  auto file = mapValueFile(path);
  if (!file) return file.status();
  auto bytes = (*file)->bytes();
  auto tensor = parseNpy(bytes, file.take());
  if (!tensor) return tensor.status().withContext("'" + path + "'");
  return tensor;
}

Expected<ir::Tensor> parseNpyBytes(std::span<const std::byte> bytes) { return parseNpy(bytes, nullptr); }

Expected<ir::Tensor> parseTensorProtoBytes(std::span<const std::byte> bytes, const std::string& base_dir) {
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    return unsupported("larger than protobuf's 2 GiB limit; use .npy");
  google::protobuf::io::CodedInputStream stream(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                static_cast<int>(bytes.size()));
  stream.SetTotalBytesLimit(INT_MAX);
  onnx::TensorProto proto;
  if (!proto.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
    return invalidInput("not a valid ONNX TensorProto file");
  return frontend::tensorFromProto(proto, base_dir);
}

Expected<ir::Tensor> readTensorProtoFile(const std::string& path) {
  auto file = mapValueFile(path);
  if (!file) return file.status();
  std::string dir = std::filesystem::path(path).parent_path().string();
  auto tensor = parseTensorProtoBytes((*file)->bytes(), dir.empty() ? "." : dir);
  if (!tensor) return tensor.status().withContext("'" + path + "'");
  return tensor;
}

Expected<ir::Tensor> readTensorFile(const std::string& path) {
  std::string ext = extensionOf(path);
  if (ext == ".npy") return readNpy(path);
  if (ext == ".pb") return readTensorProtoFile(path);
  return invalidInput("'" + path + "': unknown tensor file type '" + ext + "' (expected .npy or .pb)");
}

namespace {

Expected<std::string> npyDescr(ir::DType dtype) {
  for (const NpyCode& code : kNpyCodes)
    if (code.dtype == dtype) return std::string(code.descr);
  return unsupported(std::string(ir::name(dtype)) + " tensors cannot be written as .npy");
}

std::string npyHeader(const std::string& descr, const std::vector<int64_t>& dims) {
  // Python tuple syntax: "()", "(3,)", "(2, 3)".
  std::string shape = "(";
  for (size_t i = 0; i < dims.size(); ++i) shape += (i ? ", " : "") + std::to_string(dims[i]);
  shape += dims.size() == 1 ? ",)" : ")";
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

// bfloat16 -> float32 is exact, and NumPy has no bfloat16.
ir::Tensor widenBfloat16(const ir::Tensor& tensor) {
  std::vector<float> values(static_cast<size_t>(tensor.elementCount()));
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(tensor.floatAt(static_cast<int64_t>(i)));
  return ir::Tensor::fromValues<float>(ir::DType::kFloat32, tensor.dims(), values);
}

}  // namespace

// Strings as '<U<n>': n code points each (at least 1), NUL-padded.
std::string npyStringPayload(const ir::Tensor& tensor, size_t& width) {
  std::vector<std::u32string> texts;
  width = 1;
  for (const std::string& s : tensor.strings()) {
    texts.push_back(utf32(s));
    width = std::max(width, texts.back().size());
  }
  std::string payload(texts.size() * width * 4, '\0');
  for (size_t e = 0; e < texts.size(); ++e)
    for (size_t k = 0; k < texts[e].size(); ++k)
      for (size_t b = 0; b < 4; ++b) payload[(e * width + k) * 4 + b] = static_cast<char>((texts[e][k] >> (8 * b)) & 0xFF);
  return payload;
}

Status writeNpy(const std::string& path, const ir::Tensor& input) {
  const ir::Tensor tensor = input.dtype() == ir::DType::kBFloat16 ? widenBfloat16(input) : input;
  std::string string_payload;
  size_t string_width = 0;
  if (tensor.dtype() == ir::DType::kString) string_payload = npyStringPayload(tensor, string_width);
  auto descr = tensor.dtype() == ir::DType::kString ? Expected<std::string>("<U" + std::to_string(string_width))
                                                     : npyDescr(tensor.dtype());
  if (!descr) return descr.status().withContext("cannot write '" + path + "'");
  std::string header = npyHeader(*descr, tensor.dims());
  // The data starts 64-byte aligned; the header ends with '\n'.
  bool v1 = header.size() + 1 + 10 <= 65535;
  size_t prefix = v1 ? 10 : 12;
  size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  std::string out(kNpyMagic);
  out += static_cast<char>(v1 ? 1 : 2);
  out += '\0';
  for (size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  out += header;
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return ioError("cannot create '" + path + "'");
  file.write(out.data(), static_cast<std::streamsize>(out.size()));
  auto bytes = tensor.bytes();
  file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  file.write(string_payload.data(), static_cast<std::streamsize>(string_payload.size()));
  file.close();
  if (!file) return ioError("cannot write '" + path + "'");
  return Status::ok();
}

}  // namespace kiln::tools
