// Sequence and optional ops, expanded at compile time (expand-containers):
// each model is compiled at -O0 and -O2 and run on the reference evaluator;
// expected values are computed here from the inputs with plain loops.
#include <gtest/gtest.h>

#include <numeric>
#include <sstream>

#include "compiler/driver/compile.h"
#include "compiler/kir/evaluator.h"
#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

using ir::DType;

ir::Value* scalar(TestGraph& g, const std::string& name, int64_t value) {
  ir::Value* v = g.model().graph.addValue(name);
  v->constant = ir::Tensor::fromValues<int64_t>(DType::kInt64, {}, std::span<const int64_t>(&value, 1));
  v->type = v->constant->type();
  return v;
}

std::vector<float> iota(int64_t n, float start) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

ir::Tensor floats(std::vector<int64_t> dims, std::vector<float> values) {
  return ir::Tensor::fromValues<float>(DType::kFloat32, std::move(dims), std::span<const float>(values));
}

template <typename T>
std::vector<T> valuesOf(const ir::Tensor& t) {
  std::vector<T> out(static_cast<size_t>(t.elementCount()));
  if (!out.empty()) std::memcpy(out.data(), t.bytes().data(), out.size() * sizeof(T));
  return out;
}

// Compiles the model at `opt_level` and runs it on `inputs`.
Expected<std::vector<ir::Tensor>> compileAndRun(const ModelFactory& make, const std::vector<ir::Tensor>& inputs,
                                                int opt_level) {
  driver::CompileOptions options;
  options.pipeline.opt_level = opt_level;
  KILN_ASSIGN_OR_RETURN(lower::Program program, compileProgram(make, options));
  return lower::evaluateProgram(program, inputs);
}

// Runs at -O0 and -O2; both must agree with `check`.
void expectAtBothLevels(const ModelFactory& make, const std::vector<ir::Tensor>& inputs,
                        const std::function<void(const std::vector<ir::Tensor>&)>& check) {
  for (int level : {0, 2}) {
    SCOPED_TRACE("-O" + std::to_string(level));
    auto outputs = compileAndRun(make, inputs, level);
    ASSERT_TRUE(outputs) << outputs.status().message();
    check(*outputs);
  }
}

std::string compileError(const ModelFactory& make) {
  auto outputs = compileAndRun(make, {}, 0);
  return outputs ? std::string("(compiled)") : outputs.status().message();
}

// SequenceEmpty, three inserts (one at a constant position), then SequenceAt.
ModelFactory insertModel(int64_t insert_pos, int64_t at_pos) {
  return [=] {
    TestGraph g(12);
    ir::Value* x = g.input("X", {2, 3});
    ir::Value* y = g.input("Y", {1, 3});
    ir::Value* z = g.input("Z", {3, 3});
    ir::Value* s0 = g.op("SequenceEmpty", {}, "s0");
    ir::Value* s1 = g.op("SequenceInsert", {s0, x}, "s1");
    ir::Value* s2 = g.op("SequenceInsert", {s1, y}, "s2");
    ir::Value* s3 = g.op("SequenceInsert", {s2, z, scalar(g, "ins", insert_pos)}, "s3");
    g.output(g.op("SequenceAt", {s3, scalar(g, "at", at_pos)}, "out"));
    return g.take();
  };
}

TEST(SequenceTest, InsertThenAtReturnsTheElementAtEachPosition) {
  std::vector<ir::Tensor> inputs = {floats({2, 3}, iota(6, 0)), floats({1, 3}, iota(3, 100)),
                                    floats({3, 3}, iota(9, 200))};
  // Inserting Z at 1 into [X, Y] gives [X, Z, Y]; negative positions count from the back.
  const std::vector<std::pair<int64_t, size_t>> cases = {{0, 0}, {1, 2}, {2, 1}, {-1, 1}, {-3, 0}};
  for (auto [at, expected_input] : cases) {
    SCOPED_TRACE("SequenceAt " + std::to_string(at));
    expectAtBothLevels(insertModel(1, at), inputs, [&, expected_input = expected_input](const std::vector<ir::Tensor>& out) {
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].dims(), inputs[expected_input].dims());
      EXPECT_EQ(valuesOf<float>(out[0]), valuesOf<float>(inputs[expected_input]));
    });
  }
}

