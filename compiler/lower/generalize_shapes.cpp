#include "compiler/lower/generalize_shapes.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "compiler/lower/lower_graph.h"

namespace kiln::lower {
namespace {

using kir::Expr;
using kir::ExprNode;

// Sizes of the samples: primes, distinct from one another and from the
// small sizes models fix (channels, heads, kernel sizes).
constexpr int64_t kLow[kMaxSymbols] = {23, 29, 31};
constexpr int64_t kHigh[kMaxSymbols] = {37, 41, 43};
constexpr int64_t kCheck[kMaxSymbols] = {47, 53, 59};

// Integer coefficients per monomial; the mask's bit j: symbol j is a factor.
using Poly = std::map<unsigned, int64_t>;

int64_t evaluate(const Poly& poly, const std::vector<int64_t>& x) {
  __int128 sum = 0;
  for (const auto& [mask, coef] : poly) {
    __int128 term = coef;
    for (size_t j = 0; j < x.size(); ++j)
      if (mask & (1u << j)) term *= x[j];
    sum += term;
  }
  return sum > INT64_MAX || sum < INT64_MIN ? INT64_MIN : static_cast<int64_t>(sum);
}

std::string polyName(const Poly& poly, const std::vector<std::string>& symbols) {
  std::string out;
  for (auto it = poly.rbegin(); it != poly.rend(); ++it) {
    auto [mask, coef] = *it;
    std::string term;
    for (size_t j = 0; j < symbols.size(); ++j)
      if (mask & (1u << j)) term += (term.empty() ? "" : "*") + symbols[j];
    std::string c = std::to_string(coef < 0 ? -coef : coef);
    if (term.empty()) term = c;
    else if (coef != 1 && coef != -1) term = c + "*" + term;
    out += (out.empty() ? (coef < 0 ? "-" : "") : (coef < 0 ? "-" : "+")) + term;
  }
  return out.empty() ? "0" : out;
}

class Merger {
 public:
  Merger(std::vector<Program>& programs, const ShapeSamples& samples)
      : programs_(programs), samples_(samples), m_(samples.symbols.size()) {}

  Expected<Program> run(bool in_place) {
    Program& out = programs_[0];
    for (const Program& p : programs_) {
      if (p.isDynamic()) return differs("it also has shapes computed from input data, which cannot be merged yet");
      if (p.buffers.size() != out.buffers.size() || p.calls.size() != out.calls.size())
        return differs("the number of kernels or buffers");
    }
    for (size_t j = 0; j < m_; ++j) {
      Poly symbol{{1u << j, 1}};
      slots_[symbol] = out.addSlot();
    }
    for (size_t b = 0; b < out.buffers.size(); ++b) KILN_RETURN_IF_ERROR(buffer(b));
    for (size_t c = 0; c < out.calls.size(); ++c) KILN_RETURN_IF_ERROR(call(c));
    for (int b : out.input_buffers) KILN_RETURN_IF_ERROR(nameDims(out.buffers[b], out.inputs));
    for (int b : out.output_buffers) KILN_RETURN_IF_ERROR(nameDims(out.buffers[b], out.outputs));
    if (!derived_.empty()) out.calls.insert(out.calls.begin(), prologue());
    planArena(out, in_place);
    KILN_RETURN_IF_ERROR(out.verify());
    return std::move(out);
  }

 private:
  Status differs(const std::string& what) const {
    std::string names;
    for (const std::string& s : samples_.symbols) names += (names.empty() ? "" : ", ") + s;
    return unsupported("the compiled code depends on the size of symbolic dimension(s) " + names + " in a way " +
                       "kiln cannot compute at run time (" + what + "); pin them with --shape");
  }

  // The slot holding the value that is values[i] in sample i, or -1 when it
  // is the same in every sample.
  Expected<int> fit(const std::vector<int64_t>& values, const std::string& where) {
    bool same = true;
    for (int64_t v : values) same = same && v == values[0];
    if (same) return -1;
    size_t corners = size_t{1} << m_;
    std::vector<int64_t> c(values.begin(), values.begin() + static_cast<ptrdiff_t>(corners));
    // Newton interpolation on the corner grid, one symbol at a time.
    for (size_t j = 0; j < m_; ++j) {
      unsigned bit = 1u << j;
      for (unsigned mask = 0; mask < corners; ++mask) {
        if (mask & bit) continue;
        int64_t step = kHigh[j] - kLow[j];
        int64_t diff = c[mask | bit] - c[mask];
        if (diff % step != 0) return differs(where + " is not a polynomial in the symbols");
        c[mask | bit] = diff / step;
        c[mask] -= c[mask | bit] * kLow[j];
      }
    }
    Poly poly;
    for (unsigned mask = 0; mask < corners; ++mask)
      if (c[mask] != 0) poly[mask] = c[mask];
    for (size_t i = 0; i < values.size(); ++i)
      if (evaluate(poly, samples_.samples[i]) != values[i]) return differs(where + " is not a polynomial in the symbols");
    auto it = slots_.find(poly);
    if (it != slots_.end()) return it->second;
    int slot = programs_[0].addSlot();
    slots_[poly] = slot;
    derived_.push_back({poly, slot});
    return slot;
  }

