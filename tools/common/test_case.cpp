#include "tools/common/test_case.h"

#include <algorithm>
#include <regex>

#include "tools/common/tensor_files.h"
#include "tools/common/values.h"

namespace kiln::tools {

namespace fs = std::filesystem;

std::vector<fs::path> numberedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<int, fs::path>> found;
  const std::regex pattern(prefix + "_([0-9]+)\\.pb");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, pattern)) found.emplace_back(std::stoi(m[1]), entry.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> paths;
  for (auto& [index, path] : found) paths.push_back(std::move(path));
  return paths;
}

Expected<std::vector<fs::path>> testDataSets(const fs::path& case_dir) {
  std::vector<fs::path> sets;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(case_dir, ec))
    if (entry.is_directory() && entry.path().filename().string().starts_with("test_data_set_"))
      sets.push_back(entry.path());
  if (ec) return ioError("cannot read test case folder '" + case_dir.string() + "': " + ec.message());
  if (sets.empty()) return invalidInput("no test_data_set_* folders in '" + case_dir.string() + "'");
  std::sort(sets.begin(), sets.end());
  return sets;
}

Expected<std::unique_ptr<kiln::Model>> loadArtifact(const std::string& path) {
  try {
    return std::make_unique<kiln::Model>(path);
  } catch (const kiln::Error& e) {
    return runtimeStatus(e);
  }
}

namespace {

// The files of a data set, each read as the kind of the model's input or
// output it is for (a sequence from a SequenceProto, an optional from an OptionalProto).
Expected<std::vector<Value>> readValues(const std::vector<fs::path>& files, const kiln::Model& model, bool outputs) {
  std::vector<Value> values;
  size_t count = outputs ? model.numOutputs() : model.numInputs();
  for (size_t i = 0; i < files.size(); ++i) {
    kiln_value_kind kind = i >= count ? KILN_KIND_TENSOR : outputs ? model.outputKind(i) : model.inputKind(i);
    KILN_ASSIGN_OR_RETURN(Value v, readValueFile(files[i].string(), kind));
    values.push_back(std::move(v));
  }
  return values;
}

// One data set; `label` prefixes mismatches when a case has several sets.
Expected<std::optional<std::string>> checkDataSet(const kiln::Model& model, kiln::Session& session, const fs::path& set,
                                                  const std::string& label, Tolerance tolerance) {
  KILN_ASSIGN_OR_RETURN(auto inputs, readValues(numberedFiles(set, "input"), model, false));
  KILN_ASSIGN_OR_RETURN(auto outputs, runArtifactValues(model, session, inputs));
  KILN_ASSIGN_OR_RETURN(auto expected, readValues(numberedFiles(set, "output"), model, true));
  if (expected.size() != outputs.size())
    return std::optional<std::string>(label + "the model produced " + std::to_string(outputs.size()) + " outputs, " +
                                      set.filename().string() + " expects " + std::to_string(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i)
    if (auto diff = compareValues(outputs[i], expected[i], tolerance))
      return std::optional<std::string>(label + "output " + std::to_string(i) + " '" + model.output(i).name +
                                        "': " + *diff);
  return std::optional<std::string>();
}

}  // namespace

Expected<std::optional<std::string>> checkTestCase(const kiln::Model& model, kiln::Session& session,
                                                   const fs::path& case_dir, Tolerance tolerance) {
  KILN_ASSIGN_OR_RETURN(auto sets, testDataSets(case_dir));
  for (const fs::path& set : sets) {
    std::string label = sets.size() > 1 ? set.filename().string() + ": " : "";
    auto result = checkDataSet(model, session, set, label, tolerance);
    if (!result) return result.status().withContext(set.filename().string());
    if (*result) return result;
  }
  return std::optional<std::string>();
}

}  // namespace kiln::tools
