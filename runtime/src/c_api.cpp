// The C API: argument checks, error objects, sessions. No exception crosses it.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <thread>

#include "model.h"
#include "string_fns.h"

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

// Largest tensor a run-time shape may ask for (the description's static
// shapes are held to the same bound when the artifact is loaded).
constexpr uint64_t kMaxRunBytes = uint64_t{1} << 48;

// Element bytes times the dims, or nullopt when a dim is negative or the
// product passes kMaxRunBytes.
std::optional<size_t> checkedBytes(const int64_t* dims, size_t rank, size_t element_bytes) {
  uint64_t bytes = element_bytes;
  for (size_t d = 0; d < rank; ++d) {
    if (dims[d] < 0 || (dims[d] > 0 && bytes > kMaxRunBytes / static_cast<uint64_t>(dims[d]))) return std::nullopt;
    bytes *= static_cast<uint64_t>(dims[d]);
  }
  return static_cast<size_t>(bytes);
}

// The dims of `t` in this run: static ones from the description, run-time
// ones from their slots.
std::vector<int64_t> runDims(const kiln::artifact::TensorDesc& t, const std::vector<int64_t>& slots) {
  std::vector<int64_t> dims = t.dims;
  for (size_t d = 0; d < dims.size(); ++d)
    if (t.dim_slots[d] > 0) dims[d] = slots[static_cast<size_t>(t.dim_slots[d])];
  return dims;
}

// Every element of a string input: a pointer to NUL-terminated UTF-8.
kiln_status checkStrings(const kiln_tensor& got, const std::string& where, kiln_error** error) {
  size_t count = got.bytes / sizeof(const char*);
  auto* strings = static_cast<const char* const*>(got.data);
  for (size_t k = 0; k < count; ++k) {
    if (!strings[k]) return fail(error, KILN_ERROR_INVALID_ARGUMENT, where + ": string " + std::to_string(k) + " is NULL");
    if (!kiln::strings::isValidUtf8(strings[k]))
      return fail(error, KILN_ERROR_INVALID_ARGUMENT, where + ": string " + std::to_string(k) + " is not valid UTF-8");
  }
  return KILN_OK;
}

// String outputs: the pointer array the run wrote (into inputs, constants
// and the run's pool) becomes one block the caller owns, the pointers
// followed by the characters. NULL when memory runs out.
void* packStrings(const void* array, size_t count) {
  auto* strings = static_cast<const char* const*>(array);
  size_t bytes = count * sizeof(const char*);
  for (size_t k = 0; k < count; ++k) bytes += std::strlen(strings[k]) + 1;
  auto* block = static_cast<char*>(std::malloc(std::max<size_t>(bytes, 1)));
  if (!block) return nullptr;
  char* chars = block + count * sizeof(const char*);
  for (size_t k = 0; k < count; ++k) {
    size_t n = std::strlen(strings[k]) + 1;
    std::memcpy(chars, strings[k], n);
    std::memcpy(block + k * sizeof(const char*), &chars, sizeof(chars));
    chars += n;
  }
  return block;
}

