// Resize (opsets 10 to 19) and its predecessor Upsample (7, 9).
//
// Every resized dim maps an output position o to an input coordinate
// x = transform(o) (coordinate_transformation_mode, in float64). Nearest
// reads X at round(x) (nearest_mode); linear and cubic are separable filters:
//   Y[o..] = sum_{t..} prod_d w_d(t_d) * X[clamp(floor(x_d) + t_d)..] / prod_d norm_d
// with taps t over the filter's support (wider when antialias shrinks the
// kernel by the scale), reads beyond the edge clamped to it (exclude_outside
// gives those taps weight 0), and norm_d the sum of dim d's weights where
// antialias or exclude_outside renormalize. tf_crop_and_resize reads its roi
// at run time and gives extrapolation_value where x falls outside X.
//
// Output sizes come from scales or sizes, constants or read at run time
// (then each resized dim's size is a dim slot and the coordinate transforms
// read the scale from the tensor, or divide the run-time size; antialias
// needs them constant); roi may be run-time data.
#include <algorithm>
#include <cmath>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

enum class Mode { kNearest, kLinear, kCubic };
enum class Transform { kHalfPixel, kHalfPixelSymmetric, kPytorchHalfPixel, kAlignCorners, kAsymmetric,
                       kTfHalfPixelForNN, kTfCropAndResize };
enum class Rounding { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };

struct Named {
  const char* name;
  int since;
  int until;  // last opset it exists in
  int value;
};

constexpr Named kTransforms[] = {
    {"half_pixel", 11, 99, static_cast<int>(Transform::kHalfPixel)},
    {"half_pixel_symmetric", 19, 99, static_cast<int>(Transform::kHalfPixelSymmetric)},
    {"pytorch_half_pixel", 11, 99, static_cast<int>(Transform::kPytorchHalfPixel)},
    {"align_corners", 11, 99, static_cast<int>(Transform::kAlignCorners)},
    {"asymmetric", 11, 99, static_cast<int>(Transform::kAsymmetric)},
    {"tf_half_pixel_for_nn", 11, 12, static_cast<int>(Transform::kTfHalfPixelForNN)},
    {"tf_crop_and_resize", 11, 99, static_cast<int>(Transform::kTfCropAndResize)}};
constexpr Named kRoundings[] = {{"round_prefer_floor", 11, 99, static_cast<int>(Rounding::kRoundPreferFloor)},
                                {"round_prefer_ceil", 11, 99, static_cast<int>(Rounding::kRoundPreferCeil)},
                                {"floor", 11, 99, static_cast<int>(Rounding::kFloor)},
                                {"ceil", 11, 99, static_cast<int>(Rounding::kCeil)}};
constexpr Named kModes[] = {{"nearest", 7, 99, static_cast<int>(Mode::kNearest)},
                            {"linear", 7, 99, static_cast<int>(Mode::kLinear)},
                            {"bilinear", 7, 9, static_cast<int>(Mode::kLinear)},  // Upsample-7's spelling
                            {"cubic", 11, 99, static_cast<int>(Mode::kCubic)}};

template <size_t N>
Expected<int> lookup(const NodeView& ctx, const char* attr, const std::string& fallback, const Named (&table)[N]) {
  std::string value = ctx.attrString(attr, fallback);
  std::string known;
  for (const Named& entry : table) {
    if (ctx.opset() < entry.since || ctx.opset() > entry.until) continue;
    if (value == entry.name) return entry.value;
    known += (known.empty() ? "" : ", ") + std::string(entry.name);
  }
  return ctx.error("unknown " + std::string(attr) + " '" + value + "' at opset " + std::to_string(ctx.opset()) +
                   " (expected one of " + known + ")");
}

struct ResizeSpec {
  Mode mode = Mode::kNearest;
  Transform transform = Transform::kAsymmetric;
  Rounding rounding = Rounding::kSimple;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0;
  std::vector<int64_t> axes;    // the dims scales/sizes/roi describe
  std::vector<double> scales;   // per dim of X
  std::vector<int64_t> out;     // per dim of X; -1 where unknown
  // The input (1, 2 or 3) whose values decide the output sizes when they are
  // computed at run time (then `scales` stay 1 and `out` is -1 on the axes),
  // and whether it holds sizes rather than scales.
  int run_time_input = -1;
  bool from_sizes = false;
  std::string policy = "stretch";  // keep_aspect_ratio_policy, for sizes
};

