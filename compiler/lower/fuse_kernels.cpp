#include "compiler/lower/fuse_kernels.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "compiler/kir/affine.h"
#include "compiler/kir/substitute.h"
#include "compiler/lower/lower_graph.h"

namespace kiln::lower {
namespace {

using kir::Expr;
using kir::ExprNode;
using kir::isVar;

constexpr int kMaxLoadsPerElement = 2;
// Bounds on the merged expression (counted as a tree) and on what a consumer
// may recompute per element when it broadcasts the producer.
constexpr int64_t kMaxFusedTreeSize = 400;
constexpr int64_t kMaxBroadcastTreeSize = 12;

int64_t product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

bool anyNode(const Expr& e, const std::function<bool(const ExprNode&)>& pred) {
  if (pred(*e)) return true;
  return std::any_of(e->operands.begin(), e->operands.end(), [&](const Expr& o) { return anyNode(o, pred); });
}

bool containsReduce(const Expr& e) {
  return anyNode(e, [](const ExprNode& n) { return n.kind == ExprNode::Kind::kReduce; });
}

// The kernel's stage when it is one pure element definition: one buffer
// written, `t[axes] = value(axes)` over exactly t's shape, `value` not
// reading t. Such a stage can be recomputed anywhere one element is needed.
const kir::Stage* pureDefinition(const kir::Kernel& kernel) {
  if (kernel.stages.size() != 1) return nullptr;
  const kir::Stage& stage = kernel.stages[0];
  for (size_t i = 0; i < kernel.params.size(); ++i)
    if (kernel.params[i].written != (static_cast<int>(i) == stage.buffer)) return nullptr;
  const std::vector<int64_t>& shape = kernel.params[stage.buffer].shape;
  if (stage.axes.size() != shape.size() || stage.store_index.size() != shape.size()) return nullptr;
  for (size_t i = 0; i < shape.size(); ++i)
    if (stage.axes[i].extent != shape[i] || !isVar(stage.store_index[i], stage.axes[i].id)) return nullptr;
  bool reads_self = anyNode(stage.value, [&](const ExprNode& n) {
    return n.kind == ExprNode::Kind::kLoad && n.buffer == stage.buffer;
  });
  return reads_self ? nullptr : &stage;
}

// `epilogue(sum(a * b))` with one float32 sum: what MatMul, Gemm and Conv
// lower to (and the GEMM path on CUDA runs).
bool isContraction(const Expr& value) {
  int sums = 0;
  bool product = true;
  anyNode(value, [&](const ExprNode& n) {
    if (n.kind != ExprNode::Kind::kReduce) return false;
    ++sums;
    product = product && static_cast<kir::ReduceOp>(n.op) == kir::ReduceOp::kSum && n.dtype == ir::DType::kFloat32 &&
              n.operands[0]->kind == ExprNode::Kind::kBinary &&
              static_cast<kir::BinaryOp>(n.operands[0]->op) == kir::BinaryOp::kMul;
    return false;
  });
  return sums == 1 && product;
}

// Whether the pure definition `stage` only permutes its input's axes:
// `t[axes] = x[a permutation of axes]`, same dtype.
bool isPermutation(const kir::Stage& stage) {
  const Expr& v = stage.value;
  if (v->kind != ExprNode::Kind::kLoad || v->operands.size() != stage.axes.size()) return false;
  std::set<int> seen;
  for (const Expr& index : v->operands) {
    bool axis = std::any_of(stage.axes.begin(), stage.axes.end(), [&](const kir::IterVar& a) { return isVar(index, a.id); });
    if (!axis || !seen.insert(index->var_id).second) return false;
  }
  return true;
}

// Whether permutation `stage` reads its innermost axis's variable as the
// innermost index: it moves only the outer axes.
bool keepsInnermost(const kir::Stage& stage) {
  return !stage.axes.empty() && isVar(stage.value->operands.back(), stage.axes.back().id);
}

// Whether every load of `params` in `e` indexes with plain variables (or
// zeros) a parameter of `shape`: inlining a permutation there leaves loads
// indexed by plain variables, which stay strided matrices for a GEMM.
bool plainReads(const kir::Kernel& kernel, const Expr& e, const std::set<int>& params,
                const std::vector<int64_t>& shape) {
  if (e->kind == ExprNode::Kind::kLoad && params.count(e->buffer)) {
    if (kernel.params[e->buffer].shape != shape) return false;
    for (const Expr& index : e->operands)
      if (index->kind != ExprNode::Kind::kVar && !(index->kind == ExprNode::Kind::kConst && index->value == 0))
        return false;
  }
  return std::all_of(e->operands.begin(), e->operands.end(),
                     [&](const Expr& o) { return plainReads(kernel, o, params, shape); });
}

// How a consumer kernel reads the parameters bound to the fused buffer.
struct ReadProfile {
  int loads = 0;            // load sites over all stages
  int load_nodes = 0;       // distinct load nodes among them
  std::set<const ExprNode*> seen;
  bool in_reduce = false;   // some load sits inside a reduction (or a store index)
  bool at_own_axes = true;  // every load indexes exactly its stage's axes
  int64_t max_points = 0;   // largest iteration space of a reading stage
  int reading_stages = 0;   // stages with at least one load
};

void profileLoads(const kir::Kernel& kernel, const kir::Stage& stage, const Expr& e, const std::set<int>& params,
                  bool in_reduce, ReadProfile& profile, bool& reads) {
  if (e->kind == ExprNode::Kind::kReduce) in_reduce = true;
  if (e->kind == ExprNode::Kind::kLoad && params.count(e->buffer)) {
    reads = true;
    ++profile.loads;
    if (profile.seen.insert(e.operator->()).second) ++profile.load_nodes;
    profile.in_reduce = profile.in_reduce || in_reduce;
    const std::vector<int64_t>& shape = kernel.params[e->buffer].shape;
    bool at_axes = e->operands.size() == stage.axes.size();
    for (size_t i = 0; at_axes && i < stage.axes.size(); ++i)
      at_axes = kir::indexesAxis(e->operands[i], stage.axes[i]) && stage.axes[i].extent == shape[i];
    profile.at_own_axes = profile.at_own_axes && at_axes;
  }
  for (const Expr& operand : e->operands) profileLoads(kernel, stage, operand, params, in_reduce, profile, reads);
}

ReadProfile profileReads(const kir::Kernel& kernel, const std::set<int>& params) {
  ReadProfile profile;
  for (const kir::Stage& stage : kernel.stages) {
    bool reads = false;
    for (const Expr& index : stage.store_index) profileLoads(kernel, stage, index, params, true, profile, reads);
    profileLoads(kernel, stage, stage.value, params, false, profile, reads);
    int64_t points = 1;
    for (const kir::IterVar& v : stage.axes) points *= v.extent;
    if (reads) profile.max_points = std::max(profile.max_points, points);
    if (reads) ++profile.reading_stages;
  }
  return profile;
}

// Index expressions into a buffer viewed as `from` -> the same element's
// indices in the view `to` (same element count). Views that differ only by
// unit dims map directly; others go through the linear offset.
// Iteration-variable extents of a kernel, by variable id.
using Extents = std::map<int, int64_t>;

void collectExtents(const Expr& e, Extents& extents) {
  for (const kir::IterVar& v : e->reduce_vars) extents[v.id] = v.extent;
  for (const Expr& operand : e->operands) collectExtents(operand, extents);
}

Extents extentsOf(const kir::Kernel& kernel) {
  Extents extents;
  for (const kir::Stage& stage : kernel.stages) {
    for (const kir::IterVar& v : stage.axes) extents[v.id] = v.extent;
    collectExtents(stage.value, extents);
  }
  return extents;
}

// coeff * var, with the variable's extent; a linear index is a sum of these.
struct Term {
  Expr var;
  int64_t extent = 1;
  int64_t coeff = 1;
};

Expr sumOfTerms(const std::vector<Term>& terms) {
  Expr sum;
  for (const Term& t : terms) {
    Expr term = t.coeff == 1 ? t.var : t.var * Expr::index(t.coeff);
    sum = sum.valid() ? sum + term : term;
  }
  return sum.valid() ? sum : Expr::index(0);
}

int64_t maxOf(const std::vector<Term>& terms) {
  int64_t max = 0;
  for (const Term& t : terms) max += t.coeff * (t.extent - 1);
  return max;
}

// (sum(terms) / stride) % size (no modulo when `size` is 0), every term
// non-negative, with as little division as the variables' ranges allow:
// terms whose coefficient `stride` divides form the quotient, the others
// (`low`) add `sum(low) / stride` unless they stay below `stride`; quotient
// terms that are multiples of `size` vanish under the modulo, which is left
// out when the rest stays below `size`. A reshape between views of plain
// axes then gives plain axes (a fused MatMul -> Reshape keeps an affine
// index the contraction codegen recognises), and a channel shuffle's
// reshapes `c / 2` and `c % 2` of the channel c alone, not of the whole
// flat index.
Expr divModOfTerms(const std::vector<Term>& terms, int64_t stride, int64_t size) {
  std::vector<Term> quotient, low;
  for (const Term& t : terms) {
    if (t.coeff % stride == 0) quotient.push_back({t.var, t.extent, t.coeff / stride});
    else low.push_back(t);
  }
  if (maxOf(low) >= stride) quotient.push_back({sumOfTerms(low) / Expr::index(stride), maxOf(low) / stride + 1, 1});
  if (size == 0) return sumOfTerms(quotient);
  std::vector<Term> kept;
  for (const Term& t : quotient)
    if (t.coeff % size != 0) kept.push_back(t);
  return maxOf(kept) < size ? sumOfTerms(kept) : sumOfTerms(kept) % Expr::index(size);
}

std::vector<Expr> translateIndex(const std::vector<Expr>& index, const std::vector<int64_t>& from,
                                 const std::vector<int64_t>& to, const Extents& extents) {
  if (from == to) return index;
  std::vector<int64_t> from_dims, to_dims;
  std::vector<Expr> kept;
  for (size_t i = 0; i < from.size(); ++i)
    if (from[i] != 1) from_dims.push_back(from[i]), kept.push_back(index[i]);
  for (int64_t d : to)
    if (d != 1) to_dims.push_back(d);
  std::vector<Expr> out;
  if (from_dims == to_dims) {
    size_t k = 0;
    for (int64_t d : to) out.push_back(d == 1 ? Expr::index(0) : kept[k++]);
    return out;
  }
  Expr linear = Expr::index(0);
  std::vector<Term> terms;  // the linear offset as terms, while every index is a plain variable
  bool plain = true;
  int64_t stride = 1;
  for (size_t i = from.size(); i-- > 0;) {
    if (from[i] != 1) {
      linear = (stride == 1 ? index[i] : index[i] * Expr::index(stride)) + linear;
      bool zero = index[i]->kind == ExprNode::Kind::kConst && index[i]->value == 0;
      auto extent = index[i]->kind == ExprNode::Kind::kVar ? extents.find(index[i]->var_id) : extents.end();
      plain = plain && (zero || extent != extents.end());
      if (plain && !zero) terms.push_back({index[i], extent->second, stride});
    }
    stride *= from[i];
  }
  stride = 1;
  out.resize(to.size());
  for (size_t j = to.size(); j-- > 0;) {
    if (to[j] == 1) out[j] = Expr::index(0);
    else if (plain)
      out[j] = divModOfTerms(terms, stride, j == 0 ? 0 : to[j]);
    else {
      Expr e = stride == 1 ? linear : linear / Expr::index(stride);
      out[j] = j == 0 ? e : e % Expr::index(to[j]);
    }
    stride *= to[j];
  }
  return out;
}

// The elements a store stage may write, per dimension of its buffer: the
// [lowest, highest] index, from affine store indices over the axes' extents.
using Box = std::vector<std::pair<int64_t, int64_t>>;

std::optional<Box> storeBox(const kir::Stage& stage) {
  Extents extents;
  for (const kir::IterVar& v : stage.axes) extents[v.id] = v.extent;
  Box box;
  for (const Expr& index : stage.store_index) {
    std::optional<kir::Affine> a = kir::affine(index);
    if (!a) return std::nullopt;
    int64_t lo = a->offset, hi = a->offset;
    for (auto [var, coeff] : a->coeff) {
      auto extent = extents.find(var);
      if (extent == extents.end()) return std::nullopt;
      (coeff < 0 ? lo : hi) += coeff * (extent->second - 1);
    }
    box.emplace_back(lo, hi);
  }
  return box;
}

// Whether two boxes of one buffer share no element.
bool disjoint(const Box& a, const Box& b) {
  for (size_t d = 0; d < a.size() && d < b.size(); ++d)
    if (a[d].second < b[d].first || b[d].second < a[d].first) return true;
  return false;
}

class KernelFuser {
 public:
  KernelFuser(Program& program, const FusionOptions& options)
      : program_(program), options_(options), users_(program.buffers.size()) {
    for (int c = 0; c < static_cast<int>(program.calls.size()); ++c)
      for (int b : program.calls[c].args) users_[b].insert(c);
  }

