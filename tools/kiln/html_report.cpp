#include "tools/kiln/html_report.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "compiler/ir/printer.h"
#include "tools/kiln/escape.h"

extern char** environ;

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

// Graphs larger than this are not drawn: dot takes minutes and the picture is
// unreadable. The page says so instead.
constexpr size_t kMaxDrawnNodes = 1500;

const char* kindName(lower::ProgramBuffer::Kind kind) {
  switch (kind) {
    case lower::ProgramBuffer::Kind::kInput:
      return "input";
    case lower::ProgramBuffer::Kind::kOutput:
      return "output";
    case lower::ProgramBuffer::Kind::kConstant:
      return "weight";
    case lower::ProgramBuffer::Kind::kIntermediate:
      return "arena";
  }
  return "?";
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "kiln-report-XXXXXX").string();
    if (mkdtemp(pattern.data())) path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

// Runs `dot -Tsvg` on `dot_text`. Returns the <svg> element, or an empty
// string with `why` set.
std::string renderSvg(const std::string& dot_text, const std::string& dot_program, std::string& why) {
  TempDir dir;
  if (dir.path.empty()) {
    why = "could not create a temporary folder for Graphviz";
    return {};
  }
  fs::path in = dir.path / "graph.dot", out = dir.path / "graph.svg", err = dir.path / "dot.err";
  {
    std::ofstream f(in);
    f << dot_text;
  }
  std::string in_s = in.string(), out_s = "-o" + out.string(), tsvg = "-Tsvg";
  char* argv[] = {const_cast<char*>(dot_program.c_str()), tsvg.data(), out_s.data(), in_s.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, dot_program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    why = "Graphviz '" + dot_program + "' was not found on PATH (install the graphviz package to see the graph here)";
    return {};
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream e(err);
    std::string first;
    std::getline(e, first);
    why = "Graphviz '" + dot_program + "' failed" + (first.empty() ? std::string() : ": " + first);
    return {};
  }
  std::ifstream f(out);
  std::string svg((std::istreambuf_iterator<char>(f)), {});
  size_t start = svg.find("<svg");
  if (start == std::string::npos) {
    why = "Graphviz produced no SVG";
    return {};
  }
  return svg.substr(start);
}

std::string fmtMs(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", ms);
  return buf;
}

