// kiln-conformance: compiles and checks every ONNX backend test case under a
// set of roots, one forked child per case. These are the types its parts share.
#pragma once

#include <filesystem>
#include <string>

#include "tools/common/run_artifact.h"

namespace kiln::conformance {

struct TestCase {
  std::string folder;  // the root's name: "node", "simple", ...
  std::string name;    // the case folder's name: "test_relu"
  std::filesystem::path dir;

  std::string id() const { return folder + "/" + name; }  // "node/test_relu", as in --expected files
};

enum class Verdict { kPass, kFail, kUnsupported };

struct CaseResult {
  TestCase test;
  Verdict verdict = Verdict::kFail;
  std::string reason;  // one line; empty on pass
};

std::string_view verdictName(Verdict verdict);  // "PASS", "FAIL", "UNSUPPORTED"

struct RunOptions {
  int jobs = 2;
  int timeout_s = 60;
  // Threads per session. With --jobs children already sharing the cores,
  // one thread each keeps them from fighting, and keeps reductions in a fixed
  // order so that mismatch texts are the same from run to run.
  int threads = 1;
  tools::Tolerance tolerance;         // rtol 1e-3, atol 1e-7: the backend tests' own
  std::string target = "cpu";         // --target: cpu or cuda
  std::string cuda_arch;              // --cuda-arch (--target cuda)
  // --artifacts DIR: artifacts are kept there as FOLDER/CASE.so, and a case
  // that did not compile leaves FOLDER/CASE.txt (its verdict letter and
  // reason). With compile_only nothing runs; with run_only nothing compiles:
  // the cases run from DIR, so the compiling and the running can happen on
  // different machines (a GPU host needs only the runtime).
  std::filesystem::path artifacts_dir;
  bool compile_only = false;
  bool run_only = false;
  std::filesystem::path scratch_dir;  // artifacts and child logs go here
};

}  // namespace kiln::conformance
