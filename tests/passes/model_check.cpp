#include "tests/passes/model_check.h"

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "compiler/kir/evaluator.h"
#include "passes/pass.h"

namespace kiln::testing {

TestGraph::TestGraph(int64_t opset) : model_(std::make_unique<ir::Model>()) {
  model_->ir_version = 8;
  model_->opset_imports[""] = opset;
}

ir::Value* TestGraph::input(const std::string& name, std::vector<int64_t> dims, ir::DType dtype) {
  ir::Value* v = model_->graph.addValue(name, ir::TensorType{dtype, ir::makeShape(dims)});
  model_->graph.inputs.push_back(v);
  return v;
}

ir::Value* TestGraph::constant(const std::string& name, std::vector<int64_t> dims, std::vector<float> values) {
  ir::Value* v = model_->graph.addValue(name);
  v->constant = ir::Tensor::fromValues<float>(ir::DType::kFloat32, std::move(dims), values);
  v->type = v->constant->type();
  return v;
}

ir::Value* TestGraph::randomConstant(const std::string& name, std::vector<int64_t> dims, float lo, float hi) {
  std::mt19937 rng(static_cast<unsigned>(std::hash<std::string>{}(name)));
  std::uniform_real_distribution<float> dist(lo, hi);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<float> values(n);
  for (float& x : values) x = dist(rng);
  return constant(name, std::move(dims), std::move(values));
}

ir::Value* TestGraph::int64s(const std::string& name, std::vector<int64_t> values) {
  ir::Value* v = model_->graph.addValue(name);
  v->constant = ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {static_cast<int64_t>(values.size())}, values);
  v->type = v->constant->type();
  return v;
}

ir::Node* TestGraph::node(const std::string& op, std::vector<ir::Value*> inputs, const std::string& out, int outputs) {
  ir::Node* n = model_->graph.addNode(op, op + "_" + out);
  n->inputs = std::move(inputs);
  for (int i = 0; i < outputs; ++i) {
    ir::Value* v = model_->graph.addValue(i == 0 ? out : out + ":" + std::to_string(i));
    v->producer = n;
    v->producer_output = i;
    n->outputs.push_back(v);
  }
  return n;
}

void setInts(ir::Node* node, const std::string& name, std::vector<int64_t> values) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kInts;
  a.ints = std::move(values);
  node->attributes[name] = std::move(a);
}

void setInt(ir::Node* node, const std::string& name, int64_t value) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kInt;
  a.i = value;
  node->attributes[name] = std::move(a);
}

void setString(ir::Node* node, const std::string& name, std::string value) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kString;
  a.s = std::move(value);
  node->attributes[name] = std::move(a);
}

ir::Tensor randomInput(const std::vector<int64_t>& dims, unsigned seed) {
  std::mt19937 rng(seed);
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::uniform_real_distribution<float> dist(-2, 2);
  std::vector<float> values(static_cast<size_t>(n));
  for (float& v : values) v = dist(rng);
  return ir::Tensor::fromValues<float>(ir::DType::kFloat32, dims, values);
}

void setFloat(ir::Node* node, const std::string& name, float value) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kFloat;
  a.f = value;
  node->attributes[name] = std::move(a);
}

std::string opSequence(const ir::Graph& graph) {
  std::string out;
  for (const auto& node : graph.nodes()) out += (out.empty() ? "" : ",") + node->op_type;
  return out;
}

int countOps(const ir::Graph& graph, const std::string& op) {
  int n = 0;
  for (const auto& node : graph.nodes()) n += node->op_type == op;
  return n;
}

std::unique_ptr<ir::Model> runPasses(const ModelFactory& make, std::vector<std::string> passes) {
  auto model = make();
  passes::PipelineOptions options;
  options.passes = std::move(passes);
  std::ostringstream log;
  auto records = passes::runPipeline(*model, options, log);
  EXPECT_TRUE(records.isOk()) << records.status().message();
  return model;
}

Expected<lower::Program> compileProgram(const ModelFactory& make, const driver::CompileOptions& options,
                                        driver::CompileSummary* summary) {
  auto model = make();
  std::ostringstream log;
  return driver::buildProgram(*model, options, log, summary);
}