  void run() {
    removed_.assign(program_.calls.size(), false);
    // Until nothing changes: inlining one producer can leave an earlier one
    // with a single consumer (Conv -> Sigmoid -> Mul(conv, sigmoid): once
    // Sigmoid is inlined, Mul is the Conv's only reader).
    for (bool changed = true; changed;) {
      changed = false;
      for (int p = 0; p < static_cast<int>(program_.calls.size()); ++p) {
        if (removed_[p]) continue;
        int c = fusableConsumer(p);
        if (c >= 0) {
          inlineProducer(p, c);
          changed = true;
        } else if (absorbView(p) || absorbCopy(p)) {
          changed = true;
        }
      }
    }
    std::vector<KernelCall> kept;
    std::vector<int> kept_before(program_.calls.size() + 1, 0);  // new index of call i
    for (size_t i = 0; i < program_.calls.size(); ++i) {
      kept_before[i] = static_cast<int>(kept.size());
      if (!removed_[i]) kept.push_back(std::move(program_.calls[i]));
    }
    kept_before[program_.calls.size()] = static_cast<int>(kept.size());
    program_.calls = std::move(kept);
    for (CallRegion& r : program_.regions) {
      r.first = kept_before[r.first];
      r.end = kept_before[r.end];
    }
  }

 private:
  bool writes(int call, int buffer) const {
    const KernelCall& k = program_.calls[call];
    for (size_t i = 0; i < k.args.size(); ++i)
      if (k.args[i] == buffer && k.kernel.params[i].written) return true;
    return false;
  }

