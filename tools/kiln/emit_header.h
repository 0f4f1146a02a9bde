// `kiln compile --emit-header FILE.h`: a C header describing one compiled
// model's inputs and outputs as compile-time constants, so a program that
// embeds the artifact can static_assert its buffer sizes against the model.
#pragma once

#include <string>
#include <vector>

#include "compiler/lower/program.h"
#include "compiler/support/status.h"

namespace kiln::cli {

struct HeaderSpec {
  std::string prefix;      // macro prefix, e.g. "TINY_CNN"
  std::string model_name;  // the source model's file name, for the comment
  std::vector<lower::TensorSignature> inputs;
  std::vector<lower::TensorSignature> outputs;
};

// "tiny-cnn.h" -> "TINY_CNN": upper case, [A-Z0-9_] only, never starting with a digit.
std::string headerPrefixFor(const std::string& text);

std::string renderModelHeader(const HeaderSpec& spec);

Status writeModelHeader(const std::string& path, const HeaderSpec& spec);

}  // namespace kiln::cli
