// Helpers for tests that compile models to artifacts.
#pragma once

#include <cctype>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "compiler/driver/compile.h"
#include "kiln_runtime.h"

namespace kiln::testing {

// A fresh folder under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("kiln-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

inline std::string nodeCase(const std::string& name) { return std::string(KILN_TESTDATA_DIR) + "/node/" + name; }
inline std::string exampleModel() { return std::string(KILN_SOURCE_DIR) + "/examples/tiny_cnn/tiny_cnn.onnx"; }

// Compiles `model` to `output`; fails the test with the compiler's message otherwise.
inline void compileOrFail(const std::string& model, const std::string& output,
                          const driver::CompileOptions& options = {}) {
  std::ostringstream log;
  auto summary = driver::compileFile(model, output, options, log);
  ASSERT_TRUE(summary.isOk()) << summary.status().message();
}

inline std::vector<char> readBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), {});
}

inline void writeBytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// What kiln_model_load said about `path`: its status, and its error message
// ("" on success). The model is freed again.
struct LoadResult {
  kiln_status status;
  std::string message;
};

inline LoadResult tryLoad(const std::string& path) {
  kiln_model* model = nullptr;
  kiln_error* error = nullptr;
  kiln_status status = kiln_model_load(path.c_str(), &model, &error);
  LoadResult result{status, status == KILN_OK ? "" : kiln_error_message(error)};
  kiln_error_free(error);
  kiln_model_free(model);
  return result;
}

// An artifact that uses AMX on a CPU (or under a kernel) without it: the
// load refuses it, naming AMX, rather than the first tile instruction
// faulting.
inline void expectAmxRefused(const std::string& path) {
  LoadResult load = tryLoad(path);
  EXPECT_EQ(load.status, KILN_ERROR_UNSUPPORTED) << load.message;
  std::string lower = load.message;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_NE(lower.find("amx"), std::string::npos) << load.message;
}

}  // namespace kiln::testing
