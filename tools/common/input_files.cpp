#include "tools/common/input_files.h"

#include <filesystem>

#include "tools/common/tensor_files.h"
#include "tools/common/values.h"

namespace kiln::tools {

Expected<size_t> inputIndex(const kiln::Model& model, const std::string& name, const std::string& option) {
  std::string names;
  for (size_t i = 0; i < model.numInputs(); ++i) {
    if (name == model.input(i).name) return i;
    names += std::string(names.empty() ? "" : ", ") + model.input(i).name;
  }
  return invalidInput(option + ": the model has no input named '" + name + "' (inputs: " + names + ")");
}

namespace {

// Which input each spec is for, and its file.
Expected<std::vector<std::pair<size_t, std::string>>> assignInputFiles(const kiln::Model& model,
                                                                       const std::vector<std::string>& specs) {
  std::vector<std::pair<size_t, std::string>> files;
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
    if (index >= model.numInputs())
      return invalidInput("--input " + spec + ": too many inputs, the model takes " + std::to_string(model.numInputs()));
    files.emplace_back(index, path);
  }
  return files;
}

}  // namespace

Expected<std::vector<std::optional<ir::Tensor>>> readInputFiles(const kiln::Model& model,
                                                                const std::vector<std::string>& specs) {
  std::vector<std::optional<ir::Tensor>> slots(model.numInputs());
  KILN_ASSIGN_OR_RETURN(auto files, assignInputFiles(model, specs));
  for (const auto& [index, path] : files) {
    if (model.inputKind(index) != KILN_KIND_TENSOR)
      return invalidInput("input " + std::to_string(index) + " '" + model.input(index).name + "' is a " +
                          Value::kindName(model.inputKind(index)) + "; this command takes tensor inputs only");
    KILN_ASSIGN_OR_RETURN(ir::Tensor t, readTensorFile(path));
    slots[index] = std::move(t);
  }
  return slots;
}

Expected<std::vector<std::optional<Value>>> readInputValueFiles(const kiln::Model& model,
                                                                const std::vector<std::string>& specs) {
  std::vector<std::optional<Value>> slots(model.numInputs());
  KILN_ASSIGN_OR_RETURN(auto files, assignInputFiles(model, specs));
  for (const auto& [index, path] : files) {
    KILN_ASSIGN_OR_RETURN(Value v, readValueFile(path, model.inputKind(index)));
    slots[index] = std::move(v);
  }
  return slots;
}

}  // namespace kiln::tools
