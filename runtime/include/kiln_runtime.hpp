// Thin C++ wrapper over kiln_runtime.h: RAII handles, errors as exceptions on
// the C++ side only (the C ABI below never throws).
//
//   kiln::Model model("model.so");
//   kiln::Session session(model, /*num_threads=*/2);
//   std::vector<kiln_tensor> outputs = session.run({input});
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kiln_runtime.h"

namespace kiln {

class Error : public std::runtime_error {
 public:
  Error(kiln_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  kiln_status status() const { return status_; }

 private:
  kiln_status status_;
};

namespace detail {
// Call after the C function returned: `error` is only set by then.
inline void check(kiln_status status, kiln_error* error) {
  if (status == KILN_OK) return;
  std::string message = kiln_error_message(error);
  kiln_error_free(error);
  throw Error(status, message);
}
}  // namespace detail

class Model {
 public:
  explicit Model(const std::string& path) {
    kiln_model* raw = nullptr;
    kiln_error* error = nullptr;
    kiln_status status = kiln_model_load(path.c_str(), &raw, &error);
    detail::check(status, error);
    model_.reset(raw);
  }
  kiln_model* get() const { return model_.get(); }
  size_t numInputs() const { return kiln_model_num_inputs(get()); }
  size_t numOutputs() const { return kiln_model_num_outputs(get()); }
  kiln_tensor_info input(size_t i) const { return info(i, false); }
  kiln_tensor_info output(size_t i) const { return info(i, true); }
  // Tensor, sequence or optional (kiln_value_kind).
  kiln_value_kind inputKind(size_t i) const { return static_cast<kiln_value_kind>(kiln_model_input_kind(get(), i)); }
  kiln_value_kind outputKind(size_t i) const { return static_cast<kiln_value_kind>(kiln_model_output_kind(get(), i)); }
  std::string metadata(const char* key) const {
    const char* v = kiln_model_metadata(get(), key);
    return v ? v : "";
  }
  size_t numKernels() const { return kiln_model_num_kernels(get()); }
  kiln_kernel_info kernel(size_t i) const {
    kiln_kernel_info out{};
    kiln_error* error = nullptr;
    kiln_status status = kiln_model_kernel(get(), i, &out, &error);
    detail::check(status, error);
    return out;
  }

 private:
  kiln_tensor_info info(size_t i, bool output) const {
    kiln_tensor_info out{};
    kiln_error* error = nullptr;
    kiln_status status = output ? kiln_model_output(get(), i, &out, &error) : kiln_model_input(get(), i, &out, &error);
    detail::check(status, error);
    return out;
  }
  struct Free {
    void operator()(kiln_model* m) const { kiln_model_free(m); }
  };
  std::unique_ptr<kiln_model, Free> model_;
};

class Session {
 public:
  explicit Session(const Model& model, int num_threads = 0) {
    kiln_session_options options{num_threads};
    kiln_session* raw = nullptr;
    kiln_error* error = nullptr;
    kiln_status status = kiln_session_create(model.get(), &options, &raw, &error);
    detail::check(status, error);
    session_.reset(raw);
    model_ = model.get();
  }
  kiln_session* get() const { return session_.get(); }

  // Runs into caller buffers (outputs[i].data set) or runtime-allocated ones
  // (data == NULL; release with kiln_free).
  void run(const std::vector<kiln_tensor>& inputs, std::vector<kiln_tensor>& outputs) {
    kiln_error* error = nullptr;
    kiln_status status = kiln_session_run(get(), inputs.data(), inputs.size(), outputs.data(), outputs.size(), &error);
    detail::check(status, error);
  }

  // Runs with inputs and outputs where `options` says (device memory for a
  // CUDA artifact; see kiln_run_options).
  void runWith(const std::vector<kiln_tensor>& inputs, std::vector<kiln_tensor>& outputs,
               const kiln_run_options& options) {
    kiln_error* error = nullptr;
    kiln_status status = kiln_session_run_with(get(), inputs.data(), inputs.size(), outputs.data(), outputs.size(),
                                               &options, &error);
    detail::check(status, error);
  }

  // Runs a model whose inputs or outputs may be sequences or optionals;
  // release each output with kiln_value_release.
  void runValues(const std::vector<kiln_value>& inputs, std::vector<kiln_value>& outputs) {
    kiln_error* error = nullptr;
    kiln_status status =
        kiln_session_run_values(get(), inputs.data(), inputs.size(), outputs.data(), outputs.size(), &error);
    detail::check(status, error);
  }

  // As run(), and kernel_ns (resized to the model's kernel count) receives
  // each kernel's wall time of this run in nanoseconds.
  void runProfiled(const std::vector<kiln_tensor>& inputs, std::vector<kiln_tensor>& outputs,
                   std::vector<uint64_t>& kernel_ns) {
    kernel_ns.assign(kiln_model_num_kernels(model_), 0);
    kiln_error* error = nullptr;
    kiln_status status = kiln_session_run_profiled(get(), inputs.data(), inputs.size(), outputs.data(), outputs.size(),
                                                   kernel_ns.data(), kernel_ns.size(), &error);
    detail::check(status, error);
  }

 private:
  struct Free {
    void operator()(kiln_session* s) const { kiln_session_free(s); }
  };
  std::unique_ptr<kiln_session, Free> session_;
  const kiln_model* model_ = nullptr;
};

}  // namespace kiln
