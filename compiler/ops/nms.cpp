// NonMaxSuppression: per batch b and class c, greedily select boxes in order
// of decreasing score, skipping a box whose IoU with a box already selected
// exceeds iou_threshold, until max_output_boxes_per_class are selected.
// Boxes scoring at or below score_threshold (when given) are never selected.
// The output lists [b, c, box] rows by batch, then class, then selection
// order; its length is known only at run time. Boxes are [y1, x1, y2, x2]
// with either diagonal (center_point_box=0) or [x_center, y_center, width,
// height] (center_point_box=1); a box of zero area suppresses nothing (as
// ONNX Runtime does). Equal scores keep the lower box index first. The three
// scalar inputs are read at run time.
//
// The greedy selection is sequential, so it is one serial stage (a scatter)
// in candidate order; every kernel that needs it computes:
//   rank[b, c, i]  = number of boxes scored ahead of box i
//   order[b, c, rank[b, c, i]] = i                                (scatter)
//   state[b, c, r] = the candidate at rank r's 1-based place among the
//                    selected boxes, or 0 when not selected         (serial)
//                  = score ok && prev < max && no selected r' < r with
//                    iou > threshold ? prev + 1 : 0, prev = max_{r' < r} state
//   selected[b, c] = max_r state[b, c, r]
//   offset[b, c]   = sum of selected over earlier (b, c)
// The first kernel stores the total in the output's dim slot; the second
// scatters each selected candidate to its row offset + state - 1 and writes
// the rows. O(N^2) per batch and class, the greedy algorithm's own bound.
#include <algorithm>
#include <string>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;
using kir::IterVar;
using Buffer = LowerContext::Buffer;

constexpr DType f32 = DType::kFloat32;

// The scalar inputs: 1-element tensors (scalars or [1]).
Status expectScalarInput(const NodeView& ctx, size_t i, const char* role, DType dtype) {
  if (!ctx.hasInput(i)) return Status::ok();
  if (ctx.inputType(i).dtype != dtype)
    return ctx.error(std::string(role) + " has dtype " + std::string(ir::name(ctx.inputType(i).dtype)) +
                     ", expected " + std::string(ir::name(dtype)) + " (input " + std::to_string(i) + ")");
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
  int64_t count = 1;
  for (const ir::Dim& d : shape) count = d.isKnown() && count >= 0 ? count * d.value : -1;
  if (count != 1)
    return ctx.error(std::string(role) + " must hold one element, got shape " + ir::toString(shape) + " (input " +
                     std::to_string(i) + ")");
  return Status::ok();
}

Status inferNonMaxSuppression(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 5));
  for (size_t i = 0; i < 2; ++i)
    if (ctx.inputType(i).dtype != f32)
      return ctx.error(std::string(i == 0 ? "boxes" : "scores") + " has dtype " +
                       std::string(ir::name(ctx.inputType(i).dtype)) + ", expected float32 (input " +
                       std::to_string(i) + ")");
  KILN_ASSIGN_OR_RETURN(ir::Shape boxes, inputShapeOfRank(ctx, 0, "boxes", 3));
  KILN_ASSIGN_OR_RETURN(ir::Shape scores, inputShapeOfRank(ctx, 1, "scores", 3));
  if (boxes[2].isKnown() && boxes[2].value != 4)
    return ctx.error("boxes have " + std::to_string(boxes[2].value) + " coordinates per box, expected 4 (input 0)");
  if (conflictingDims(boxes[0], scores[0]))
    return ctx.error("boxes " + ir::toString(boxes) + " and scores " + ir::toString(scores) +
                     " disagree on the batch size (input 1)");
  if (conflictingDims(boxes[1], scores[2]))
    return ctx.error("boxes " + ir::toString(boxes) + " and scores " + ir::toString(scores) +
                     " disagree on the number of boxes (input 1)");
  KILN_RETURN_IF_ERROR(expectScalarInput(ctx, 2, "max_output_boxes_per_class", DType::kInt64));
  KILN_RETURN_IF_ERROR(expectScalarInput(ctx, 3, "iou_threshold", f32));
  KILN_RETURN_IF_ERROR(expectScalarInput(ctx, 4, "score_threshold", f32));
  int64_t center = ctx.attrInt("center_point_box", 0);
  if (center != 0 && center != 1)
    return ctx.error("center_point_box is " + std::to_string(center) + ", expected 0 or 1");
  ctx.setOutputType(0, {DType::kInt64, ir::Shape{ir::Dim{}, ir::Dim::known(3)}});
  return Status::ok();
}

struct NmsSizes {
  int64_t batches = 0, classes = 0, boxes = 0;
};

