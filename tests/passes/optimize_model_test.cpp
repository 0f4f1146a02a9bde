// Whole models at -O2 against -O0: fewer kernels, a smaller arena, the same
// outputs within 1e-4 relative (reference evaluator on random inputs). The
// models: examples/tiny_cnn (Conv/BatchNorm/Relu/pooling/Gemm/Softmax) and
// tests/passes/bert_block.onnx (one BERT-style encoder layer as PyTorch
// exports it; make_bert_block.py writes it).
#include <gtest/gtest.h>

#include <iostream>

#include "tests/passes/model_check.h"

namespace kiln::testing {
namespace {

struct Level {
  lower::Program program;
  driver::CompileSummary summary;
};

Level compileAt(const std::string& path, int opt_level) {
  driver::CompileOptions options;
  options.pipeline.opt_level = opt_level;
  Level level;
  auto program = compileProgram(
      [&] {
        auto model = driver::importModel(path);
        EXPECT_TRUE(model.isOk()) << model.status().message();
        return model ? std::move(*model) : std::make_unique<ir::Model>();
      },
      options, &level.summary);
  EXPECT_TRUE(program.isOk()) << path << ": " << program.status().message();
  if (program) level.program = std::move(*program);
  return level;
}

void expectOptimized(const std::string& path) {
  Level o0 = compileAt(path, 0);
  Level o2 = compileAt(path, 2);
  std::cout << path << ": kernels " << o0.summary.kernels << " -> " << o2.summary.kernels << ", arena "
            << o0.summary.arena_bytes << " -> " << o2.summary.arena_bytes << " bytes\n";
  EXPECT_LT(o2.summary.kernels, o0.summary.kernels);
  EXPECT_LT(o2.summary.arena_bytes, o0.summary.arena_bytes);
  EXPECT_EQ(o2.summary.arena_bytes, o2.program.workspace_bytes);
  bool fused = false;
  for (const auto& record : o2.summary.passes) fused = fused || record.name == "fuse-kernels";
  EXPECT_TRUE(fused) << "the report lists fuse-kernels";
  for (unsigned seed = 1; seed <= 2; ++seed) EXPECT_TRUE(sameOutputs(o2.program, o0.program, 1e-4, seed));
}

TEST(OptimizeModelTest, TinyCnn) { expectOptimized(KILN_SOURCE_DIR "/examples/tiny_cnn/tiny_cnn.onnx"); }

TEST(OptimizeModelTest, BertBlock) { expectOptimized(KILN_SOURCE_DIR "/tests/passes/bert_block.onnx"); }

}  // namespace
}  // namespace kiln::testing