// Checks an input against the description; its symbolic dims fill their
// slots (a symbol seen before must have the same size).
kiln_status checkInput(const kiln::artifact::TensorDesc& want, const kiln_tensor& got, size_t index,
                       std::vector<int64_t>& slots, std::vector<bool>& bound, kiln_error** error) {
  std::string where = "input " + std::to_string(index) + " '" + want.name + "'";
  if (got.dtype != want.dtype)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                where + ": dtype " + kiln_dtype_name(got.dtype) + ", expected " +
                    kiln_dtype_name(static_cast<kiln_dtype>(want.dtype)));
  bool rank_ok = got.rank >= 0 && got.rank <= KILN_MAX_RANK && static_cast<size_t>(got.rank) == want.dims.size();
  auto shapeError = [&](const std::string& why) {
    std::string want_shape = "[";
    for (size_t d = 0; d < want.dims.size(); ++d)
      want_shape += (d ? "x" : "") + (want.dims[d] >= 0 ? std::to_string(want.dims[d]) : want.dim_names[d]);
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                where + ": shape " + (got.rank >= 0 && got.rank <= KILN_MAX_RANK ? shapeString(got.rank, got.dims) : "<bad rank>") +
                    ", expected " + want_shape + "]" + why);
  };
  if (want.any_shape) {  // read only for its dtype: any rank and dims
    rank_ok = got.rank >= 0 && got.rank <= KILN_MAX_RANK;
    if (!rank_ok) return shapeError("");
  }
  if (!rank_ok) return shapeError("");
  for (size_t d = 0; d < want.dims.size() && !want.any_shape; ++d) {
    int32_t slot = want.dim_slots[d];
    if (slot <= 0) {
      if (got.dims[d] != want.dims[d]) return shapeError("");
      continue;
    }
    if (got.dims[d] < 0) return shapeError(" (a negative size)");
    auto s = static_cast<size_t>(slot);
    if (bound[s] && slots[s] != got.dims[d])
      return shapeError(" (" + want.dim_names[d] + " is " + std::to_string(slots[s]) + " in an earlier input)");
    slots[s] = got.dims[d];
    bound[s] = true;
  }
  std::optional<size_t> bytes =
      checkedBytes(got.dims, static_cast<size_t>(got.rank), kiln_dtype_size(static_cast<kiln_dtype>(want.dtype)));
  if (!bytes) return shapeError(" (too large)");
  if (got.bytes != *bytes)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                where + ": " + std::to_string(got.bytes) + " bytes, expected " + std::to_string(*bytes));
  if (!got.data && *bytes > 0) return fail(error, KILN_ERROR_INVALID_ARGUMENT, where + ": data is NULL");
  if (want.dtype == KILN_STRING && !want.any_shape) return checkStrings(got, where, error);
  return KILN_OK;
}

bool isOptional(const kiln::artifact::TensorDesc& t) {
  return t.kind == kiln::artifact::kKindOptionalTensor || t.kind == kiln::artifact::kKindOptionalSequence;
}
bool isSequence(const kiln::artifact::TensorDesc& t) {
  return t.kind == kiln::artifact::kKindSequence || t.kind == kiln::artifact::kKindOptionalSequence;
}
const char* kindName(uint8_t kind) {
  static const char* const names[] = {"a tensor", "a sequence", "an optional tensor", "an optional sequence"};
  return kind <= kiln::artifact::kKindOptionalSequence ? names[kind] : "unknown";
}

// A sequence input as the generated code reads it (exec_context.h): the
// element table and every element's dims, owned for the run.
struct SequenceInput {
  kiln_sequence sequence{};
  std::vector<kiln_sequence_element> elements;
};

// Checks a sequence input's elements: each of the sequence's dtype, of its
// rank (when the model knows it) and static dims, with its data.
kiln_status checkSequence(const kiln::artifact::TensorDesc& want, const kiln_value& got, size_t index,
                          SequenceInput& out, kiln_error** error) {
  std::string where = "input " + std::to_string(index) + " '" + want.name + "'";
  if (got.count > (size_t{1} << 32))
    return fail(error, KILN_ERROR_INVALID_ARGUMENT, where + ": " + std::to_string(got.count) + " elements is too many");
  if (got.count > 0 && !got.elements)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                where + ": elements is NULL for a sequence of " + std::to_string(got.count) + " elements");
  for (size_t k = 0; k < got.count; ++k) {
    const kiln_tensor& e = got.elements[k];
    std::string at = where + " element " + std::to_string(k);
    if (e.dtype != want.dtype)
      return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                  at + ": dtype " + kiln_dtype_name(e.dtype) + ", expected " +
                      kiln_dtype_name(static_cast<kiln_dtype>(want.dtype)));
    if (e.rank < 0 || e.rank > KILN_MAX_RANK)
      return fail(error, KILN_ERROR_INVALID_ARGUMENT, at + ": rank " + std::to_string(e.rank) + " is out of range");
    bool rank_known = !want.dims.empty();
    bool shape_ok = !rank_known || static_cast<size_t>(e.rank) == want.dims.size();
    for (size_t d = 0; shape_ok && rank_known && d < want.dims.size(); ++d)
      shape_ok = want.dims[d] < 0 || e.dims[d] == want.dims[d];
    std::optional<size_t> bytes = checkedBytes(e.dims, static_cast<size_t>(e.rank), kiln_dtype_size(e.dtype));
    if (!shape_ok || !bytes) {
      std::string want_shape = "[";
      for (size_t d = 0; d < want.dims.size(); ++d)
        want_shape += (d ? "x" : "") + (want.dims[d] >= 0 ? std::to_string(want.dims[d]) : want.dim_names[d]);
      return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                  at + ": shape " + shapeString(e.rank, e.dims) + (bytes ? ", expected " + want_shape + "]" : " is too large"));
    }
    if (e.bytes != *bytes)
      return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                  at + ": " + std::to_string(e.bytes) + " bytes, expected " + std::to_string(*bytes));
    if (!e.data && *bytes > 0) return fail(error, KILN_ERROR_INVALID_ARGUMENT, at + ": data is NULL");
    if (want.dtype == KILN_STRING)
      if (kiln_status s = checkStrings(e, at, error); s != KILN_OK) return s;
  }
  out.elements.resize(got.count);
  for (size_t k = 0; k < got.count; ++k)
    out.elements[k] = {got.elements[k].data, got.elements[k].dims, got.elements[k].rank};
  out.sequence = {static_cast<int64_t>(got.count), out.elements.data()};
  return KILN_OK;
}

