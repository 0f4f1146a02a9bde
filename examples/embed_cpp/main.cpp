// embed_cpp: loads a Kiln artifact with the runtime's C++ wrapper
// (kiln_runtime.hpp), feeds it .npy inputs and prints its outputs the way
// `kiln run` does. Outputs go into buffers this program owns when their
// shapes are static, into runtime-allocated ones (released with kiln_free)
// when a dimension is symbolic.
//
//   embed_cpp model.so input0.npy [input1.npy ...]
//
// Built with CMake against an installed Kiln: see CMakeLists.txt.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <kiln_runtime.hpp>
#include <map>
#include <string>
#include <vector>

namespace {

struct NpyArray {
  kiln_dtype dtype = KILN_FLOAT32;
  std::vector<int64_t> dims;
  std::vector<unsigned char> data;
};

// Little-endian, C-order .npy files (format versions 1 to 3).
NpyArray readNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error("'" + path + "' is not a .npy file");
  uint32_t header_len = 0;
  unsigned char len[4] = {};
  in.read(reinterpret_cast<char*>(len), magic[6] == 1 ? 2 : 4);
  header_len = len[0] | (len[1] << 8) | (static_cast<uint32_t>(len[2]) << 16) | (static_cast<uint32_t>(len[3]) << 24);
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  static const std::map<std::string, kiln_dtype> kDescr = {
      {"<f4", KILN_FLOAT32}, {"<f8", KILN_FLOAT64}, {"<f2", KILN_FLOAT16}, {"<i8", KILN_INT64},
      {"<i4", KILN_INT32},   {"<i2", KILN_INT16},   {"|i1", KILN_INT8},    {"|u1", KILN_UINT8},
      {"<u2", KILN_UINT16},  {"<u4", KILN_UINT32},  {"<u8", KILN_UINT64},  {"|b1", KILN_BOOL}};
  size_t d = header.find("'descr': '");
  size_t s = header.find("'shape': (");
  if (!in || d == std::string::npos || s == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error("'" + path + "': unsupported .npy header");
  auto it = kDescr.find(header.substr(d + 10, 3));
  if (it == kDescr.end()) throw std::runtime_error("'" + path + "': unsupported dtype");
  NpyArray a;
  a.dtype = it->second;
  size_t elems = 1;
  for (size_t p = s + 10; p < header.size() && header[p] != ')';) {
    if (header[p] >= '0' && header[p] <= '9') {
      size_t used = 0;
      a.dims.push_back(std::stoll(header.substr(p), &used));
      elems *= static_cast<size_t>(a.dims.back());
      p += used;
    } else {
      ++p;
    }
  }
  a.data.resize(elems * kiln_dtype_size(a.dtype));
  in.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(a.data.size()));
  if (!in) throw std::runtime_error("'" + path + "' is truncated");
  return a;
}

void printTensor(const std::string& name, const kiln_tensor& t) {
  std::cout << name << ": " << kiln_dtype_name(t.dtype) << "[";
  size_t elems = 1;
  for (int32_t i = 0; i < t.rank; ++i) {
    std::cout << (i ? "x" : "") << t.dims[i];
    elems *= static_cast<size_t>(t.dims[i]);
  }
  std::cout << "] = [";
  size_t shown = std::min<size_t>(elems, 8);
  for (size_t i = 0; i < shown; ++i) {
    std::cout << (i ? ", " : "");
    switch (t.dtype) {
      case KILN_FLOAT32:
        std::cout << static_cast<const float*>(t.data)[i];
        break;
      case KILN_FLOAT64:
        std::cout << static_cast<const double*>(t.data)[i];
        break;
      case KILN_INT64:
        std::cout << static_cast<const int64_t*>(t.data)[i];
        break;
      case KILN_INT32:
        std::cout << static_cast<const int32_t*>(t.data)[i];
        break;
      case KILN_UINT8:
      case KILN_BOOL:
        std::cout << +static_cast<const uint8_t*>(t.data)[i];
        break;
      case KILN_INT8:
        std::cout << +static_cast<const int8_t*>(t.data)[i];
        break;
      default:
        std::cout << "?";
    }
  }
  std::cout << (elems > shown ? ", ...]" : "]") << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: embed_cpp model.so input0.npy [input1.npy ...]\n";
    return 2;
  }
  try {
    kiln::Model model(argv[1]);
    if (static_cast<size_t>(argc - 2) != model.numInputs()) {
      std::cerr << "embed_cpp: the model takes " << model.numInputs() << " inputs, " << argc - 2 << " given\n";
      return 2;
    }
    std::vector<NpyArray> arrays;
    std::vector<kiln_tensor> inputs;
    for (int i = 2; i < argc; ++i) arrays.push_back(readNpy(argv[i]));
    for (NpyArray& a : arrays) {
      kiln_tensor t{};
      t.dtype = a.dtype;
      t.rank = static_cast<int32_t>(a.dims.size());
      std::copy(a.dims.begin(), a.dims.end(), t.dims);
      t.data = a.data.data();
      t.bytes = a.data.size();
      inputs.push_back(t);
    }
    // Caller-owned output buffers where the shape is known from the model.
    std::vector<std::vector<unsigned char>> owned(model.numOutputs());
    std::vector<kiln_tensor> outputs(model.numOutputs());
    for (size_t i = 0; i < model.numOutputs(); ++i) {
      kiln_tensor_info info = model.output(i);
      size_t elems = 1;
      bool known = true;
      for (int32_t d = 0; d < info.rank; ++d) {
        known = known && info.dims[d] >= 0;
        elems *= info.dims[d] >= 0 ? static_cast<size_t>(info.dims[d]) : 0;
      }
      if (!known) continue;  // data stays NULL: the runtime allocates
      owned[i].resize(elems * kiln_dtype_size(info.dtype));
      outputs[i].data = owned[i].data();
      outputs[i].bytes = owned[i].size();
    }
    kiln::Session session(model);
    session.run(inputs, outputs);
    for (size_t i = 0; i < outputs.size(); ++i) {
      printTensor(model.output(i).name, outputs[i]);
      if (owned[i].empty()) kiln_free(outputs[i].data);
    }
  } catch (const kiln::Error& e) {
    std::cerr << "embed_cpp: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "embed_cpp: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
