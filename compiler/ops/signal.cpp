// Signal processing: HannWindow, HammingWindow, BlackmanWindow, DFT, STFT and
// MelWeightMatrix, each as a direct sum per output element:
//   window[n]          = a0 - a1 cos(2 pi n / D) + a2 cos(4 pi n / D)
//   DFT  Y[.., k, .., c] = (1/L if inverse) sum_n X[.., n, ..] e^(-+2 pi i k n / L)
//   STFT Y[b, f, k, c]   = sum_n w[n] X[b, f*step + n] e^(-2 pi i k n / L)
// Twiddle angles are reduced exactly in integers ((k n) mod L) and taken in
// float64. Sizes that shape the output may be read at run time for the
// windows (size), STFT (frame_step, frame_length) and MelWeightMatrix
// (num_mel_bins, dft_length): the output dims are then dim slots; DFT's
// dft_length and axis must be constants.
#include <cmath>
#include <numbers>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;
constexpr ir::DType f64 = ir::DType::kFloat64;

// One integer scalar input that decides a size: a constant, or unsupported.
Expected<int64_t> constantScalar(const NodeView& ctx, size_t i, std::string_view role) {
  const ir::Tensor* t = ctx.constantInput(i);
  if (!t)
    return ctx.unsupportedError(std::string(role) + " (input " + std::to_string(i) +
                                ") is computed at run time; Kiln needs it to be a constant");
  if (t->elementCount() != 1 || ir::isFloat(t->dtype()) || t->dtype() == ir::DType::kString)
    return ctx.error(std::string(role) + " must be one integer, got " + t->type().toString() + " (input " +
                     std::to_string(i) + ")");
  return t->intAt(0);
}

// An integer scalar input computed at run time (one element, any rank).
Status expectRunTimeScalar(const NodeView& ctx, size_t i, std::string_view role) {
  ir::DType dtype = ctx.inputType(i).dtype;
  if (!ir::isInteger(dtype))
    return ctx.error(std::string(role) + " must be an integer, got " + std::string(ir::name(dtype)) + " (input " +
                     std::to_string(i) + ")");
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, std::string(role)));
  ir::Dim count = productDim(shape, 0, shape.size());
  if (!count.isKnown() || count.value != 1)
    return ctx.error(std::string(role) + " must be one integer, got shape " + ir::toString(shape) + " (input " +
                     std::to_string(i) + ")");
  return Status::ok();
}

// Its value as int64, read in the current kernel.
Expr runTimeScalar(LowerContext& ctx, size_t i) { return indexAt(ctx.input(i, {1}), 0); }

Expected<ir::DType> outputDatatype(const NodeView& ctx) {
  int64_t code = ctx.attrInt("output_datatype", 1);
  ir::DType dtype = static_cast<ir::DType>(code);
  bool ok = code > 0 && code <= 16 && code != static_cast<int64_t>(ir::DType::kString) &&
            code != static_cast<int64_t>(ir::DType::kBool) && (ir::isFloat(dtype) || ir::isInteger(dtype));
  if (!ok) return ctx.error("output_datatype " + std::to_string(code) + " is not a numeric tensor type");
  return dtype;
}

// Angle 2 pi ((k n) mod L) / L in float64, for int64 k and n; L is the
// value of `length_slot` when that is a slot (>= 0).
Expr twiddleAngle(Expr k, Expr n, int64_t length, int length_slot = -1) {
  if (length_slot >= 0) {
    Expr turns = (std::move(k) * std::move(n)) % kir::slotValue(length_slot);
    return kir::cast(f64, turns) * ((2 * std::numbers::pi) / kir::cast(f64, kir::slotValue(length_slot)));
  }
  Expr turns = (std::move(k) * std::move(n)) % Expr::index(length);
  return kir::cast(f64, turns) * (2 * std::numbers::pi / static_cast<double>(length));
}

// ---- Windows -----------------------------------------------------------------------

struct Cosines {
  double a0, a1, a2;
};

