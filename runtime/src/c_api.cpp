// The C API: argument checks, error objects, sessions. No exception crosses it.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "model.h"

namespace {

kiln_status fail(kiln_error** error, kiln_status status, std::string message) {
  if (error) *error = new (std::nothrow) kiln_error{status, std::move(message)};
  return status;
}

template <typename Body>
kiln_status guarded(kiln_error** error, Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(error, KILN_ERROR_RUNTIME, "out of memory");
  } catch (const std::exception& e) {
    return fail(error, KILN_ERROR_RUNTIME, std::string("internal error: ") + e.what());
  }
}

std::string shapeString(int32_t rank, const int64_t* dims) {
  std::string s = "[";
  for (int32_t i = 0; i < rank; ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s + "]";
}

kiln_status checkTensor(const kiln::artifact::TensorDesc& want, const kiln_tensor& got, const char* role, size_t index,
                        bool output, size_t* bytes_needed, kiln_error** error) {
  std::string where = std::string(role) + " " + std::to_string(index) + " '" + want.name + "'";
  std::string want_shape = shapeString(static_cast<int32_t>(want.dims.size()), want.dims.data());
  size_t elems = 1;
  for (int64_t d : want.dims) elems *= static_cast<size_t>(d);
  *bytes_needed = elems * kiln_dtype_size(static_cast<kiln_dtype>(want.dtype));
  if (output) return KILN_OK;
  if (got.dtype != want.dtype)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                where + ": dtype " + kiln_dtype_name(got.dtype) + ", expected " +
                    kiln_dtype_name(static_cast<kiln_dtype>(want.dtype)));
  if (got.rank < 0 || got.rank > KILN_MAX_RANK || static_cast<size_t>(got.rank) != want.dims.size() ||
      !std::equal(want.dims.begin(), want.dims.end(), got.dims))
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                where + ": shape " + (got.rank >= 0 && got.rank <= KILN_MAX_RANK ? shapeString(got.rank, got.dims) : "<bad rank>") +
                    ", expected " + want_shape);
  if (got.bytes != *bytes_needed)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                where + ": " + std::to_string(got.bytes) + " bytes, expected " + std::to_string(*bytes_needed));
  if (!got.data && *bytes_needed > 0)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT, where + ": data is NULL");
  return KILN_OK;
}

struct ArenaLease {
  kiln_session* session;
  std::unique_ptr<std::byte, void (*)(void*)> arena{nullptr, std::free};
  explicit ArenaLease(kiln_session* s) : session(s) {
    {
      std::lock_guard<std::mutex> lock(session->arenas_mutex);
      if (!session->free_arenas.empty()) {
        arena = std::move(session->free_arenas.back());
        session->free_arenas.pop_back();
        return;
      }
    }
    size_t bytes = (session->model->desc.workspace_bytes + 63) / 64 * 64 + 64;
    arena.reset(static_cast<std::byte*>(std::aligned_alloc(64, bytes)));
  }
  ~ArenaLease() {
    if (!arena) return;
    std::lock_guard<std::mutex> lock(session->arenas_mutex);
    session->free_arenas.push_back(std::move(arena));
  }
};

}  // namespace

extern "C" {

const char* kiln_error_message(const kiln_error* error) { return error ? error->message.c_str() : "no error"; }
kiln_status kiln_error_status(const kiln_error* error) { return error ? error->status : KILN_OK; }
void kiln_error_free(kiln_error* error) { delete error; }
void kiln_free(void* data) { std::free(data); }

const char* kiln_dtype_name(kiln_dtype dtype) {
  switch (dtype) {
    case KILN_FLOAT32: return "float32";
    case KILN_UINT8: return "uint8";
    case KILN_INT8: return "int8";
    case KILN_UINT16: return "uint16";
    case KILN_INT16: return "int16";
    case KILN_INT32: return "int32";
    case KILN_INT64: return "int64";
    case KILN_STRING: return "string";
    case KILN_BOOL: return "bool";
    case KILN_FLOAT16: return "float16";
    case KILN_FLOAT64: return "float64";
    case KILN_UINT32: return "uint32";
    case KILN_UINT64: return "uint64";
    case KILN_BFLOAT16: return "bfloat16";
  }
  return "unknown";
}

size_t kiln_dtype_size(kiln_dtype dtype) {
  switch (dtype) {
    case KILN_UINT8: case KILN_INT8: case KILN_BOOL: return 1;
    case KILN_UINT16: case KILN_INT16: case KILN_FLOAT16: case KILN_BFLOAT16: return 2;
    case KILN_FLOAT32: case KILN_INT32: case KILN_UINT32: return 4;
    case KILN_INT64: case KILN_UINT64: case KILN_FLOAT64: return 8;
    case KILN_STRING: return 0;
  }
  return 0;
}

kiln_status kiln_model_load(const char* path, kiln_model** model, kiln_error** error) {
  if (!path || !model) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "kiln_model_load: path and model must not be NULL");
  *model = nullptr;
  return guarded(error, [&] {
    std::unique_ptr<kiln_model> loaded;
    std::string message;
    kiln_status status = kiln::runtime::loadModel(path, loaded, message);
    if (status != KILN_OK) return fail(error, status, message);
    *model = loaded.release();
    return KILN_OK;
  });
}

