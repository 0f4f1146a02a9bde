#include "compiler/ir/printer.h"

#include <charconv>
#include <cmath>
#include <sstream>
#include <unordered_map>

namespace kiln::ir {
namespace {

constexpr int64_t kMaxPrintedElements = 8;

std::string formatFloat(double v, bool single) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto result =
      single ? std::to_chars(buf, buf + sizeof(buf), static_cast<float>(v)) : std::to_chars(buf, buf + sizeof(buf), v);
  std::string out(buf, result.ptr);
  // Keep floats visibly floats: "1.0", not "1".
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string formatElements(const Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.elementCount(); ++i) {
    if (i) out += ", ";
    if (t.dtype() == DType::kString) {
      out += quote(t.strings()[static_cast<size_t>(i)]);
    } else if (t.dtype() == DType::kBool) {
      out += t.intAt(i) ? "true" : "false";
    } else if (isFloat(t.dtype())) {
      out += formatFloat(t.floatAt(i), t.dtype() != DType::kFloat64);
    } else if (t.dtype() == DType::kUInt64) {
      out += std::to_string(static_cast<uint64_t>(t.intAt(i)));
    } else {
      out += std::to_string(t.intAt(i));
    }
  }
  return out + "]";
}

std::string formatTensor(const Tensor& t) {
  std::string out = t.type().toString();
  if (t.elementCount() <= kMaxPrintedElements) out += " " + formatElements(t);
  return out;
}

template <typename T, typename F>
std::string formatList(const std::vector<T>& items, F format) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + format(items[i]);
  return out + "]";
}

class Printer {
 public:
  void printGraph(const Graph& graph, int indent);
  std::string take() { return out_.str(); }

 private:
  std::string ref(const Value* value);
  std::string typed(const Value* value) { return ref(value) + ": " + value->type.toString(); }
  std::string formatAttribute(const Attribute& attr);
  void printNode(const Node& node, int indent);

  std::ostringstream out_;
  std::unordered_map<const Value*, std::string> anonymous_;
};

// "%name"; names ONNX exporters produce ("/layer1/Conv_output_0",
// "onnx::Add_3") print as they are, anything with spaces or quotes quoted.
std::string Printer::ref(const Value* value) {
  if (!value) return "_";
  if (value->name.empty()) {
    auto [it, inserted] = anonymous_.emplace(value, "");
    if (inserted) it->second = "%<" + std::to_string(anonymous_.size() - 1) + ">";
    return it->second;
  }
  bool plain = value->name.find_first_of(" \t\n\"'(),{}[]=%") == std::string::npos;
  return "%" + (plain ? value->name : quote(value->name));
}

std::string Printer::formatAttribute(const Attribute& attr) {
  using Kind = Attribute::Kind;
  switch (attr.kind) {
    case Kind::kInt: return std::to_string(attr.i);
    case Kind::kFloat: return formatFloat(attr.f, true);
    case Kind::kString: return quote(attr.s);
    case Kind::kTensor: return formatTensor(attr.t);
    case Kind::kInts: return formatList(attr.ints, [](int64_t v) { return std::to_string(v); });
    case Kind::kFloats: return formatList(attr.floats, [](float v) { return formatFloat(v, true); });
    case Kind::kStrings: return formatList(attr.strings, quote);
    case Kind::kTensors: return formatList(attr.tensors, formatTensor);
    case Kind::kGraph:
    case Kind::kGraphs: return "";  // printed as nested blocks
  }
  return "";
}