Status inferWindow(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(ir::DType dtype, outputDatatype(ctx));
  if (!ctx.constantInput(0)) {
    KILN_RETURN_IF_ERROR(expectRunTimeScalar(ctx, 0, "size"));
    ctx.setOutputType(0, {dtype, unknownDims(1)});
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t size, constantScalar(ctx, 0, "size"));
  if (size < 0) return ctx.error("size must not be negative, got " + std::to_string(size) + " (input 0)");
  ctx.setOutputType(0, {dtype, ir::Shape{ir::Dim::known(size)}});
  return Status::ok();
}

// The size read at run time: the span is a slot, the phase step divided at
// run time (the same float64 division the constant case does at compile time).
Status lowerRunTimeWindow(LowerContext& ctx, Cosines c) {
  bool periodic = ctx.attrInt("periodic", 1) != 0;
  ctx.newKernel("shape");
  Expr size = runTimeScalar(ctx, 0);
  ctx.builder().check(ctx.addCheck("size (input 0) is negative"), size >= Expr::index(0));
  std::vector<int> dims = setOutputDims(ctx, 0, {size});
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> n = ctx.outputVars(0, "n");
  Expr span = kir::cast(f64, kir::slotValue(dims[0]) - Expr::index(periodic ? 0 : 1));
  Expr zero = Expr::constant(f64, 0);
  Expr step = kir::select(span > zero, (2 * std::numbers::pi) / span, zero);
  Expr phase = kir::cast(f64, Expr(n[0])) * step;
  Expr w = c.a0 - c.a1 * kir::unary(kir::UnaryOp::kCos, phase);
  if (c.a2 != 0) w = w + c.a2 * kir::unary(kir::UnaryOp::kCos, phase * 2.0);
  kb.compute(y, n, kir::cast(y.dtype(), w));
  return Status::ok();
}

Status lowerWindow(LowerContext& ctx, Cosines c) {
  if (!ctx.constantInput(0)) return lowerRunTimeWindow(ctx, c);
  KILN_ASSIGN_OR_RETURN(int64_t size, constantScalar(ctx, 0, "size"));
  bool periodic = ctx.attrInt("periodic", 1) != 0;
  double span = static_cast<double>(periodic ? size : size - 1);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  kir::IterVar n = kb.var("n", size);
  Expr phase = span > 0 ? kir::cast(f64, Expr(n)) * (2 * std::numbers::pi / span) : Expr::constant(f64, 0);
  Expr w = c.a0 - c.a1 * kir::unary(kir::UnaryOp::kCos, phase);
  if (c.a2 != 0) w = w + c.a2 * kir::unary(kir::UnaryOp::kCos, phase * 2.0);
  kb.compute(y, {n}, kir::cast(y.dtype(), w));
  return Status::ok();
}

// ---- DFT ---------------------------------------------------------------------------

struct DftSpec {
  size_t axis = 1;
  int64_t length = 0;  // the transform's L
  int64_t bins = 0;    // output size on the axis
  bool inverse = false;
};

Expected<DftSpec> dftSpec(const NodeView& ctx, const ir::Shape& x) {
  DftSpec spec;
  int64_t rank = static_cast<int64_t>(x.size());
  int64_t axis = ctx.attrInt("axis", 1);
  if (ctx.opset() >= 20) {
    axis = -2;
    if (ctx.numInputs() > 2 && ctx.hasInput(2)) {
      KILN_ASSIGN_OR_RETURN(axis, constantScalar(ctx, 2, "axis"));
    }
  }
  KILN_ASSIGN_OR_RETURN(int64_t a, normalizeAxis(ctx, axis, rank));
  if (a == 0 || a == rank - 1)
    return ctx.error("axis " + std::to_string(axis) + " must name a signal dim, not the batch or the complex dim");
  spec.axis = static_cast<size_t>(a);
  if (!x[spec.axis].isKnown()) return ctx.unsupportedError("the signal dim " + std::to_string(a) + " is not static");
  spec.length = x[spec.axis].value;
  if (ctx.numInputs() > 1 && ctx.hasInput(1)) {
    KILN_ASSIGN_OR_RETURN(spec.length, constantScalar(ctx, 1, "dft_length"));
    if (spec.length < 1) return ctx.error("dft_length must be positive (input 1)");
  }
  spec.inverse = ctx.attrInt("inverse", 0) != 0;
  spec.bins = ctx.attrInt("onesided", 0) != 0 ? spec.length / 2 + 1 : spec.length;
  return spec;
}

