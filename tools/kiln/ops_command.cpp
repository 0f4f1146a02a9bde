// `kiln ops` (hidden): the supported-ops table from the op registry, as
// Markdown. scripts/gen-docs.sh writes it to docs/ops.md.
#include <iostream>
#include <map>

#include "compiler/ops/op_registry.h"
#include "tools/kiln/commands.h"

namespace kiln::cli {

void addOpsCommand(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("ops", "Print the supported ONNX ops as a Markdown table");
  cmd->group("");  // hidden: for docs/ops.md
  cmd->callback([&exit_code] {
    std::map<std::string, std::vector<const ops::OpSchema*>> by_domain;
    for (const ops::OpSchema* schema : ops::OpRegistry::global().all())
      by_domain[schema->domain.empty() ? "ai.onnx" : std::string(schema->domain)].push_back(schema);
    size_t total = 0;
    for (const auto& [domain, schemas] : by_domain) total += schemas.size();
    std::cout << "# Supported ops\n\n"
              << "Generated from the op registry (`compiler/ops/`) by `scripts/gen-docs.sh`; do not edit by hand.\n\n"
              << total << " ops. \"Versions\" are the ONNX operator versions (`since_version`) Kiln implements: "
              << "a model whose opset selects one of them, or a later opset that did not change the op, compiles.\n";
    for (const auto& [domain, schemas] : by_domain) {
      std::map<std::string_view, const ops::OpSchema*> sorted;
      for (const ops::OpSchema* s : schemas) sorted[s->name] = s;
      std::cout << "\n## " << domain << " (" << schemas.size()
                << " ops)\n\n";
      if (domain == ops::kKilnDomain)
        std::cout << "Kiln's own ops, which its passes write (the channels-last pass: convolutions and pools over "
                     "NHWC data for the CPU backend; recognize-layer-norm and recognize-gelu: LayerNormalization and "
                     "Gelu, as ONNX defines them, in models whose opset predates them; winograd-conv: a Winograd "
                     "convolution, banded or in three steps; recognize-attention: scaled-dot-product attention as one "
                     "kernel for the CPU backend); `--emit onnx` never writes them.\n\n";
      std::cout << "| op | versions | attributes |\n| --- | --- | --- |\n";
      for (const auto& [name, s] : sorted) {
        std::cout << "| " << name << " | ";
        for (size_t i = 0; i < s->versions.size(); ++i) std::cout << (i ? ", " : "") << s->versions[i];
        std::cout << " | ";
        for (size_t i = 0; i < s->attributes.size(); ++i)
          std::cout << (i ? ", " : "") << "`" << s->attributes[i].name << "`"
                    << (s->attributes[i].required ? " (required)" : "");
        std::cout << " |\n";
      }
    }
    exit_code = kExitOk;
  });
}

}  // namespace kiln::cli