TEST(SequenceTest, EraseAndInsertFollowTheListSemantics) {
  // [X, Y, Z] -> erase 1 -> [X, Z] -> insert Y at 0 -> [Y, X, Z]; erase with
  // no position drops the last -> [Y, X].
  auto make = [](int64_t at) {
    return [=] {
      TestGraph g(12);
      ir::Value* x = g.input("X", {2});
      ir::Value* y = g.input("Y", {2});
      ir::Value* z = g.input("Z", {2});
      ir::Value* s1 = g.op("SequenceConstruct", {x, y, z}, "s1");
      ir::Value* s2 = g.op("SequenceErase", {s1, scalar(g, "e", 1)}, "s2");
      ir::Value* s3 = g.op("SequenceInsert", {s2, y, scalar(g, "i", 0)}, "s3");
      ir::Value* s4 = g.op("SequenceErase", {s3}, "s4");
      g.output(g.op("SequenceAt", {s4, scalar(g, "at", at)}, "out"));
      g.output(g.op("SequenceLength", {s4}, "len"));
      return g.take();
    };
  };
  std::vector<ir::Tensor> inputs = {floats({2}, {1, 2}), floats({2}, {3, 4}), floats({2}, {5, 6})};
  for (auto [at, expected] : std::vector<std::pair<int64_t, std::vector<float>>>{{0, {3, 4}}, {1, {1, 2}}}) {
    expectAtBothLevels(make(at), inputs, [&, expected = expected](const std::vector<ir::Tensor>& out) {
      ASSERT_EQ(out.size(), 2u);
      EXPECT_EQ(valuesOf<float>(out[0]), expected);
      EXPECT_EQ(valuesOf<int64_t>(out[1]), std::vector<int64_t>{2});
    });
  }
}

// ConcatFromSequence of three 2x3x4 tensors, joined along axis 1 or stacked
// along a new last axis.
TEST(SequenceTest, ConcatFromSequenceJoinsOrStacks) {
  std::vector<ir::Tensor> inputs;
  for (int k = 0; k < 3; ++k) inputs.push_back(floats({2, 3, 4}, iota(24, 100.0f * static_cast<float>(k))));
  for (int64_t new_axis : {0, 1}) {
    SCOPED_TRACE("new_axis " + std::to_string(new_axis));
    auto make = [=] {
      TestGraph g(13);
      std::vector<ir::Value*> xs = {g.input("X", {2, 3, 4}), g.input("Y", {2, 3, 4}), g.input("Z", {2, 3, 4})};
      ir::Value* s = g.op("SequenceConstruct", xs, "s");
      ir::Node* concat = g.node("ConcatFromSequence", {s}, "out");
      setInt(concat, "axis", new_axis ? -1 : 1);
      if (new_axis) setInt(concat, "new_axis", 1);
      g.output(concat->outputs[0]);
      return g.take();
    };
    expectAtBothLevels(make, inputs, [&](const std::vector<ir::Tensor>& out) {
      ASSERT_EQ(out.size(), 1u);
      const std::vector<int64_t> dims = new_axis ? std::vector<int64_t>{2, 3, 4, 3} : std::vector<int64_t>{2, 9, 4};
      ASSERT_EQ(out[0].dims(), dims);
      std::vector<float> got = valuesOf<float>(out[0]);
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t b = 0; b < 3; ++b)
          for (int64_t c = 0; c < 4; ++c)
            for (int64_t k = 0; k < 3; ++k) {
              float want = 100.0f * static_cast<float>(k) + static_cast<float>(a * 12 + b * 4 + c);
              int64_t index = new_axis ? ((a * 3 + b) * 4 + c) * 3 + k : (a * 9 + k * 3 + b) * 4 + c;
              ASSERT_EQ(got[static_cast<size_t>(index)], want) << a << "," << b << "," << c << " of element " << k;
            }
    });
  }
}

TEST(SequenceTest, SplitToSequencePiecesMatchSlicesOfTheInput) {
  // X is 7x2: rows 0..6 hold 10*r + c.
  std::vector<float> x_values;
  for (int r = 0; r < 7; ++r)
    for (int c = 0; c < 2; ++c) x_values.push_back(static_cast<float>(10 * r + c));
  std::vector<ir::Tensor> inputs = {floats({7, 2}, x_values)};
  struct Case {
    std::string what;
    std::function<ir::Value*(TestGraph&)> split;  // null: no split input
    int64_t keepdims, at, length;
    std::vector<int64_t> dims;
    int64_t first_row;
  };
  const std::vector<Case> cases = {
      {"pieces of one row, squeezed", nullptr, 0, 4, 7, {2}, 4},
      {"pieces of one row, kept", nullptr, 1, -1, 7, {1, 2}, 6},
      {"scalar split 3: 3, 3, 1", [](TestGraph& g) { return scalar(g, "split", 3); }, 1, 2, 3, {1, 2}, 6},
      {"sizes 2 and 5", [](TestGraph& g) { return g.int64s("split", {2, 5}); }, 1, 1, 2, {5, 2}, 2},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto make = [&] {
      TestGraph g(13);
      ir::Value* x = g.input("X", {7, 2});
      std::vector<ir::Value*> ins = {x};
      if (c.split) ins.push_back(c.split(g));
      ir::Node* split = g.node("SplitToSequence", ins, "s");
      if (!c.split) setInt(split, "keepdims", c.keepdims);
      g.output(g.op("SequenceAt", {split->outputs[0], scalar(g, "at", c.at)}, "piece"));
      g.output(g.op("SequenceLength", {split->outputs[0]}, "len"));
      return g.take();
    };
    expectAtBothLevels(make, inputs, [&](const std::vector<ir::Tensor>& out) {
      ASSERT_EQ(out.size(), 2u);
      EXPECT_EQ(out[0].dims(), c.dims);
      std::vector<float> got = valuesOf<float>(out[0]);
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(got[i], x_values[static_cast<size_t>(c.first_row * 2) + i]);
      EXPECT_EQ(valuesOf<int64_t>(out[1]), std::vector<int64_t>{c.length});
    });
  }
}

