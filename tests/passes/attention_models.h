// Attention graphs shared by the recognize-attention and stage-group tests.
#pragma once

#include <memory>

#include "tests/passes/model_check.h"

namespace kiln::testing {

// nn.MultiheadAttention's form, heads folded into the batch, keys longer
// than the queries: q [6, 5, 16], k [6, 11, 16], v [6, 11, 24] ->
// softmax(q @ k^T [* 0.25]) @ v, Softmax over axis 2 (the last).
inline std::unique_ptr<ir::Model> crossAttentionModel(bool scaled) {
  TestGraph g(17);
  ir::Value* q = g.input("q", {6, 5, 16});
  ir::Value* k = g.input("k", {6, 11, 16});
  ir::Value* v = g.input("v", {6, 11, 24});
  ir::Node* kt = g.node("Transpose", {k}, "kt");
  setInts(kt, "perm", {0, 2, 1});
  ir::Value* s = g.op("MatMul", {q, kt->outputs[0]}, "scores");
  if (scaled) s = g.op("Mul", {s, g.constant("c", {}, {0.25f})}, "scaled");
  ir::Node* softmax = g.node("Softmax", {s}, "probs");
  setInt(softmax, "axis", 2);
  g.output(g.op("MatMul", {softmax->outputs[0], v}, "y"));
  return g.take();
}

}  // namespace kiln::testing