Status expectComplexDim(const NodeView& ctx, const ir::Shape& x, const char* role) {
  const ir::Dim& last = x.back();
  if (last.isKnown() && last.value != 1 && last.value != 2)
    return ctx.error(std::string(role) + " " + ir::toString(x) +
                     " must end in a dim of 1 (real) or 2 (complex) (input 0)");
  if (!last.isKnown()) return ctx.unsupportedError(std::string("the last dim of ") + role + " is not static");
  return Status::ok();
}

Status inferDft(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, ctx.opset() >= 20 ? 3 : 2));
  KILN_RETURN_IF_ERROR(rejectMovedAttributes(ctx, 20, {"axis"}));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "input", 3));
  KILN_RETURN_IF_ERROR(expectComplexDim(ctx, x, "input"));
  KILN_ASSIGN_OR_RETURN(DftSpec spec, dftSpec(ctx, x));
  ir::Shape out = x;
  out[spec.axis] = ir::Dim::known(spec.bins);
  out.back() = ir::Dim::known(2);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

// Real and imaginary parts of sum_n (a + ib)(cos t -+ i sin t) * scale, as
// two stages storing Y[.., 0] and Y[.., 1]. `sample(n, part)` loads part 0/1
// of the n-th term (part 1 is 0 for real signals) already multiplied by any
// window; `axes` excludes the complex dim.
// `length_slot` >= 0: terms and length are both that slot's value (an STFT
// frame length read at run time).
template <typename Sample>
void emitComplexSum(kir::KernelBuilder& kb, const Buffer& y, const std::vector<kir::IterVar>& axes, Expr bin,
                    int64_t terms, int64_t length, double sign, double scale, Sample sample, int length_slot = -1) {
  ir::DType ct = computeDType(y.dtype());
  for (int part = 0; part < 2; ++part) {
    kir::IterVar n = kb.var("n", terms);
    n.extent_slot = length_slot;
    Expr angle = twiddleAngle(bin, n, length, length_slot);
    Expr cosine = kir::cast(ct, kir::unary(kir::UnaryOp::kCos, angle));
    Expr sine = kir::cast(ct, kir::unary(kir::UnaryOp::kSin, angle)) * sign;
    Expr re = sample(Expr(n), 0), im = sample(Expr(n), 1);
    Expr term = part == 0 ? re * cosine - im * sine : im * cosine + re * sine;
    Expr sum = kir::reduce(kir::ReduceOp::kSum, {n}, term);
    if (scale != 1) sum = sum * scale;
    std::vector<Expr> at = asExprs(axes);
    at.push_back(Expr::index(part));
    kb.computeAt(y, axes, at, kir::cast(y.dtype(), sum));
  }
}

Status lowerDft(LowerContext& ctx) {
  std::vector<int64_t> in = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(DftSpec spec, dftSpec(ctx, ir::makeShape(in)));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<int64_t> outer(y.shape().begin(), y.shape().end() - 1);
  std::vector<kir::IterVar> axes = kb.vars(outer, "o");
  int64_t terms = std::min(in[spec.axis], spec.length);  // zero-padded or truncated to L
  bool complex = in.back() == 2;
  ir::DType ct = computeDType(y.dtype());
  auto sample = [&](Expr n, int part) {
    if (part == 1 && !complex) return Expr::constant(ct, 0);
    std::vector<Expr> at = asExprs(axes);
    at[spec.axis] = n;
    at.push_back(Expr::index(part));
    return toCompute(x.load(at));
  };
  double scale = spec.inverse ? 1.0 / static_cast<double>(spec.length) : 1.0;
  if (terms == 0) {
    std::vector<kir::IterVar> all = kb.vars(y.shape(), "z");
    kb.compute(y, all, kir::cast(y.dtype(), Expr::constant(ct, 0)));
    return Status::ok();
  }
  emitComplexSum(kb, y, axes, Expr(axes[spec.axis]), terms, spec.length, spec.inverse ? 1.0 : -1.0, scale, sample);
  return Status::ok();
}