void kiln_model_free(kiln_model* model) { delete model; }

size_t kiln_model_num_inputs(const kiln_model* model) { return model ? model->desc.inputs.size() : 0; }
size_t kiln_model_num_outputs(const kiln_model* model) { return model ? model->desc.outputs.size() : 0; }

static kiln_status describe(const kiln_model* model, size_t index, kiln_tensor_info* info, kiln_error** error,
                            bool output) {
  if (!model || !info) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "model and info must not be NULL");
  const auto& list = output ? model->desc.outputs : model->desc.inputs;
  const auto& views = output ? model->output_views : model->input_views;
  if (index >= list.size())
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                std::string(output ? "output" : "input") + " index " + std::to_string(index) + " out of range (model has " +
                    std::to_string(list.size()) + ")");
  info->name = list[index].name.c_str();
  info->dtype = static_cast<kiln_dtype>(list[index].dtype);
  info->rank = static_cast<int32_t>(list[index].dims.size());
  info->dims = views[index].dims.data();
  info->dim_names = views[index].dim_names.data();
  return KILN_OK;
}

kiln_status kiln_model_input(const kiln_model* model, size_t index, kiln_tensor_info* info, kiln_error** error) {
  return describe(model, index, info, error, false);
}
kiln_status kiln_model_output(const kiln_model* model, size_t index, kiln_tensor_info* info, kiln_error** error) {
  return describe(model, index, info, error, true);
}

const char* kiln_model_metadata(const kiln_model* model, const char* key) {
  if (!model || !key) return nullptr;
  auto it = model->metadata.find(std::string_view(key));
  return it == model->metadata.end() ? nullptr : it->second.c_str();
}

kiln_status kiln_session_create(kiln_model* model, const kiln_session_options* options, kiln_session** session,
                                kiln_error** error) {
  if (!model || !session) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "model and session must not be NULL");
  *session = nullptr;
  int threads = options ? options->num_threads : 0;
  if (threads < 0 || threads > 1024)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT, "num_threads " + std::to_string(threads) + " is out of range 0..1024");
  return guarded(error, [&] {
    if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    auto s = std::make_unique<kiln_session>();
    s->model = model;
    s->pool = std::make_unique<kiln::runtime::ThreadPool>(threads);
    s->context.abi_version = kiln::artifact::kAbiVersion;
    s->context.num_threads = static_cast<uint32_t>(threads);
    s->context.pool = s->pool.get();
    s->context.parallel_for = &kiln::runtime::ThreadPool::parallelForThunk;
    *session = s.release();
    return KILN_OK;
  });
}

void kiln_session_free(kiln_session* session) { delete session; }

}  // extern "C"

namespace {

// Receives the generated code's kernel_done calls during a profiled run.
struct KernelTimer {
  std::chrono::steady_clock::time_point last;
  uint64_t* kernel_ns;
  size_t num_kernels;

  static void kernelDone(void* self, int32_t kernel_index) {
    auto* timer = static_cast<KernelTimer*>(self);
    auto now = std::chrono::steady_clock::now();
    if (kernel_index >= 0 && static_cast<size_t>(kernel_index) < timer->num_kernels)
      timer->kernel_ns[kernel_index] =
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - timer->last).count());
    timer->last = now;
  }
};