const char* kStyle = R"(
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #1b1f24; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; }
th { background: #f3f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
#summary-table td { overflow-wrap: anywhere; }
tr.changed td { background: #eef7ee; } code { font-size: 13px; } .muted { color: #57606a; }
.graph { overflow: auto; border: 1px solid #d0d7de; padding: 8px; max-height: 900px; }
.note { background: #fff8e5; border: 1px solid #e8d48b; padding: 8px; }
.bar { background: #4c8bf5; height: 10px; display: inline-block; }
)";

}  // namespace

void captureLowered(const ir::Model& model, const lower::Program& program, CompileReport& report) {
  report.lowered = true;
  report.producer = model.producer_name + (model.producer_version.empty() ? "" : " " + model.producer_version);
  for (const auto& [domain, version] : model.opset_imports)
    report.opsets.emplace_back(domain.empty() ? "ai.onnx" : domain, version);
  for (const auto& sig : program.inputs)
    report.inputs.push_back({sig.name, std::string(ir::name(sig.dtype)), ir::toString(sig.shape)});
  for (const auto& sig : program.outputs)
    report.outputs.push_back({sig.name, std::string(ir::name(sig.dtype)), ir::toString(sig.shape)});
  report.nodes = model.graph.nodes().size();
  for (const auto& node : model.graph.nodes()) ++report.op_histogram[node->op_type];
  for (const auto& v : model.graph.values())
    if (v->isConstant()) report.parameters += v->constant->elementCount();
  if (report.nodes <= kMaxDrawnNodes) report.dot = ir::printDot(model.graph);
  for (const lower::KernelCall& call : program.calls) {
    CompileReport::KernelRow row{call.kernel.name, call.kernel.origin, kir::countFlops(call.kernel), 0};
    std::set<int> seen;
    for (int arg : call.args)
      if (seen.insert(arg).second) row.bytes += program.buffers[arg].byteSize();
    report.kernels.push_back(std::move(row));
  }
  for (const lower::ProgramBuffer& b : program.buffers) {
    report.buffers.push_back({b.name, kindName(b.kind), std::string(ir::name(b.dtype)),
                              ir::toString(ir::makeShape(b.dims)), b.byteSize(), b.workspace_offset});
  }
  report.arena_bytes = program.workspace_bytes;
}

namespace {

// A quantized compile: the quantized artifact against float32, per output.
void renderAccuracy(std::ostream& os, const AccuracyReport& a) {
  os << "<h2 id=\"accuracy\">Accuracy</h2>\n<p class=\"muted\">The quantized artifact against the float32 model on "
     << a.sets << " " << htmlEscape(a.data) << " set" << (a.sets == 1 ? "" : "s")
     << htmlEscape(a.host_build ? kHostBuildNote : "")
     << ". SQNR = 10&middot;log<sub>10</sub>(&Sigma;ref&sup2; / &Sigma;(ref&minus;quantized)&sup2;); top-1 agreement "
        "for [N, C] outputs: rows whose arg-max matches.</p>\n";
  os << "<table id=\"accuracy-table\"><tr><th>output</th><th>max abs error</th><th>SQNR (dB)</th>"
        "<th>top-1 agreement</th></tr>\n";
  for (const AccuracyRow& row : a.rows) {
    char max_abs[32], sqnr[32], top1[48] = "";
    std::snprintf(max_abs, sizeof(max_abs), "%.6g", row.error.max_abs);
    double db = row.error.sqnrDb();
    std::snprintf(sqnr, sizeof(sqnr), std::isfinite(db) ? "%.1f" : "%.0f", db);
    if (row.error.rows)
      std::snprintf(top1, sizeof(top1), "%.2f%% (%lld/%lld)", 100.0 * row.error.top1Agreement(),
                    static_cast<long long>(row.error.agreeing_rows), static_cast<long long>(row.error.rows));
    os << "<tr><td><code>" << htmlEscape(row.output) << "</code></td><td class=\"num\">" << max_abs
       << "</td><td class=\"num\">" << sqnr << "</td><td class=\"num\">" << top1 << "</td></tr>\n";
  }
  os << "</table>\n";
}

}  // namespace

std::string renderHtmlReport(const CompileReport& r, const std::string& dot_program) {
  const auto& s = r.summary;
  std::ostringstream os;
  std::string title = "kiln compile report: " + fs::path(r.model_path).filename().string();
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << htmlEscape(title)
     << "</title>\n<style>" << kStyle << "</style></head><body>\n";
  os << "<h1>" << htmlEscape(title) << "</h1>\n<p class=\"muted\">" << htmlEscape(r.model_path) << " &rarr; "
     << htmlEscape(r.output_path) << "</p>\n";

  // Summary.
  int64_t weight_bytes = s.weight_bytes;
  os << "<h2 id=\"summary\">Model summary</h2>\n<table id=\"summary-table\">\n";
  auto row = [&](const std::string& k, const std::string& v) {
    os << "<tr><th>" << htmlEscape(k) << "</th><td>" << htmlEscape(v) << "</td></tr>\n";
  };
  row("producer", r.producer.empty() ? "(not recorded)" : r.producer);
  std::string opsets;
  for (const auto& [domain, version] : r.opsets)
    opsets += (opsets.empty() ? "" : ", ") + domain + " " + std::to_string(version);
  row("opsets", opsets);
  row("options", r.options);
  if (!s.target.empty()) row("target", s.target);
  if (!s.passes.empty())
    row("nodes", std::to_string(s.passes.front().nodes_before) + " imported, " + std::to_string(r.nodes) +
                     " after optimization");
  else
    row("nodes", std::to_string(r.nodes));
  row("parameters", humanCount(static_cast<double>(r.parameters)) + " (" + std::to_string(r.parameters) + ")");
  row("weights", humanBytes(static_cast<double>(weight_bytes)));
  row("FLOPs per run", humanCount(static_cast<double>(s.flops)) + " (" + std::to_string(s.flops) + ")");
  row("kernels", std::to_string(s.kernels));
  row("arena", humanBytes(static_cast<double>(r.arena_bytes)) + " (" + std::to_string(r.arena_bytes) + " bytes)");
  row("compile time", fmtMs(r.total_ms) + " ms");
  os << "</table>\n";
  os << "<table id=\"io-table\"><tr><th>role</th><th>name</th><th>dtype</th><th>shape</th></tr>\n";
  for (const auto& t : r.inputs)
    os << "<tr><td>input</td><td><code>" << htmlEscape(t.name) << "</code></td><td>" << t.dtype << "</td><td>"
       << htmlEscape(t.shape) << "</td></tr>\n";
  for (const auto& t : r.outputs)
    os << "<tr><td>output</td><td><code>" << htmlEscape(t.name) << "</code></td><td>" << t.dtype << "</td><td>"
       << htmlEscape(t.shape) << "</td></tr>\n";
  os << "</table>\n";
  os << "<table id=\"ops-table\"><tr><th>op (optimized graph)</th><th>count</th></tr>\n";
  for (const auto& [op, count] : r.op_histogram)
    os << "<tr><td>" << htmlEscape(op) << "</td><td class=\"num\">" << count << "</td></tr>\n";
  os << "</table>\n";

  // Passes.
  os << "<h2 id=\"passes\">Passes</h2>\n<p class=\"muted\">In the order they ran; shape inference runs first and after "
        "every pass that changed the graph. Rows that changed something are highlighted. Before/after count graph "
        "nodes, or kernels for the passes over the lowered program (such as fuse-kernels).</p>\n";
  os << "<table id=\"passes-table\"><tr><th>#</th><th>pass</th><th>before</th><th>after</th><th>change</th>"
        "<th>changed</th><th>ms</th></tr>\n";
  for (size_t i = 0; i < s.passes.size(); ++i) {
    const auto& p = s.passes[i];
    int64_t delta = static_cast<int64_t>(p.nodes_after) - static_cast<int64_t>(p.nodes_before);
    os << "<tr" << (p.changed ? " class=\"changed\"" : "") << "><td class=\"num\">" << i + 1 << "</td><td><code>"
       << htmlEscape(p.name) << "</code></td><td class=\"num\">" << p.nodes_before << "</td><td class=\"num\">"
       << p.nodes_after << "</td><td class=\"num\">" << (delta > 0 ? "+" : "") << delta << "</td><td>"
       << (p.changed ? "yes" : "no") << "</td><td class=\"num\">" << fmtMs(p.ms) << "</td></tr>\n";
  }
  os << "</table>\n";

  if (r.accuracy) renderAccuracy(os, *r.accuracy);
  if (r.pruning) renderPruningHtml(os, *r.pruning);

  // Graph picture.
  os << "<h2 id=\"graph\">Optimized graph</h2>\n";
  if (r.dot.empty()) {
    os << "<p class=\"note\" id=\"graph-missing\">The graph has " << r.nodes << " nodes; graphs over " << kMaxDrawnNodes
       << " nodes are not drawn. <code>kiln inspect --dot</code> writes it for other viewers.</p>\n";
  } else {
    std::string why;
    std::string svg = renderSvg(r.dot, dot_program, why);
    if (svg.empty())
      os << "<p class=\"note\" id=\"graph-missing\">No picture: " << htmlEscape(why) << ".</p>\n";
    else
      os << "<div class=\"graph\">\n" << svg << "</div>\n";
  }

  // Kernels.
  int64_t max_flops = 1;
  for (const auto& k : r.kernels) max_flops = std::max(max_flops, k.flops);
  os << "<h2 id=\"kernels\">Kernels</h2>\n<p class=\"muted\">In execution order. FLOPs are estimated per run "
        "(a multiply-add counts two); bytes count every buffer a kernel reads or writes once.</p>\n";
  os << "<table id=\"kernels-table\"><tr><th>#</th><th>kernel</th><th>from nodes</th><th>FLOPs</th><th>bytes</th>"
        "<th>FLOPs/byte</th><th></th></tr>\n";
  for (size_t i = 0; i < r.kernels.size(); ++i) {
    const auto& k = r.kernels[i];
    char intensity[32];
    std::snprintf(intensity, sizeof(intensity), "%.2f", k.bytes ? static_cast<double>(k.flops) / k.bytes : 0.0);
    os << "<tr><td class=\"num\">" << i << "</td><td><code>" << htmlEscape(k.name) << "</code></td><td>"
       << htmlEscape(k.origin) << "</td><td class=\"num\">" << k.flops << "</td><td class=\"num\">" << k.bytes
       << "</td><td class=\"num\">" << intensity
       << "</td><td><span class=\"bar\" style=\"width:" << (k.flops * 200 / max_flops) << "px\"></span></td></tr>\n";
  }
  os << "</table>\n";

  // Memory plan.
  os << "<h2 id=\"memory\">Memory plan</h2>\n<p>Arena for intermediates: <b>" << r.arena_bytes << "</b> bytes ("
     << humanBytes(static_cast<double>(r.arena_bytes))
     << "), planned at compile time by tensor lifetimes; buffers whose lifetimes do not overlap share space. "
        "Weights: "
     << humanBytes(static_cast<double>(weight_bytes)) << " in the artifact's read-only data.</p>\n";
  os << "<table id=\"memory-table\"><tr><th>buffer</th><th>kind</th><th>dtype</th><th>shape</th><th>bytes</th>"
        "<th>arena offset</th><th>arena span</th></tr>\n";
  for (const auto& b : r.buffers) {
    if (b.kind == "weight") continue;
    os << "<tr><td><code>" << htmlEscape(b.name) << "</code></td><td>" << b.kind << "</td><td>" << b.dtype
       << "</td><td>" << htmlEscape(b.shape) << "</td><td class=\"num\">" << b.bytes << "</td><td class=\"num\">"
       << (b.offset >= 0 ? std::to_string(b.offset) : "") << "</td><td>";
    if (b.offset >= 0 && r.arena_bytes > 0)
      os << "<span class=\"bar\" style=\"margin-left:" << b.offset * 300 / r.arena_bytes
         << "px;width:" << std::max<int64_t>(1, b.bytes * 300 / r.arena_bytes) << "px\"></span>";
    os << "</td></tr>\n";
  }
  os << "</table>\n";
  size_t weights = 0;
  for (const auto& b : r.buffers) weights += b.kind == "weight";
  os << "<p class=\"muted\">" << weights << " weight buffers (" << humanBytes(static_cast<double>(weight_bytes))
     << ") are not listed.</p>\n";
  os << "<p class=\"muted\">Generated by kiln " KILN_VERSION "</p>\n</body></html>\n";
  return os.str();
}

Status writeHtmlReport(const std::string& path, const CompileReport& report) {
  std::string html = renderHtmlReport(report);
  std::ofstream out(path, std::ios::trunc);
  out << html;
  out.close();
  return out ? Status::ok() : ioError("cannot write report '" + path + "'");
}

}  // namespace kiln::cli