// ---- STFT --------------------------------------------------------------------------

struct StftSpec {
  int64_t step = 0, length = 0, frames = 0, bins = 0;
  bool window = false;
};

Expected<StftSpec> stftSpec(const NodeView& ctx, const ir::Shape& signal) {
  StftSpec spec;
  KILN_ASSIGN_OR_RETURN(spec.step, constantScalar(ctx, 1, "frame_step"));
  if (spec.step < 1) return ctx.error("frame_step must be positive (input 1)");
  spec.window = ctx.numInputs() > 2 && ctx.hasInput(2);
  bool has_length = ctx.numInputs() > 3 && ctx.hasInput(3);
  if (spec.window) {
    KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, 2, "window", 1));
    if (!w[0].isKnown()) return ctx.unsupportedError("the window's length (input 2) is not static");
    spec.length = w[0].value;
  }
  if (has_length) {
    KILN_ASSIGN_OR_RETURN(int64_t length, constantScalar(ctx, 3, "frame_length"));
    if (spec.window && length != spec.length)
      return ctx.error("frame_length " + std::to_string(length) + " differs from the window's length " +
                       std::to_string(spec.length) + " (input 3)");
    spec.length = length;
  }
  if (!spec.window && !has_length) return ctx.error("needs window (input 2) or frame_length (input 3)");
  if (!signal[1].isKnown()) return ctx.unsupportedError("the signal's length is not static (input 0)");
  if (spec.length < 1 || spec.length > signal[1].value)
    return ctx.error("frame length " + std::to_string(spec.length) + " must be in [1, " +
                     std::to_string(signal[1].value) + "], the signal's length");
  spec.frames = (signal[1].value - spec.length) / spec.step + 1;
  spec.bins = ctx.attrInt("onesided", 1) != 0 ? spec.length / 2 + 1 : spec.length;
  return spec;
}

// frame_step or frame_length computed at run time: the number of frames
// (and, for a run-time frame_length, the bins and the sum's length) are dim
// slots, checked as stftSpec checks the constants.
bool runTimeStft(const NodeView& ctx) {
  bool has_length = ctx.numInputs() > 3 && ctx.hasInput(3);
  return !ctx.constantInput(1) || (has_length && !ctx.constantInput(3));
}

Status inferRunTimeStft(InferContext& ctx, const ir::Shape& x) {
  bool window = ctx.numInputs() > 2 && ctx.hasInput(2), has_length = ctx.numInputs() > 3 && ctx.hasInput(3);
  if (!window && !has_length) return ctx.error("needs window (input 2) or frame_length (input 3)");
  if (!ctx.constantInput(1)) KILN_RETURN_IF_ERROR(expectRunTimeScalar(ctx, 1, "frame_step"));
  if (has_length && !ctx.constantInput(3)) KILN_RETURN_IF_ERROR(expectRunTimeScalar(ctx, 3, "frame_length"));
  if (!x[1].isKnown()) return ctx.unsupportedError("the signal's length is not static (input 0)");
  ir::Dim bins;
  if (window) {
    KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, 2, "window", 1));
    if (!w[0].isKnown()) return ctx.unsupportedError("the window's length (input 2) is not static");
    bins = ir::Dim::known(ctx.attrInt("onesided", 1) != 0 ? w[0].value / 2 + 1 : w[0].value);
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::Shape{x[0], ir::Dim{}, bins, ir::Dim::known(2)}});
  return Status::ok();
}