bool isUpsample(const NodeView& ctx) { return ctx.node().op_type == "Upsample"; }
// Upsample and Resize-10: X and scales only, asymmetric coordinates.
bool isLegacy(const NodeView& ctx) { return isUpsample(ctx) || ctx.opset() < 11; }

// Attributes newer than the node's opset are errors, not silently ignored.
Status checkAttributeVersions(const NodeView& ctx) {
  struct Since { const char* name; int opset; };
  static constexpr Since kSince[] = {{"coordinate_transformation_mode", 11}, {"cubic_coeff_a", 11},
                                     {"exclude_outside", 11}, {"extrapolation_value", 11}, {"nearest_mode", 11},
                                     {"antialias", 18}, {"axes", 18}, {"keep_aspect_ratio_policy", 18}};
  for (const Since& attr : kSince)
    if (ctx.hasAttr(attr.name) && (isUpsample(ctx) || ctx.opset() < attr.opset))
      return ctx.error("attribute '" + std::string(attr.name) + "' needs Resize at opset " +
                       std::to_string(attr.opset) + " or later");
  if (isUpsample(ctx)) return rejectMovedAttributes(ctx, 9, {"scales"});
  if (ctx.hasAttr("scales")) return ctx.error("unknown attribute 'scales' (Resize takes scales as input)");
  return Status::ok();
}

Status readAttributes(const NodeView& ctx, ResizeSpec& spec) {
  KILN_RETURN_IF_ERROR(checkAttributeVersions(ctx));
  KILN_ASSIGN_OR_RETURN(int mode, lookup(ctx, "mode", "nearest", kModes));
  spec.mode = static_cast<Mode>(mode);
  if (isLegacy(ctx)) {
    if (spec.mode == Mode::kCubic) return ctx.error("mode 'cubic' needs opset 11");
    if (ctx.attrString("mode", "nearest") == "bilinear" && !(isUpsample(ctx) && ctx.opset() < 9))
      return ctx.error("unknown mode 'bilinear' (expected nearest or linear)");
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int transform, lookup(ctx, "coordinate_transformation_mode", "half_pixel", kTransforms));
  KILN_ASSIGN_OR_RETURN(int rounding, lookup(ctx, "nearest_mode", "round_prefer_floor", kRoundings));
  spec.transform = static_cast<Transform>(transform);
  spec.rounding = static_cast<Rounding>(rounding);
  spec.cubic_a = ctx.attrFloat("cubic_coeff_a", -0.75f);
  spec.exclude_outside = ctx.attrInt("exclude_outside", 0) != 0;
  spec.extrapolation = ctx.attrFloat("extrapolation_value", 0.0f);
  spec.antialias = ctx.attrInt("antialias", 0) != 0;
  if (spec.antialias && spec.mode == Mode::kNearest) return ctx.error("antialias needs mode linear or cubic");
  return Status::ok();
}

// Whether optional input i carries values: present and not an empty tensor.
bool carriesValues(const NodeView& ctx, size_t i) {
  if (i >= ctx.numInputs() || !ctx.hasInput(i)) return false;
  if (const ir::Tensor* t = ctx.constantInput(i)) return t->elementCount() > 0;
  const auto& shape = ctx.inputType(i).shape;
  return !(shape && shape->size() == 1 && (*shape)[0].isKnown() && (*shape)[0].value == 0);
}