// One box's corners.
struct Corners {
  Expr ymin, xmin, ymax, xmax;
};

class Selection {
 public:
  Selection(LowerContext& ctx, const NmsSizes& sizes) : ctx_(ctx), sizes_(sizes) {
    boxes_ = ctx.input(0);
    scores_ = ctx.input(1);
    center_ = ctx.attrInt("center_point_box", 0) != 0;
    if (ctx.hasInput(2)) max_boxes_ = ctx.input(2, {1});
    if (ctx.hasInput(3)) iou_ = ctx.input(3, {1});
    if (ctx.hasInput(4)) score_ = ctx.input(4, {1});
  }

  Expr iouThreshold() const { return ctx_.hasInput(3) ? iou_(Expr::index(0)) : Expr::constant(f32, 0); }

  // Emits the stages above, up to offset; returns the total selected.
  Expr build() {
    kir::KernelBuilder& kb = ctx_.builder();
    int64_t B = sizes_.batches, C = sizes_.classes, N = sizes_.boxes;
    Buffer rank = ctx_.temp("rank", DType::kInt64, {B, C, N});
    std::vector<IterVar> bci = kb.vars({B, C, N}, "k");
    IterVar j = kb.var("kj", N);
    Expr si = scores_(bci[0], bci[1], bci[2]), sj = scores_(bci[0], bci[1], j);
    // NaN scores rank last, so the ranks are a permutation and order is filled.
    Expr nan_i = kir::binary(kir::BinaryOp::kNe, si, si), nan_j = kir::binary(kir::BinaryOp::kNe, sj, sj);
    Expr not_nan_j = kir::unary(kir::UnaryOp::kNot, nan_j);
    Expr tie = kir::eq(sj, si) || (nan_i && nan_j);
    Expr ahead = (sj > si) || (not_nan_j && nan_i) || (tie && Expr(j) < Expr(bci[2]));
    kb.compute(rank, bci, kir::reduce(kir::ReduceOp::kSum, {j}, kir::select(ahead, Expr::index(1), Expr::index(0))));

    order_ = ctx_.temp("order", DType::kInt64, {B, C, N});
    std::vector<IterVar> o = kb.vars({B, C, N}, "o");
    Expr r = kir::min(kir::max(rank(o[0], o[1], o[2]), Expr::index(0)), Expr::index(N - 1));
    kb.computeAt(order_, o, {Expr(o[0]), Expr(o[1]), r}, Expr(o[2]));

    state_ = ctx_.temp("state", DType::kInt64, {B * C * N});
    std::vector<IterVar> g = kb.vars({B, C, N}, "g");
    Expr row = (Expr(g[0]) * Expr::index(C) + Expr(g[1])) * Expr::index(N);
    IterVar p = kb.var("gp", N), q = kb.var("gq", N);
    Expr earlier_p = Expr(p) < Expr(g[2]);
    Expr prev = kir::reduce(kir::ReduceOp::kMax, {p},
                            kir::select(earlier_p, state_(row + Expr(p)), Expr::index(0)));
    Expr cand = boxAt(g[0], g[1], g[2]);
    Expr overlapping = (Expr(q) < Expr(g[2])) && (state_(row + Expr(q)) > Expr::index(0)) &&
                       suppresses(g[0], boxAt(g[0], g[1], q), cand);
    Expr suppressed = kir::reduce(kir::ReduceOp::kMax, {q},
                                  kir::select(overlapping, Expr::index(1), Expr::index(0)));
    Expr max_boxes = ctx_.hasInput(2) ? kir::cast(DType::kInt64, max_boxes_(Expr::index(0))) : Expr::index(0);
    Expr keep = (prev < max_boxes) && kir::eq(suppressed, Expr::index(0));
    if (ctx_.hasInput(4)) keep = keep && (scores_(g[0], g[1], cand) > score_(Expr::index(0)));
    // The flat store index makes this a scatter: iterations run in order, so
    // each reads the states earlier candidates stored.
    kb.computeAt(state_, g, {row + Expr(g[2])}, kir::select(keep, prev + Expr::index(1), Expr::index(0)));

    Buffer selected = ctx_.temp("selected", DType::kInt64, {B * C});
    IterVar s = kb.var("s", B * C), sr = kb.var("sr", N);
    kb.compute(selected, {s},
               kir::reduce(kir::ReduceOp::kMax, {sr}, state_(Expr(s) * Expr::index(N) + Expr(sr))));
    offset_ = ctx_.temp("offset", DType::kInt64, {B * C + 1});
    IterVar f = kb.var("f", B * C + 1), fj = kb.var("fj", B * C);
    kb.compute(offset_, {f},
               kir::reduce(kir::ReduceOp::kSum, {fj},
                           kir::select(Expr(fj) < Expr(f), selected(fj), Expr::index(0))));
    return offset_(Expr::index(B * C));
  }