Status lowerRunTimeStft(LowerContext& ctx) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("the signal (input 0) has a run-time shape");
  std::vector<int64_t> in = ctx.inputDims(0);
  bool window = ctx.numInputs() > 2 && ctx.hasInput(2), has_length = ctx.numInputs() > 3 && ctx.hasInput(3);
  ctx.newKernel("shape");
  auto scalar = [&](size_t i) {
    const ir::Tensor* t = ctx.constantInput(i);
    return t ? integerConstant(ir::DType::kInt64, t->intAt(0)) : runTimeScalar(ctx, i);
  };
  int64_t window_length = window ? ctx.inputDims(2)[0] : 0;
  Expr step = scalar(1);
  Expr length = has_length ? scalar(3) : Expr::index(window_length);
  Expr ok = step >= Expr::index(1) && length >= Expr::index(1) && length <= Expr::index(in[1]);
  if (window && has_length) ok = ok && kir::eq(length, Expr::index(window_length));
  int step_slot = ctx.newSlot(), length_slot = ctx.newSlot();
  ctx.builder().setSlot(step_slot, step);
  ctx.builder().setSlot(length_slot, length);
  ctx.builder().check(
      ctx.addCheck("frame_step {$" + std::to_string(step_slot) + "} must be positive and the frame length {$" +
                   std::to_string(length_slot) + "} in [1, " + std::to_string(in[1]) +
                   "] (the signal's length) and equal to the window's where both are given"),
      ok);
  Expr frames = (Expr::index(in[1]) - kir::slotValue(length_slot)) / kir::slotValue(step_slot) + Expr::index(1);
  Expr bins = ctx.attrInt("onesided", 1) != 0 ? kir::slotValue(length_slot) / Expr::index(2) + Expr::index(1)
                                              : kir::slotValue(length_slot);
  setOutputDims(ctx, 0, {Expr::index(in[0]), frames, bins, Expr::index(2)});
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer w;
  if (window) w = ctx.input(2);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0, "o");
  axes.pop_back();
  bool complex = in[2] == 2;
  ir::DType ct = computeDType(y.dtype());
  auto sample = [&](Expr n, int part) {
    if (part == 1 && !complex) return Expr::constant(ct, 0);
    Expr t = kir::min(Expr(axes[1]) * kir::slotValue(step_slot) + n, Expr::index(in[1] - 1));
    Expr v = toCompute(x(axes[0], t, Expr::index(part)));
    return window ? v * toCompute(w(n)) : v;
  };
  emitComplexSum(kb, y, axes, Expr(axes[2]), 0, 0, -1.0, 1.0, sample, length_slot);
  return Status::ok();
}

Status inferStft(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 4));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "signal", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, 0, "signal", 3));
  KILN_RETURN_IF_ERROR(expectComplexDim(ctx, x, "signal"));
  if (ctx.numInputs() > 2 && ctx.hasInput(2)) KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "window"));
  if (runTimeStft(ctx)) return inferRunTimeStft(ctx, x);
  KILN_ASSIGN_OR_RETURN(StftSpec spec, stftSpec(ctx, x));
  ctx.setOutputType(0, {ctx.inputType(0).dtype,
                        ir::Shape{x[0], ir::Dim::known(spec.frames), ir::Dim::known(spec.bins), ir::Dim::known(2)}});
  return Status::ok();
}

Status lowerStft(LowerContext& ctx) {
  if (runTimeStft(ctx)) return lowerRunTimeStft(ctx);
  KILN_ASSIGN_OR_RETURN(StftSpec spec, stftSpec(ctx, ir::makeShape(ctx.inputDims(0))));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer window;
  if (spec.window) window = ctx.input(2);
  Buffer y = ctx.output(0);
  std::vector<int64_t> outer(y.shape().begin(), y.shape().end() - 1);
  std::vector<kir::IterVar> axes = kb.vars(outer, "o");
  bool complex = x.dim(2) == 2;
  ir::DType ct = computeDType(y.dtype());
  int64_t last = x.dim(1) - 1;
  auto sample = [&](Expr n, int part) {
    if (part == 1 && !complex) return Expr::constant(ct, 0);
    Expr t = kir::min(Expr(axes[1]) * static_cast<double>(spec.step) + n, Expr::index(last));
    Expr v = toCompute(x(axes[0], t, Expr::index(part)));
    return spec.window ? v * toCompute(window(n)) : v;
  };
  emitComplexSum(kb, y, axes, Expr(axes[2]), spec.length, spec.length, -1.0, 1.0, sample);
  return Status::ok();
}