Expected<std::vector<double>> constantScales(const NodeView& ctx, size_t i, size_t count) {
  const ir::Tensor* t = ctx.constantInput(i);
  if (!t)
    return ctx.unsupportedError("scales (input " + std::to_string(i) +
                                ") is computed at run time; Kiln needs it to be a constant");
  if (!ir::isFloat(t->dtype()) || t->dims().size() != 1)
    return ctx.error("scales must be a 1-D float tensor, got " + t->type().toString() + " (input " +
                     std::to_string(i) + ")");
  if (static_cast<size_t>(t->elementCount()) != count)
    return ctx.error("scales has " + std::to_string(t->elementCount()) + " values, expected " + std::to_string(count) +
                     " (input " + std::to_string(i) + ")");
  std::vector<double> scales;
  for (int64_t k = 0; k < t->elementCount(); ++k) {
    scales.push_back(static_cast<float>(t->floatAt(k)));  // float32 values, as ONNX gives them
    if (!(scales.back() > 0)) return ctx.error("scales must be positive (input " + std::to_string(i) + ")");
  }
  return scales;
}

// Output sizes and scales from sizes (with keep_aspect_ratio_policy).
Status fromSizes(const NodeView& ctx, const std::vector<int64_t>& in, ResizeSpec& spec) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, constantInts(ctx, 3, "sizes"));
  if (sizes.size() != spec.axes.size())
    return ctx.error("sizes has " + std::to_string(sizes.size()) + " values, expected " +
                     std::to_string(spec.axes.size()) + " (input 3)");
  std::string policy = ctx.attrString("keep_aspect_ratio_policy", "stretch");
  if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
    return ctx.error("unknown keep_aspect_ratio_policy '" + policy + "' (expected stretch, not_larger or not_smaller)");
  double common = policy == "not_larger" ? INFINITY : 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] < 0) return ctx.error("sizes must not be negative (input 3)");
    int64_t d = spec.axes[k], from = in[d];
    spec.out[d] = sizes[k];
    if (from <= 0) continue;
    spec.scales[d] = static_cast<double>(sizes[k]) / static_cast<double>(from);
    common = policy == "not_larger" ? std::min(common, spec.scales[d]) : std::max(common, spec.scales[d]);
  }
  if (policy == "stretch") return Status::ok();
  for (int64_t d : spec.axes) {
    if (in[d] < 0) continue;
    spec.scales[d] = common;
    double size = common * static_cast<double>(in[d]) + 0.5;
    if (!(size < 0x1p63))  // NaN when every dim is empty: not_larger's common scale stays infinite
      return ctx.error("keep_aspect_ratio_policy '" + policy + "' makes dim " + std::to_string(d) + " of size " +
                       std::to_string(in[d]) + " overflow 64 bits");
    spec.out[d] = static_cast<int64_t>(size);
  }
  return Status::ok();
}

// Scales or sizes read at run time: checked for what can be checked now
// (dtype, length); the output dims on the axes are left to the run.
Status runTimeGiven(const NodeView& ctx, size_t i, bool from_sizes, ResizeSpec& spec) {
  const char* role = from_sizes ? "sizes" : "scales";
  std::string where = " (input " + std::to_string(i) + ")";
  ir::DType dtype = ctx.inputType(i).dtype;
  if (from_sizes ? dtype != ir::DType::kInt64 : !ir::isFloat(dtype))
    return ctx.error(std::string(role) + " has dtype " + std::string(ir::name(dtype)) + ", expected " +
                     (from_sizes ? "int64" : "a float type") + where);
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShapeOfRank(ctx, i, role, 1));
  if (!shape[0].isKnown())
    return ctx.unsupportedError(std::string(role) + " is computed at run time and its length is not static" + where);
  if (static_cast<size_t>(shape[0].value) != spec.axes.size())
    return ctx.error(std::string(role) + " has " + std::to_string(shape[0].value) + " values, expected " +
                     std::to_string(spec.axes.size()) + where);
  if (from_sizes) {
    spec.policy = ctx.attrString("keep_aspect_ratio_policy", "stretch");
    if (spec.policy != "stretch" && spec.policy != "not_larger" && spec.policy != "not_smaller")
      return ctx.error("unknown keep_aspect_ratio_policy '" + spec.policy +
                       "' (expected stretch, not_larger or not_smaller)");
  }
  spec.run_time_input = static_cast<int>(i);
  spec.from_sizes = from_sizes;
  for (int64_t d : spec.axes) spec.out[d] = -1;
  return Status::ok();
}

