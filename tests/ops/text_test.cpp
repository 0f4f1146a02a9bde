// TfIdfVectorizer (compiler/ops/text.cpp): the IDF and TFIDF modes with
// weights (the backend cases only use TF) and the attribute errors.
#include <gtest/gtest.h>

#include <vector>

#include "tests/ops/node_fixture.h"

namespace kiln::ops {
namespace {

using ir::DType;
using testing::messageOf;
using testing::OneNodeGraph;
using testing::OneNodeModel;

ir::Attribute floatsAttr(std::vector<float> values) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kFloats;
  a.floats = std::move(values);
  return a;
}

// Unigrams 2 and 3 and the bigram (3, 4), with skips up to 1.
OneNodeModel& vectorizer(OneNodeModel& m, const std::string& mode) {
  m.input(DType::kInt32, {6})
      .attr("mode", mode)
      .attr("min_gram_length", 1)
      .attr("max_gram_length", 2)
      .attr("max_skip_count", 1)
      .attr("ngram_counts", std::vector<int64_t>{0, 2})
      .attr("ngram_indexes", std::vector<int64_t>{0, 1, 2})
      .attr("pool_int64s", std::vector<int64_t>{2, 3, 3, 4})
      .attr("weights", floatsAttr({0.5f, 2.0f, 4.0f}));
  return m;
}

TEST(TfIdfTest, Modes) {
  std::vector<int32_t> x = {2, 3, 4, 3, 9, 4};  // 2 once; 3 twice; (3,4) at skip 0 once, at skip 1 once
  OneNodeModel tf("TfIdfVectorizer", 9);
  EXPECT_EQ(vectorizer(tf, "TF").run<float>(x), (std::vector<float>{1, 2, 2}));
  OneNodeModel idf("TfIdfVectorizer", 9);
  EXPECT_EQ(vectorizer(idf, "IDF").run<float>(x), (std::vector<float>{0.5f, 2, 4}));
  OneNodeModel tfidf("TfIdfVectorizer", 9);
  EXPECT_EQ(vectorizer(tfidf, "TFIDF").run<float>(x), (std::vector<float>{0.5f, 4, 8}));
}

TEST(TfIdfTest, Errors) {
  auto graph = [](OneNodeGraph& g) -> OneNodeGraph& {
    return g.input(DType::kInt64, "2x6").integer("min_gram_length", 1).integer("max_gram_length", 2)
        .integer("max_skip_count", 0).ints("ngram_counts", {0, 2}).ints("ngram_indexes", {0, 1, 2})
        .ints("pool_int64s", {1, 2, 3, 4});
  };
  OneNodeGraph mode("TfIdfVectorizer", "t");
  graph(mode).string("mode", "BM25");
  EXPECT_EQ(messageOf(mode.infer(9)), "TfIdfVectorizer 't': unknown mode 'BM25' (expected TF, IDF or TFIDF)");

  OneNodeGraph lengths("TfIdfVectorizer", "t");
  graph(lengths).string("mode", "TF").integer("min_gram_length", 3);
  EXPECT_EQ(messageOf(lengths.infer(9)),
            "TfIdfVectorizer 't': min_gram_length 3 and max_gram_length 2 must satisfy 1 <= min <= max");

  OneNodeGraph split("TfIdfVectorizer", "t");
  graph(split).string("mode", "TF").ints("pool_int64s", {1, 2, 3});
  EXPECT_EQ(messageOf(split.infer(9)), "TfIdfVectorizer 't': ngram_counts 2 does not split pool_int64s into 2-grams");

  OneNodeGraph rank("TfIdfVectorizer", "t");
  rank.input(DType::kInt64, "1x2x6").string("mode", "TF").integer("min_gram_length", 1)
      .integer("max_gram_length", 1).integer("max_skip_count", 0).ints("ngram_counts", {0})
      .ints("ngram_indexes", {0}).ints("pool_int64s", {1});
  EXPECT_EQ(messageOf(rank.infer(9)), "TfIdfVectorizer 't': X has rank 3, expected 1 or 2 (input 0)");
}

}  // namespace
}  // namespace kiln::ops