// Memory for buffers whose size the run computes (ctx->alloc): outputs go
// to the caller's buffer when it is large enough, else to a new one;
// intermediates live until the run ends.
struct RunAllocator {
  const kiln::artifact::ModelDesc* desc = nullptr;
  const kiln_tensor* caller_outputs = nullptr;
  std::vector<void*>* out_ptrs = nullptr;
  std::vector<std::unique_ptr<void, void (*)(void*)>>* owned_outputs = nullptr;
  std::vector<std::unique_ptr<void, void (*)(void*)>> scratch;
  std::string error;

  static void* alloc(void* self, int32_t output_index, const int64_t* dims, int32_t rank, int32_t element_bytes,
                     const char* name) {
    auto* a = static_cast<RunAllocator*>(self);
    try {
      return a->allocate(output_index, dims, rank, element_bytes, name);
    } catch (const std::exception&) {
      a->error = "out of memory";
      return nullptr;
    }
  }

  void* allocate(int32_t output_index, const int64_t* dims, int32_t rank, int32_t element_bytes, const char* name) {
    std::string what = output_index >= 0 ? "output " + std::to_string(output_index) + " '" + name + "'"
                                         : "intermediate '" + std::string(name) + "'";
    bool valid_index = output_index < static_cast<int32_t>(desc->outputs.size());
    std::optional<size_t> bytes;
    if (rank >= 0 && rank <= KILN_MAX_RANK && element_bytes > 0 && valid_index)
      bytes = checkedBytes(dims, static_cast<size_t>(rank), static_cast<size_t>(element_bytes));
    if (!bytes) {
      error = what + " would have shape " + shapeString(std::clamp(rank, 0, KILN_MAX_RANK), dims) +
              (std::any_of(dims, dims + std::clamp(rank, 0, KILN_MAX_RANK), [](int64_t d) { return d < 0; })
                   ? ": a negative size"
                   : ": too large");
      return nullptr;
    }
    if (output_index >= 0) {
      const kiln_tensor& caller = caller_outputs[output_index];
      if (caller.data) {
        if (caller.bytes < *bytes) {
          error = what + ": buffer of " + std::to_string(caller.bytes) + " bytes, this run's shape " +
                  shapeString(rank, dims) + " needs " + std::to_string(*bytes);
          return nullptr;
        }
        return (*out_ptrs)[static_cast<size_t>(output_index)] = caller.data;
      }
    }
    void* p = std::aligned_alloc(64, (*bytes + 63) / 64 * 64 + 64);
    if (!p) {
      error = "out of memory for " + what + " (" + std::to_string(*bytes) + " bytes)";
      return nullptr;
    }
    if (output_index >= 0) {
      // An output allocated again (a loop state whose shape changed) may
      // still be read while the new one is written: the old buffer lives
      // on as scratch until the run ends instead of being handed out.
      void*& current = (*out_ptrs)[static_cast<size_t>(output_index)];
      for (auto& owned : *owned_outputs)
        if (current && owned.get() == current) scratch.push_back(std::move(owned));
      std::erase_if(*owned_outputs, [](const auto& owned) { return owned == nullptr; });
      owned_outputs->emplace_back(p, std::free);
      current = p;
    } else {
      scratch.emplace_back(p, std::free);
    }
    return p;
  }
};