// The whole geometry; `in` holds X's dims (-1 where unknown).
Expected<ResizeSpec> resizeSpec(const NodeView& ctx, const std::vector<int64_t>& in) {
  ResizeSpec spec;
  KILN_RETURN_IF_ERROR(readAttributes(ctx, spec));
  int64_t rank = static_cast<int64_t>(in.size());
  spec.axes.clear();
  if (ctx.hasAttr("axes")) {
    KILN_ASSIGN_OR_RETURN(spec.axes, normalizeAxes(ctx, ctx.attrInts("axes"), rank));
  } else {
    for (int64_t d = 0; d < rank; ++d) spec.axes.push_back(d);
  }
  spec.scales.assign(in.size(), 1.0);
  spec.out = in;
  if (isUpsample(ctx) && ctx.opset() < 9) {
    std::vector<float> s = ctx.attrFloats("scales");
    if (s.size() != in.size())
      return ctx.error("scales has " + std::to_string(s.size()) + " values, expected " + std::to_string(rank));
    spec.scales.assign(s.begin(), s.end());
  } else if (isLegacy(ctx)) {
    if (!ctx.constantInput(1)) {
      KILN_RETURN_IF_ERROR(runTimeGiven(ctx, 1, false, spec));
      return spec;
    }
    KILN_ASSIGN_OR_RETURN(spec.scales, constantScales(ctx, 1, in.size()));
  } else {
    bool scales = carriesValues(ctx, 2), sizes = carriesValues(ctx, 3);
    if (scales == sizes) return ctx.error("exactly one of scales (input 2) and sizes (input 3) must be given");
    if (!ctx.constantInput(sizes ? 3 : 2)) {
      KILN_RETURN_IF_ERROR(runTimeGiven(ctx, sizes ? 3 : 2, sizes, spec));
      return spec;
    }
    if (sizes) {
      KILN_RETURN_IF_ERROR(fromSizes(ctx, in, spec));
      return spec;
    }
    KILN_ASSIGN_OR_RETURN(std::vector<double> given, constantScales(ctx, 2, spec.axes.size()));
    for (size_t k = 0; k < given.size(); ++k) spec.scales[spec.axes[k]] = given[k];
  }
  for (size_t d = 0; d < in.size(); ++d) {
    if (isUpsample(ctx) && spec.scales[d] < 1) return ctx.error("Upsample scales must be at least 1");
    if (!(spec.scales[d] > 0)) return ctx.error("scales must be positive");
    if (in[d] < 0) continue;
    double size = std::floor(static_cast<double>(in[d]) * spec.scales[d]);
    if (!(size < 0x1p63))  // an infinite scale, or one that multiplies past int64
      return ctx.error("scale " + std::to_string(spec.scales[d]) + " makes dim " + std::to_string(d) + " of size " +
                       std::to_string(in[d]) + " overflow 64 bits");
    spec.out[d] = static_cast<int64_t>(size);
  }
  return spec;
}

std::vector<int64_t> knownOrMinusOne(const ir::Shape& shape) {
  std::vector<int64_t> dims;
  for (const ir::Dim& d : shape) dims.push_back(d.isKnown() ? d.value : -1);
  return dims;
}

