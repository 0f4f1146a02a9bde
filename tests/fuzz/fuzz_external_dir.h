// A folder for the fuzz targets to resolve external data against: it holds
// one 4 KiB file, "weights.bin", so offsets, lengths and the confinement to
// the model's folder (../, absolute paths) are fuzzed on real files.
#pragma once

#include <string>

namespace kiln::fuzz {

// Created once per process, under $TMPDIR; lives until the process exits.
const std::string& externalDataDir();

}  // namespace kiln::fuzz