// kiln_session_run, with per-kernel timing when `timer` is not NULL.
kiln_status runSession(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs, kiln_tensor* outputs,
                       size_t num_outputs, KernelTimer* timer, kiln_error** error) {
  if (!session) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "session must not be NULL");
  const kiln::artifact::ModelDesc& desc = session->model->desc;
  if (num_inputs != desc.inputs.size() || (num_inputs && !inputs))
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "got " + std::to_string(num_inputs) + " inputs, the model takes " + std::to_string(desc.inputs.size()));
  if (num_outputs != desc.outputs.size() || (num_outputs && !outputs))
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "got " + std::to_string(num_outputs) + " outputs, the model produces " + std::to_string(desc.outputs.size()));
  return guarded(error, [&] {
    std::vector<void*> in_ptrs(num_inputs), out_ptrs(num_outputs);
    size_t needed = 0;
    for (size_t i = 0; i < num_inputs; ++i) {
      if (kiln_status s = checkTensor(desc.inputs[i], inputs[i], "input", i, false, &needed, error); s != KILN_OK) return s;
      in_ptrs[i] = inputs[i].data;
    }
    std::vector<size_t> out_bytes(num_outputs);
    for (size_t i = 0; i < num_outputs; ++i) {
      checkTensor(desc.outputs[i], outputs[i], "output", i, true, &out_bytes[i], error);
      if (outputs[i].data && outputs[i].bytes < out_bytes[i])
        return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                    "output " + std::to_string(i) + " '" + desc.outputs[i].name + "': buffer of " +
                        std::to_string(outputs[i].bytes) + " bytes, needs " + std::to_string(out_bytes[i]));
    }
    std::vector<std::unique_ptr<void, void (*)(void*)>> allocated;
    for (size_t i = 0; i < num_outputs; ++i) {
      out_ptrs[i] = outputs[i].data;
      if (!out_ptrs[i]) {
        out_ptrs[i] = std::aligned_alloc(64, (out_bytes[i] + 63) / 64 * 64 + 64);
        if (!out_ptrs[i]) return fail(error, KILN_ERROR_RUNTIME, "out of memory for output " + std::to_string(i));
        allocated.emplace_back(out_ptrs[i], std::free);
      }
    }
    ArenaLease lease(session);
    if (!lease.arena) return fail(error, KILN_ERROR_RUNTIME, "out of memory for the workspace");
    // A profiled run gets its own copy of the context: concurrent runs of the
    // session stay unprofiled.
    kiln_exec_context context = session->context;
    if (timer) {
      context.kernel_done = &KernelTimer::kernelDone;
      context.profiler = timer;
      timer->last = std::chrono::steady_clock::now();
    }
    int32_t rc = session->model->entry(&context, in_ptrs.data(), out_ptrs.data(), lease.arena.get());
    if (rc != 0) return fail(error, KILN_ERROR_RUNTIME, "the model's code reported error " + std::to_string(rc));
    for (size_t i = 0; i < num_outputs; ++i) {
      const auto& want = desc.outputs[i];
      outputs[i].dtype = static_cast<kiln_dtype>(want.dtype);
      outputs[i].rank = static_cast<int32_t>(want.dims.size());
      std::copy(want.dims.begin(), want.dims.end(), outputs[i].dims);
      outputs[i].data = out_ptrs[i];
      outputs[i].bytes = out_bytes[i];
    }
    for (auto& a : allocated) a.release();
    return KILN_OK;
  });
}

}  // namespace

extern "C" {

kiln_status kiln_session_run(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs, kiln_tensor* outputs,
                             size_t num_outputs, kiln_error** error) {
  return runSession(session, inputs, num_inputs, outputs, num_outputs, nullptr, error);
}

size_t kiln_model_num_kernels(const kiln_model* model) { return model ? model->desc.kernels.size() : 0; }

kiln_status kiln_model_kernel(const kiln_model* model, size_t index, kiln_kernel_info* info, kiln_error** error) {
  if (!model || !info) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "model and info must not be NULL");
  if (index >= model->desc.kernels.size())
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "kernel index " + std::to_string(index) + " out of range (model has " +
                    std::to_string(model->desc.kernels.size()) + ")");
  const kiln::artifact::KernelDesc& k = model->desc.kernels[index];
  info->name = k.name.c_str();
  info->origin = k.origin.c_str();
  info->flops = k.flops;
  return KILN_OK;
}

kiln_status kiln_session_run_profiled(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                                      kiln_tensor* outputs, size_t num_outputs, uint64_t* kernel_ns,
                                      size_t num_kernels, kiln_error** error) {
  if (!session) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "session must not be NULL");
  size_t want = session->model->desc.kernels.size();
  if (num_kernels != want || (num_kernels && !kernel_ns))
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "kernel_ns has room for " + std::to_string(kernel_ns ? num_kernels : 0) + " kernels, the model has " +
                    std::to_string(want));
  std::fill(kernel_ns, kernel_ns + num_kernels, uint64_t{0});
  KernelTimer timer{{}, kernel_ns, num_kernels};
  return runSession(session, inputs, num_inputs, outputs, num_outputs, &timer, error);
}

}  // extern "C"