namespace {

using Bytes = std::vector<std::byte>;

std::vector<Bytes> randomInputs(const lower::Program& program, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<Bytes> inputs;
  for (int b : program.input_buffers) {
    const lower::ProgramBuffer& buffer = program.buffers[b];
    Bytes bytes(buffer.byteSize());
    for (int64_t i = 0; i < buffer.elementCount(); ++i) {
      switch (buffer.dtype) {
        case ir::DType::kFloat32: {
          float x = std::uniform_real_distribution<float>(-1, 1)(rng);
          std::memcpy(bytes.data() + i * 4, &x, 4);
          break;
        }
        case ir::DType::kInt64: {
          int64_t x = std::uniform_int_distribution<int64_t>(0, 3)(rng);
          std::memcpy(bytes.data() + i * 8, &x, 8);
          break;
        }
        case ir::DType::kInt32: {
          int32_t x = std::uniform_int_distribution<int32_t>(0, 3)(rng);
          std::memcpy(bytes.data() + i * 4, &x, 4);
          break;
        }
        default:  // bool and the rest: random bytes, masked to 0/1 for bool
          for (size_t k = 0; k < static_cast<size_t>(ir::byteSize(buffer.dtype)); ++k)
            bytes[i * ir::byteSize(buffer.dtype) + k] = std::byte(rng() & (buffer.dtype == ir::DType::kBool ? 1 : 0xff));
      }
    }
    inputs.push_back(std::move(bytes));
  }
  return inputs;
}

Expected<std::vector<Bytes>> run(const lower::Program& program, const std::vector<Bytes>& inputs) {
  std::vector<Bytes> outputs;
  std::vector<const void*> in;
  std::vector<void*> out;
  for (const Bytes& b : inputs) in.push_back(b.data());
  for (int b : program.output_buffers) outputs.emplace_back(program.buffers[b].byteSize());
  for (Bytes& b : outputs) out.push_back(b.data());
  KILN_RETURN_IF_ERROR(lower::evaluateProgram(program, in, out));
  return outputs;
}

double elementAt(const Bytes& bytes, ir::DType dtype, int64_t i) {
  switch (dtype) {
    case ir::DType::kFloat32: { float x; std::memcpy(&x, bytes.data() + i * 4, 4); return x; }
    case ir::DType::kFloat64: { double x; std::memcpy(&x, bytes.data() + i * 8, 8); return x; }
    case ir::DType::kInt64: { int64_t x; std::memcpy(&x, bytes.data() + i * 8, 8); return static_cast<double>(x); }
    case ir::DType::kInt32: { int32_t x; std::memcpy(&x, bytes.data() + i * 4, 4); return x; }
    default: return static_cast<double>(bytes[i * ir::byteSize(dtype)]);
  }
}

}  // namespace

::testing::AssertionResult sameOutputs(const lower::Program& a, const lower::Program& b, double rel, unsigned seed) {
  if (a.inputs.size() != b.inputs.size() || a.outputs.size() != b.outputs.size())
    return ::testing::AssertionFailure() << "the programs have different signatures";
  std::vector<Bytes> inputs = randomInputs(a, seed);
  auto out_a = run(a, inputs);
  auto out_b = run(b, inputs);
  if (!out_a || !out_b) return ::testing::AssertionFailure() << "evaluation failed";
  for (size_t o = 0; o < out_a->size(); ++o) {
    const lower::ProgramBuffer& buffer = a.buffers[a.output_buffers[o]];
    for (int64_t i = 0; i < buffer.elementCount(); ++i) {
      double x = elementAt((*out_a)[o], buffer.dtype, i), y = elementAt((*out_b)[o], buffer.dtype, i);
      if (std::isnan(x) && std::isnan(y)) continue;
      if (!(std::abs(x - y) <= 1e-5 + rel * std::abs(y)))
        return ::testing::AssertionFailure() << "output '" << buffer.name << "' element " << i << ": " << x
                                             << " vs " << y;
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult passesKeepOutputs(const ModelFactory& make, std::vector<std::string> passes, double rel,
                                             unsigned seeds) {
  driver::CompileOptions reference;
  reference.pipeline.opt_level = 0;
  driver::CompileOptions optimized;
  optimized.pipeline.passes = std::move(passes);
  auto a = compileProgram(make, reference);
  if (!a) return ::testing::AssertionFailure() << "-O0: " << a.status().message();
  auto b = compileProgram(make, optimized);
  if (!b) return ::testing::AssertionFailure() << "with passes: " << b.status().message();
  for (unsigned seed = 1; seed <= seeds; ++seed) {
    ::testing::AssertionResult same = sameOutputs(*b, *a, rel, seed);
    if (!same) return same;
  }
  return ::testing::AssertionSuccess();
}

void expectKernelsDrop(const ModelFactory& make, const std::string& pass, size_t without, size_t with, double rel) {
  driver::CompileOptions on, off;
  off.pipeline.disabled = {pass};
  driver::CompileSummary a, b;
  auto program_on = compileProgram(make, on, &a);
  auto program_off = compileProgram(make, off, &b);
  ASSERT_TRUE(program_on.isOk()) << program_on.status().message();
  ASSERT_TRUE(program_off.isOk()) << program_off.status().message();
  EXPECT_EQ(b.kernels, without) << lower::toString(*program_off);
  EXPECT_EQ(a.kernels, with) << lower::toString(*program_on);
  EXPECT_TRUE(sameOutputs(*program_on, *program_off, rel));
}

}  // namespace kiln::testing