// The message of failed check `index`, each "{$k}" replaced by slot k.
std::string checkMessage(const kiln::artifact::ModelDesc& desc, size_t index, const std::vector<int64_t>& slots) {
  if (index >= desc.checks.size()) return "run-time check " + std::to_string(index) + " failed";
  const std::string& message = desc.checks[index];
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    size_t end = message.compare(i, 2, "{$") == 0 ? message.find('}', i) : std::string::npos;
    if (end == std::string::npos) {
      out += message[i];
      continue;
    }
    size_t k = std::strtoull(message.c_str() + i + 2, nullptr, 10);
    out += k < slots.size() ? std::to_string(slots[k]) : "?";
    i = end;
  }
  return out;
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
    case KILN_STRING: return sizeof(const char*);
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
    if (model->cuda) {  // a CUDA artifact: device memory and a stream instead of a thread pool
      std::string message;
      if (kiln_status st = kiln::runtime::CudaSession::create(*model->cuda, s->cuda, message); st != KILN_OK)
        return fail(error, st, message);
      *session = s.release();
      return KILN_OK;
    }
    s->pool = std::make_unique<kiln::runtime::ThreadPool>(threads);
    s->context.abi_version = kiln::artifact::kAbiVersion;
    s->context.num_threads = static_cast<uint32_t>(threads);
    s->context.pool = s->pool.get();
    s->context.parallel_for = &kiln::runtime::ThreadPool::parallelForThunk;
    s->context.weights = model->weights;
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

// A CUDA artifact's run (static shapes only): the session's device memory
// and launch plan, host buffers in and out.
kiln_status runCuda(kiln_session* session, const std::vector<void*>& in_ptrs, const std::vector<void*>& out_ptrs,
                    kiln_tensor* outputs, KernelTimer* timer, kiln_error** error,
                    const kiln_run_options* run_options) {
  if (timer) timer->last = std::chrono::steady_clock::now();
  std::string message;
  kiln_status s = session->cuda->run(in_ptrs.data(), out_ptrs.data(), timer ? &KernelTimer::kernelDone : nullptr, timer,
                                     message, run_options);
  if (s != KILN_OK) return fail(error, s, message);
  const kiln::artifact::ModelDesc& desc = session->model->desc;
  for (size_t i = 0; i < desc.outputs.size(); ++i) {
    const auto& want = desc.outputs[i];
    outputs[i].dtype = static_cast<kiln_dtype>(want.dtype);
    outputs[i].rank = static_cast<int32_t>(want.dims.size());
    std::copy(want.dims.begin(), want.dims.end(), outputs[i].dims);
    outputs[i].data = out_ptrs[i];
    outputs[i].bytes = *checkedBytes(want.dims.data(), want.dims.size(), kiln_dtype_size(static_cast<kiln_dtype>(want.dtype)));
  }
  return KILN_OK;
}