  std::set<int> paramsBoundTo(const KernelCall& call, int buffer) const {
    std::set<int> params;
    for (size_t i = 0; i < call.args.size(); ++i)
      if (call.args[i] == buffer) params.insert(static_cast<int>(i));
    return params;
  }

  // The one later call that `p` can be inlined into, or -1.
  int fusableConsumer(int p) const {
    const KernelCall& producer = program_.calls[p];
    // Kernels with run-time extents or shape steps stay as they are: the
    // view arithmetic below compares static sizes.
    if (kir::isDynamic(producer.kernel)) return -1;
    const kir::Stage* stage = pureDefinition(producer.kernel);
    if (!stage) return -1;
    int b = producer.args[stage->buffer];
    if (program_.buffers[b].kind != ProgramBuffer::Kind::kIntermediate) return -1;
    if (paramsBoundTo(producer, b).size() != 1) return -1;
    const std::set<int>& users = users_[b];
    if (users.size() != 2 || *users.begin() != p) return -1;
    int c = *users.rbegin();
    // Both run under the same control flow (an If branch, a loop body).
    if (program_.innermostRegion(p) != program_.innermostRegion(c)) return -1;
    const KernelCall& consumer = program_.calls[c];
    if (kir::isDynamic(consumer.kernel)) return -1;
    std::set<int> params = paramsBoundTo(consumer, b);
    for (int i : params)
      if (consumer.kernel.params[i].written) return -1;
    // The producer's operands must hold the same data when the consumer runs.
    for (size_t i = 0; i < producer.args.size(); ++i) {
      if (static_cast<int>(i) == stage->buffer) continue;
      for (int u : users_[producer.args[i]])
        if (u > p && u <= c && writes(u, producer.args[i])) return -1;
    }
    ReadProfile reads = profileReads(consumer.kernel, params);
    if (reads.loads == 0) return -1;
    if (reads.in_reduce)
      return permutationIntoReduction(producer, *stage, consumer, params) ||
                     scaleIntoContraction(*stage, consumer, params, reads)
                 ? c
                 : -1;
    if (containsReduce(stage->value)) {
      // Read once, or twice at the same element of one float32 stage (SiLU:
      // `x * sigmoid(x)`): both reads then share one inlined sum (see
      // inlineProducer), which codegen tiles like any other epilogue(sum).
      // Reads are counted as load nodes there: a lowering that uses one load
      // several times (Gelu's tanh form: x five times) reads it once.
      bool shared = reads.load_nodes <= kMaxLoadsPerElement && reads.reading_stages == 1 &&
                    stage->value.dtype() == ir::DType::kFloat32;
      if ((reads.loads != 1 && !shared) || !reads.at_own_axes) return -1;
      // One reduction per stage: two (a residual Add of two convolutions)
      // would leave neither in the `epilogue(sum)` form codegen tiles.
      for (const kir::Stage& s : consumer.kernel.stages)
        if (containsReduce(s.value)) return -1;
    } else {
      if (reads.loads > kMaxLoadsPerElement) return -1;
      int64_t size = kir::treeSize(stage->value, kMaxBroadcastTreeSize + 1);
      if (reads.max_points > product(producer.kernel.params[stage->buffer].shape) && size > kMaxBroadcastTreeSize)
        return -1;
    }
    for (const kir::Stage& s : consumer.kernel.stages)
      if (kir::treeSize(s.value, kMaxFusedTreeSize) +
              reads.loads * kir::treeSize(stage->value, kMaxFusedTreeSize) >= kMaxFusedTreeSize)
        return -1;
    return c;
  }