  // Fits a list of sizes (dims, shape) into slots; `slots` stays empty when all are static.
  Status fitDims(const std::vector<std::vector<int64_t>*>& dims, std::vector<int>& slots, const std::string& where) {
    for (auto* d : dims)
      if (d->size() != dims[0]->size()) return differs("the rank of " + where);
    std::vector<int> fitted(dims[0]->size(), -1);
    bool any = false;
    for (size_t d = 0; d < fitted.size(); ++d) {
      std::vector<int64_t> values;
      for (auto* v : dims) values.push_back((*v)[d]);
      KILN_ASSIGN_OR_RETURN(fitted[d], fit(values, "dimension " + std::to_string(d) + " of " + where));
      any = any || fitted[d] >= 0;
    }
    if (any) slots = std::move(fitted);
    return Status::ok();
  }

  Status buffer(size_t b) {
    std::vector<std::vector<int64_t>*> dims;
    for (Program& p : programs_) {
      ProgramBuffer& pb = p.buffers[b];
      const ProgramBuffer& base = programs_[0].buffers[b];
      if (pb.kind != base.kind || pb.dtype != base.dtype || pb.io_index != base.io_index)
        return differs("buffer '" + base.name + "'");
      if (pb.constant && !base.constant) return differs("buffer '" + base.name + "'");
      if (pb.constant) {
        auto x = pb.constant->bytes(), y = base.constant->bytes();
        if (x.size() != y.size() || std::memcmp(x.data(), y.data(), x.size()) != 0)
          return differs("constant '" + base.name + "' is computed from a symbolic size and read at run time");
      }
      dims.push_back(&pb.dims);
    }
    return fitDims(dims, programs_[0].buffers[b].dim_slots, "'" + programs_[0].buffers[b].name + "'");
  }

  Status call(size_t c) {
    kir::Kernel& base = programs_[0].calls[c].kernel;
    std::string where = "kernel " + base.name + " (" + base.origin + ")";
    for (const Program& p : programs_) {
      const KernelCall& k = p.calls[c];
      if (k.args != programs_[0].calls[c].args || k.kernel.params.size() != base.params.size() ||
          k.kernel.stages.size() != base.stages.size())
        return differs(where);
    }
    for (size_t i = 0; i < base.params.size(); ++i) {
      std::vector<std::vector<int64_t>*> shapes;
      for (Program& p : programs_) {
        kir::BufferParam& param = p.calls[c].kernel.params[i];
        if (param.dtype != base.params[i].dtype || param.written != base.params[i].written) return differs(where);
        shapes.push_back(&param.shape);
      }
      KILN_RETURN_IF_ERROR(fitDims(shapes, base.params[i].dim_slots, where + " param '" + base.params[i].name + "'"));
    }
    for (size_t s = 0; s < base.stages.size(); ++s) {
      std::vector<const kir::Stage*> stages;
      for (const Program& p : programs_) stages.push_back(&p.calls[c].kernel.stages[s]);
      kir::Stage& out = base.stages[s];
      for (const kir::Stage* st : stages)
        if (st->kind != out.kind || st->buffer != out.buffer || st->target != out.target ||
            st->axes.size() != out.axes.size() || st->store_index.size() != out.store_index.size())
          return differs(where);
      KILN_RETURN_IF_ERROR(vars(stages, [](const kir::Stage* st) -> const std::vector<kir::IterVar>& { return st->axes; },
                                out.axes, where));
      for (size_t i = 0; i < out.store_index.size(); ++i) {
        std::vector<Expr> index;
        for (const kir::Stage* st : stages) index.push_back(st->store_index[i]);
        KILN_ASSIGN_OR_RETURN(out.store_index[i], expr(index, where));
      }
      std::vector<Expr> values;
      for (const kir::Stage* st : stages) values.push_back(st->value);
      KILN_ASSIGN_OR_RETURN(out.value, expr(values, where));
    }
    return Status::ok();
  }

  template <typename T, typename Get>
  Status vars(const std::vector<T>& items, Get get, std::vector<kir::IterVar>& out, const std::string& where) {
    for (size_t v = 0; v < out.size(); ++v) {
      std::vector<int64_t> extents;
      for (const T& item : items) {
        const kir::IterVar& var = get(item)[v];
        if (var.id != out[v].id) return differs(where);
        extents.push_back(var.extent);
      }
      KILN_ASSIGN_OR_RETURN(out[v].extent_slot, fit(extents, "an extent of " + where));
    }
    return Status::ok();
  }