Status inferResize(InferContext& ctx) {
  size_t max_inputs = isUpsample(ctx) ? (ctx.opset() < 9 ? 1 : 2) : ctx.opset() < 11 ? 2 : 4;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, isLegacy(ctx) ? max_inputs : 1, max_inputs));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kNumeric));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "X"));
  KILN_ASSIGN_OR_RETURN(ResizeSpec spec, resizeSpec(ctx, knownOrMinusOne(x)));
  if (spec.transform == Transform::kTfCropAndResize) {
    if (!carriesValues(ctx, 1)) return ctx.error("tf_crop_and_resize needs roi (input 1)");
    KILN_RETURN_IF_ERROR(expectDType(ctx, 1, "roi", DTypeClass::kFloat));
    KILN_ASSIGN_OR_RETURN(ir::Shape roi, inputShapeOfRank(ctx, 1, "roi", 1));
    if (conflictingDims(roi[0], ir::Dim::known(2 * static_cast<int64_t>(spec.axes.size()))))
      return ctx.error("roi has " + ir::toString(roi) + " values, expected " + std::to_string(2 * spec.axes.size()) +
                       " (input 1)");
  }
  ir::Shape out = x;
  for (size_t d = 0; d < x.size(); ++d)
    if (spec.scales[d] != 1.0 || spec.out[d] != (x[d].isKnown() ? x[d].value : -1) || spec.run_time_input >= 0)
      out[d] = spec.out[d] < 0 ? ir::Dim{} : ir::Dim::known(spec.out[d]);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

// ---- Lowering ----------------------------------------------------------------------

struct AxisGeometry {
  int64_t in = 0, out = 0;
  double scale = 1;
  Expr roi_start, roi_end;  // float64, tf_crop_and_resize only
  // Scales or sizes read at run time: the scale and the output size as
  // float64 expressions (then `scale` and `out` are unused).
  Expr run_time_scale, run_time_out;
};

// sourceCoordinate with the scale known only at run time: the same
// arithmetic, in the same order, on float64 expressions.
Expr runTimeSourceCoordinate(const ResizeSpec& spec, const AxisGeometry& g, Expr o) {
  double in = static_cast<double>(g.in);
  Expr s = g.run_time_scale, out_f = g.run_time_scale * in;
  Expr x = kir::cast(ir::DType::kFloat64, std::move(o));
  Expr one = Expr::constant(ir::DType::kFloat64, 1);
  switch (spec.transform) {
    case Transform::kHalfPixel:
      return (x + 0.5) / s - 0.5;
    case Transform::kHalfPixelSymmetric: {
      Expr offset = (in / 2) * (1.0 - g.run_time_out / out_f);
      return offset + (x + 0.5) / s - 0.5;
    }
    case Transform::kPytorchHalfPixel:
      return kir::select(kir::eq(out_f, one), Expr::constant(ir::DType::kFloat64, -0.5), (x + 0.5) / s - 0.5);
    case Transform::kAlignCorners:
      return kir::select(kir::eq(out_f, one), Expr::constant(ir::DType::kFloat64, 0), x * (in - 1) / (out_f - 1.0));
    case Transform::kAsymmetric:
      return x / s;
    case Transform::kTfHalfPixelForNN:
      return (x + 0.5) / s;
    case Transform::kTfCropAndResize: {
      Expr span = (g.roi_end - g.roi_start) * (in - 1);
      Expr base = g.roi_start * (in - 1);
      return kir::select(kir::eq(out_f, one), span / 2.0 + base, x * span / (out_f - 1.0) + base);
    }
  }
  return x;
}

// The input coordinate of output position o (float64).
Expr sourceCoordinate(const ResizeSpec& spec, const AxisGeometry& g, Expr o) {
  if (g.run_time_scale.valid()) return runTimeSourceCoordinate(spec, g, std::move(o));
  double in = static_cast<double>(g.in), s = g.scale, out_f = s * in;
  Expr x = kir::cast(ir::DType::kFloat64, std::move(o));
  switch (spec.transform) {
    case Transform::kHalfPixel: return (x + 0.5) / s - 0.5;
    case Transform::kHalfPixelSymmetric: {
      double offset = in / 2 * (1 - static_cast<double>(g.out) / out_f);
      return offset + (x + 0.5) / s - 0.5;
    }
    case Transform::kPytorchHalfPixel:
      return out_f == 1 ? Expr::constant(ir::DType::kFloat64, -0.5) : (x + 0.5) / s - 0.5;
    case Transform::kAlignCorners:
      return out_f == 1 ? Expr::constant(ir::DType::kFloat64, 0) : x * (in - 1) / (out_f - 1);
    case Transform::kAsymmetric: return x / s;
    case Transform::kTfHalfPixelForNN: return (x + 0.5) / s;
    case Transform::kTfCropAndResize: {
      Expr span = (g.roi_end - g.roi_start) * (in - 1);
      Expr base = g.roi_start * (in - 1);
      return out_f == 1 ? span / 2.0 + base : x * span / (out_f - 1) + base;
    }
  }
  return x;
}

