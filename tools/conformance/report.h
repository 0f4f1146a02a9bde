// What kiln-conformance makes of the results: the closing summary, the
// markdown page (docs/conformance.md), and the expected-pass list.
#pragma once

#include <iosfwd>
#include <set>
#include <string>
#include <vector>

#include "compiler/support/status.h"
#include "tools/conformance/conformance.h"

namespace kiln::conformance {

// Per-folder totals, then "U unsupported" and the closing "N passed, M failed".
void printSummary(std::ostream& out, const std::vector<CaseResult>& results);

// Deterministic (sorted, no times or dates), so that regenerating without a
// change in results gives no diff. `command` is the command line to show as
// the page's source.
// `side_by_side`, when not empty, is a markdown file of a peer's totals
// (bench/ort_conformance.py --out) placed after Kiln's totals.
Status writeMarkdown(const std::string& path, const std::vector<CaseResult>& results, const std::string& command,
                     const std::string& side_by_side);

// The passing cases' ids, sorted, one a line.
Status writeExpected(const std::string& path, const std::vector<CaseResult>& results);

// Case ids from an --expected file: one a line, '#' starts a comment.
Expected<std::set<std::string>> readExpected(const std::string& path);

// The short form of an unsupported reason that cases are grouped under:
// "unsupported op 'LSTM'" whatever the opset or node, or else the reason with
// node names left out.
std::string reasonGroup(const std::string& reason);

}  // namespace kiln::conformance
