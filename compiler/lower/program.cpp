#include "compiler/lower/program.h"

#include <sstream>

namespace kiln::lower {

int64_t ProgramBuffer::elementCount() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

int64_t ProgramBuffer::byteSize() const { return elementCount() * ir::byteSize(dtype); }

bool ProgramBuffer::isDynamic() const {
  for (int s : dim_slots)
    if (s >= 0) return true;
  return false;
}

int Program::addBuffer(ProgramBuffer buffer) {
  buffers.push_back(std::move(buffer));
  return static_cast<int>(buffers.size() - 1);
}

int Program::innermostRegion(int call) const {
  int inner = -1;
  for (size_t r = 0; r < regions.size(); ++r)
    if (regions[r].first <= call && call < regions[r].end) inner = static_cast<int>(r);
  return inner;
}

// Regions inside the calls, ordered by start, properly nested, each testing a slot.
static Status verifyRegions(const Program& program) {
  std::vector<const CallRegion*> open;
  int previous = 0;
  for (const CallRegion& r : program.regions) {
    std::string name = "control-flow region of " + r.origin;
    if (r.first < previous || r.first >= r.end || r.end > static_cast<int>(program.calls.size()))
      return internalError(name + " has calls [" + std::to_string(r.first) + ", " + std::to_string(r.end) +
                           ") out of order, empty or out of range");
    if (r.cond_slot <= kir::kErrorSlot || r.cond_slot >= program.num_slots)
      return internalError(name + " tests slot " + std::to_string(r.cond_slot) + ", which the program lacks");
    while (!open.empty() && open.back()->end <= r.first) open.pop_back();
    if (!open.empty() && r.end > open.back()->end) return internalError(name + " overlaps the region around it");
    open.push_back(&r);
    previous = r.first;
  }
  return Status::ok();
}

Status Program::verify() const {
  KILN_RETURN_IF_ERROR(verifyRegions(*this));
  for (const KernelCall& call : calls) {
    const kir::Kernel& k = call.kernel;
    if (call.args.size() != k.params.size())
      return internalError("kernel " + k.name + " has " + std::to_string(k.params.size()) + " params but " +
                           std::to_string(call.args.size()) + " arguments");
    for (size_t i = 0; i < k.params.size(); ++i) {
      int arg = call.args[i];
      if (arg < 0 || arg >= static_cast<int>(buffers.size()))
        return internalError("kernel " + k.name + ": argument " + std::to_string(i) + " is not a buffer");
      const ProgramBuffer& b = buffers[arg];
      bool dynamic = b.isDynamic() || k.params[i].isDynamic();
      if (b.dtype != k.params[i].dtype || (!dynamic && b.elementCount() != k.params[i].elementCount()))
        return internalError("kernel " + k.name + ": param '" + k.params[i].name + "' does not match buffer '" +
                             b.name + "'");
      if (k.params[i].written && (b.kind == ProgramBuffer::Kind::kConstant || b.kind == ProgramBuffer::Kind::kInput))
        return internalError("kernel " + k.name + " writes read-only buffer '" + b.name + "'");
    }
  }
  for (const ProgramBuffer& b : buffers) {
    if (b.kind != ProgramBuffer::Kind::kIntermediate || b.isDynamic()) continue;
    if (b.workspace_offset < 0 || b.workspace_offset + b.byteSize() > workspace_bytes)
      return internalError("buffer '" + b.name + "' is not placed inside the arena");
  }
  return Status::ok();
}

std::string toString(const Program& program) {
  static constexpr const char* kKinds[] = {"input", "output", "const", "temp"};
  std::ostringstream os;
  os << "program: " << program.calls.size() << " kernels, arena " << program.workspace_bytes << " bytes";
  if (program.isDynamic()) os << ", " << program.num_slots << " dim slots";
  os << "\n";
  for (size_t i = 0; i < program.checks.size(); ++i) os << "  check #" << i << ": " << program.checks[i] << "\n";
  for (size_t i = 0; i < program.buffers.size(); ++i) {
    const ProgramBuffer& b = program.buffers[i];
    os << "  %" << i << " " << kKinds[static_cast<int>(b.kind)] << " '" << b.name << "' " << ir::name(b.dtype)
       << "[";
    for (size_t d = 0; d < b.dims.size(); ++d) {
      os << (d ? "x" : "");
      if (d < b.dim_slots.size() && b.dim_slots[d] >= 0) os << '$' << b.dim_slots[d];
      else os << b.dims[d];
    }
    os << "]";
    if (b.kind == ProgramBuffer::Kind::kIntermediate)
      os << (b.isDynamic() ? " @run-time" : " @" + std::to_string(b.workspace_offset));
    os << "\n";
  }
  for (const CallRegion& r : program.regions)
    os << "  " << (r.repeat ? "while" : "if") << " $" << r.cond_slot << ": kernels [" << r.first << ", " << r.end
       << ") of " << r.origin << "\n";
  for (const KernelCall& call : program.calls) {
    os << kir::toString(call.kernel) << "  args:";
    for (int a : call.args) os << " %" << a;
    os << "\n";
  }
  return os.str();
}

}  // namespace kiln::lower