  // A Transpose read inside a reduction (options_.permutations_into_reductions):
  // every read a plain-variable load at the producer's shape, so the merged
  // loads read the producer's input at permuted plain variables.
  bool permutationIntoReduction(const KernelCall& producer, const kir::Stage& stage, const KernelCall& consumer,
                                const std::set<int>& params) const {
    if (!options_.permutations_into_reductions || !isPermutation(stage)) return false;
    if (options_.permutations_keep_innermost && !keepsInnermost(stage)) return false;
    const std::vector<int64_t>& shape = producer.kernel.params[stage.buffer].shape;
    for (const kir::Stage& s : consumer.kernel.stages) {
      for (const Expr& index : s.store_index)
        if (anyNode(index, [&](const ExprNode& n) { return n.kind == ExprNode::Kind::kLoad && params.count(n.buffer); }))
          return false;
      if (!plainReads(consumer.kernel, s.value, params, shape)) return false;
    }
    return true;
  }

  // A product of two loads, `x[axes] * s[some axes]` (EfficientNet's
  // squeeze-and-excitation scale), read once, as the activation operand of
  // a contraction against a constant weight (options_.scales_into_contractions):
  // inlined there it costs one multiply per broadcast operand, where as a
  // kernel it writes and reads back all of x.
  bool scaleIntoContraction(const kir::Stage& stage, const KernelCall& consumer, const std::set<int>& params,
                            const ReadProfile& reads) const {
    if (!options_.scales_into_contractions || reads.loads != 1) return false;
    const Expr& v = stage.value;
    if (v->kind != ExprNode::Kind::kBinary || static_cast<kir::BinaryOp>(v->op) != kir::BinaryOp::kMul ||
        v.dtype() != ir::DType::kFloat32)
      return false;
    for (const Expr& operand : v->operands) {
      if (operand->kind != ExprNode::Kind::kLoad) return false;
      for (const Expr& index : operand->operands)
        if (index->kind != ExprNode::Kind::kVar && !(index->kind == ExprNode::Kind::kConst && index->value == 0))
          return false;
    }
    // The one read is an operand of `sum(read * weight)`.
    bool found = false;
    for (const kir::Stage& s : consumer.kernel.stages)
      anyNode(s.value, [&](const ExprNode& n) {
        if (n.kind != ExprNode::Kind::kReduce || static_cast<kir::ReduceOp>(n.op) != kir::ReduceOp::kSum) return false;
        const ExprNode& body = *n.operands[0];
        if (body.kind != ExprNode::Kind::kBinary || static_cast<kir::BinaryOp>(body.op) != kir::BinaryOp::kMul)
          return false;
        for (int i = 0; i < 2; ++i) {
          const ExprNode& read = *body.operands[i];
          const ExprNode& weight = *body.operands[1 - i];
          found = found || (read.kind == ExprNode::Kind::kLoad && params.count(read.buffer) &&
                            weight.kind == ExprNode::Kind::kLoad &&
                            program_.buffers[consumer.args[weight.buffer]].kind == ProgramBuffer::Kind::kConstant);
        }
        return false;
      });
    return found;
  }