Expr nearestIndex(const ResizeSpec& spec, const AxisGeometry& g, Expr x) {
  using kir::UnaryOp;
  Expr r;
  switch (spec.rounding) {
    case Rounding::kRoundPreferFloor: r = kir::unary(UnaryOp::kCeil, x - 0.5); break;
    case Rounding::kRoundPreferCeil: r = kir::unary(UnaryOp::kFloor, x + 0.5); break;
    case Rounding::kFloor: r = kir::unary(UnaryOp::kFloor, x); break;
    case Rounding::kCeil: r = kir::unary(UnaryOp::kCeil, x); break;
    case Rounding::kSimple:
      if (g.run_time_scale.valid())
        r = kir::select(g.run_time_scale < Expr::constant(ir::DType::kFloat64, 1), kir::unary(UnaryOp::kCeil, x),
                        kir::unary(UnaryOp::kFloor, x));
      else
        r = kir::unary(g.scale < 1 ? UnaryOp::kCeil : UnaryOp::kFloor, x);
      break;
  }
  return kir::min(kir::max(kir::cast(ir::DType::kInt64, r), Expr::index(0)), Expr::index(g.in - 1));
}

// Filter weight at signed distance d (float64) from the sample point.
Expr filterWeight(const ResizeSpec& spec, Expr d) {
  Expr s = kir::abs(d);
  if (spec.mode == Mode::kLinear) return kir::max(1.0 - s, 0.0);
  double a = spec.cubic_a;
  Expr near = ((a + 2) * s - (a + 3)) * s * s + 1.0;
  Expr far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a;
  Expr two = Expr::constant(ir::DType::kFloat64, 2);
  return kir::select(s <= Expr::constant(ir::DType::kFloat64, 1), near, kir::select(s < two, far, 0.0 * s));
}

// The taps of one filtered dim: tap t reads floor(x) + first + t.
struct Filter {
  int64_t first = 0, count = 0;
  double shrink = 1;  // distances are scaled by this (antialias downsampling)
  bool normalize = false;
};

Filter filterFor(const ResizeSpec& spec, double scale) {
  Filter f;
  f.shrink = spec.antialias ? std::min(scale, 1.0) : 1.0;
  double support = spec.mode == Mode::kLinear ? 1.0 : 2.0;
  f.first = spec.antialias ? static_cast<int64_t>(std::floor(-support / f.shrink)) + 1
                           : (spec.mode == Mode::kLinear ? 0 : -1);
  f.count = spec.antialias ? 2 - 2 * f.first : (spec.mode == Mode::kLinear ? 2 : 4);
  f.normalize = spec.antialias || spec.exclude_outside;
  return f;
}

// Weight of tap t for coordinate x; 0 outside X when exclude_outside.
Expr tapWeight(const ResizeSpec& spec, const Filter& f, const AxisGeometry& g, Expr x, Expr t, Expr* index) {
  Expr base = kir::unary(kir::UnaryOp::kFloor, x);
  Expr pos = kir::cast(ir::DType::kInt64, base) + (std::move(t) + static_cast<double>(f.first));
  Expr w = filterWeight(spec, (kir::cast(ir::DType::kFloat64, pos) - x) * f.shrink);
  if (spec.exclude_outside) w = kir::select(kir::inRange(pos, g.in), w, Expr::constant(ir::DType::kFloat64, 0));
  if (index) *index = kir::min(kir::max(pos, Expr::index(0)), Expr::index(g.in - 1));
  return w;
}

// ---- Scales or sizes read at run time ----------------------------------------------
// A kernel of shape steps reads them and stores each resized dim's output
// size in a slot (checked: scales positive, at least 1 for Upsample, sizes
// not negative); the element kernel reads the scales again (or divides the
// sizes) for its coordinate transforms.