// A sequence output: the table the generated code left (pointing into
// inputs, constants and the run's memory) copied into memory the caller
// owns, each element with its own dims.
kiln_status copySequence(const kiln::artifact::TensorDesc& want, const kiln_sequence& seq, size_t index,
                         kiln_value& out, std::vector<std::unique_ptr<void, void (*)(void*)>>& owned,
                         kiln_error** error) {
  std::string where = "output " + std::to_string(index) + " '" + want.name + "'";
  if (seq.count < 0 || (seq.count > 0 && !seq.elements))
    return fail(error, KILN_ERROR_RUNTIME, where + ": the run produced a malformed sequence");
  auto count = static_cast<size_t>(seq.count);
  auto* elements = static_cast<kiln_tensor*>(std::calloc(std::max<size_t>(count, 1), sizeof(kiln_tensor)));
  if (!elements) return fail(error, KILN_ERROR_RUNTIME, "out of memory for " + where);
  owned.emplace_back(elements, std::free);
  auto dtype = static_cast<kiln_dtype>(want.dtype);
  for (size_t k = 0; k < count; ++k) {
    const kiln_sequence_element& e = seq.elements[k];
    std::optional<size_t> bytes;
    if (e.rank >= 0 && e.rank <= KILN_MAX_RANK && (e.dims || e.rank == 0))
      bytes = checkedBytes(e.dims, static_cast<size_t>(e.rank), kiln_dtype_size(dtype));
    if (!bytes || (!e.data && *bytes > 0))
      return fail(error, KILN_ERROR_RUNTIME, where + " element " + std::to_string(k) + " is malformed");
    kiln_tensor& t = elements[k];
    t.dtype = dtype;
    t.rank = static_cast<int32_t>(e.rank);
    std::copy(e.dims, e.dims + e.rank, t.dims);
    t.bytes = *bytes;
    t.data = dtype == KILN_STRING ? packStrings(e.data, *bytes / sizeof(const char*)) : std::malloc(std::max<size_t>(*bytes, 1));
    if (!t.data) return fail(error, KILN_ERROR_RUNTIME, "out of memory for " + where);
    owned.emplace_back(t.data, std::free);
    if (dtype != KILN_STRING && *bytes > 0) std::memcpy(t.data, e.data, *bytes);
  }
  out.count = count;
  out.elements = elements;
  return KILN_OK;
}

// Fills the inputs' pointers and slots: tensors as they are, sequences as
// tables (`sequences`), an absent optional tensor as zeros of its declared
// size (only OptionalHasElement and the check of OptionalGetElement read it).
kiln_status bindInputs(const kiln::artifact::ModelDesc& desc, const kiln_value* inputs, std::vector<void*>& in_ptrs,
                       std::vector<int64_t>& slots, std::vector<SequenceInput>& sequences,
                       std::vector<std::unique_ptr<void, void (*)(void*)>>& zeros, kiln_error** error) {
  std::vector<bool> bound(slots.size(), false);
  for (size_t i = 0; i < desc.inputs.size(); ++i) {
    const auto& want = desc.inputs[i];
    const kiln_value& got = inputs[i];
    if (got.kind != want.kind)
      return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                  "input " + std::to_string(i) + " '" + want.name + "' is " + kindName(want.kind) + ", got " +
                      (got.kind >= 0 && got.kind <= KILN_KIND_OPTIONAL_SEQUENCE
                           ? std::string(kindName(static_cast<uint8_t>(got.kind)))
                           : "kind " + std::to_string(static_cast<int32_t>(got.kind)) + ", which names no kiln_value_kind"));
    if (isOptional(want)) {
      auto present_slot = static_cast<size_t>(want.present_slot);
      slots[present_slot] = got.present ? 1 : 0;
      bound[present_slot] = true;
      if (!got.present && isSequence(want)) continue;
      if (!got.present) {
        std::vector<int64_t> dims = want.dims;
        for (size_t d = 0; d < dims.size(); ++d)
          if (want.dim_slots[d] > 0) {
            auto s = static_cast<size_t>(want.dim_slots[d]);
            dims[d] = bound[s] ? slots[s] : 0;
            bound[s] = true;
            slots[s] = dims[d];
          }
        size_t bytes = *checkedBytes(dims.data(), dims.size(), kiln_dtype_size(static_cast<kiln_dtype>(want.dtype)));
        in_ptrs[i] = std::calloc(std::max<size_t>(bytes, 1), 1);
        if (!in_ptrs[i]) return fail(error, KILN_ERROR_RUNTIME, "out of memory for input " + std::to_string(i));
        zeros.emplace_back(in_ptrs[i], std::free);
        continue;
      }
    }
    if (isSequence(want)) {
      if (kiln_status s = checkSequence(want, got, i, sequences[i], error); s != KILN_OK) return s;
      in_ptrs[i] = &sequences[i].sequence;
      continue;
    }
    if (kiln_status s = checkInput(want, got.tensor, i, slots, bound, error); s != KILN_OK) return s;
    in_ptrs[i] = got.tensor.data;
  }
  return KILN_OK;
}

