// Models whose contractions take the CUDA backend's GEMM path (large enough
// for cuBLASLt, codegen/cuda/contraction.h): one model, one input and output
// per case, written as ONNX. Shared by cuda_codegen_test (the plan) and
// cuda_runtime_test (the numbers).
#pragma once

#include <array>
#include <random>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/onnx/writer.h"

namespace kiln::testing {

struct ContractionCase {
  const char* name;
  const char* what;  // what the GEMM path must handle
};

// Output i of contractionModel() is case i.
inline const std::vector<ContractionCase>& contractionCases() {
  static const std::vector<ContractionCase> kCases = {
      {"matmul_bias_relu", "weights read in place, bias and Relu in the epilogue"},
      {"batched_matmul", "both operands run-time inputs, batched, the output written by the GEMM"},
      {"conv3x3_bias_relu", "padded windows packed, NCHW output as a batch of column-major matrices"},
      {"conv1x1", "a 1x1 convolution read in place"},
      {"gemm_transb", "Gemm with transB and a bias"},
      {"matmul_bias_residual", "bias and a residual input added by cuBLASLt's epilogue (C accumulated)"},
      {"scaled_batched_matmul", "attention scores divided by a power of two: cuBLASLt's alpha"},
  };
  return kCases;
}

inline ir::Tensor randomTensor(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<float> values(static_cast<size_t>(n));
  for (float& v : values) v = dist(rng);
  return ir::Tensor::fromValues<float>(ir::DType::kFloat32, std::move(dims), std::span<const float>(values));
}

// Builds a float32 test model node by node: inputs, constants (random in
// [-0.5, 0.5), seeded in the order they are made, from `first_seed`),
// one-output nodes, outputs.
class ModelWriter {
 public:
  ModelWriter(int64_t opset, uint32_t first_seed) : seed_(first_seed) {
    model_.ir_version = 8;
    model_.opset_imports[""] = opset;
  }
  ir::Value* input(const std::string& name, const std::vector<int64_t>& dims) {
    ir::Value* v = g().addValue(name, {ir::DType::kFloat32, ir::makeShape(dims)});
    g().inputs.push_back(v);
    return v;
  }
  ir::Value* constant(const std::string& name, std::vector<int64_t> dims) {
    return constant(name, randomTensor(std::move(dims), seed_++));
  }
  ir::Value* scalar(const std::string& name, float value) {
    return constant(name, ir::Tensor::fromValues<float>(ir::DType::kFloat32, {}, std::span<const float>(&value, 1)));
  }
  ir::Value* constant(const std::string& name, ir::Tensor t) {
    ir::Value* v = g().addValue(name, t.type());
    v->constant = std::move(t);
    return v;
  }
  ir::Node* node(const std::string& op, std::vector<ir::Value*> inputs, const std::string& out) {
    ir::Node* n = g().addNode(op, out);
    n->inputs = std::move(inputs);
    ir::Value* v = g().addValue(out);
    v->producer = n;
    v->producer_output = 0;
    n->outputs.push_back(v);
    return n;
  }
  // An int (one value) or ints attribute.
  static void set(ir::Node* n, const std::string& name, std::vector<int64_t> values) {
    ir::Attribute a;
    a.kind = values.size() == 1 ? ir::Attribute::Kind::kInt : ir::Attribute::Kind::kInts;
    if (values.size() == 1)
      a.i = values[0];
    else
      a.ints = std::move(values);
    n->attributes[name] = std::move(a);
  }
  void output(ir::Node* n) { g().outputs.push_back(n->outputs[0]); }
  Status write(const std::string& path) { return frontend::writeOnnxFile(model_, path); }