struct RunTimeGeometry {
  Buffer given;                // scales or sizes, bound in the current kernel
  std::vector<int> out_slots;  // per dim of X
};

// The scale of axis k (dim d) as float64, in the kernel `given` is bound in.
Expr runTimeScale(const ResizeSpec& spec, const RunTimeGeometry& rt, const std::vector<int64_t>& in, size_t k) {
  using ir::DType;
  if (!spec.from_sizes)
    return kir::cast(DType::kFloat64, kir::cast(DType::kFloat32, rt.given(Expr::index(static_cast<int64_t>(k)))));
  auto ratio = [&](size_t j) {
    int64_t from = in[spec.axes[j]];
    Expr size = kir::cast(DType::kFloat64, kir::cast(DType::kInt64, rt.given(Expr::index(static_cast<int64_t>(j)))));
    return from > 0 ? size / static_cast<double>(from) : Expr();
  };
  if (spec.policy == "stretch") {
    Expr r = ratio(k);
    return r.valid() ? r : Expr::constant(DType::kFloat64, 1);
  }
  Expr common;
  for (size_t j = 0; j < spec.axes.size(); ++j) {
    Expr r = ratio(j);
    if (!r.valid()) continue;
    common = !common.valid() ? r : spec.policy == "not_larger" ? kir::min(common, r) : kir::max(common, r);
  }
  return common.valid() ? common : Expr::constant(DType::kFloat64, 1);
}

Expected<std::vector<int>> runTimeOutputDims(LowerContext& ctx, const ResizeSpec& spec,
                                             const std::vector<int64_t>& in) {
  using ir::DType;
  ctx.newKernel("shape");
  RunTimeGeometry rt{ctx.input(static_cast<size_t>(spec.run_time_input), {static_cast<int64_t>(spec.axes.size())}), {}};
  std::vector<Expr> sizes;
  for (int64_t d : in) sizes.push_back(Expr::index(d));
  Expr ok = Expr::constant(DType::kBool, 1);
  for (size_t k = 0; k < spec.axes.size(); ++k) {
    int64_t d = spec.axes[k];
    Expr scale = runTimeScale(spec, rt, in, k);
    double from = static_cast<double>(in[d]);
    if (!spec.from_sizes) {
      ok = ok &&
           (isUpsample(ctx) ? scale >= Expr::constant(DType::kFloat64, 1) : scale > Expr::constant(DType::kFloat64, 0));
      sizes[d] = kir::cast(DType::kInt64, kir::unary(kir::UnaryOp::kFloor, scale * from));
    } else if (spec.policy == "stretch") {
      sizes[d] = kir::cast(DType::kInt64, rt.given(Expr::index(static_cast<int64_t>(k))));
    } else {
      sizes[d] = kir::cast(DType::kInt64, scale * from + 0.5);
    }
  }
  if (!spec.from_sizes)
    ctx.builder().check(ctx.addCheck(std::string("scales (input ") + std::to_string(spec.run_time_input) +
                                     ") must be " + (isUpsample(ctx) ? "at least 1" : "positive")),
                        ok);
  return setOutputDims(ctx, 0, sizes);
}

