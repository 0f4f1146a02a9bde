#include "tools/common/input_files.h"

#include <filesystem>

#include "tools/common/tensor_files.h"

namespace kiln::tools {

Expected<size_t> inputIndex(const kiln::Model& model, const std::string& name, const std::string& option) {
  std::string names;
  for (size_t i = 0; i < model.numInputs(); ++i) {
    if (name == model.input(i).name) return i;
    names += std::string(names.empty() ? "" : ", ") + model.input(i).name;
  }
  return invalidInput(option + ": the model has no input named '" + name + "' (inputs: " + names + ")");
}

Expected<std::vector<std::optional<ir::Tensor>>> readInputFiles(const kiln::Model& model,
                                                                const std::vector<std::string>& specs) {
  std::vector<std::optional<ir::Tensor>> slots(model.numInputs());
  size_t next = 0;
  for (const std::string& spec : specs) {
    size_t index = next;
    std::string path = spec;
    size_t eq = spec.find('=');
    if (eq != std::string::npos && !std::filesystem::exists(spec)) {
      KILN_ASSIGN_OR_RETURN(index, inputIndex(model, spec.substr(0, eq), "--input " + spec));
      path = spec.substr(eq + 1);
    } else {
      ++next;
    }
    if (index >= slots.size())
      return invalidInput("--input " + spec + ": too many inputs, the model takes " + std::to_string(slots.size()));
    KILN_ASSIGN_OR_RETURN(ir::Tensor t, readTensorFile(path));
    slots[index] = std::move(t);
  }
  return slots;
}

}  // namespace kiln::tools