// ---- MelWeightMatrix -----------------------------------------------------------------
// Triangular filters between num_mel_bins + 2 points on the mel scale,
// starting at lower_edge_hertz and spaced (upper - lower) / (num_mel_bins + 2)
// apart (the reference's spacing), each mapped to a DFT bin
// floor((dft_length + 1) * hz / sample_rate). Column i rises from point i to
// point i+1 and falls to point i+2:
//   W[j, i] = (j - l) / (c - l) for l <= j <= c,  (h - j) / (h - c) for c <= j < h
// (1 at j = c when l = c). The edges and the sample rate may be run-time data.

Status inferMelWeightMatrix(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 5, 5));
  KILN_ASSIGN_OR_RETURN(ir::DType dtype, outputDatatype(ctx));
  ir::Shape out = unknownDims(2);
  if (ctx.constantInput(0)) {
    KILN_ASSIGN_OR_RETURN(int64_t mels, constantScalar(ctx, 0, "num_mel_bins"));
    if (mels < 1) return ctx.error("num_mel_bins must be positive (input 0)");
    out[1] = ir::Dim::known(mels);
  } else {
    KILN_RETURN_IF_ERROR(expectRunTimeScalar(ctx, 0, "num_mel_bins"));
  }
  if (ctx.constantInput(1)) {
    KILN_ASSIGN_OR_RETURN(int64_t length, constantScalar(ctx, 1, "dft_length"));
    if (length < 1) return ctx.error("dft_length must be positive (input 1)");
    out[0] = ir::Dim::known(length / 2 + 1);
  } else {
    KILN_RETURN_IF_ERROR(expectRunTimeScalar(ctx, 1, "dft_length"));
  }
  if (ir::isFloat(ctx.inputType(2).dtype)) return ctx.error("sample_rate must be an integer (input 2)");
  KILN_RETURN_IF_ERROR(expectDType(ctx, 3, "lower_edge_hertz", DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 4, "upper_edge_hertz", DTypeClass::kFloat));
  ctx.setOutputType(0, {dtype, out});
  return Status::ok();
}

// The sizes as float64 expressions: mels + 2 and dft_length + 1 (constants
// when known at compile time), and the iteration variables over the output.
struct MelSizes {
  Expr mels_plus_two, length_plus_one;
  kir::IterVar j, i;
};

Expected<MelSizes> melSizes(LowerContext& ctx) {
  MelSizes sizes;
  if (ctx.constantInput(0) && ctx.constantInput(1)) {
    KILN_ASSIGN_OR_RETURN(int64_t mels, constantScalar(ctx, 0, "num_mel_bins"));
    KILN_ASSIGN_OR_RETURN(int64_t length, constantScalar(ctx, 1, "dft_length"));
    sizes.mels_plus_two = Expr::constant(f64, static_cast<double>(mels + 2));
    sizes.length_plus_one = Expr::constant(f64, static_cast<double>(length) + 1.0);
    kir::KernelBuilder& kb = ctx.newKernel();
    sizes.j = kb.var("j", ctx.outputDims(0)[0]);
    sizes.i = kb.var("i", mels);
    return sizes;
  }
  ctx.newKernel("shape");
  auto scalar = [&](size_t i) {
    const ir::Tensor* t = ctx.constantInput(i);
    return t ? integerConstant(ir::DType::kInt64, t->intAt(0)) : runTimeScalar(ctx, i);
  };
  int mels = ctx.newSlot(), length = ctx.newSlot();
  ctx.builder().setSlot(mels, scalar(0));
  ctx.builder().setSlot(length, scalar(1));
  ctx.builder().check(ctx.addCheck("num_mel_bins {$" + std::to_string(mels) + "} and dft_length {$" +
                                   std::to_string(length) + "} must be positive (inputs 0 and 1)"),
                      kir::slotValue(mels) >= Expr::index(1) && kir::slotValue(length) >= Expr::index(1));
  setOutputDims(ctx, 0, {kir::slotValue(length) / Expr::index(2) + Expr::index(1), kir::slotValue(mels)});
  sizes.mels_plus_two = kir::cast(f64, kir::slotValue(mels) + Expr::index(2));
  sizes.length_plus_one = kir::cast(f64, kir::slotValue(length) + Expr::index(1));
  ctx.newKernel();
  std::vector<kir::IterVar> vars = ctx.outputVars(0, "m");
  sizes.j = vars[0];
  sizes.i = vars[1];
  return sizes;
}

