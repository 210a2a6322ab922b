// TensorStore: single file, model directory, sharded checkpoints (good, and each way the index
// and the shards can disagree, RELIABILITY.md §3.1 case 17), and mapping lifetime.
#include "io/tensor_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/safetensors_writer.h"
#include "unit/io/st_bytes.h"

namespace hr::io {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;
using testing::write_text;

// Writes a shard with one U8 tensor of `n` bytes (values seed, seed+1, ...) per name.
void write_shard(const fs::path& p, const std::vector<std::string>& names, uint8_t seed = 0,
                 std::map<std::string, std::string> meta = {}) {
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<TensorToWrite> ts;
    bufs.reserve(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
        bufs.emplace_back(4);
        for (size_t k = 0; k < 4; ++k) bufs.back()[k] = static_cast<uint8_t>(seed + 4 * i + k);
        ts.push_back({names[i], "U8", {2, 2}, bufs.back().data(), 4});
    }
    Status s = write_safetensors(p.string(), ts, meta);
    ASSERT_TRUE(s.ok()) << s.error().message;
}

std::string index_json(const std::vector<std::pair<std::string, std::string>>& map) {
    std::string s = R"({"metadata":{"total_size":16},"weight_map":{)";
    for (size_t i = 0; i < map.size(); ++i) {
        if (i) s += ",";
        s += "\"" + map[i].first + "\":\"" + map[i].second + "\"";
    }
    return s + "}}";
}

// A good two-shard directory; tests then break one thing.
void make_sharded(const ScratchDir& dir) {
    write_shard(dir / "model-00001-of-00002.safetensors", {"b.weight", "a.weight"}, 0, {{"format", "pt"}});
    write_shard(dir / "model-00002-of-00002.safetensors", {"c.weight"}, 100, {{"format", "second"}});
    write_text(dir / kIndexFileName, index_json({{"a.weight", "model-00001-of-00002.safetensors"},
                                                 {"b.weight", "model-00001-of-00002.safetensors"},
                                                 {"c.weight", "model-00002-of-00002.safetensors"}}));
}

std::string open_error(const fs::path& p) {
    auto r = TensorStore::open(p.string());
    return r.ok() ? std::string() : r.error().message;
}

#define EXPECT_OPEN_ERROR(path, ...)                                                                \
    do {                                                                                            \
        std::string msg_ = open_error(path);                                                        \
        ASSERT_FALSE(msg_.empty()) << "expected an error";                                          \
        for (const char* part_ : {__VA_ARGS__}) {                                                   \
            EXPECT_NE(msg_.find(part_), std::string::npos) << "missing '" << part_ << "' in: " << msg_; \
        }                                                                                           \
    } while (0)

TEST(TensorStore, OpensSingleFilePathAndDirectory) {
    ScratchDir dir("store_single");
    write_shard(dir / kSingleFileName, {"x", "y"}, 0, {{"format", "pt"}});
    for (const fs::path& p : {dir / kSingleFileName, dir.path()}) {
        auto r = TensorStore::open(p.string());
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_FALSE(r->sharded());
        ASSERT_EQ(r->tensors().size(), 2u);
        EXPECT_EQ(r->tensors()[0].name, "x");
        EXPECT_EQ(r->metadata().at("format"), "pt");
        EXPECT_EQ(r->total_bytes(), 8u);
        ASSERT_NE(r->find("y"), nullptr);
        EXPECT_EQ(r->find("y")->data[0], 4);
    }
}

TEST(TensorStore, OpensShardedDirectory) {
    ScratchDir dir("store_sharded");
    make_sharded(dir);
    auto r = TensorStore::open(dir.path().string());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->sharded());
    ASSERT_EQ(r->tensors().size(), 3u);
    EXPECT_EQ(r->tensors()[0].name, "a.weight");
    EXPECT_EQ(r->tensors()[1].name, "b.weight");
    EXPECT_EQ(r->tensors()[2].name, "c.weight");
    EXPECT_EQ(r->files().size(), 2u);
    EXPECT_EQ(r->metadata().at("format"), "pt");  // of the first shard
    const TensorInfo* c = r->find("c.weight");
    ASSERT_NE(c, nullptr);
    EXPECT_NE(c->file.find("model-00002-of-00002.safetensors"), std::string::npos);
    EXPECT_EQ(c->data[0], 100);
    EXPECT_EQ(r->find("a.weight")->data[3], 7);  // second tensor written to shard 1: values 4..7
    EXPECT_EQ(r->find("nope"), nullptr);
}

TEST(TensorStore, MappingsOutliveMovesOfTheStore) {
    ScratchDir dir("store_lifetime");
    make_sharded(dir);
    std::vector<TensorStore> keep;
    {
        auto r = TensorStore::open(dir.path().string());
        ASSERT_TRUE(r.ok()) << r.error().message;
        keep.push_back(std::move(r).value());
    }
    const TensorInfo* b = keep.front().find("b.weight");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->data[0], 0);
    EXPECT_EQ(b->data[3], 3);
}

TEST(TensorStore, MissingShard) {
    ScratchDir dir("store_missing_shard");
    make_sharded(dir);
    fs::remove(dir / "model-00002-of-00002.safetensors");
    EXPECT_OPEN_ERROR(dir.path(), "tensor 'c.weight'", "shard 'model-00002-of-00002.safetensors' is missing");
}