  // options_.views_into_stores: contraction `p` stores into the buffer of
  // its one reader when that reader is a pure view of it (header comment).
  // The stage of `p` that could store into a buffer of its output's one
  // later reader instead (absorbView, absorbCopy), with that reader: a
  // contraction stage writing `p`'s one output that a later kernel reads,
  // read by one later kernel under the same control flow, neither dynamic.
  // `p`'s other stages (kiln.Attention's) may only write buffers no other
  // kernel touches, and none of them may read the output.
  struct Retargetable {
    int reader = -1;
    int stage = -1;
  };
  Retargetable storeRetargetableReader(int p) const {
    const KernelCall& producer = program_.calls[p];
    if (kir::isDynamic(producer.kernel)) return {};
    int found = -1;
    for (size_t i = 0; i < producer.kernel.stages.size(); ++i) {
      const kir::Stage& s = producer.kernel.stages[i];
      if (s.kind != kir::Stage::Kind::kStore) return {};
      if (users_[producer.args[s.buffer]].size() == 1) continue;  // a buffer of p's own
      if (found >= 0) return {};
      found = static_cast<int>(i);
    }
    if (found < 0) return {};
    const kir::Stage& stage = producer.kernel.stages[static_cast<size_t>(found)];
    if (!isContraction(stage.value)) return {};
    const int b = producer.args[stage.buffer];
    if (program_.buffers[b].kind != ProgramBuffer::Kind::kIntermediate || paramsBoundTo(producer, b).size() != 1)
      return {};
    for (const kir::Stage& s : producer.kernel.stages)
      if (anyNode(s.value,
                  [&](const ExprNode& n) { return n.kind == ExprNode::Kind::kLoad && n.buffer == stage.buffer; }))
        return {};
    const std::set<int>& users = users_[b];
    if (users.size() != 2 || *users.begin() != p) return {};
    const int c = *users.rbegin();
    if (program_.innermostRegion(p) != program_.innermostRegion(c)) return {};
    if (kir::isDynamic(program_.calls[c].kernel)) return {};
    return {c, found};
  }

  // Whether buffer `out` can take producer `p`'s stores ahead of reader `c`:
  // not a model input or constant, and nothing before `c` touches it.
  bool writableEarlier(int out, int c) const {
    if (program_.buffers[out].kind == ProgramBuffer::Kind::kInput ||
        program_.buffers[out].kind == ProgramBuffer::Kind::kConstant)
      return false;
    for (int u : users_[out])
      if (u < c) return false;
    return true;
  }

