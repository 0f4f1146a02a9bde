#include "cuda_plan.h"

#include <cstring>

#include "byte_io.h"

namespace kiln::artifact {
namespace {

// The last element (+1) a batched column-major rows x cols matrix touches.
// Saturates at UINT64_MAX (a hostile plan cannot wrap it into range).
uint64_t matrixEnd(uint64_t offset, uint64_t rows, uint64_t cols, int64_t ld, uint32_t batch, int64_t stride) {
  if (rows == 0 || cols == 0 || batch == 0) return offset;
  if (ld < 0 || stride < 0) return UINT64_MAX;
  using Wide = unsigned __int128;
  Wide end = Wide{offset} + Wide{batch - 1} * static_cast<uint64_t>(stride) + Wide{cols - 1} * static_cast<uint64_t>(ld) + rows;
  return end > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(end);
}

void writeGemm(ByteWriter& out, const CudaGemm& g) {
  for (uint32_t v : {g.trans_a, g.trans_b, static_cast<uint32_t>(g.precision), g.batch}) out.u32(v);
  for (uint64_t v : {g.m, g.n, g.k}) out.u64(v);
  for (int64_t v : {g.lda, g.ldb, g.ldc, g.stride_a, g.stride_b, g.stride_c}) out.i64(v);
  for (uint64_t v : {g.offset_a, g.offset_b, g.offset_c}) out.u64(v);
  out.u32(static_cast<uint32_t>(g.epilogue));
  out.u32(g.accumulate);
  uint64_t alpha_bits;
  std::memcpy(&alpha_bits, &g.alpha, sizeof alpha_bits);
  out.u64(alpha_bits);
  out.u64(g.offset_bias);
  out.u64(g.offset_cin);
  out.u32(static_cast<uint32_t>(g.type_a));
  out.u32(static_cast<uint32_t>(g.type_b));
  out.u32(static_cast<uint32_t>(g.type_d));
}

CudaGemm readGemm(ByteReader& in) {
  CudaGemm g;
  g.trans_a = in.u32();
  g.trans_b = in.u32();
  g.precision = static_cast<CudaPrecision>(in.u32());
  g.batch = in.u32();
  for (uint64_t* v : {&g.m, &g.n, &g.k}) *v = in.u64();
  for (int64_t* v : {&g.lda, &g.ldb, &g.ldc, &g.stride_a, &g.stride_b, &g.stride_c}) *v = in.i64();
  for (uint64_t* v : {&g.offset_a, &g.offset_b, &g.offset_c}) *v = in.u64();
  g.epilogue = static_cast<GemmEpilogue>(in.u32());
  g.accumulate = in.u32();
  uint64_t alpha_bits = in.u64();
  std::memcpy(&g.alpha, &alpha_bits, sizeof g.alpha);
  g.offset_bias = in.u64();
  g.offset_cin = in.u64();
  g.type_a = static_cast<GemmOperand>(in.u32());
  g.type_b = static_cast<GemmOperand>(in.u32());
  g.type_d = static_cast<GemmOperand>(in.u32());
  return g;
}

}  // namespace

GemmExtents gemmExtents(const CudaGemm& g) {
  GemmExtents e;
  e.a = matrixEnd(g.offset_a, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.batch, g.stride_a);
  e.b = matrixEnd(g.offset_b, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.batch, g.stride_b);
  e.c = matrixEnd(g.offset_c, g.m, g.n, g.ldc, g.batch, g.stride_c);
  e.bias = hasBias(g.epilogue) ? matrixEnd(g.offset_bias, g.m, 1, 0, 1, 0) : 0;
  e.cin = g.accumulate ? matrixEnd(g.offset_cin, g.m, g.n, g.ldc, g.batch, g.stride_c) : 0;
  return e;
}

std::vector<uint8_t> serializeCudaPlan(const CudaPlan& plan) {
  ByteWriter out;
  out.raw(kCudaPlanMagic, 8);
  out.u32(kCudaPlanVersion);
  out.u64(plan.weights_bytes);
  out.u32(static_cast<uint32_t>(plan.buffers.size()));
  for (const CudaBuffer& b : plan.buffers) {
    out.u32(b.kind);
    out.u32(b.io_index);
    out.u64(b.offset);
    out.u64(b.bytes);
  }
  out.u32(static_cast<uint32_t>(plan.launches.size()));
  for (const CudaLaunch& l : plan.launches) {
    out.str(l.function);
    out.u32(l.kernel);
    out.u32(l.grid);
    out.u32(l.block);
    out.u32(static_cast<uint32_t>(l.args.size()));
    for (uint32_t a : l.args) out.u32(a);
    out.u32(l.kind);
    if (l.kind == CudaLaunch::kGemm) writeGemm(out, l.gemm);
  }
  return std::move(out.bytes);
}

std::optional<CudaPlan> parseCudaPlan(std::span<const uint8_t> section, std::string* error) {
  if (section.size() < 12 || std::memcmp(section.data(), kCudaPlanMagic, 8) != 0) {
    *error = std::string("the CUDA launch plan (") + kCudaPlanSection + ") is missing or damaged";
    return std::nullopt;
  }
  ByteReader in(section.subspan(8));
  uint32_t version = in.u32();
  if (version != kCudaPlanVersion) {
    *error = "CUDA launch plan version " + std::to_string(version) + " is not supported (this runtime reads version " +
             std::to_string(kCudaPlanVersion) + "); recompile the model with a matching kiln";
    return std::nullopt;
  }
  CudaPlan plan;
  plan.weights_bytes = in.u64();
  for (uint32_t n = in.count(24); n > 0 && in.ok(); --n) {
    CudaBuffer b;
    b.kind = in.u32();
    b.io_index = in.u32();
    b.offset = in.u64();
    b.bytes = in.u64();
    plan.buffers.push_back(b);
  }
  for (uint32_t n = in.count(24); n > 0 && in.ok(); --n) {
    CudaLaunch l;
    l.function = in.str();
    l.kernel = in.u32();
    l.grid = in.u32();
    l.block = in.u32();
    for (uint32_t a = in.count(4); a > 0 && in.ok(); --a) l.args.push_back(in.u32());
    l.kind = in.u32();
    if (l.kind == CudaLaunch::kGemm) l.gemm = readGemm(in);
    plan.launches.push_back(std::move(l));
  }
  if (!in.ok()) {
    *error = "the CUDA launch plan is malformed";
    return std::nullopt;
  }
  return plan;
}

}  // namespace kiln::artifact
