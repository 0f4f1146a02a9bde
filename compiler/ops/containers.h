// Sequences and optionals (ValueKind) in the Graph IR: what the container ops
// (sequence.cpp, optional.cpp), shape inference and the expand-containers pass
// share.
//
// Kiln expands containers at compile time: a sequence whose length and
// element positions are known when compiling is a list of tensor values, an
// optional whose presence is known is its value or nothing. These functions
// follow a container back through the ops that build it to that list.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/lower/program.h"
#include "compiler/ops/op_registry.h"

namespace kiln::ops {

// The most elements a sequence expanded at compile time may have (each one
// becomes a value, and SplitToSequence a node per piece).
inline constexpr int64_t kMaxStaticElements = int64_t{1} << 16;

// One element of a sequence known at compile time: the value that holds it,
// or null where the element exists only once the sequence is expanded (a
// SplitToSequence piece), and its type either way.
struct StaticElement {
  ir::Value* value = nullptr;
  ir::TensorType type;
};

// The elements of `sequence` when its length and each element's position are
// known at compile time (built by SequenceEmpty, SequenceConstruct,
// SplitToSequence, SequenceInsert/SequenceErase at constant positions,
// Identity, Optional/OptionalGetElement); nullopt otherwise (a graph input,
// a run-time position, a Loop result). Errors name the node whose constant
// position is out of range.
Expected<std::optional<std::vector<StaticElement>>> staticSequence(const ir::Value* sequence);

// Whether `optional` is known at compile time to hold a value (Optional with
// or without an input); nullopt otherwise.
std::optional<bool> staticPresence(const ir::Value* optional);

// The type a sequence of `elements` carries: their dtype, and the dims they
// all share (unknown where they differ; rank unknown where ranks differ).
ir::TensorType sequenceTypeOf(ir::DType dtype, const std::vector<ir::TensorType>& elements);

// A constant scalar position (SequenceAt, SequenceInsert, SequenceErase):
// its value, or nullopt when it is computed at run time.
std::optional<int64_t> constantPosition(const ir::Value* position);

// Shape inference's guard: a container reaches only the ops that take one.
// Returns true when it inferred `ctx`'s node itself (Identity of a container
// keeps the container's type); an error names the node and input when a
// container reaches an op that takes tensors only.
Expected<bool> inferContainerPassThrough(InferContext& ctx);

// "a sequence", "an optional tensor": a kind for error messages.
std::string withArticle(ir::ValueKind kind);

// Whether `op_type` (default domain) is one of the container ops.
bool isContainerOp(const ir::Node& node);

// ---- Containers at run time (a graph input or output, sequence.cpp) ----
// Whether `node` is an Identity of a sequence or optional.
bool isContainerIdentity(const ir::Node& node);
// Identity of a container: the output shares the input's table and presence.
Status lowerContainerIdentity(LowerContext& ctx);
// The container ops compiled over run-time containers (run_time_containers.cpp).
Status lowerSequenceEmpty(LowerContext& ctx);
Status lowerSequenceConstruct(LowerContext& ctx);
Status lowerSequenceInsert(LowerContext& ctx);
Status lowerSequenceLength(LowerContext& ctx);
Status lowerSequenceAt(LowerContext& ctx);
Status lowerSequenceErase(LowerContext& ctx);

// ---- Sequences through control flow (control_flow_lower.cpp) ----
// Whether a program buffer holds a sequence table (or an optional one).
bool isSequenceBuffer(const lower::ProgramBuffer& buffer);
// A new intermediate sequence buffer with `like`'s element dtype.
int addSequenceBuffer(lower::Program& program, const std::string& name, const lower::ProgramBuffer& like);
// result = sequence, a step before the next call appended to the program.
void appendSequenceAlias(lower::Program& program, int result, int sequence, const std::string& origin);
// Insertions from call `first_call` on copy their tensor's data (a loop
// body's buffers are overwritten by the next iteration).
void copyInsertedData(lower::Program& program, int first_call);
Status lowerOptional(LowerContext& ctx);
Status lowerOptionalHasElement(LowerContext& ctx);
Status lowerOptionalGetElement(LowerContext& ctx);

}  // namespace kiln::ops