  // The merged expression: programs_[0]'s, with sample-dependent integer
  // constants replaced by slot reads.
  Expected<Expr> expr(const std::vector<Expr>& es, const std::string& where) {
    const ExprNode& n = *es[0];
    for (const Expr& e : es)
      if (e->kind != n.kind || e->dtype != n.dtype || e->op != n.op || e->var_id != n.var_id ||
          e->buffer != n.buffer || e->operands.size() != n.operands.size() ||
          e->reduce_vars.size() != n.reduce_vars.size())
        return differs("an expression of " + where);
    if (n.kind == ExprNode::Kind::kConst) {
      bool integral = !ir::isFloat(n.dtype);
      std::vector<int64_t> values;
      for (const Expr& e : es) {
        if (!integral && e->value != n.value) return differs("a floating-point constant of " + where);
        values.push_back(static_cast<int64_t>(e->value));
      }
      if (!integral) return es[0];
      KILN_ASSIGN_OR_RETURN(int slot, fit(values, "a constant of " + where));
      return slot < 0 ? es[0] : kir::cast(n.dtype, kir::slotValue(slot));
    }
    ExprNode copy = n;
    bool changed = false;
    for (size_t i = 0; i < n.operands.size(); ++i) {
      std::vector<Expr> operands;
      for (const Expr& e : es) operands.push_back(e->operands[i]);
      KILN_ASSIGN_OR_RETURN(copy.operands[i], expr(operands, where));
      changed = changed || copy.operands[i].node() != n.operands[i].node();
    }
    if (!n.reduce_vars.empty()) {
      KILN_RETURN_IF_ERROR(vars(es, [](const Expr& e) -> const std::vector<kir::IterVar>& { return e->reduce_vars; },
                                copy.reduce_vars, where));
      for (const kir::IterVar& v : copy.reduce_vars) changed = changed || v.extent_slot >= 0;
    }
    return changed ? Expr(std::make_shared<const ExprNode>(std::move(copy))) : es[0];
  }

  // Symbolic dims of an input or output get the polynomial's name.
  Status nameDims(const ProgramBuffer& buffer, std::vector<TensorSignature>& signatures) {
    TensorSignature& sig = signatures[buffer.io_index];
    for (size_t d = 0; d < buffer.dim_slots.size(); ++d) {
      if (buffer.dim_slots[d] < 0) continue;
      for (const auto& [poly, slot] : slots_)
        if (slot == buffer.dim_slots[d]) sig.shape[d] = ir::Dim::named(polyName(poly, samples_.symbols));
    }
    return Status::ok();
  }

  // The kernel that computes the derived slots from the input slots, and
  // refuses sizes whose arithmetic would overflow.
  KernelCall prologue() {
    Program& out = programs_[0];
    kir::KernelBuilder b("shape_prologue", "sizes computed from the symbolic input dims");
    std::string names;
    for (size_t j = 0; j < m_; ++j) names += (j ? ", " : "") + samples_.symbols[j] + "={$" + std::to_string(j + 1) + "}";
    int overflow = out.addCheck("the input sizes " + names + " make a tensor too large to address");
    for (const auto& [poly, slot] : derived_) {
      Expr exact = Expr::index(0), bound = Expr::constant(ir::DType::kFloat64, 0);
      for (const auto& [mask, coef] : poly) {
        Expr term = Expr::index(coef), magnitude = Expr::constant(ir::DType::kFloat64, static_cast<double>(std::abs(coef)));
        for (size_t j = 0; j < m_; ++j) {
          if (!(mask & (1u << j))) continue;
          term = term * kir::slotValue(static_cast<int>(j + 1));
          magnitude = magnitude * kir::cast(ir::DType::kFloat64, kir::slotValue(static_cast<int>(j + 1)));
        }
        exact = exact + term;
        bound = bound + magnitude;
      }
      b.check(overflow, bound < Expr::constant(ir::DType::kFloat64, 0x1p52));
      b.setSlot(slot, exact);
    }
    return KernelCall{b.finish(), {}};
  }

  std::vector<Program>& programs_;
  const ShapeSamples& samples_;
  size_t m_;
  std::map<Poly, int> slots_;
  std::vector<std::pair<Poly, int>> derived_;
};

}  // namespace

ShapeSamples ShapeSamples::forSymbols(std::vector<std::string> symbols) {
  ShapeSamples s;
  size_t m = std::min(symbols.size(), kMaxSymbols);
  s.symbols = std::move(symbols);
  for (unsigned mask = 0; mask < (1u << m); ++mask) {
    std::vector<int64_t> point;
    for (size_t j = 0; j < m; ++j) point.push_back(mask & (1u << j) ? kHigh[j] : kLow[j]);
    s.samples.push_back(std::move(point));
  }
  s.samples.emplace_back(kCheck, kCheck + m);
  return s;
}

Expected<Program> generalizeShapes(std::vector<Program> programs, const ShapeSamples& samples, bool in_place) {
  if (samples.symbols.size() > kMaxSymbols || programs.size() != samples.samples.size() || programs.empty())
    return internalError("generalizeShapes: samples and programs do not match");
  return Merger(programs, samples).run(in_place);
}

}  // namespace kiln::lower
