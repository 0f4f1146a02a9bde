/* Kiln runtime: loads a compiled model artifact (model.so) and runs it.
 *
 *   kiln_model* model;  kiln_error* err = NULL;
 *   if (kiln_model_load("model.so", &model, &err) != KILN_OK) { puts(kiln_error_message(err)); ... }
 *   kiln_session* session;  kiln_session_create(model, NULL, &session, &err);
 *   kiln_session_run(session, inputs, 1, outputs, 1, &err);
 *
 * Every function returns a kiln_status; on failure, when `error` is not NULL,
 * *error receives a message to free with kiln_error_free. Nothing here throws
 * or aborts on bad input. A model may be shared by many sessions; a session
 * may be run from several threads at once. Loading an artifact runs native
 * code from it: load only artifacts you trust (see docs/security.md).
 */
#ifndef KILN_RUNTIME_H_
#define KILN_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define KILN_RUNTIME_VERSION_MAJOR 0
#define KILN_RUNTIME_VERSION_MINOR 2 /* 2: kiln_session_run_with, device memory */

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERROR_IO = 1,               /* file missing or unreadable */
  KILN_ERROR_INVALID_ARTIFACT = 2, /* not a Kiln artifact, truncated, damaged */
  KILN_ERROR_UNSUPPORTED = 3,      /* built for CPU features, GPU or a format this host lacks */
  KILN_ERROR_INVALID_ARGUMENT = 4, /* wrong input count, shape, dtype, null pointer */
  KILN_ERROR_RUNTIME = 5           /* failure while running */
} kiln_status;

/* Element types; values are ONNX TensorProto codes. */
/* In C++ the type is fixed at int32_t (the size C gives it), so every value
   a caller stores in a kiln_tensor is a valid kiln_dtype and the runtime can
   reject unknown ones by value; kiln_value_kind and kiln_memory are fixed
   the same way. */