void Printer::printNode(const Node& node, int indent) {
  std::string pad(static_cast<size_t>(indent), ' ');
  out_ << pad;
  for (size_t i = 0; i < node.outputs.size(); ++i) out_ << (i ? ", " : "") << ref(node.outputs[i]);
  if (!node.outputs.empty()) out_ << " = ";
  out_ << (node.domain.empty() ? "" : node.domain + ".") << node.op_type << " '" << node.name << "' (";
  for (size_t i = 0; i < node.inputs.size(); ++i) out_ << (i ? ", " : "") << ref(node.inputs[i]);
  out_ << ")";
  bool has_graphs = false, first = true;
  for (const auto& [key, attr] : node.attributes) {
    if (attr.kind == Attribute::Kind::kGraph || attr.kind == Attribute::Kind::kGraphs) {
      has_graphs = true;
      continue;
    }
    out_ << (first ? " {" : ", ") << key << "=" << formatAttribute(attr);
    first = false;
  }
  if (!first) out_ << "}";
  if (!node.outputs.empty()) {
    out_ << " :";
    for (size_t i = 0; i < node.outputs.size(); ++i)
      out_ << (i ? ", " : " ") << (node.outputs[i] ? node.outputs[i]->type.toString() : "_");
  }
  if (!has_graphs) {
    out_ << "\n";
    return;
  }
  out_ << " {\n";
  for (const auto& [key, attr] : node.attributes) {
    for (size_t g = 0; g < attr.graphs.size(); ++g) {
      out_ << pad << "  " << key;
      if (attr.kind == Attribute::Kind::kGraphs) out_ << "[" << g << "]";
      out_ << ": ";
      printGraph(*attr.graphs[g], indent + 2);
    }
  }
  out_ << pad << "}\n";
}

// Prints "graph name(...) -> (...) {" where the caller left the cursor, the
// body indented by indent + 2 and the closing brace at `indent`.
void Printer::printGraph(const Graph& graph, int indent) {
  std::string pad(static_cast<size_t>(indent), ' ');
  out_ << "graph " << (graph.name.empty() ? "_" : graph.name) << "(";
  for (size_t i = 0; i < graph.inputs.size(); ++i) out_ << (i ? ", " : "") << typed(graph.inputs[i]);
  out_ << ") -> (";
  for (size_t i = 0; i < graph.outputs.size(); ++i) out_ << (i ? ", " : "") << typed(graph.outputs[i]);
  out_ << ") {\n";
  for (const auto& value : graph.values())
    if (value->isConstant())
      out_ << pad << "  " << ref(value.get()) << " = const " << formatTensor(*value->constant) << "\n";
  for (const auto& node : graph.nodes()) printNode(*node, indent + 2);
  out_ << pad << "}\n";
}

std::string dotEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string printGraph(const Graph& graph) {
  Printer printer;
  printer.printGraph(graph, 0);
  return printer.take();
}

std::string printModel(const Model& model) {
  std::ostringstream header;
  header << "model (ir " << model.ir_version;
  for (const auto& [domain, version] : model.opset_imports)
    header << ", opset " << (domain.empty() ? "ai.onnx" : domain) << " " << version;
  std::string producer = model.producer_name;
  if (!model.producer_version.empty()) producer += (producer.empty() ? "" : " ") + model.producer_version;
  if (!producer.empty()) header << ", producer '" << producer << "'";
  header << ")\n";
  return header.str() + printGraph(model.graph);
}

std::string printDot(const Graph& graph) {
  std::ostringstream out;
  out << "digraph \"" << dotEscape(graph.name) << "\" {\n";
  out << "  node [shape=box, fontname=\"monospace\"];\n";
  // Where each value comes from: a node id, or an input's ellipse.
  std::unordered_map<const Value*, std::string> source;
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    std::string id = "in" + std::to_string(i);
    out << "  " << id << " [shape=ellipse, label=\"" << dotEscape(graph.inputs[i]->name) << "\"];\n";
    source[graph.inputs[i]] = id;
  }
  for (size_t i = 0; i < graph.nodes().size(); ++i) {
    const Node& node = *graph.nodes()[i];
    std::string id = "n" + std::to_string(i);
    out << "  " << id << " [label=\"" << dotEscape(node.op_type) << "\\n" << dotEscape(node.name) << "\"];\n";
    for (const Value* v : node.outputs)
      if (v) source[v] = id;
  }
  auto edge = [&](const Value* v, const std::string& to) {
    // Constants have no source: weights would clutter the picture.
    auto it = v ? source.find(v) : source.end();
    if (it == source.end()) return;
    out << "  " << it->second << " -> " << to << " [label=\"" << dotEscape(v->type.toString()) << "\"];\n";
  };
  for (size_t i = 0; i < graph.nodes().size(); ++i)
    for (const Value* v : graph.nodes()[i]->inputs) edge(v, "n" + std::to_string(i));
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    std::string id = "out" + std::to_string(i);
    out << "  " << id << " [shape=ellipse, label=\"" << dotEscape(graph.outputs[i]->name) << "\"];\n";
    edge(graph.outputs[i], id);
  }
  out << "}\n";
  return out.str();
}

}  // namespace kiln::ir
