// resolve(): the errors a user sees for ops, opsets and attributes the table
// does not accept, and the contents of the table itself.
#include "compiler/ops/op_registry.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using testing::OneNodeGraph;
using Kind = ir::Attribute::Kind;

OpRegistry smallRegistry() {
  OpRegistry registry;
  registry.add(OpSchema{"", "Late", {5, 9}, {{"k", Kind::kInt, true}, {"f", Kind::kFloat}}, nullptr, nullptr});
  registry.add(OpSchema{"com.example", "Custom", {1}, {}, nullptr, nullptr});
  return registry;
}

TEST(OpRegistryTest, UnknownOpNamesOpDomainOpsetAndNode) {
  OneNodeGraph g("Foo", "layer/foo");
  Expected<const OpSchema*> result = OpRegistry::global().resolve(g.node(), 13);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.status().kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(result.status().message(), "unsupported op 'Foo' (domain 'ai.onnx', opset 13) at node 'layer/foo'");
}

TEST(OpRegistryTest, RandomOpsAreRefusedWithTheReason) {
  OneNodeGraph g("Bernoulli", "drop");
  Expected<const OpSchema*> result = OpRegistry::global().resolve(g.node(), 15);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.status().kind(), ErrorKind::kUnsupported);
  EXPECT_EQ(result.status().message(),
            "Bernoulli 'drop': random sampling is not supported; Kiln compiles deterministic inference");
}

TEST(OpRegistryTest, DomainsAreSeparateAndAiOnnxIsTheDefault) {
  OpRegistry registry = smallRegistry();
  OneNodeGraph custom("Custom");
  custom.outputs(1);
  EXPECT_FALSE(registry.resolve(custom.node(), 1));  // lives in com.example only
  custom.node().domain = "com.example";
  EXPECT_TRUE(registry.resolve(custom.node(), 1));
  OneNodeGraph late("Late");
  late.integer("k", 1).outputs(1);
  late.node().domain = "ai.onnx";
  EXPECT_TRUE(registry.resolve(late.node(), 5));
  EXPECT_EQ(registry.find("ai.onnx", "Late"), registry.find("", "Late"));
}

TEST(OpRegistryTest, OpsetBeforeFirstVersionIsAnError) {
  OpRegistry registry = smallRegistry();
  OneNodeGraph g("Late", "early");
  g.integer("k", 1).outputs(1);
  Expected<const OpSchema*> result = registry.resolve(g.node(), 4);
  ASSERT_FALSE(result);
  EXPECT_NE(result.status().message().find("opset 4"), std::string::npos) << result.status().message();
  EXPECT_NE(result.status().message().find("first version 5"), std::string::npos) << result.status().message();
  EXPECT_TRUE(registry.resolve(g.node(), 7));
  EXPECT_TRUE(registry.resolve(g.node(), 21));
}

TEST(OpRegistryTest, NodeWithoutOutputsIsAnError) {
  OpRegistry registry = smallRegistry();
  OneNodeGraph g("Late", "sink");
  g.integer("k", 1);
  Expected<const OpSchema*> result = registry.resolve(g.node(), 9);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.status().message(), "Late 'sink': the node has no outputs; every op writes at least one");
  g.outputs(1);
  EXPECT_TRUE(registry.resolve(g.node(), 9));
}

TEST(OpRegistryTest, UnknownAttribute) {
  OpRegistry registry = smallRegistry();
  OneNodeGraph g("Late", "x1");
  g.integer("k", 1).integer("bogus", 3);
  Expected<const OpSchema*> result = registry.resolve(g.node(), 9);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.status().kind(), ErrorKind::kInvalidInput);
  EXPECT_EQ(result.status().message(), "Late 'x1' (opset 9): unknown attribute 'bogus'");
}

TEST(OpRegistryTest, WrongAttributeKind) {
  OpRegistry registry = smallRegistry();
  OneNodeGraph g("Late", "x1");
  g.integer("k", 1).integer("f", 2);
  Expected<const OpSchema*> result = registry.resolve(g.node(), 9);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.status().message(), "Late 'x1' (opset 9): attribute 'f' is int, expected float");
}

TEST(OpRegistryTest, MissingRequiredAttribute) {
  OneNodeGraph g("MaxPool", "pool1");
  g.input(ir::DType::kFloat32, "1x1x4x4");
  Expected<const OpSchema*> result = OpRegistry::global().resolve(g.node(), 12);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.status().kind(), ErrorKind::kInvalidInput);
  EXPECT_EQ(result.status().message(), "MaxPool 'pool1' (opset 12): missing required attribute 'kernel_shape'");
}

TEST(OpRegistryTest, GlobalTableHoldsEveryFamily) {
  std::set<std::string> names;
  for (const OpSchema* schema : OpRegistry::global().all()) {
    names.insert(std::string(schema->name));
    EXPECT_TRUE(schema->infer) << schema->name;
    EXPECT_TRUE(schema->lower) << schema->name;
    EXPECT_FALSE(schema->versions.empty()) << schema->name;
  }
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs",
                         "Clip", "LeakyRelu", "Identity", "MatMul", "Gemm", "Conv", "MaxPool", "AveragePool",
                         "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Softmax", "LogSoftmax",
                         "Reshape", "Flatten", "Transpose", "Concat", "Constant"})
    EXPECT_TRUE(names.count(op)) << op;
}

}  // namespace
}  // namespace kiln::ops
