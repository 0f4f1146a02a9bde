// One ONNX backend test case folder — model.onnx plus test_data_set_*/
// holding input_N.pb and output_N.pb — and checking an artifact against it.
// Shared by `kiln check` and kiln-conformance.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/support/status.h"
#include "kiln_runtime.hpp"
#include "tools/common/run_artifact.h"

namespace kiln::tools {

// `<prefix>_0.pb`, `<prefix>_1.pb`, ... in `dir`, in numeric order (so that
// input_10 comes after input_9).
std::vector<std::filesystem::path> numberedFiles(const std::filesystem::path& dir, const std::string& prefix);

// The test_data_set_* folders of a case, sorted; an error if there are none.
Expected<std::vector<std::filesystem::path>> testDataSets(const std::filesystem::path& case_dir);

// Loads an artifact, turning the runtime's exception into a Status.
Expected<std::unique_ptr<kiln::Model>> loadArtifact(const std::string& path);

// Runs `session` on every data set of `case_dir` and compares each output.
// nullopt: all matched; a string: the first mismatch, described for a person
// ("output 0 'y': element [0,1] is 1, expected 2 ..."); an error: a data set
// could not be read or run.
Expected<std::optional<std::string>> checkTestCase(const kiln::Model& model, kiln::Session& session,
                                                   const std::filesystem::path& case_dir, Tolerance tolerance);

}  // namespace kiln::tools