  // Moves producer `p`'s one stage to store at `store` into `out`, whose
  // parameter in the reader `c` is `out_param`.
  // `p` takes `c`'s origin too where `c` goes (absorbView).
  void retargetStore(int p, int s, int c, int out, int out_param, std::vector<Expr> store, bool merge_origin) {
    KernelCall& producer = program_.calls[p];
    const KernelCall& consumer = program_.calls[c];
    kir::Stage& stage = producer.kernel.stages[static_cast<size_t>(s)];
    users_[producer.args[stage.buffer]].erase(p);
    producer.kernel.params[stage.buffer] = consumer.kernel.params[out_param];
    producer.args[stage.buffer] = out;
    stage.store_index = std::move(store);
    if (merge_origin) producer.kernel.origin += " + " + consumer.kernel.origin;
    users_[out].insert(p);
  }

  bool absorbView(int p) {
    if (!options_.views_into_stores) return false;
    const Retargetable target = storeRetargetableReader(p);
    const int c = target.reader, s = target.stage;
    if (c < 0) return false;
    KernelCall& producer = program_.calls[p];
    kir::Stage& stage = producer.kernel.stages[static_cast<size_t>(s)];
    const int b = producer.args[stage.buffer];
    KernelCall& consumer = program_.calls[c];
    const kir::Stage* view = pureDefinition(consumer.kernel);
    if (!view || !isPermutation(*view) || consumer.args[view->value->buffer] != b) return false;
    if (options_.permutations_keep_innermost && !keepsInnermost(*view)) return false;
    const int out = consumer.args[view->buffer];
    // A Transpose that its reader's reduction will take as a permuted
    // operand is better left to that: the GEMM then reads the producer in
    // place, where here the producer's D would be the scattered one.
    if (readInReductionAsPermutation(c, *view, out) || !writableEarlier(out, c)) return false;
    // The producer's element at its store index, in the shape the view reads,
    // lands where the view's axis reading that index dimension stores.
    const std::vector<int64_t>& from = producer.kernel.params[stage.buffer].shape;
    const std::vector<int64_t>& viewed = consumer.kernel.params[view->value->buffer].shape;
    std::vector<Expr> at = translateIndex(stage.store_index, from, viewed, extentsOf(producer.kernel));
    std::vector<Expr> store(view->axes.size());
    for (size_t k = 0; k < view->value->operands.size(); ++k)
      for (size_t m = 0; m < view->axes.size(); ++m)
        if (isVar(view->value->operands[k], view->axes[m].id)) store[m] = at[k];
    for (const Expr& index : store)
      if (!index.valid() || !kir::affine(index)) return false;
    kir::Stage moved = stage;
    moved.store_index = store;
    if (!kir::storesDistinctAffine(moved)) return false;

    retargetStore(p, s, c, out, view->buffer, std::move(store), true);
    for (int arg : consumer.args) users_[arg].erase(c);
    users_[b].clear();
    remove(c);
    return true;
  }

