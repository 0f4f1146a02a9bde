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

struct ProgramBuffer {
  enum class Kind { kInput, kOutput, kConstant, kIntermediate };
  std::string name;
  ir::DType dtype = ir::DType::kFloat32;
  std::vector<int64_t> dims;
  Kind kind = Kind::kIntermediate;
  int io_index = -1;                    // position among inputs or outputs
  std::optional<ir::Tensor> constant;   // kConstant: the data, already in kernel layout
  int64_t workspace_offset = -1;        // kIntermediate: byte offset in the arena

  int64_t elementCount() const;
  int64_t byteSize() const;
};

// One kernel invocation; args[i] is the program buffer bound to kernel param i.
struct KernelCall {
  kir::Kernel kernel;
  std::vector<int> args;
};

struct TensorSignature {
  std::string name;
  ir::DType dtype = ir::DType::kFloat32;
  ir::Shape shape;
};

struct Program {
  std::vector<ProgramBuffer> buffers;
  std::vector<KernelCall> calls;
  std::vector<TensorSignature> inputs;
  std::vector<TensorSignature> outputs;
  std::vector<int> input_buffers;   // buffer index of each input
  std::vector<int> output_buffers;  // buffer index of each output
  int64_t workspace_bytes = 0;      // arena size for intermediates

  int addBuffer(ProgramBuffer buffer);
  // Every kernel param bound to a buffer of the same dtype and element count,
  // every intermediate placed in the arena.
  Status verify() const;
};

std::string toString(const Program& program);

}  // namespace kiln::lower
