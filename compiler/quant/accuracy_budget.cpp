#include "compiler/quant/accuracy_budget.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

namespace kiln::quant {
namespace {

std::optional<double> parseNumber(std::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

bool AccuracyBudget::allows(const OutputError& error) const {
  if (error.sqnrDb() < min_sqnr_db) return false;
  return !min_top1 || error.rows == 0 || error.top1Agreement() >= *min_top1;
}

double AccuracyBudget::noiseShare() const { return std::pow(10.0, -min_sqnr_db / 10.0); }

std::string AccuracyBudget::describe() const {
  char text[96];
  if (min_top1)
    std::snprintf(text, sizeof(text), "SQNR >= %g dB, top-1 agreement >= %g%%", min_sqnr_db, 100.0 * *min_top1);
  else
    std::snprintf(text, sizeof(text), "SQNR >= %g dB", min_sqnr_db);
  return text;
}

double worstNoiseShare(const std::vector<OutputError>& errors) {
  double worst = 0;
  for (const OutputError& e : errors) {
    double share = e.signal > 0 ? e.noise / e.signal : (e.noise > 0 ? std::numeric_limits<double>::infinity() : 0);
    worst = std::max(worst, share);
  }
  return worst;
}

double noiseShareToDb(double share) {
  return share > 0 ? -10.0 * std::log10(share) : std::numeric_limits<double>::infinity();
}

Expected<AccuracyBudget> parseAccuracyBudget(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return invalidInput("--accuracy-budget '" + std::string(text) + "': " + why +
                        " (expected a minimum SQNR in dB such as 30 or 30dB, optionally ,top1=PERCENT)");
  };
  std::string_view sqnr = text.substr(0, text.find(','));
  if (sqnr.size() >= 2 && (sqnr.substr(sqnr.size() - 2) == "dB" || sqnr.substr(sqnr.size() - 2) == "db"))
    sqnr.remove_suffix(2);
  AccuracyBudget budget;
  std::optional<double> db = parseNumber(sqnr);
  if (!db) return bad("'" + std::string(sqnr) + "' is not a number of dB");
  if (*db <= 0 || *db > 200) return bad("the SQNR floor must be above 0 and at most 200 dB");
  budget.min_sqnr_db = *db;
  if (size_t comma = text.find(','); comma != std::string_view::npos) {
    std::string_view rest = text.substr(comma + 1);
    if (rest.substr(0, 5) != "top1=") return bad("unknown part '" + std::string(rest) + "'");
    std::optional<double> pct = parseNumber(rest.substr(5));
    if (!pct || *pct <= 0 || *pct > 100) return bad("top1 must be a percentage in (0, 100]");
    budget.min_top1 = *pct / 100.0;
  }
  return budget;
}

}  // namespace kiln::quant