TEST(TensorStore, TensorInTwoShards) {
    ScratchDir dir("store_two_shards");
    make_sharded(dir);
    write_shard(dir / "model-00002-of-00002.safetensors", {"c.weight", "a.weight"}, 100);
    EXPECT_OPEN_ERROR(dir.path(), "tensor 'a.weight'", "present in two shards",
                      "'model-00001-of-00002.safetensors' and 'model-00002-of-00002.safetensors'");
}

TEST(TensorStore, ShardTensorNotInIndex) {
    ScratchDir dir("store_unlisted");
    make_sharded(dir);
    write_shard(dir / "model-00002-of-00002.safetensors", {"c.weight", "extra.weight"}, 100);
    EXPECT_OPEN_ERROR(dir.path(), "tensor 'extra.weight'", "shard 'model-00002-of-00002.safetensors'",
                      "index does not list it");
}

TEST(TensorStore, IndexEntryAbsentFromShard) {
    ScratchDir dir("store_absent");
    make_sharded(dir);
    write_shard(dir / "model-00002-of-00002.safetensors", {}, 100);
    EXPECT_OPEN_ERROR(dir.path(), "tensor 'c.weight'", "shard 'model-00002-of-00002.safetensors'",
                      "has no such tensor");
}

TEST(TensorStore, IndexMapsTensorToOtherShard) {
    ScratchDir dir("store_wrong_shard");
    make_sharded(dir);
    write_text(dir / kIndexFileName, index_json({{"a.weight", "model-00001-of-00002.safetensors"},
                                                 {"b.weight", "model-00002-of-00002.safetensors"},
                                                 {"c.weight", "model-00002-of-00002.safetensors"}}));
    EXPECT_OPEN_ERROR(dir.path(), "tensor 'b.weight'", "is in shard 'model-00001-of-00002.safetensors'",
                      "maps it to shard 'model-00002-of-00002.safetensors'");
}

TEST(TensorStore, ShardNameEscapingDirectory) {
    ScratchDir dir("store_escape");
    make_sharded(dir);
    write_text(dir / kIndexFileName, index_json({{"a.weight", "../model-00001-of-00002.safetensors"}}));
    EXPECT_OPEN_ERROR(dir.path(), "tensor 'a.weight'", "expected a plain file name", "found a path separator");
    write_text(dir / kIndexFileName, index_json({{"a.weight", "/etc/passwd"}}));
    EXPECT_OPEN_ERROR(dir.path(), "found a path separator");
    write_text(dir / kIndexFileName, index_json({{"a.weight", ".."}}));
    EXPECT_OPEN_ERROR(dir.path(), "found '..'");
    write_text(dir / kIndexFileName, index_json({{"a.weight", ""}}));
    EXPECT_OPEN_ERROR(dir.path(), "found an empty name");
}

TEST(TensorStore, BadIndexJson) {
    ScratchDir dir("store_bad_index");
    make_sharded(dir);
    write_text(dir / kIndexFileName, "{\"weight_map\": ");
    EXPECT_OPEN_ERROR(dir.path(), kIndexFileName, "expected valid JSON");
    write_text(dir / kIndexFileName,
               R"({"weight_map":{"a.weight":"model-00001-of-00002.safetensors","a.weight":"x.safetensors"}})");
    EXPECT_OPEN_ERROR(dir.path(), "duplicate JSON key 'a.weight'");
    write_text(dir / kIndexFileName, R"({"metadata":{}})");
    EXPECT_OPEN_ERROR(dir.path(), "missing key 'weight_map'");
    write_text(dir / kIndexFileName, R"({"weight_map":{"a.weight":3}})");
    EXPECT_OPEN_ERROR(dir.path(), "tensor 'a.weight'", "expected a shard file name", "found a JSON number");
    write_text(dir / kIndexFileName, R"({"weight_map":{}})");
    EXPECT_OPEN_ERROR(dir.path(), "expected at least one tensor");
}

TEST(TensorStore, CorruptShardErrorNamesShardFile) {
    ScratchDir dir("store_corrupt_shard");
    make_sharded(dir);
    testing::write_bytes(dir / "model-00002-of-00002.safetensors", {1, 2, 3});
    EXPECT_OPEN_ERROR(dir.path(), "model-00002-of-00002.safetensors", "at least 8 bytes");
}

TEST(TensorStore, DirectoryWithoutCheckpoint) {
    ScratchDir dir("store_empty");
    EXPECT_OPEN_ERROR(dir.path(), "expected model.safetensors or model.safetensors.index.json", "found neither");
    EXPECT_OPEN_ERROR(dir / "nothing_here", "no such file or directory");
}

TEST(TensorStore, BothSingleFileAndIndexIsAmbiguous) {
    ScratchDir dir("store_both");
    make_sharded(dir);
    write_shard(dir / kSingleFileName, {"a.weight"});
    EXPECT_OPEN_ERROR(dir.path(), "found both model.safetensors and model.safetensors.index.json");
}

TEST(TensorStore, OpensTinyMixtralFixtureDirectory) {
    auto r = TensorStore::open(std::string(HR_FIXTURES_DIR) + "/models/tiny-mixtral");
    ASSERT_TRUE(r.ok()) << r.error().message;
    const TensorInfo* head = r->find("lm_head.weight");
    ASSERT_NE(head, nullptr);
    EXPECT_EQ(head->dtype, "BF16");
    EXPECT_EQ(head->shape, (std::vector<int64_t>{32000, 64}));
    const TensorInfo* norm = r->find("model.norm.weight");
    ASSERT_NE(norm, nullptr);
    EXPECT_EQ(norm->shape, (std::vector<int64_t>{64}));
}

}  // namespace
}  // namespace hr::io