// kiln_session_run_values, with per-kernel timing when `timer` is not NULL.
kiln_status runSession(kiln_session* session, const kiln_value* inputs, size_t num_inputs, kiln_value* outputs,
                       size_t num_outputs, KernelTimer* timer, kiln_error** error,
                       const kiln_run_options* run_options = nullptr) {
  if (!session) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "session must not be NULL");
  const kiln::artifact::ModelDesc& desc = session->model->desc;
  if (num_inputs != desc.inputs.size())
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "got " + std::to_string(num_inputs) + " inputs, the model takes " + std::to_string(desc.inputs.size()));
  if (num_inputs && !inputs)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT, "inputs is NULL but num_inputs is " + std::to_string(num_inputs));
  if (num_outputs != desc.outputs.size())
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "got " + std::to_string(num_outputs) + " outputs, the model produces " + std::to_string(desc.outputs.size()));
  if (num_outputs && !outputs)
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "outputs is NULL but num_outputs is " + std::to_string(num_outputs) +
                    " (pass an array; an entry whose data is NULL has the run allocate it)");
  return guarded(error, [&] {
    std::vector<void*> in_ptrs(num_inputs), out_ptrs(num_outputs, nullptr);
    std::vector<int64_t> slots(desc.slot_count, 0);
    std::vector<SequenceInput> sequences(num_inputs);
    std::vector<std::unique_ptr<void, void (*)(void*)>> zeros;
    if (kiln_status s = bindInputs(desc, inputs, in_ptrs, slots, sequences, zeros, error); s != KILN_OK) return s;
    // Outputs of static shape are checked and placed now; the others when
    // the run knows their shape (RunAllocator). A sequence output's entry
    // receives the table the run built.
    std::vector<std::unique_ptr<void, void (*)(void*)>> allocated;
    std::vector<kiln_tensor> out_tensors(num_outputs);
    std::vector<const kiln_sequence*> out_sequences(num_outputs, nullptr);
    for (size_t i = 0; i < num_outputs; ++i) {
      const auto& want = desc.outputs[i];
      out_tensors[i] = outputs[i].tensor;
      if (isSequence(want)) {
        out_ptrs[i] = &out_sequences[i];
        continue;
      }
      if (want.dtype == KILN_STRING && out_tensors[i].data)
        return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                    "output " + std::to_string(i) + " '" + want.name +
                        "': string outputs are allocated by the run (set data to NULL, release with kiln_free)");
      if (std::count(want.dims.begin(), want.dims.end(), -1)) continue;
      size_t bytes = *checkedBytes(want.dims.data(), want.dims.size(), kiln_dtype_size(static_cast<kiln_dtype>(want.dtype)));
      if (out_tensors[i].data && out_tensors[i].bytes < bytes)
        return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                    "output " + std::to_string(i) + " '" + want.name + "': buffer of " +
                        std::to_string(out_tensors[i].bytes) + " bytes, needs " + std::to_string(bytes));
      out_ptrs[i] = out_tensors[i].data;
      if (!out_ptrs[i]) {
        out_ptrs[i] = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
        if (!out_ptrs[i]) return fail(error, KILN_ERROR_RUNTIME, "out of memory for output " + std::to_string(i));
        allocated.emplace_back(out_ptrs[i], std::free);
      }
    }
    if (session->cuda) {
      kiln_status s = runCuda(session, in_ptrs, out_ptrs, out_tensors.data(), timer, error, run_options);
      if (s == KILN_OK) {
        for (auto& a : allocated) a.release();
        for (size_t i = 0; i < num_outputs; ++i) {  // CUDA artifacts have tensor outputs only
          outputs[i].kind = KILN_KIND_TENSOR;
          outputs[i].present = 1;
          outputs[i].tensor = out_tensors[i];
        }
      }
      return s;
    }
    ArenaLease lease(session);
    if (!lease.arena) return fail(error, KILN_ERROR_RUNTIME, "out of memory for the workspace");
    // A run gets its own copy of the context: its slots, its allocator, and
    // the profiler of a profiled run (concurrent runs stay unprofiled).
    kiln_exec_context context = session->context;
    RunAllocator allocator;
    allocator.desc = &desc;
    allocator.caller_outputs = out_tensors.data();
    allocator.out_ptrs = &out_ptrs;
    allocator.owned_outputs = &allocated;
    context.slots = slots.empty() ? nullptr : slots.data();
    context.alloc = &RunAllocator::alloc;
    context.allocator = &allocator;
    kiln::strings::StringPool string_pool;  // the strings this run makes
    context.strings = &kiln::strings::stringFunctions();
    context.string_pool = &string_pool;
    if (timer) {
      context.kernel_done = &KernelTimer::kernelDone;
      context.profiler = timer;
      timer->last = std::chrono::steady_clock::now();
    }
    int32_t rc = session->model->entry(&context, in_ptrs.data(), out_ptrs.data(), lease.arena.get());
    if (rc > 0) return fail(error, KILN_ERROR_RUNTIME, checkMessage(desc, static_cast<size_t>(rc - 1), slots));
    if (rc == -1) return fail(error, KILN_ERROR_RUNTIME, allocator.error);
    if (rc != 0) return fail(error, KILN_ERROR_RUNTIME, "the model's code reported error " + std::to_string(rc));
    if (string_pool.failed()) return fail(error, KILN_ERROR_RUNTIME, "out of memory for the run's strings");
    std::vector<kiln_value> results(num_outputs);
    for (size_t i = 0; i < num_outputs; ++i) {
      const auto& want = desc.outputs[i];
      kiln_value& result = results[i];
      result.kind = static_cast<kiln_value_kind>(want.kind);
      result.tensor = out_tensors[i];
      result.present = isOptional(want) ? (isSequence(want) ? out_sequences[i] != nullptr
                                                            : slots[static_cast<size_t>(want.present_slot)] != 0)
                                        : 1;
      if (!result.present) continue;
      if (isSequence(want)) {
        const kiln_sequence empty{0, nullptr};  // a sequence no step built: SequenceEmpty
        const kiln_sequence& seq = out_sequences[i] ? *out_sequences[i] : empty;
        if (kiln_status s = copySequence(want, seq, i, result, allocated, error); s != KILN_OK) return s;
        continue;
      }
      kiln_tensor& out = result.tensor;
      std::vector<int64_t> dims = runDims(want, slots);
      if (!out_ptrs[i])  // an output no kernel wrote (a run-time size of zero elements never allocated)
        return fail(error, KILN_ERROR_RUNTIME, "output " + std::to_string(i) + " '" + want.name + "' was not produced");
      out.dtype = static_cast<kiln_dtype>(want.dtype);
      out.rank = static_cast<int32_t>(dims.size());
      std::copy(dims.begin(), dims.end(), out.dims);
      out.bytes = *checkedBytes(dims.data(), dims.size(), kiln_dtype_size(static_cast<kiln_dtype>(want.dtype)));
      if (want.dtype == KILN_STRING) {
        void* packed = packStrings(out_ptrs[i], out.bytes / sizeof(const char*));
        if (!packed) return fail(error, KILN_ERROR_RUNTIME, "out of memory for output " + std::to_string(i));
        // The run's pointer array is not the caller's: free it, hand over the block.
        for (auto& a : allocated)
          if (a.get() == out_ptrs[i]) a.reset();
        allocated.emplace_back(packed, std::free);
        out_ptrs[i] = packed;
      }
      out.data = out_ptrs[i];
    }
    // An absent optional tensor output gives back the buffer the run made for it.
    for (size_t i = 0; i < num_outputs; ++i)
      if (!results[i].present && !isSequence(desc.outputs[i]))
        for (auto& a : allocated)
          if (a.get() == out_ptrs[i]) a.reset();
    for (auto& a : allocated) a.release();
    for (size_t i = 0; i < num_outputs; ++i) outputs[i] = results[i];
    return KILN_OK;
  });
}

