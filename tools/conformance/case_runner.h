// Runs test cases in forked children so that a crash or a hang in one case
// is recorded as that case's failure instead of ending the whole run.
#pragma once

#include <csignal>
#include <functional>
#include <vector>

#include "tools/conformance/conformance.h"

namespace kiln::conformance {

// Runs every case, at most options.jobs at a time, each in its own child
// process killed after options.timeout_s. `on_done` sees each result as its
// case finishes (in completion order); the returned results are in `cases`
// order. Stops early, killing the children, if `stop` becomes true (set from
// a signal handler).
std::vector<CaseResult> runCases(const std::vector<TestCase>& cases, const RunOptions& options,
                                 const std::function<void(const CaseResult&)>& on_done,
                                 const volatile std::sig_atomic_t& stop);

}  // namespace kiln::conformance
