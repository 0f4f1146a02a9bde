// The pruning report: the console table, the JSON object under "pruning" and
// the HTML report's "Pruning" section.
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "tools/kiln/escape.h"
#include "tools/kiln/prune_session.h"

namespace kiln::cli {
namespace {

std::string fixed(double v, int precision) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

std::string jsonNumber(double v) { return std::isfinite(v) ? fixed(v, 6) : std::string("null"); }

struct Totals {
  int64_t params_before = 0, nonzero_after = 0, params_after = 0, flops_before = 0, flops_after = 0;
};

Totals totalsOf(const passes::PruneReport& r) {
  Totals t;
  for (const auto& l : r.layers) {
    t.params_before += l.params_before;
    t.params_after += l.params_after;
    t.nonzero_after += l.nonzero_after;
    t.flops_before += l.flops_before;
    t.flops_after += l.flops_after;
  }
  return t;
}

double share(int64_t part, int64_t whole) { return whole ? static_cast<double>(part) / static_cast<double>(whole) : 0; }

std::string accuracyLine(const AccuracyRow& row) {
  std::string line =
      row.output + ": max abs error " + fixed(row.error.max_abs, 6) + ", SQNR " + fixed(row.error.sqnrDb(), 1) + " dB";
  if (row.error.rows)
    line += ", top-1 agreement " + fixed(100.0 * row.error.top1Agreement(), 2) + "% (" +
            std::to_string(row.error.agreeing_rows) + "/" + std::to_string(row.error.rows) + ")";
  return line;
}

}  // namespace

std::string formatPruning(const PruningReport& report) {
  const passes::PruneReport& g = report.graph;
  Totals t = totalsOf(g);
  std::ostringstream os;
  os << "pruned (" << g.method << "): " << g.layers.size() << " layers, weights " << t.params_before << " -> "
     << t.nonzero_after << " nonzero (" << fixed(100.0 * (1 - share(t.nonzero_after, t.params_before)), 1)
     << "% removed), FLOPs of these layers " << t.flops_before << " -> " << t.flops_after << " ("
     << fixed(100.0 * (1 - share(t.flops_after, t.flops_before)), 1) << "% removed)\n";
  if (!g.groups_kept.empty())
    os << "  " << g.groups_pruned << " channel groups pruned, " << g.groups_kept.size()
       << " left alone (first: " << g.groups_kept[0] << ")\n";
  os << "  layer                                    op      ratio  sparsity      params  nonzero after   MFLOPs before "
        "-> after\n";
  for (const auto& l : g.layers) {
    std::string name = l.node.size() > 40 ? "..." + l.node.substr(l.node.size() - 37) : l.node;
    os << "  " << std::left << std::setw(40) << name << " " << std::setw(7) << l.op << std::right << std::setw(6)
       << fixed(l.ratio, 2) << std::setw(9) << fixed(100.0 * l.sparsity(), 1) << "%" << std::setw(12) << l.params_before
       << std::setw(15) << l.nonzero_after << std::setw(16) << fixed(l.flops_before / 1e6, 2) << " -> "
       << fixed(l.flops_after / 1e6, 2) << "\n";
  }
  if (!report.budget.empty())
    os << "accuracy budget " << report.budget << ": ratios chosen in " << report.budget_compiles << " trial compiles ("
       << static_cast<int64_t>(report.budget_ms) << " ms); together on the calibration sets: worst output SQNR "
       << fixed(report.budget_sqnr_db, 1) << " dB\n";
  if (report.accuracy) {
    const AccuracyReport& a = *report.accuracy;
    os << "accuracy of the pruned model against the dense one on " << a.sets << " " << a.data << " set"
       << (a.sets == 1 ? "" : "s") << (a.host_build ? kHostBuildNote : "") << ":\n";
    for (const AccuracyRow& row : a.rows) os << "  " << accuracyLine(row) << "\n";
  }
  if (report.latency_runs > 0)
    os << "latency (median of " << report.latency_runs << " interleaved runs): dense " << fixed(report.dense_ms, 3)
       << " ms, pruned " << fixed(report.pruned_ms, 3) << " ms (" << fixed(report.dense_ms / report.pruned_ms, 2)
       << "x)" << (report.accuracy && report.accuracy->host_build ? ", both built for this machine" : "") << "\n";
  return os.str();
}

std::string pruningJson(const PruningReport& report, const std::string& indent) {
  const passes::PruneReport& g = report.graph;
  Totals t = totalsOf(g);
  std::ostringstream os;
  std::string in = indent + "  ";
  os << "{\n"
     << in << "\"method\": " << jsonQuote(g.method) << ",\n"
     << in << "\"params_before\": " << t.params_before << ", \"params_after\": " << t.params_after
     << ", \"nonzero_after\": " << t.nonzero_after << ",\n"
     << in << "\"flops_before\": " << t.flops_before << ", \"flops_after\": " << t.flops_after << ",\n"
     << in << "\"groups_pruned\": " << g.groups_pruned << ",\n"
     << in << "\"groups_kept\": [";
  for (size_t i = 0; i < g.groups_kept.size(); ++i) os << (i ? ", " : "") << jsonQuote(g.groups_kept[i]);
  os << "],\n" << in << "\"layers\": [";
  for (size_t i = 0; i < g.layers.size(); ++i) {
    const auto& l = g.layers[i];
    os << (i ? "," : "") << "\n"
       << in << "  {\"name\": " << jsonQuote(l.node) << ", \"op\": " << jsonQuote(l.op)
       << ", \"group\": " << jsonQuote(l.group) << ", \"ratio\": " << jsonNumber(l.ratio)
       << ", \"sparsity\": " << jsonNumber(l.sparsity()) << ", \"params_before\": " << l.params_before
       << ", \"params_after\": " << l.params_after << ", \"nonzero_after\": " << l.nonzero_after
       << ", \"channels_before\": " << l.channels_before << ", \"channels_after\": " << l.channels_after
       << ", \"flops_before\": " << l.flops_before << ", \"flops_after\": " << l.flops_after << "}";
  }
  os << "\n" << in << "]";
  if (!report.budget.empty()) {
    os << ",\n"
       << in << "\"accuracy_budget\": {\"budget\": " << jsonQuote(report.budget)
       << ", \"trial_compiles\": " << report.budget_compiles << ", \"ms\": " << jsonNumber(report.budget_ms)
       << ", \"calibration_sqnr_db\": " << jsonNumber(report.budget_sqnr_db) << ", \"layers\": [";
    for (size_t i = 0; i < report.choices.size(); ++i) {
      const BudgetChoice& c = report.choices[i];
      os << (i ? ", " : "") << "{\"name\": " << jsonQuote(c.layer) << ", \"ratio\": " << jsonNumber(c.ratio)
         << ", \"alone_sqnr_db\": " << jsonNumber(c.alone_db) << "}";
    }
    os << "]}";
  }
  if (report.accuracy) os << ",\n" << in << "\"accuracy\": " << accuracyJson(*report.accuracy, in);
  if (report.latency_runs > 0)
    os << ",\n"
       << in << "\"latency\": {\"runs\": " << report.latency_runs << ", \"dense_ms\": " << jsonNumber(report.dense_ms)
       << ", \"pruned_ms\": " << jsonNumber(report.pruned_ms)
       << ", \"speedup\": " << jsonNumber(report.dense_ms / report.pruned_ms) << "}";
  os << "\n" << indent << "}";
  return os.str();
}

void renderPruningHtml(std::ostream& os, const PruningReport& report) {
  const passes::PruneReport& g = report.graph;
  Totals t = totalsOf(g);
  os << "<h2 id=\"pruning\">Pruning</h2>\n<p class=\"muted\"><code>--prune " << htmlEscape(g.method)
     << "</code>: " << g.layers.size() << " layers; weights " << t.params_before << " &rarr; " << t.nonzero_after
     << " nonzero (" << fixed(100.0 * (1 - share(t.nonzero_after, t.params_before)), 1)
     << "% removed); FLOPs of these layers " << fixed(t.flops_before / 1e6, 2) << " &rarr; "
     << fixed(t.flops_after / 1e6, 2) << " M.";
  if (!report.budget.empty())
    os << " Ratios chosen for the accuracy budget " << htmlEscape(report.budget) << " (" << report.budget_compiles
       << " trial compiles; together " << fixed(report.budget_sqnr_db, 1) << " dB on the calibration sets).";
  if (report.latency_runs > 0)
    os << " Latency, median of " << report.latency_runs << " interleaved runs: dense " << fixed(report.dense_ms, 3)
       << " ms, pruned " << fixed(report.pruned_ms, 3) << " ms (" << fixed(report.dense_ms / report.pruned_ms, 2)
       << "&times;).";
  os << "</p>\n<table id=\"pruning-table\"><tr><th>layer</th><th>op</th><th>group</th><th>ratio</th><th>sparsity</th>"
        "<th>params</th><th>nonzero after</th><th>channels</th><th>MFLOPs before</th><th>MFLOPs after</th></tr>\n";
  for (const auto& l : g.layers)
    os << "<tr><td><code>" << htmlEscape(l.node) << "</code></td><td>" << htmlEscape(l.op) << "</td><td><code>"
       << htmlEscape(l.group) << "</code></td><td class=\"num\">" << fixed(l.ratio, 2) << "</td><td class=\"num\">"
       << fixed(100.0 * l.sparsity(), 1) << "%</td><td class=\"num\">" << l.params_before << "</td><td class=\"num\">"
       << l.nonzero_after << "</td><td class=\"num\">" << l.channels_before << " &rarr; " << l.channels_after
       << "</td><td class=\"num\">" << fixed(l.flops_before / 1e6, 2) << "</td><td class=\"num\">"
       << fixed(l.flops_after / 1e6, 2) << "</td></tr>\n";
  os << "</table>\n";
  for (const std::string& kept : g.groups_kept) os << "<p class=\"muted\">Left alone: " << htmlEscape(kept) << "</p>\n";
  if (report.accuracy) {
    const AccuracyReport& a = *report.accuracy;
    os << "<p class=\"muted\">The pruned artifact against the dense one on " << a.sets << " " << htmlEscape(a.data)
       << " set" << (a.sets == 1 ? "" : "s") << ".</p>\n<table id=\"pruning-accuracy-table\"><tr><th>output</th>"
       << "<th>max abs error</th><th>SQNR (dB)</th><th>top-1 agreement</th></tr>\n";
    for (const AccuracyRow& row : a.rows) {
      std::string top1 = row.error.rows
                             ? fixed(100.0 * row.error.top1Agreement(), 2) + "% (" +
                                   std::to_string(row.error.agreeing_rows) + "/" + std::to_string(row.error.rows) + ")"
                             : "";
      os << "<tr><td><code>" << htmlEscape(row.output) << "</code></td><td class=\"num\">"
         << fixed(row.error.max_abs, 6) << "</td><td class=\"num\">" << fixed(row.error.sqnrDb(), 1)
         << "</td><td class=\"num\">" << top1 << "</td></tr>\n";
    }
    os << "</table>\n";
  }
}

}  // namespace kiln::cli