// kiln_session_run(_profiled): models whose inputs and outputs are all tensors.
kiln_status runTensors(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs, kiln_tensor* outputs,
                       size_t num_outputs, KernelTimer* timer, kiln_error** error,
                       const kiln_run_options* run_options = nullptr) {
  if (!session) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "session must not be NULL");
  const kiln::artifact::ModelDesc& desc = session->model->desc;
  for (const auto* list : {&desc.inputs, &desc.outputs})
    for (size_t i = 0; i < list->size(); ++i)
      if ((*list)[i].kind != kiln::artifact::kKindTensor)
        return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                    std::string(list == &desc.inputs ? "input " : "output ") + std::to_string(i) + " '" +
                        (*list)[i].name + "' is " + kindName((*list)[i].kind) +
                        ": run this model with kiln_session_run_values");
  if ((num_inputs && !inputs) || (num_outputs && !outputs)) {
    // runSession words the error; it reads neither array before refusing,
    // so a stand-in marks the array that was given.
    kiln_value given{};
    return runSession(session, inputs ? &given : nullptr, num_inputs, outputs ? &given : nullptr, num_outputs, timer,
                      error);
  }
  return guarded(error, [&] {
    std::vector<kiln_value> in(num_inputs), out(num_outputs);
    for (size_t i = 0; i < num_inputs; ++i) in[i].tensor = inputs[i];
    for (size_t i = 0; i < num_outputs; ++i) out[i].tensor = outputs[i];
    kiln_status s = runSession(session, in.data(), num_inputs, out.data(), num_outputs, timer, error, run_options);
    if (s == KILN_OK)
      for (size_t i = 0; i < num_outputs; ++i) outputs[i] = out[i].tensor;
    return s;
  });
}

}  // namespace