  // src[row] = the flat candidate (b * C + c) * N + r of each output row.
  Buffer outputRows() {
    int64_t N = sizes_.boxes;
    Buffer state = state_, offset = offset_;
    auto chosen = [state](Expr i) { return state(i) > Expr::index(0); };
    auto position = [state, offset, N](Expr i) {
      return offset(i / Expr::index(N)) + state(i) - Expr::index(1);
    };
    return scatterIndices(ctx_, "src", sizes_.batches * sizes_.classes * N, chosen, position);
  }

  // The box at rank r (clamped: a box index never leaves the buffer).
  Expr boxAt(const Expr& b, const Expr& c, const Expr& r) const {
    return kir::min(kir::max(order_(b, c, r), Expr::index(0)), Expr::index(std::max<int64_t>(sizes_.boxes - 1, 0)));
  }

 private:
  Corners corners(const Expr& b, const Expr& box) const {
    auto at = [&](int64_t k) { return boxes_(b, box, Expr::index(k)); };
    if (center_) {
      Expr half = Expr::constant(f32, 0.5);
      Expr xc = at(0), yc = at(1), w = at(2), h = at(3);
      return {yc - h * half, xc - w * half, yc + h * half, xc + w * half};
    }
    return {kir::min(at(0), at(2)), kir::min(at(1), at(3)), kir::max(at(0), at(2)), kir::max(at(1), at(3))};
  }

  // Whether selected box `kept` suppresses candidate `cand` (batch b).
  Expr suppresses(const Expr& b, const Expr& kept, const Expr& cand) const {
    Corners p = corners(b, kept), c = corners(b, cand);
    Expr zero = Expr::constant(f32, 0);
    Expr area_p = (p.ymax - p.ymin) * (p.xmax - p.xmin);
    Expr area_c = (c.ymax - c.ymin) * (c.xmax - c.xmin);
    Expr h = kir::max(kir::min(p.ymax, c.ymax) - kir::max(p.ymin, c.ymin), zero);
    Expr w = kir::max(kir::min(p.xmax, c.xmax) - kir::max(p.xmin, c.xmin), zero);
    Expr inter = h * w;
    Expr uni = area_p + area_c - inter;
    return (area_p > zero) && (area_c > zero) && (uni > zero) && (inter / uni > iouThreshold());
  }

  LowerContext& ctx_;
  NmsSizes sizes_;
  bool center_ = false;
  Buffer boxes_, scores_, max_boxes_, iou_, score_;
  Buffer order_, state_, offset_;
};

Status lowerNonMaxSuppression(LowerContext& ctx) {
  for (size_t i = 0; i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i) && ctx.isDynamicInput(i))
      return ctx.unsupportedError("input " + std::to_string(i) + " has a run-time shape; Kiln needs its shape static");
  std::vector<int64_t> scores = ctx.inputDims(1);
  NmsSizes sizes{scores[0], scores[1], scores[2]};

  ctx.newKernel("count");
  {
    Selection selection(ctx, sizes);
    if (ctx.hasInput(3)) {
      Expr t = selection.iouThreshold();
      ctx.builder().check(ctx.addCheck("iou_threshold (input 3) is outside [0, 1]"),
                          (t >= Expr::constant(f32, 0)) && (t <= Expr::constant(f32, 1)));
    }
    Expr total = selection.build();
    setOutputDims(ctx, 0, {total, Expr::index(3)});
  }

  kir::KernelBuilder& kb = ctx.newKernel();
  Selection selection(ctx, sizes);
  selection.build();
  Buffer src = selection.outputRows();
  Buffer y = ctx.output(0);
  std::vector<IterVar> axes = ctx.outputVars(0);
  int64_t C = sizes.classes, N = sizes.boxes;
  Expr flat = src(axes[0]);
  Expr batch = flat / Expr::index(C * N), cls = (flat / Expr::index(N)) % Expr::index(C);
  Expr box = selection.boxAt(batch, cls, flat % Expr::index(N));
  Expr column = Expr(axes[1]);
  kb.compute(y, axes,
             kir::select(kir::eq(column, Expr::index(0)), batch,
                         kir::select(kir::eq(column, Expr::index(1)), cls, box)));
  return Status::ok();
}

}  // namespace

void registerNmsOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "NonMaxSuppression", {10, 11}, {{"center_point_box", Kind::kInt}},
                        inferNonMaxSuppression, lowerNonMaxSuppression});
}

}  // namespace kiln::ops