  // options_.copies_into_stores: contraction `p` stores straight into the
  // part of its reader's output that one stage of the reader only copies it
  // to (a Concat's input: `out[.., c + 64] = x[.., c]`), and that stage goes
  // (the reader keeps its other stages).
  // The copy must cover all of `p`'s output, be its reader's only read of
  // it, and the reader's earlier stages must store outside the copy's
  // region (boxes of their affine store indices), since `p` now writes that
  // region before them; no stage of the reader may read its output.
  bool absorbCopy(int p) {
    if (!options_.copies_into_stores) return false;
    const Retargetable target = storeRetargetableReader(p);
    const int c = target.reader, producer_stage = target.stage;
    if (c < 0) return false;
    KernelCall& producer = program_.calls[p];
    const kir::Stage& stage = producer.kernel.stages[static_cast<size_t>(producer_stage)];
    const int b = producer.args[stage.buffer];
    KernelCall& consumer = program_.calls[c];
    // A reader that is only the copy is absorbView's: it would go whole.
    if (consumer.kernel.stages.size() < 2) return false;
    const std::set<int> params = paramsBoundTo(consumer, b);
    auto reads = [&](const kir::Stage& s, auto&& pred) {
      bool any = false;
      for (const Expr& e : s.store_index) any = any || anyNode(e, pred);
      return any || anyNode(s.value, pred);
    };
    auto reads_b = [&](const ExprNode& n) { return n.kind == ExprNode::Kind::kLoad && params.count(n.buffer); };
    int copy = -1;
    for (size_t i = 0; i < consumer.kernel.stages.size(); ++i) {
      if (!reads(consumer.kernel.stages[i], reads_b)) continue;
      if (copy >= 0) return false;
      copy = static_cast<int>(i);
    }
    if (copy < 0) return false;
    const kir::Stage& s = consumer.kernel.stages[static_cast<size_t>(copy)];
    if (s.kind != kir::Stage::Kind::kStore || !isPermutation(s) || !params.count(s.value->buffer)) return false;
    const std::vector<int64_t>& viewed = consumer.kernel.params[s.value->buffer].shape;
    const Extents extents = extentsOf(consumer.kernel);
    for (size_t k = 0; k < viewed.size(); ++k)
      if (extents.at(s.value->operands[k]->var_id) != viewed[k]) return false;
    const int out = consumer.args[s.buffer];
    if (out == b || !writableEarlier(out, c)) return false;
    auto reads_out = [&](const ExprNode& n) {
      return n.kind == ExprNode::Kind::kLoad && consumer.args[static_cast<size_t>(n.buffer)] == out;
    };
    std::optional<Box> region = storeBox(s);
    if (!region) return false;
    for (size_t i = 0; i < consumer.kernel.stages.size(); ++i) {
      const kir::Stage& t = consumer.kernel.stages[i];
      if (reads(t, reads_out)) return false;
      if (static_cast<int>(i) >= copy || consumer.args[static_cast<size_t>(t.buffer)] != out) continue;
      std::optional<Box> before = storeBox(t);
      if (t.kind != kir::Stage::Kind::kStore || !before || !disjoint(*before, *region)) return false;
    }
    // The producer's element at its store index, in the shape the copy reads,
    // lands where the copy stores that element.
    std::vector<Expr> at = translateIndex(stage.store_index, producer.kernel.params[stage.buffer].shape, viewed,
                                          extentsOf(producer.kernel));
    std::map<int, Expr> vars;
    for (size_t k = 0; k < at.size(); ++k) {
      if (!at[k].valid()) return false;
      vars[s.value->operands[k]->var_id] = at[k];
    }
    std::vector<Expr> store;
    for (const Expr& index : s.store_index) {
      store.push_back(kir::substitute(index, vars));
      if (!kir::affine(store.back())) return false;
    }
    kir::Stage moved = stage;
    moved.store_index = store;
    if (!kir::storesDistinctAffine(moved)) return false;

    retargetStore(p, producer_stage, c, out, s.buffer, std::move(store), false);
    consumer.kernel.stages.erase(consumer.kernel.stages.begin() + copy);
    dropParams(consumer, params);
    users_[b].clear();
    return true;
  }

  // Removes parameters `drop` (read by no stage any more) from `call`.
  static void dropParams(KernelCall& call, const std::set<int>& drop) {
    std::vector<int> map(call.kernel.params.size(), -1);
    std::vector<kir::BufferParam> params;
    std::vector<int> args;
    for (size_t i = 0; i < call.kernel.params.size(); ++i) {
      if (drop.count(static_cast<int>(i))) continue;
      map[i] = static_cast<int>(params.size());
      params.push_back(call.kernel.params[i]);
      args.push_back(call.args[i]);
    }
    for (kir::Stage& stage : call.kernel.stages) {
      stage.value = kir::remapParams(stage.value, map);
      for (Expr& index : stage.store_index) index = kir::remapParams(index, map);
      if (stage.kind == kir::Stage::Kind::kStore) stage.buffer = map[static_cast<size_t>(stage.buffer)];
    }
    call.kernel.params = std::move(params);
    call.args = std::move(args);
  }

  bool readInReductionAsPermutation(int c, const kir::Stage& view, int out) const {
    const std::set<int>& readers = users_[out];
    if (readers.size() != 2 || *readers.begin() != c) return false;
    const KernelCall& reader = program_.calls[*readers.rbegin()];
    std::set<int> params = paramsBoundTo(reader, out);
    return profileReads(reader.kernel, params).in_reduce &&
           permutationIntoReduction(program_.calls[c], view, reader, params);
  }