TEST(SequenceTest, LengthOfASplitWithRunTimeSizesIsTheSplitsLength) {
  auto make = [] {
    TestGraph g(12);
    ir::Value* x = g.input("X", {6});
    ir::Value* splits = g.input("Splits", {4}, DType::kInt64);
    ir::Value* s = g.op("SplitToSequence", {x, splits}, "s");
    g.output(g.op("SequenceLength", {s}, "len"));
    return g.take();
  };
  std::vector<int64_t> sizes = {1, 2, 3, 0};
  std::vector<ir::Tensor> inputs = {floats({6}, iota(6, 0)),
                                    ir::Tensor::fromValues<int64_t>(DType::kInt64, {4}, std::span<const int64_t>(sizes))};
  expectAtBothLevels(make, inputs, [&](const std::vector<ir::Tensor>& out) {
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(valuesOf<int64_t>(out[0]), std::vector<int64_t>{4});
  });
}

TEST(SequenceTest, SequenceMapRunsTheBodyOncePerElement) {
  // Body: out = in0 * in1 + in0, over a sequence of two 3-vectors and one
  // tensor shared by every element.
  auto make = [] {
    TestGraph g(17);
    ir::Value* a = g.input("A", {3});
    ir::Value* b = g.input("B", {3});
    ir::Value* t = g.input("T", {3});
    ir::Value* s = g.op("SequenceConstruct", {a, b}, "s");
    ir::Node* map = g.node("SequenceMap", {s, t}, "mapped");
    auto body = std::make_shared<ir::Graph>();
    body->name = "body";
    body->parent = &g.model().graph;
    ir::Value* in0 = body->addValue("in0", {DType::kFloat32, ir::makeShape(std::vector<int64_t>{3})});
    ir::Value* in1 = body->addValue("in1", {DType::kFloat32, ir::makeShape(std::vector<int64_t>{3})});
    body->inputs = {in0, in1};
    ir::Node* mul = body->addNode("Mul", "mul");
    mul->inputs = {in0, in1};
    ir::Value* prod = body->addValue("prod", {DType::kFloat32, ir::makeShape(std::vector<int64_t>{3})});
    prod->producer = mul;
    mul->outputs = {prod};
    ir::Node* add = body->addNode("Add", "add");
    add->inputs = {prod, in0};
    ir::Value* sum = body->addValue("sum", {DType::kFloat32, ir::makeShape(std::vector<int64_t>{3})});
    sum->producer = add;
    add->outputs = {sum};
    body->outputs = {sum};
    ir::Attribute attr;
    attr.kind = ir::Attribute::Kind::kGraph;
    attr.graphs = {body};
    map->attributes["body"] = attr;
    ir::Node* concat = g.node("ConcatFromSequence", {map->outputs[0]}, "out");
    setInt(concat, "axis", 0);
    setInt(concat, "new_axis", 1);
    g.output(concat->outputs[0]);
    return g.take();
  };
  std::vector<float> a = {1, 2, 3}, b = {-1, 0.5f, 4}, t = {2, -3, 0.25f};
  std::vector<ir::Tensor> inputs = {floats({3}, a), floats({3}, b), floats({3}, t)};
  expectAtBothLevels(make, inputs, [&](const std::vector<ir::Tensor>& out) {
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].dims(), (std::vector<int64_t>{2, 3}));
    std::vector<float> got = valuesOf<float>(out[0]);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_FLOAT_EQ(got[i], a[i] * t[i] + a[i]);
      EXPECT_FLOAT_EQ(got[3 + i], b[i] * t[i] + b[i]);
    }
  });
}