Status lowerMelWeightMatrix(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(MelSizes sizes, melSizes(ctx));
  kir::KernelBuilder& kb = ctx.builder();
  Buffer rate = ctx.input(2, {1});
  Buffer lower = ctx.input(3, {1});
  Buffer upper = ctx.input(4, {1});
  Buffer y = ctx.output(0);
  kir::IterVar j = sizes.j, i = sizes.i;
  Expr zero = Expr::index(0);
  // The mel-scale edges in float32, as the reference computes them.
  auto toMel = [](Expr hz) {
    Expr f = kir::cast(ir::DType::kFloat32, hz);
    return kir::cast(f64, 2595.0 * kir::log(1.0 + f / 700.0) / std::log(10.0));
  };
  Expr low = toMel(lower(zero)), high = toMel(upper(zero));
  Expr step = kir::cast(f64, kir::cast(ir::DType::kFloat32, (high - low) / sizes.mels_plus_two));
  Expr sr = kir::cast(f64, rate(zero));
  auto point = [&](Expr m) {
    Expr mel = kir::cast(f64, std::move(m)) * step + low;
    Expr hz = 700.0 * (kir::exp(mel / 2595.0 * std::log(10.0)) - 1.0);
    return kir::cast(ir::DType::kInt64, kir::unary(kir::UnaryOp::kFloor, sizes.length_plus_one * hz / sr));
  };
  Expr l = point(i), c = point(Expr(i) + 1.0), h = point(Expr(i) + 2.0);
  Expr jj = Expr(j);
  Expr one = Expr::constant(f64, 1), none = Expr::constant(f64, 0);
  Expr rise = kir::select(kir::eq(l, c), kir::select(kir::eq(jj, c), one, none),
                          kir::select(l <= jj && jj <= c, kir::cast(f64, jj - l) / kir::cast(f64, c - l), none));
  Expr fall = kir::cast(f64, h - jj) / kir::cast(f64, h - c);
  Expr value = kir::select(h > c && c <= jj && jj < h, fall, rise);
  kb.compute(y, {j, i}, kir::cast(y.dtype(), value));
  return Status::ok();
}

}  // namespace

void registerSignalOps(OpRegistry& registry) {
  const std::vector<AttrSpec> window_attrs = {{"output_datatype", Kind::kInt}, {"periodic", Kind::kInt}};
  auto window = [&](const char* name, Cosines c) {
    registry.add(OpSchema{"", name, {17}, window_attrs, inferWindow,
                          [c](LowerContext& ctx) { return lowerWindow(ctx, c); }});
  };
  window("HannWindow", {0.5, 0.5, 0});
  window("HammingWindow", {25.0 / 46.0, 21.0 / 46.0, 0});
  window("BlackmanWindow", {0.42, 0.5, 0.08});
  registry.add(OpSchema{"", "DFT", {17, 20},
                        {{"axis", Kind::kInt}, {"inverse", Kind::kInt}, {"onesided", Kind::kInt}}, inferDft,
                        lowerDft});
  registry.add(OpSchema{"", "STFT", {17}, {{"onesided", Kind::kInt}}, inferStft, lowerStft});
  registry.add(OpSchema{"", "MelWeightMatrix", {17}, {{"output_datatype", Kind::kInt}}, inferMelWeightMatrix,
                        lowerMelWeightMatrix});
}

}  // namespace kiln::ops