  void inlineProducer(int p, int c) {
    KernelCall& producer = program_.calls[p];
    KernelCall& consumer = program_.calls[c];
    const kir::Stage& pstage = producer.kernel.stages[0];
    const int b = producer.args[pstage.buffer];

    // Merged params: the consumer's (less the fused buffer), then the
    // producer's inputs; read-only views of one buffer are shared.
    std::vector<kir::BufferParam> params;
    std::vector<int> args;
    auto add = [&](const kir::BufferParam& param, int arg) {
      for (size_t j = 0; j < params.size() && !param.written; ++j)
        if (args[j] == arg && !params[j].written && params[j].shape == param.shape) return static_cast<int>(j);
      params.push_back(param);
      args.push_back(arg);
      return static_cast<int>(params.size() - 1);
    };
    std::vector<int> consumer_map(consumer.args.size(), -1), producer_map(producer.args.size(), -1);
    for (size_t i = 0; i < consumer.args.size(); ++i)
      if (consumer.args[i] != b) consumer_map[i] = add(consumer.kernel.params[i], consumer.args[i]);
    for (size_t i = 0; i < producer.args.size(); ++i)
      if (static_cast<int>(i) != pstage.buffer) producer_map[i] = add(producer.kernel.params[i], producer.args[i]);

    const std::vector<int64_t>& pshape = producer.kernel.params[pstage.buffer].shape;
    const Expr pvalue = kir::remapParams(pstage.value, producer_map);
    const int producer_vars = kir::maxVarId(producer.kernel) + 1;
    const Extents consumer_extents = extentsOf(consumer.kernel);
    int next_var = kir::maxVarId(consumer.kernel) + 1;
    // Each inlined copy gets fresh ids for the producer's variables, so ids
    // stay unique within the merged kernel.
    // A reduction producer read at its own axes (fusableConsumer) is
    // inlined once; every load of it shares that copy, so the merged stage
    // holds one sum.
    const bool share_copy = containsReduce(pstage.value);
    Expr shared_copy;
    auto inlineLoad = [&](const Expr& load) {
      if (share_copy && shared_copy.valid()) return shared_copy;
      std::vector<Expr> index =
          translateIndex(load->operands, consumer.kernel.params[load->buffer].shape, pshape, consumer_extents);
      std::map<int, Expr> axes;
      for (size_t d = 0; d < pstage.axes.size(); ++d) axes[pstage.axes[d].id + next_var] = index[d];
      Expr copy = kir::substitute(kir::shiftVarIds(pvalue, next_var), axes);
      next_var += producer_vars;
      if (share_copy) shared_copy = copy;
      return copy;
    };
    auto fix = [&](const Expr& n) {
      if (n->kind != ExprNode::Kind::kLoad) return n;
      if (consumer.args[n->buffer] == b) return inlineLoad(n);
      ExprNode m = *n;
      m.buffer = consumer_map[n->buffer];
      return Expr(std::make_shared<const ExprNode>(std::move(m)));
    };
    for (kir::Stage& stage : consumer.kernel.stages) {
      for (Expr& index : stage.store_index) index = kir::rewrite(index, fix);
      stage.value = kir::rewrite(stage.value, fix);
      stage.buffer = consumer_map[stage.buffer];
    }
    consumer.kernel.params = std::move(params);
    consumer.kernel.origin = producer.kernel.origin + " + " + consumer.kernel.origin;

    for (int arg : producer.args) {
      users_[arg].erase(p);
      if (arg != b) users_[arg].insert(c);
    }
    users_[b].clear();
    consumer.args = std::move(args);
    remove(p);
  }

  // Drops call `i` (its kernel now lives on in another) and frees it at
  // once: along a chain of n elementwise nodes each removed kernel would
  // otherwise keep the merged expression and origin so far, O(n^2) memory
  // (a chain of 200000 Relus took 4.3 GB, 1.2 GB freed so).
  void remove(int i) {
    program_.calls[i].kernel = kir::Kernel{};
    removed_[i] = true;
  }

  Program& program_;
  FusionOptions options_;
  std::vector<std::set<int>> users_;
  std::vector<bool> removed_;
};

// Drops intermediates no kernel uses any more and renumbers the rest.
void dropDeadBuffers(Program& program) {
  std::vector<bool> used(program.buffers.size(), false);
  for (const KernelCall& call : program.calls)
    for (int a : call.args) used[a] = true;
  std::vector<int> remap(program.buffers.size(), -1);
  std::vector<ProgramBuffer> kept;
  for (size_t b = 0; b < program.buffers.size(); ++b) {
    if (!used[b] && program.buffers[b].kind == ProgramBuffer::Kind::kIntermediate) continue;
    remap[b] = static_cast<int>(kept.size());
    kept.push_back(std::move(program.buffers[b]));
  }
  program.buffers = std::move(kept);
  for (KernelCall& call : program.calls)
    for (int& a : call.args) a = remap[a];
  for (int& b : program.input_buffers) b = remap[b];
  for (int& b : program.output_buffers) b = remap[b];
}

}  // namespace

FusionStats fuseKernels(Program& program, const FusionOptions& options) {
  FusionStats stats;
  stats.kernels_before = program.calls.size();
  stats.kernels_after = program.calls.size();
  // Container steps name buffers and calls by index, and read tensors no
  // kernel's reader count shows: programs with them are left unfused.
  if (!program.container_steps.empty()) return stats;
  KernelFuser(program, options).run();
  dropDeadBuffers(program);
  planArena(program);
  stats.kernels_after = program.calls.size();
  return stats;
}

}  // namespace kiln::lower
