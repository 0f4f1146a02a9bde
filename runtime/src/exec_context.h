// The calling convention between the runtime and generated code (ABI
// version artifact::kAbiVersion). codegen/cpu/emit_module.cpp builds the same
// struct layout in LLVM IR; change both together and bump kAbiVersion.
//
// Entry point of every artifact (its name is in the model description):
//   int32_t entry(const kiln_exec_context* ctx, void* const* inputs,
//                 void* const* outputs, void* workspace);
// `workspace` is 64-byte aligned and workspace_bytes long; 0 means success,
// k > 0 that run-time check k - 1 failed (its message is in the description),
// -1 that `alloc` refused a buffer.
#pragma once

#include <cstdint>

extern "C" {

typedef void (*kiln_task_fn)(void* closure, int64_t begin, int64_t end);
typedef void (*kiln_kernel_done_fn)(void* profiler, int32_t kernel_index);
typedef void* (*kiln_alloc_fn)(void* allocator, int32_t output_index, const int64_t* dims, int32_t rank,
                                int32_t element_bytes, const char* name);

struct kiln_exec_context {
  uint32_t abi_version;
  uint32_t num_threads;
  void* pool;
  // Runs fn(closure, begin, end) over disjoint ranges covering [0, count),
  // possibly on several threads, and returns when all are done.
  void (*parallel_for)(void* pool, int64_t count, kiln_task_fn fn, void* closure);
  // Profiling (ABI 2): when not NULL, the entry point calls
  // kernel_done(profiler, k) on the calling thread right after kernel k (in
  // execution order, the model description's kernel list) has finished.
  // NULL for ordinary runs, which then pay one predicted branch per kernel.
  kiln_kernel_done_fn kernel_done;
  void* profiler;
  // Run-time shapes (ABI 3), per run. `slots`: the dim slot table
  // (slot_count int64s of the description; NULL when 0): the runtime fills
  // the input symbols' slots, generated code the rest; slot 0 receives
  // check + 1 when a run-time check fails, and the entry point returns it.
  // `alloc` gives memory to a buffer whose dims are known only now: an
  // output (output_index >= 0: the caller's buffer if large enough, else
  // a new one) or an intermediate (-1, freed after the run). It checks the
  // size and returns NULL, keeping the reason, to refuse; the entry point
  // then returns -1.
  int64_t* slots;
  kiln_alloc_fn alloc;
  void* allocator;
  // Strings (ABI 4; models with KILN_STRING values): the functions generated code
  // calls for string primitives (string_fns.h; NULL for other models) and
  // the run's pool, which owns every string they return until the run ends.
  const struct kiln_string_fns* strings;
  void* string_pool;
  // Weights (ABI 6): the artifact's weights blob (ModelDesc::weights_bytes),
  // mapped read-only; generated code reads a large weight at its offset in
  // it. NULL when the artifact has none.
  const void* weights;
};

// Sequences (ABI 5). A sequence input is passed in `inputs` as a
// `const kiln_sequence*` (NULL for an absent optional sequence); a sequence
// output's `outputs` entry points to a `const kiln_sequence*` that the entry
// point sets (NULL: an absent optional, or the empty sequence). Tables the generated code builds
// are allocated through `alloc` (intermediates, alive until the run ends);
// the runtime copies output elements out before it frees them. An element's
// dims are `rank` int64s; its data has the sequence's dtype.
struct kiln_sequence_element {
  void* data;
  const int64_t* dims;
  int64_t rank;
};
struct kiln_sequence {
  int64_t count;
  const struct kiln_sequence_element* elements;
};

typedef int32_t (*kiln_entry_fn)(const kiln_exec_context* ctx, void* const* inputs, void* const* outputs,
                                 void* workspace);
}