 private:
  ir::Graph& g() { return model_.graph; }
  ir::Model model_;
  uint32_t seed_;
};

inline Status writeContractionModel(const std::string& path) {
  ModelWriter m(13, 1);
  ir::Node* mm = m.node("MatMul", {m.input("x0", {2, 96, 128}), m.constant("w0", {128, 80})}, "mm0");
  ir::Node* add = m.node("Add", {mm->outputs[0], m.constant("b0", {80})}, "add0");
  m.output(m.node("Relu", {add->outputs[0]}, "y0"));

  m.output(m.node("MatMul", {m.input("x1", {4, 64, 96}), m.input("x1b", {4, 96, 72})}, "y1"));

  ir::Node* conv = m.node(
      "Conv", {m.input("x2", {2, 16, 20, 20}), m.constant("w2", {32, 16, 3, 3}), m.constant("b2", {32})}, "conv2");
  ModelWriter::set(conv, "pads", {1, 1, 1, 1});
  m.output(m.node("Relu", {conv->outputs[0]}, "y2"));

  m.output(m.node("Conv", {m.input("x3", {2, 64, 14, 14}), m.constant("w3", {48, 64, 1, 1})}, "y3"));

  ir::Node* gemm =
      m.node("Gemm", {m.input("x4", {64, 200}), m.constant("w4", {120, 200}), m.constant("b4", {120})}, "y4");
  ModelWriter::set(gemm, "transB", {1});
  m.output(gemm);

  ir::Node* mm5 = m.node("MatMul", {m.input("x5", {64, 96}), m.constant("w5", {96, 128})}, "mm5");
  ir::Node* bias5 = m.node("Add", {mm5->outputs[0], m.constant("b5", {128})}, "bias5");
  m.output(m.node("Add", {m.input("r5", {64, 128}), bias5->outputs[0]}, "y5"));

  ir::Node* mm6 = m.node("MatMul", {m.input("x6", {4, 64, 96}), m.input("x6b", {4, 96, 64})}, "mm6");
  m.output(m.node("Div", {mm6->outputs[0], m.scalar("scale6", 8.0f)}, "y6"));
  return m.write(path);
}

// LayerNormalization then Softmax over rows of 256: the row groups of the
// CUDA backend (codegen/cuda/schedule.h), one launch each.
inline Status writeRowGroupModel(const std::string& path) {
  ir::Model model;
  model.ir_version = 8;
  model.opset_imports[""] = 17;
  ir::Graph& g = model.graph;
  const std::vector<int64_t> dims = {2, 64, 256};
  ir::Value* x = g.addValue("x", {ir::DType::kFloat32, ir::makeShape(dims)});
  g.inputs.push_back(x);
  auto constant = [&](const std::string& name, uint32_t seed) {
    ir::Tensor t = randomTensor({256}, seed);
    ir::Value* v = g.addValue(name, t.type());
    v->constant = std::move(t);
    return v;
  };
  auto node = [&](const std::string& op, std::vector<ir::Value*> inputs, const std::string& out) {
    ir::Node* n = g.addNode(op, out);
    n->inputs = std::move(inputs);
    ir::Value* v = g.addValue(out);
    v->producer = n;
    v->producer_output = 0;
    n->outputs.push_back(v);
    return n;
  };
  ir::Node* norm = node("LayerNormalization", {x, constant("gamma", 41), constant("beta", 42)}, "norm");
  g.outputs.push_back(node("Softmax", {norm->outputs[0]}, "y")->outputs[0]);
  return frontend::writeOnnxFile(model, path);
}

// LayerNormalization -> MatMul -> Tanh -> MatMul over 128 rows of 256: in
// the 16-bit precisions both GEMMs read activations that generated kernels
// wrote (the LayerNorm row group, the first GEMM's Tanh epilogue), through
// the 16-bit copies those kernels store beside them.
inline Status writeHalfChainModel(const std::string& path) {
  ir::Model model;
  model.ir_version = 8;
  model.opset_imports[""] = 17;
  ir::Graph& g = model.graph;
  const std::vector<int64_t> dims = {1, 128, 256};
  ir::Value* x = g.addValue("x", {ir::DType::kFloat32, ir::makeShape(dims)});
  g.inputs.push_back(x);
  auto constant = [&](const std::string& name, std::vector<int64_t> dims, uint32_t seed) {
    ir::Tensor t = randomTensor(std::move(dims), seed);
    ir::Value* v = g.addValue(name, t.type());
    v->constant = std::move(t);
    return v;
  };
  auto node = [&](const std::string& op, std::vector<ir::Value*> inputs, const std::string& out) {
    ir::Node* n = g.addNode(op, out);
    n->inputs = std::move(inputs);
    ir::Value* v = g.addValue(out);
    v->producer = n;
    v->producer_output = 0;
    n->outputs.push_back(v);
    return n;
  };
  ir::Node* norm = node("LayerNormalization", {x, constant("gamma", {256}, 51), constant("beta", {256}, 52)}, "norm");
  ir::Node* mm1 = node("MatMul", {norm->outputs[0], constant("w1", {256, 256}, 53)}, "mm1");
  ir::Node* t1 = node("Tanh", {mm1->outputs[0]}, "t1");
  g.outputs.push_back(node("MatMul", {t1->outputs[0], constant("w2", {256, 128}, 54)}, "y")->outputs[0]);
  return frontend::writeOnnxFile(model, path);
}

// Self-attention over `batch` sequences of 128 tokens, 4 heads of 64, as
// PyTorch exports it: projections, Reshape to [B, S, H, D], head transposes
// (Q and V to [B, H, S, D], K to [B, H, D, S]), scores scaled by 1/8,
// Softmax, context, the context transposed back to [B, S, H*D] and the
// output projection. On CUDA the head transposes feed the batched GEMMs,
// which read the projections in place when one batch stride covers the heads
// (batch 1), and the context GEMM writes the transposed layout itself.
inline Status writeAttentionModel(const std::string& path, int64_t batch) {
  ir::Model model;
  model.ir_version = 8;
  model.opset_imports[""] = 17;
  ir::Graph& g = model.graph;
  constexpr int64_t kSeq = 128, kHeads = 4, kHeadDim = 64, kHidden = kHeads * kHeadDim;
  const std::vector<int64_t> x_dims = {batch, kSeq, kHidden};
  ir::Value* x = g.addValue("x", {ir::DType::kFloat32, ir::makeShape(x_dims)});
  g.inputs.push_back(x);
  auto constant = [&](const std::string& name, ir::Tensor t) {
    ir::Value* v = g.addValue(name, t.type());
    v->constant = std::move(t);
    return v;
  };
  auto shape = [&](const std::string& name, std::vector<int64_t> dims) {
    auto n = static_cast<int64_t>(dims.size());
    return constant(name, ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {n}, std::span<const int64_t>(dims)));
  };
  auto node = [&](const std::string& op, std::vector<ir::Value*> inputs, const std::string& out) {
    ir::Node* n = g.addNode(op, out);
    n->inputs = std::move(inputs);
    ir::Value* v = g.addValue(out);
    v->producer = n;
    v->producer_output = 0;
    n->outputs.push_back(v);
    return n->outputs[0];
  };
  auto transpose = [&](ir::Value* in, std::vector<int64_t> perm, const std::string& out) {
    ir::Value* v = node("Transpose", {in}, out);
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kInts;
    a.ints = std::move(perm);
    v->producer->attributes["perm"] = a;
    return v;
  };
  ir::Value* heads = shape("heads_shape", {batch, kSeq, kHeads, kHeadDim});
  uint32_t seed = 61;
  // Weights in [-1/8, 1/8): scores of a few units, a Softmax that is
  // neither flat nor one-hot.
  auto weights = [&](std::vector<int64_t> dims) {
    ir::Tensor t = randomTensor(dims, seed++);
    std::vector<float> v(static_cast<size_t>(t.elementCount()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.floatAt(static_cast<int64_t>(i))) * 0.25f;
    return ir::Tensor::fromValues<float>(ir::DType::kFloat32, std::move(dims), std::span<const float>(v));
  };
  auto project = [&](const std::string& name) {
    ir::Value* w = constant("w_" + name, weights({kHidden, kHidden}));
    ir::Value* b = constant("b_" + name, randomTensor({kHidden}, seed++));
    ir::Value* mm = node("MatMul", {x, w}, name + "_mm");
    return node("Reshape", {node("Add", {mm, b}, name + "_biased"), heads}, name + "_heads");
  };
  ir::Value* q = transpose(project("q"), {0, 2, 1, 3}, "q_t");
  ir::Value* k = transpose(project("k"), {0, 2, 3, 1}, "k_t");
  ir::Value* v = transpose(project("v"), {0, 2, 1, 3}, "v_t");
  ir::Tensor eight = ir::Tensor::fromValues<float>(ir::DType::kFloat32, {}, std::span<const float>(std::vector<float>{8.0f}));
  ir::Value* scores = node("Div", {node("MatMul", {q, k}, "scores_mm"), constant("scale", std::move(eight))}, "scores");
  ir::Value* context = node("MatMul", {node("Softmax", {scores}, "probs"), v}, "context");
  ir::Value* merged = transpose(context, {0, 2, 1, 3}, "context_t");
  ir::Value* flat = node("Reshape", {merged, shape("merged_shape", {batch, kSeq, kHidden})}, "merged");
  ir::Value* out = node("MatMul", {flat, constant("w_o", weights({kHidden, kHidden}))}, "o_mm");
  g.outputs.push_back(node("Add", {out, constant("b_o", randomTensor({kHidden}, seed++))}, "y"));
  return frontend::writeOnnxFile(model, path);
}

// A channels-last convolution block at a batch large enough for the CUDA
// backend's wide schedules: x [8, 32, 64, 64] -> depthwise 3x3 Conv + bias +
// Clip(0, 6) -> padded 3x3 Conv (32 -> 64) + bias + Relu = a -> 1x1 Conv +
// bias + a (a residual) -> Relu -> 1x1 Conv (64 -> 16, whose NCHW output
// takes the transpose back). On CUDA the depthwise convolution (a batch of
// 32 one-column products) is a generated kernel, not a GEMM; the 3x3
// convolution's packing (9.4M points) writes 16 bytes per thread; the 1x1
// convolution's bias, residual and Relu are cuBLASLt's epilogue; and in the
// 16-bit precisions a and the block's output, which only GEMMs and their
// packings read, are 16-bit, the residual accumulated as a 16-bit C.
inline Status writeConvBlockModel(const std::string& path) {
  ModelWriter m(13, 60);
  ir::Node* dw = m.node(
      "Conv", {m.input("x", {8, 32, 64, 64}), m.constant("w_dw", {32, 1, 3, 3}), m.constant("b_dw", {32})}, "conv_dw");
  ModelWriter::set(dw, "pads", {1, 1, 1, 1});
  ModelWriter::set(dw, "group", {32});
  ir::Node* clip = m.node("Clip", {dw->outputs[0], m.scalar("lo", 0.0f), m.scalar("hi", 6.0f)}, "clip_dw");
  ir::Node* conv =
      m.node("Conv", {clip->outputs[0], m.constant("w_full", {64, 32, 3, 3}), m.constant("b_full", {64})}, "conv_full");
  ModelWriter::set(conv, "pads", {1, 1, 1, 1});
  ir::Node* a = m.node("Relu", {conv->outputs[0]}, "relu_full");
  ir::Node* pw =
      m.node("Conv", {a->outputs[0], m.constant("w_pw", {64, 64, 1, 1}), m.constant("b_pw", {64})}, "conv_pw");
  ir::Node* add = m.node("Add", {pw->outputs[0], a->outputs[0]}, "residual");
  ir::Node* block = m.node("Relu", {add->outputs[0]}, "block");
  m.output(m.node("Conv", {block->outputs[0], m.constant("w_out", {16, 64, 1, 1})}, "y"));
  return m.write(path);
}

// A BERT feed-forward's first half, wide enough for the vector schedule:
// x [4096, 256] -> MatMul (256 -> 1024) + bias -> GELU in its erf form,
// 0.5 * h * (1 + Erf(h / sqrt(2))). On CUDA the GELU is a generated
// epilogue over the GEMM's scratch D, 16 bytes of points per thread.
inline Status writeWideGeluModel(const std::string& path) {
  ModelWriter m(13, 100);
  ir::Node* mm = m.node("MatMul", {m.input("x", {4096, 256}), m.constant("w", {256, 1024})}, "mm");
  ir::Value* h = m.node("Add", {mm->outputs[0], m.constant("b", {1024})}, "h")->outputs[0];
  ir::Node* scaled = m.node("Div", {h, m.scalar("sqrt2", 1.41421356f)}, "scaled");
  ir::Node* erf = m.node("Erf", {scaled->outputs[0]}, "erf");
  ir::Node* plus = m.node("Add", {erf->outputs[0], m.scalar("one", 1.0f)}, "plus");
  ir::Node* times = m.node("Mul", {h, plus->outputs[0]}, "times");
  m.output(m.node("Mul", {times->outputs[0], m.scalar("half", 0.5f)}, "y"));
  return m.write(path);
}

// A ResNet stem: x [4, 3, 64, 64] -> 7x7 Conv, stride 2, pads 3 (3 -> 64
// channels) + bias -> Relu. Its product's inner dimension is 7 * 7 * 3 =
// 147, which the CUDA backend pads with zeros to a multiple of 16 bytes.
inline constexpr std::array<int64_t, 4> kStemWeightDims = {64, 3, 7, 7};
inline Status writeStemModel(const std::string& path) {
  ModelWriter m(13, 90);
  const std::vector<int64_t> w(kStemWeightDims.begin(), kStemWeightDims.end());
  ir::Node* conv = m.node("Conv", {m.input("x", {4, 3, 64, 64}), m.constant("w", w), m.constant("b", {64})}, "stem");
  ModelWriter::set(conv, "pads", {3, 3, 3, 3});
  ModelWriter::set(conv, "strides", {2, 2});
  m.output(m.node("Relu", {conv->outputs[0]}, "y"));
  return m.write(path);
}

}  // namespace kiln::testing
