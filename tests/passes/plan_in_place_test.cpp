// plan-in-place: an elementwise kernel's output takes the arena slot of an
// input that dies in that kernel. Fusion is left off here so that the
// intermediates stay.
#include <gtest/gtest.h>

#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

struct Plans {
  lower::Program lifetimes;  // reuse of dead buffers only
  lower::Program in_place;
};

Plans plan(const ModelFactory& make) {
  driver::CompileOptions plain;
  plain.pipeline.opt_level = 0;
  driver::CompileOptions in_place;
  in_place.pipeline.passes = {"plan-in-place"};
  auto a = compileProgram(make, plain);
  auto b = compileProgram(make, in_place);
  EXPECT_TRUE(a.isOk() && b.isOk());
  if (!a || !b) return {};
  return {std::move(*a), std::move(*b)};
}

int64_t offsetOf(const lower::Program& p, const std::string& name) {
  for (const auto& b : p.buffers)
    if (b.name == name) return b.workspace_offset;
  ADD_FAILURE() << "no buffer " << name;
  return -1;
}

// x -> Exp -> Neg -> Abs (broadcast Add of a constant) -> Sqrt -> y
std::unique_ptr<ir::Model> chain() {
  TestGraph g;
  ir::Value* x = g.input("x", {16, 16});
  ir::Value* a = g.op("Exp", {x}, "a");
  ir::Value* b = g.op("Neg", {a}, "b");
  ir::Value* c = g.op("Add", {b, g.randomConstant("row", {16})}, "c");
  ir::Value* d = g.op("Abs", {c}, "d");
  g.output(g.op("Sqrt", {d}, "y"));
  return g.take();
}

TEST(PlanInPlaceTest, ElementwiseChainUsesOneSlot) {
  Plans p = plan(chain);
  const int64_t slot = 16 * 16 * 4;
  EXPECT_EQ(p.lifetimes.workspace_bytes, 2 * slot) << lower::toString(p.lifetimes);
  EXPECT_EQ(p.in_place.workspace_bytes, slot) << lower::toString(p.in_place);
  for (const char* name : {"a", "b", "c", "d"}) EXPECT_EQ(offsetOf(p.in_place, name), 0) << name;
  EXPECT_TRUE(sameOutputs(p.in_place, p.lifetimes));
}

// A Transpose reads element (j, i) while writing (i, j): it must not write
// over its input. A value still read later cannot be overwritten either.
std::unique_ptr<ir::Model> notInPlace() {
  TestGraph g;
  ir::Value* x = g.input("x", {8, 8});
  ir::Value* a = g.op("Exp", {x}, "a");
  ir::Node* t = g.node("Transpose", {a}, "t");
  setInts(t, "perm", {1, 0});
  ir::Value* n = g.op("Neg", {t->outputs[0]}, "n");
  ir::Value* s = g.op("Add", {n, t->outputs[0]}, "s");
  g.output(g.op("Relu", {s}, "y"));
  return g.take();
}

TEST(PlanInPlaceTest, KeepsPermutedReadsAndLiveInputsApart) {
  Plans p = plan(notInPlace);
  EXPECT_NE(offsetOf(p.in_place, "t"), offsetOf(p.in_place, "a"));
  EXPECT_NE(offsetOf(p.in_place, "n"), offsetOf(p.in_place, "t")) << "t is read again by the Add";
  EXPECT_TRUE(sameOutputs(p.in_place, p.lifetimes));
}

}  // namespace
}  // namespace kiln::testing
