// Runs an ONNX backend node case on the reference evaluator with some of its
// graph inputs bound to their data-set values as constants. Many cases feed
// an op's shape-defining operand (Resize's scales or sizes, a window's size,
// STFT's frame_step) as a graph input; Kiln needs those at compile time, so
// binding them checks the op's arithmetic against the expected outputs today.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "compiler/kir/evaluator.h"
#include "compiler/lower/lower_graph.h"
#include "compiler/onnx/importer.h"
#include "passes/infer_shapes.h"
#include "tools/common/tensor_files.h"

namespace kiln::testing {

// "" when every output of every data set matches within rtol/atol, else what differed.
inline std::string runBoundCase(const std::string& name, const std::set<size_t>& bound, double rtol = 1e-3,
                                double atol = 1e-5) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(KILN_TESTDATA_DIR) / "node" / name;
  if (!fs::exists(dir / "model.onnx")) return "no test case " + dir.string();
  for (int set = 0; fs::exists(dir / ("test_data_set_" + std::to_string(set))); ++set) {
    fs::path data = dir / ("test_data_set_" + std::to_string(set));
    auto model = frontend::importOnnxFile((dir / "model.onnx").string());
    if (!model) return model.status().message();
    ir::Graph& graph = (*model)->graph;
    std::vector<ir::Tensor> run_inputs;
    std::vector<ir::Value*> kept;
    for (size_t i = 0; i < graph.inputs.size(); ++i) {
      auto t = tools::readTensorFile((data / ("input_" + std::to_string(i) + ".pb")).string());
      if (!t) return t.status().message();
      if (bound.count(i)) {
        graph.inputs[i]->constant = *t;
      } else {
        kept.push_back(graph.inputs[i]);
        run_inputs.push_back(*t);
      }
    }
    graph.inputs = kept;
    if (Status s = passes::inferShapes(**model); !s) return "infer: " + s.message();
    auto program = lower::lowerGraph(**model);
    if (!program) return "lower: " + program.status().message();
    std::vector<const void*> in_ptrs;
    for (const ir::Tensor& t : run_inputs) in_ptrs.push_back(t.bytes().data());
    std::vector<std::vector<std::byte>> outs;
    std::vector<void*> out_ptrs;
    for (int b : program->output_buffers) outs.emplace_back(program->buffers[b].byteSize() + 1);
    for (auto& o : outs) out_ptrs.push_back(o.data());
    if (Status s = lower::evaluateProgram(*program, in_ptrs, out_ptrs); !s) return "evaluate: " + s.message();
    for (size_t i = 0; i < outs.size(); ++i) {
      auto expected = tools::readTensorFile((data / ("output_" + std::to_string(i) + ".pb")).string());
      if (!expected) return expected.status().message();
      const lower::ProgramBuffer& buffer = program->buffers[program->output_buffers[i]];
      if (buffer.dims != expected->dims())
        return "output " + std::to_string(i) + " has shape " + ir::toString(ir::makeShape(buffer.dims)) +
               ", expected " + ir::toString(ir::makeShape(expected->dims()));
      outs[i].resize(static_cast<size_t>(buffer.byteSize()));
      ir::Tensor actual = ir::Tensor::fromBytes(buffer.dtype, buffer.dims, std::move(outs[i]));
      for (int64_t k = 0; k < expected->elementCount(); ++k) {
        double a = actual.floatAt(k), e = expected->floatAt(k);
        if (a == e || std::abs(a - e) <= atol + rtol * std::abs(e)) continue;
        return "output " + std::to_string(i) + " element " + std::to_string(k) + " is " + std::to_string(a) +
               ", expected " + std::to_string(e);
      }
    }
  }
  return "";
}

}  // namespace kiln::testing