Status lowerResize(LowerContext& ctx) {
  std::vector<int64_t> in = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(ResizeSpec spec, resizeSpec(ctx, in));
  RunTimeGeometry rt;
  bool run_time = spec.run_time_input >= 0;
  if (run_time) {
    if (ctx.isDynamicInput(0)) return ctx.unsupportedError("X (input 0) has a run-time shape as well");
    if (spec.antialias)
      return ctx.unsupportedError(
          "antialias with scales or sizes computed at run time (the filter's width depends "
          "on the scale); give them as constants");
    KILN_ASSIGN_OR_RETURN(rt.out_slots, runTimeOutputDims(ctx, spec, in));
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  if (run_time)
    rt.given = ctx.input(static_cast<size_t>(spec.run_time_input), {static_cast<int64_t>(spec.axes.size())});
  Buffer roi;
  bool crop = spec.transform == Transform::kTfCropAndResize;
  if (crop) roi = ctx.input(1);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = run_time ? ctx.outputVars(0, "o") : kb.vars(y.shape(), "o");
  std::vector<Expr> index = asExprs(axes);
  ir::DType ct = ir::isFloat(x.dtype()) ? computeDType(x.dtype()) : ir::DType::kFloat32;
  Expr outside = Expr::constant(ir::DType::kBool, 0);
  std::vector<kir::IterVar> taps;
  Expr weight, norm;
  for (size_t d = 0; d < in.size(); ++d) {
    AxisGeometry g{in[d], y.dim(d), spec.scales[d], {}, {}, {}, {}};
    if (run_time) {
      auto k = std::find(spec.axes.begin(), spec.axes.end(), static_cast<int64_t>(d));
      if (k == spec.axes.end() || g.in == 0) continue;  // copied, or nothing to read
      g.run_time_scale = runTimeScale(spec, rt, in, static_cast<size_t>(k - spec.axes.begin()));
      g.run_time_out = kir::cast(ir::DType::kFloat64, kir::slotValue(rt.out_slots[d]));
    } else {
      if (!crop && g.scale == 1.0 && g.in == g.out) continue;  // this dim is copied
      if (g.in == 0 || g.out == 0) continue;
    }
    if (crop) {
      auto slot = std::find(spec.axes.begin(), spec.axes.end(), static_cast<int64_t>(d));
      if (slot == spec.axes.end()) continue;
      int64_t k = slot - spec.axes.begin(), n = static_cast<int64_t>(spec.axes.size());
      g.roi_start = kir::cast(ir::DType::kFloat64, roi(Expr::index(k)));
      g.roi_end = kir::cast(ir::DType::kFloat64, roi(Expr::index(n + k)));
    }
    Expr src = sourceCoordinate(spec, g, axes[d]);
    if (crop)
      outside = outside || src < Expr::constant(ir::DType::kFloat64, 0) ||
                src > Expr::constant(ir::DType::kFloat64, static_cast<double>(g.in - 1));
    if (spec.mode == Mode::kNearest) {
      index[d] = nearestIndex(spec, g, src);
      continue;
    }
    Filter f = filterFor(spec, g.scale);  // antialias, the one use of the scale here, is refused at run time
    kir::IterVar t = kb.var("t" + std::to_string(d), f.count);
    taps.push_back(t);
    Expr w = tapWeight(spec, f, g, src, t, &index[d]);
    weight = weight.valid() ? weight * w : w;
    if (f.normalize) {
      kir::IterVar u = kb.var("u" + std::to_string(d), f.count);
      Expr sum = kir::reduce(kir::ReduceOp::kSum, {u}, tapWeight(spec, f, g, src, u, nullptr));
      norm = norm.valid() ? norm * sum : sum;
    }
  }
  Expr value;
  if (taps.empty()) {
    value = x.load(index);
  } else {
    Expr sample = kir::cast(ct, weight) * kir::cast(ct, x.load(index));
    value = kir::reduce(kir::ReduceOp::kSum, taps, sample);
    if (norm.valid()) value = value / kir::cast(ct, norm);
  }
  if (crop) value = kir::select(outside, Expr::constant(ct, spec.extrapolation), kir::cast(ct, value));
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

std::vector<AttrSpec> resizeAttrs() {
  return {{"mode", Kind::kString},
          {"coordinate_transformation_mode", Kind::kString},
          {"cubic_coeff_a", Kind::kFloat},
          {"exclude_outside", Kind::kInt},
          {"extrapolation_value", Kind::kFloat},
          {"nearest_mode", Kind::kString},
          {"antialias", Kind::kInt},
          {"axes", Kind::kInts},
          {"keep_aspect_ratio_policy", Kind::kString}};
}

}  // namespace

void registerResizeOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "Resize", {10, 11, 13, 18, 19}, resizeAttrs(), inferResize, lowerResize});
  registry.add(OpSchema{"", "Upsample", {7, 9}, {{"mode", Kind::kString}, {"scales", Kind::kFloats}}, inferResize,
                        lowerResize});
}

}  // namespace kiln::ops