#ifdef __cplusplus
typedef enum kiln_dtype : int32_t {
#else
typedef enum kiln_dtype {
#endif
  KILN_FLOAT32 = 1, KILN_UINT8 = 2, KILN_INT8 = 3, KILN_UINT16 = 4, KILN_INT16 = 5,
  KILN_INT32 = 6, KILN_INT64 = 7, KILN_STRING = 8, KILN_BOOL = 9, KILN_FLOAT16 = 10,
  KILN_FLOAT64 = 11, KILN_UINT32 = 12, KILN_UINT64 = 13, KILN_BFLOAT16 = 16
} kiln_dtype;

typedef struct kiln_error kiln_error;
typedef struct kiln_model kiln_model;
typedef struct kiln_session kiln_session;

const char* kiln_error_message(const kiln_error* error);
kiln_status kiln_error_status(const kiln_error* error);
void kiln_error_free(kiln_error* error);

/* Name of a dtype ("float32"), or "unknown". */
const char* kiln_dtype_name(kiln_dtype dtype);
/* Bytes per element, 0 for unknown types; for KILN_STRING, sizeof(const char*). */
size_t kiln_dtype_size(kiln_dtype dtype);

/* Reads and checks the artifact (magic, format version, checksum, CPU
 * features) before any of its code is mapped. */
kiln_status kiln_model_load(const char* path, kiln_model** model, kiln_error** error);
void kiln_model_free(kiln_model* model);

/* A description of one input or output. Pointers stay valid while the model
 * lives. An input the model reads only for its dtype (CastLike's target
 * type) accepts any shape; its info shows the shape the model declared. A symbolic dimension (-1) of an input takes its size from the
 * tensor each run passes (an input symbol such as "N" used twice must have
 * one size per run); one of an output is computed by the run: from the
 * inputs' symbols (its name is then their polynomial, "N", "N*S") or from
 * input data (a Reshape's target, a Range's bounds; its name is then ""). */
typedef struct kiln_tensor_info {
  const char* name;
  kiln_dtype dtype;
  int32_t rank;
  const int64_t* dims;          /* -1 where the dimension is symbolic */
  const char* const* dim_names; /* symbol per dimension, "" where static or computed from data */
} kiln_tensor_info;

size_t kiln_model_num_inputs(const kiln_model* model);
size_t kiln_model_num_outputs(const kiln_model* model);
kiln_status kiln_model_input(const kiln_model* model, size_t index, kiln_tensor_info* info, kiln_error** error);
kiln_status kiln_model_output(const kiln_model* model, size_t index, kiln_tensor_info* info, kiln_error** error);

/* Metadata recorded at compile time: "target", "cpu", "cpu_features",
 * "cuda_arch", "producer", "model_hash", "options", "content_hash",
 * "workspace_bytes", "kernel_count". NULL for an unknown key. */
const char* kiln_model_metadata(const kiln_model* model, const char* key);

typedef struct kiln_session_options {
  int32_t num_threads; /* 0: one per core */
} kiln_session_options;

kiln_status kiln_session_create(kiln_model* model, const kiln_session_options* options, kiln_session** session,
                                kiln_error** error);
void kiln_session_free(kiln_session* session);

#define KILN_MAX_RANK 16

/* A dense, row-major tensor. For inputs, `data` points to `bytes` bytes of
 * dtype elements with shape dims[0..rank). For outputs, either set `data` to
 * a buffer of `bytes` bytes to receive the result, or set it to NULL and the
 * run allocates one that the caller releases with kiln_free. The run fills in
 * an output's dtype, rank, dims and bytes either way. For an output whose
 * shape the run computes, a caller buffer is used when it holds at least the
 * computed size, and the run fails (naming the output and the size needed)
 * when it does not.
 *
 * Strings (KILN_STRING): an element is a `const char*` to NUL-terminated
 * UTF-8, and `bytes` counts the pointers (elements * sizeof(const char*)).
 * For inputs, every pointer must be non-NULL and its text valid UTF-8 (the
 * run refuses the input otherwise, naming it); the run only reads them. A
 * string output's `data` must be NULL: the run allocates one block holding
 * the pointer array followed by the characters, so the strings live exactly
 * as long as the block and one kiln_free(data) releases everything. Nothing
 * a run returns points into its inputs, the model or the session. */
typedef struct kiln_tensor {
  kiln_dtype dtype;
  int32_t rank;
  int64_t dims[KILN_MAX_RANK];
  void* data;
  size_t bytes;
} kiln_tensor;

/* Releases output memory that kiln_session_run allocated. */
void kiln_free(void* data);

/* Runs the model. Inputs are checked against the model (count, dtype, shape,
 * byte size, non-null data) and static outputs against their buffers' sizes
 * before anything runs. Shapes computed from input data are checked as the
 * run computes them: a value that makes no valid shape (a Reshape target
 * that does not hold the input's elements, a negative size, sizes whose
 * product overflows) stops the run with KILN_ERROR_RUNTIME and a message
 * naming the node; nothing is written past any buffer. */
kiln_status kiln_session_run(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                             kiln_tensor* outputs, size_t num_outputs, kiln_error** error);

/* Sequences and optionals at the graph boundary. A model input or output
 * is a tensor, a sequence of tensors, or an optional tensor or sequence;
 * kiln_session_run takes only models whose inputs and outputs are all
 * tensors, kiln_session_run_values takes every model. For a container,
 * kiln_model_input/output describe its tensors (dtype; rank 0 with no
 * dims when a sequence's elements may have any rank). */
#ifdef __cplusplus
typedef enum kiln_value_kind : int32_t { /* fixed in C++, as kiln_dtype */
#else
typedef enum kiln_value_kind {
#endif
  KILN_KIND_TENSOR = 0,
  KILN_KIND_SEQUENCE = 1,
  KILN_KIND_OPTIONAL_TENSOR = 2,
  KILN_KIND_OPTIONAL_SEQUENCE = 3
} kiln_value_kind;

/* The kind of input or output `index`, or -1 when out of range. */
int32_t kiln_model_input_kind(const kiln_model* model, size_t index);
int32_t kiln_model_output_kind(const kiln_model* model, size_t index);

/* One input or output of any kind. A tensor uses `tensor` (as in
 * kiln_session_run). A sequence is `count` tensors at `elements`, each with
 * its own dims (all of the model's dtype; `elements` may be NULL only when
 * count is 0). An optional sets `present` to 1 and fills `tensor` or
 * `count`/`elements`, or sets `present` to 0 and nothing else. Outputs: set
 * `tensor.data` to NULL or to a buffer as in kiln_session_run; the run fills
 * in kind, present, tensor or count/elements. A sequence output's element
 * array and each element's data are allocated by the run: release them,
 * and any tensor data the run allocated, with kiln_value_release. */
typedef struct kiln_value {
  kiln_value_kind kind;
  int32_t present;
  kiln_tensor tensor;
  size_t count;
  kiln_tensor* elements;
} kiln_value;

kiln_status kiln_session_run_values(kiln_session* session, const kiln_value* inputs, size_t num_inputs,
                                    kiln_value* outputs, size_t num_outputs, kiln_error** error);

/* Frees what a run allocated for output `value` (a sequence's elements and
 * their data, or tensor data) and clears it. Do not call it for a tensor
 * output whose buffer the caller supplied. */
void kiln_value_release(kiln_value* value);

/* Profiling. An artifact is a sequence of kernels (one or more fused graph
 * nodes each), run in the order listed here. */
typedef struct kiln_kernel_info {
  const char* name;   /* the generated kernel's name, unique in the artifact */
  const char* origin; /* the graph node(s) it implements */
  uint64_t flops;     /* estimated floating-point operations per run (a multiply-add counts two) */
} kiln_kernel_info;

size_t kiln_model_num_kernels(const kiln_model* model);
kiln_status kiln_model_kernel(const kiln_model* model, size_t index, kiln_kernel_info* info, kiln_error** error);

/* Runs like kiln_session_run and writes each kernel's wall time of this run,
 * in nanoseconds, to kernel_ns[k] for k in [0, num_kernels); num_kernels must
 * equal kiln_model_num_kernels. A kernel's time runs from the end of the
 * previous kernel (or the start of the generated code) to its own end, so the
 * times add up to the run's time in generated code. Timing costs one clock
 * read per kernel; ordinary runs pay one predicted branch per kernel. */
kiln_status kiln_session_run_profiled(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                                      kiln_tensor* outputs, size_t num_outputs, uint64_t* kernel_ns,
                                      size_t num_kernels, kiln_error** error);

/* Where a run's inputs and outputs live. A CUDA artifact's session takes
 * tensors in host memory (copied to and from the GPU by the run) or in
 * memory on the GPU the session runs on (a CUdeviceptr cast to void*:
 * cudaMalloc, cuMemAlloc, managed memory, a torch.cuda or CuPy array's data
 * pointer), which the run copies into and out of its own device buffers on
 * the GPU, with no trip through host memory and no host synchronization
 * beyond what `async` asks for. A CPU artifact takes host memory only. */
#ifdef __cplusplus
typedef enum kiln_memory : int32_t { /* fixed in C++, as kiln_dtype */
#else
typedef enum kiln_memory {
#endif
  KILN_MEMORY_HOST = 0,
  KILN_MEMORY_DEVICE = 1
} kiln_memory;

typedef struct kiln_run_options {
  kiln_memory input_memory;  /* where every input's data lies */
  kiln_memory output_memory; /* where every output's data lies; device outputs need data set (the run allocates host memory only) */
  /* Device memory only: the CUDA stream (a CUstream) the caller produces the
   * inputs and consumes the outputs on; NULL is the legacy default stream
   * (where PyTorch's default stream and cudaMemcpy work). The run starts after
   * the work already queued on it, and work queued on it later starts after
   * the run. */
  void* cuda_stream;
  /* 0: return once the outputs are written. 1 (both memories device): return
   * once the run is queued on cuda_stream; errors the GPU meets later show at
   * the caller's next synchronization, not here. */
  int32_t async;
} kiln_run_options;

/* Runs like kiln_session_run with inputs and outputs where `options` says
 * (NULL: all in host memory, exactly kiln_session_run). Device pointers are
 * checked before anything runs: each must be device memory of the session's
 * GPU holding `bytes` bytes (an error names the input or output); a CPU
 * artifact refuses device memory with KILN_ERROR_UNSUPPORTED. */
kiln_status kiln_session_run_with(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                                  kiln_tensor* outputs, size_t num_outputs, const kiln_run_options* options,
                                  kiln_error** error);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif /* KILN_RUNTIME_H_ */