extern "C" {

kiln_status kiln_session_run(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs, kiln_tensor* outputs,
                             size_t num_outputs, kiln_error** error) {
  return runTensors(session, inputs, num_inputs, outputs, num_outputs, nullptr, error);
}

kiln_status kiln_session_run_values(kiln_session* session, const kiln_value* inputs, size_t num_inputs,
                                    kiln_value* outputs, size_t num_outputs, kiln_error** error) {
  return runSession(session, inputs, num_inputs, outputs, num_outputs, nullptr, error);
}

kiln_status kiln_session_run_with(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                                  kiln_tensor* outputs, size_t num_outputs, const kiln_run_options* options,
                                  kiln_error** error) {
  if (!options) return runTensors(session, inputs, num_inputs, outputs, num_outputs, nullptr, error);
  if (!session) return fail(error, KILN_ERROR_INVALID_ARGUMENT, "session must not be NULL");
  for (kiln_memory m : {options->input_memory, options->output_memory})
    if (m != KILN_MEMORY_HOST && m != KILN_MEMORY_DEVICE)
      return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                  "kiln_run_options: memory kind " + std::to_string(static_cast<int32_t>(m)) +
                      " is neither KILN_MEMORY_HOST (0) nor KILN_MEMORY_DEVICE (1)");
  const bool device_in = options->input_memory == KILN_MEMORY_DEVICE;
  const bool device_out = options->output_memory == KILN_MEMORY_DEVICE;
  if ((device_in || device_out) && !session->cuda)
    return fail(error, KILN_ERROR_UNSUPPORTED,
                "device memory needs a CUDA artifact; this one targets " + session->model->desc.target +
                    " (compile with --target cuda, or pass KILN_MEMORY_HOST)");
  if (options->async != 0 && !(device_in && device_out))
    return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                "kiln_run_options: async runs need inputs and outputs in device memory (KILN_MEMORY_DEVICE)");
  for (size_t i = 0; device_out && outputs && i < num_outputs; ++i)
    if (!outputs[i].data)
      return fail(error, KILN_ERROR_INVALID_ARGUMENT,
                  "output " + std::to_string(i) +
                      ": device-memory outputs need a buffer (data is NULL; the run allocates host memory only)");
  return runTensors(session, inputs, num_inputs, outputs, num_outputs, nullptr, error, options);
}

void kiln_value_release(kiln_value* value) {
  if (!value) return;
  for (size_t k = 0; value->elements && k < value->count; ++k) std::free(value->elements[k].data);
  std::free(value->elements);
  std::free(value->tensor.data);
  *value = kiln_value{};
}

int32_t kiln_model_input_kind(const kiln_model* model, size_t index) {
  return model && index < model->desc.inputs.size() ? model->desc.inputs[index].kind : -1;
}
int32_t kiln_model_output_kind(const kiln_model* model, size_t index) {
  return model && index < model->desc.outputs.size() ? model->desc.outputs[index].kind : -1;
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
  return runTensors(session, inputs, num_inputs, outputs, num_outputs, &timer, error);
}

}  // extern "C"
