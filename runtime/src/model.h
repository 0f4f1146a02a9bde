// The objects behind the C API's opaque handles.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "artifact_format.h"
#include "cuda_session.h"
#include "exec_context.h"
#include "kiln_runtime.h"
#include "thread_pool.h"

struct kiln_error {
  kiln_status status;
  std::string message;
};

struct kiln_model {
  kiln::artifact::ModelDesc desc;
  void* library = nullptr;  // dlopen handle
  int library_fd = -1;       // the memory file it was mapped from, open while it is loaded
  const uint8_t* file = nullptr;  // that file, mapped read-only: the bytes the checks read
  size_t file_bytes = 0;
  kiln_entry_fn entry = nullptr;
  const void* weights = nullptr;  // the weights blob, the file's last desc.weights_bytes (NULL when empty)
  std::unique_ptr<kiln::runtime::CudaModel> cuda;  // CUDA artifacts (no library, no entry)
  // C views of the description for kiln_model_input/output.
  struct TensorView {
    std::vector<int64_t> dims;
    std::vector<const char*> dim_names;
  };
  std::vector<TensorView> input_views, output_views;
  std::map<std::string, std::string, std::less<>> metadata;

  ~kiln_model();
};

struct kiln_session {
  kiln_model* model = nullptr;
  std::unique_ptr<kiln::runtime::CudaSession> cuda;  // CUDA artifacts: device memory, stream
  std::unique_ptr<kiln::runtime::ThreadPool> pool;
  kiln_exec_context context{};
  // Arenas not in use; a run takes one (or makes one) and gives it back, so
  // concurrent runs never share intermediates.
  std::mutex arenas_mutex;
  std::vector<std::unique_ptr<std::byte, void (*)(void*)>> free_arenas;
};

namespace kiln::runtime {

// Every check made on an artifact's bytes (ELF headers, description, format
// and ABI versions, checksum, CPU features) with nothing mapped or run; on
// success fills `desc`. The fuzz target tests/fuzz/fuzz_artifact.cpp enters here.
kiln_status checkArtifact(std::span<const uint8_t> bytes, artifact::ModelDesc& desc, std::string& message);

// Reads, validates and loads an artifact; on failure returns a status and sets `message`.
kiln_status loadModel(const char* path, std::unique_ptr<kiln_model>& model, std::string& message);

}  // namespace kiln::runtime
