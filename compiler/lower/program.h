// A lowered model: kernels in execution order over a flat list of buffers.
// This is what every backend consumes and what the reference evaluator runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/tensor.h"
#include "compiler/kir/kir.h"

namespace kiln::lower {

// While a node is lowered, the dim slot of an output dim its op has yet to
// compute (lowering refuses a node that leaves one).
inline constexpr int kPendingDim = -2;

struct ProgramBuffer {
  enum class Kind { kInput, kOutput, kConstant, kIntermediate };
  std::string name;
  ir::DType dtype = ir::DType::kFloat32;
  std::vector<int64_t> dims;
  Kind kind = Kind::kIntermediate;
  int io_index = -1;                    // position among inputs or outputs
  std::optional<ir::Tensor> constant;   // kConstant: the data, already in kernel layout
  int64_t workspace_offset = -1;        // kIntermediate: byte offset in the arena; -1 when dynamic
  // Empty when `dims` are exact; else one per dim: the dim slot holding its
  // size at run time, or -1 where `dims` is exact. A dynamic intermediate is
  // allocated at run time when its first kernel runs, a dynamic output is
  // allocated (or checked against the caller's buffer) then.
  std::vector<int> dim_slots;
  // Containers at the graph boundary. A sequence (or optional sequence)
  // buffer holds no tensor data: in generated code it is a pointer to a
  // `kiln_sequence` (exec_context.h), NULL when an optional is absent; only
  // container steps read or write it. An optional tensor is a tensor
  // buffer of its declared dims. An optional's `present_slot` holds 1 when
  // it has a value: filled by the runtime for inputs, read by it for outputs.
  ir::ValueKind container = ir::ValueKind::kTensor;
  int present_slot = -1;

  int64_t elementCount() const;
  int64_t byteSize() const;
  bool isDynamic() const;
};

// One kernel invocation; args[i] is the program buffer bound to kernel param i.
struct KernelCall {
  kir::Kernel kernel;
  std::vector<int> args;
};

// Control flow (If, Loop, Scan): calls [first, end) run only while dim slot
// `cond_slot` is nonzero, tested before each pass; a region that does not
// repeat runs at most once (a guarded branch). The kernels inside a region
// keep its slots up to date (a loop's body recomputes its condition).
// Regions nest properly and are listed by `first`, an enclosing region
// before the regions inside it.
struct CallRegion {
  int first = 0;
  int end = 0;
  int cond_slot = -1;
  bool repeat = false;
  std::string origin;  // the graph node it came from, for errors and listings
};

struct TensorSignature {
  std::string name;
  ir::DType dtype = ir::DType::kFloat32;
  ir::Shape shape;  // for a container: the shape of its tensors (per element for a sequence)
  ir::ValueKind kind = ir::ValueKind::kTensor;
};

// A step on sequences, run by the entry point between kernels (generated
// code, not a kernel: it moves element references, never element data).
// Sequences are immutable: each step that changes one makes a new table.
struct ContainerStep {
  enum class Kind {
    kAlias,   // result = sequence (Identity, OptionalGetElement)
    kInsert,  // result = sequence with `tensor` inserted at `position` (the end when -1)
    kLength,  // result (an int64 scalar buffer) = the element count
    kAt,      // result (a tensor buffer) = a copy of the element at `position`, its dims into the result's dim slots
    kErase,   // result = sequence without the element at `position` (the last when -1)
  };
  Kind kind = Kind::kAlias;
  int before_call = 0;  // runs before call `before_call` (after the last call when equal to calls.size())
  int result = -1;
  int sequence = -1;
  int tensor = -1;
  int position = -1;    // an int32 or int64 scalar or 1-element buffer; negative values count from the end
  int check = -1;       // kInsert, kAt, kErase: the run-time check failed by a position out of range,
  int position_slot = -1;  // which reads the position from this slot
  int count_slot = -1;     // and the sequence's length from this one (kInsert, kAt, kErase)
  // kInsert: the element takes a copy of the tensor's data, in memory alive
  // to the end of the run, instead of referring to its buffer (a buffer a
  // loop iteration overwrites or a run-time-sized one that may move).
  bool copy_data = false;
  // kAt: the run-time check failed by an element whose rank or static dims
  // differ from the result's.
  int shape_check = -1;
  std::string origin;   // the graph node, for listings
};

struct Program {
  std::vector<ProgramBuffer> buffers;
  std::vector<KernelCall> calls;
  std::vector<TensorSignature> inputs;
  std::vector<TensorSignature> outputs;
  std::vector<int> input_buffers;   // buffer index of each input
  std::vector<int> output_buffers;  // buffer index of each output
  int64_t workspace_bytes = 0;      // arena size for intermediates (the static ones)
  // Dynamic programs: the number of dim slots (slot 0 is the error slot, so
  // 0 or >= 2), and the message of each run-time check (kCheck stages), in
  // which "{$k}" stands for slot k's value when the check failed.
  int num_slots = 0;
  std::vector<std::string> checks;
  std::vector<CallRegion> regions;
  std::vector<ContainerStep> container_steps;  // in execution order

  bool isDynamic() const { return num_slots > 0; }
  int addSlot() { return num_slots == 0 ? (num_slots = 2) - 1 : num_slots++; }
  int addCheck(std::string message) {
    checks.push_back(std::move(message));
    return static_cast<int>(checks.size() - 1);
  }

  int addBuffer(ProgramBuffer buffer);
  // The innermost region holding call `call`, or -1 at the top level.
  int innermostRegion(int call) const;
  // Every kernel param bound to a buffer of the same dtype and element count,
  // every intermediate placed in the arena.
  Status verify() const;
};

std::string toString(const Program& program);

}  // namespace kiln::lower