TEST(OptionalTest, OptionalOfATensorHasItAndGivesItBack) {
  auto make = [] {
    TestGraph g(18);
    ir::Value* x = g.input("X", {4});
    ir::Value* opt = g.op("Optional", {x}, "opt");
    g.output(g.op("OptionalHasElement", {opt}, "has"));
    g.output(g.op("OptionalGetElement", {opt}, "got"));
    return g.take();
  };
  std::vector<float> x = {1.5f, -2, 3, 0};
  expectAtBothLevels(make, {floats({4}, x)}, [&](const std::vector<ir::Tensor>& out) {
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(valuesOf<uint8_t>(out[0]), std::vector<uint8_t>{1});
    EXPECT_EQ(valuesOf<float>(out[1]), x);
  });
}

TEST(OptionalTest, OptionalOfASequenceGivesTheSequenceBack) {
  auto make = [] {
    TestGraph g(18);
    ir::Value* x = g.input("X", {2});
    ir::Value* y = g.input("Y", {2});
    ir::Value* opt = g.op("Optional", {g.op("SequenceConstruct", {x, y}, "s")}, "opt");
    ir::Value* seq = g.op("OptionalGetElement", {opt}, "seq");
    g.output(g.op("SequenceAt", {seq, scalar(g, "at", 1)}, "second"));
    return g.take();
  };
  expectAtBothLevels(make, {floats({2}, {1, 2}), floats({2}, {7, 8})}, [&](const std::vector<ir::Tensor>& out) {
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(valuesOf<float>(out[0]), (std::vector<float>{7, 8}));
  });
}

// ---- Errors ------------------------------------------------------------------------

TEST(SequenceErrorTest, PositionOutOfRangeNamesTheNode) {
  std::string message = compileError(insertModel(1, 3));
  EXPECT_NE(message.find("SequenceAt 'SequenceAt_out'"), std::string::npos) << message;
  EXPECT_NE(message.find("position 3 is outside [-3, 2]"), std::string::npos) << message;
  message = compileError(insertModel(4, 0));
  EXPECT_NE(message.find("SequenceInsert 'SequenceInsert_s3'"), std::string::npos) << message;
  EXPECT_NE(message.find("position 4 is outside [-2, 2]"), std::string::npos) << message;
}

// SequenceAt and SequenceErase at run-time positions are compiled over the
// run-time table (tests/runtime/container_flow_test.cpp); splitting at
// run-time sizes is refused naming the node.
TEST(SequenceErrorTest, RunTimeSplitIsRefusedNamingTheNode) {
  auto make = [] {
    TestGraph g(12);
    g.output(g.op("SplitToSequence", {g.input("X", {4}), g.input("split", {}, DType::kInt64)}, "out"));
    return g.take();
  };
  std::string message = compileError(make);
  EXPECT_NE(message.find("SplitToSequence 'SplitToSequence_out'"), std::string::npos) << message;
  EXPECT_NE(message.find("known only at run time"), std::string::npos) << message;
}

TEST(SequenceErrorTest, BadElementsAreRefusedNamingTheNode) {
  auto mixed = [] {
    TestGraph g(12);
    g.output(g.op("SequenceConstruct", {g.input("X", {2}), g.input("N", {2}, DType::kInt64)}, "s"));
    return g.take();
  };
  std::string message = compileError(mixed);
  EXPECT_NE(message.find("SequenceConstruct 'SequenceConstruct_s'"), std::string::npos) << message;
  EXPECT_NE(message.find("int64"), std::string::npos) << message;

  auto ragged = [] {
    TestGraph g(12);
    ir::Value* s = g.op("SequenceConstruct", {g.input("X", {2, 3}), g.input("Y", {2, 4})}, "s");
    ir::Node* concat = g.node("ConcatFromSequence", {s}, "out");
    setInt(concat, "axis", 0);
    g.output(concat->outputs[0]);
    return g.take();
  };
  message = compileError(ragged);
  EXPECT_NE(message.find("ConcatFromSequence 'ConcatFromSequence_out'"), std::string::npos) << message;
  EXPECT_NE(message.find("shapes differ outside axis 0"), std::string::npos) << message;

  auto tensor_op = [] {
    TestGraph g(12);
    ir::Value* x = g.input("X", {2});
    g.output(g.op("Relu", {g.op("SequenceConstruct", {x}, "s")}, "out"));
    return g.take();
  };
  message = compileError(tensor_op);
  EXPECT_NE(message.find("input 0 's' is a sequence, but Relu takes tensors only"), std::string::npos) << message;

  auto empty_get = [] {
    TestGraph g(12);
    ir::Value* s = g.op("SequenceEmpty", {}, "s");
    ir::Node* concat = g.node("ConcatFromSequence", {s}, "out");
    setInt(concat, "axis", 0);
    g.output(concat->outputs[0]);
    return g.take();
  };
  message = compileError(empty_get);
  EXPECT_NE(message.find("the sequence is empty"), std::string::npos) << message;
}

}  // namespace
}  // namespace kiln::testing
