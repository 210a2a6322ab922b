// The reference for the load pipeline: every tensor converted the way the loader did before the pipeline
// (whole tensors, one at a time, on the host) and compared byte for byte with what load_model() put in
// the backend's weights region. Used by tests/model (CPU) and tests/parity (CUDA).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "io/tensor_store.h"
#include "loader/gguf_checkpoint.h"
#include "loader/load.h"
#include "memory/weight_format.h"
#include "model/quantize_weights.h"
#include "model/tensor_names.h"
#include "quant/formats.h"
#include "support/fixtures.h"
#include "support/smollm2.h"

namespace hr::test {

// "" when every tensor of `m` (loaded from `path`) holds exactly the reference bytes; else the first
// tensor that differs, with its part (data or scales) and the first differing byte.
inline std::string region_mismatch(Backend& be, const LoadedModel& m, const std::string& path) {
    const std::vector<TensorSpec> specs = expected_tensors(m.cfg);
    std::optional<GgufCheckpoint> gguf;
    std::optional<io::TensorStore> store;
    if (is_gguf_file(path)) {
        auto g = GgufCheckpoint::open(path);
        if (!g.ok()) return g.error().message;
        gguf.emplace(std::move(g).value());
    } else {
        auto s = io::TensorStore::open(path);
        if (!s.ok()) return s.error().message;
        store.emplace(std::move(s).value());
    }
    const auto* region = static_cast<const uint8_t*>(m.region.get());
    uint64_t off = 0;
    std::vector<uint8_t> want_d, want_s, got;
    std::vector<float> scratch;
    for (size_t i = 0; i < specs.size(); ++i) {
        const TensorSpec& s = specs[i];
        const DType st = storage_dtype_for(s, m.weight_format, m.checkpoint_dtype, m.cfg.tensor_dtypes.get());
        const TensorBytes tb = stored_tensor_bytes(s, st);
        const uint64_t nd = static_cast<uint64_t>(quant::weight_data_bytes(st, s.rows(), s.cols()));
        const uint64_t ns = static_cast<uint64_t>(quant::weight_scale_bytes(st, s.rows(), s.cols()));
        want_d.assign(nd, 0);
        want_s.assign(ns, 0);
        if (gguf) {
            Status r = gguf->fill(i, st, want_d.data(), ns ? want_s.data() : nullptr, scratch);
            if (!r.ok()) return r.error().message;
        } else if (m.prequantized) {
            auto hw = stored_weight(*store, s, st);
            if (!hw.ok()) return hw.error().message;
            std::memcpy(want_d.data(), hw->data, nd);
            if (ns) std::memcpy(want_s.data(), hw->scales, ns);
        } else {
            const io::TensorInfo* t = store->find(s.hf_name);
            if (!t) return "missing " + s.hf_name;
            auto src_dt = io::computable_dtype(*t);
            if (!src_dt.ok()) return src_dt.error().message;
            if (*src_dt == st) {
                std::memcpy(want_d.data(), t->data, nd);
            } else {
                Status r = convert_weight(*t, s, st, want_d.data(), ns ? want_s.data() : nullptr);
                if (!r.ok()) return r.error().message;
            }
        }
        for (int part = 0; part < 2; ++part) {
            const std::vector<uint8_t>& want = part == 0 ? want_d : want_s;
            if (want.empty()) continue;
            got.assign(want.size(), 0xAB);
            be.download(got.data(), region + off + (part == 0 ? 0 : tb.data), got.size());
            if (std::memcmp(got.data(), want.data(), want.size()) != 0) {
                size_t k = 0;
                while (got[k] == want[k]) ++k;
                return fmt::format("tensor '{}' ({}, {}): byte {} of {} is {:#04x}, expected {:#04x}", s.hf_name,
                                   dtype_name(st), part == 0 ? "data" : "scales", k, want.size(), got[k], want[k]);
            }
        }
        off += tb.total();
    }
    if (off != m.weight_bytes) return fmt::format("layout: {} bytes of tensors, region of {}", off, m.weight_bytes);
    return "";
}

}  // namespace hr::test

namespace hr::test {

// `headroom quantize` output of a fixture model in `fmt` (q8/q4), written once per process to a temp dir.
inline std::string prequantized_fixture(const std::string& src, DType fmt) {
    namespace fs = std::filesystem;
    const fs::path out = fs::path(::testing::TempDir()) /
                         fmt::format("hr_loadref_{}_{}_{}", fs::path(src).filename().string(), dtype_name(fmt), ::getpid());
    if (fs::exists(out / "model.safetensors")) return out.string();
    fs::create_directories(out);
    fs::copy_file(src + "/config.json", out / "config.json", fs::copy_options::overwrite_existing);
    auto cfg = load_model_config(src + "/config.json");
    auto store = io::TensorStore::open(src);
    if (!cfg.ok() || !store.ok()) return "";
    const auto specs = expected_tensors(*cfg);
    auto ck = checkpoint_dtype(*store);
    if (!ck.ok()) return "";
    std::vector<DType> storage;
    for (const auto& s : specs) storage.push_back(storage_dtype_for(s, fmt, *ck));
    auto stats = write_quantized_checkpoint(*store, specs, storage, fmt, (out / "model.safetensors").string());
    return stats.ok() ? out.string() : "";
}

// The cases both suites run: formats x staging sizes x threads. 4 KiB staging cuts every matrix into
// row chunks (and sends rows larger than a slot in pieces); 1 and 3 threads change the interleaving.
struct LoadCase {
    std::string model;                  // fixture name, "smollm2" (the GGUF file) or "<name>@int8" (pre-quantized)
    std::optional<DType> weights;
    uint64_t staging = 0;
    int threads = 1;
    bool device_quantize = true;        // LoadOptions::device_quantize (CUDA: int8 on the device)
};

// The checkpoint of a case; empty with `skip` set when its file is absent (the caller skips), empty with
// `skip` empty when the pre-quantized copy could not be written (the caller fails).
inline std::string load_case_path(const LoadCase& c, std::string& skip) {
    if (c.model == "smollm2") {
        if (!have_smollm2()) skip = smollm2_skip_message();
        return have_smollm2() ? smollm2_path() : "";
    }
    if (c.model.ends_with("@int8"))
        return prequantized_fixture(model_fixture(c.model.substr(0, c.model.size() - 5)), DType::q8);
    std::string path = model_fixture(c.model);
    if (!std::filesystem::exists(path + "/model.safetensors")) {
        skip = "fixture missing: " + path;
        return "";
    }
    return path;
}

inline std::string load_case_name(const ::testing::TestParamInfo<LoadCase>& i) {
    std::string n = fmt::format("{}_{}_{}_t{}{}", i.param.model, i.param.weights ? dtype_name(*i.param.weights) : "native",
                                i.param.staging ? std::to_string(i.param.staging) : "default", i.param.threads,
                                i.param.device_quantize ? "" : "_hostquant");
    for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
}

// A copy of tiny-mixtral whose `tensor` holds NaN as its last element (its last row), in a temp dir.
inline std::string nan_fixture(const std::string& tensor) {
    namespace fs = std::filesystem;
    const std::string src = model_fixture("tiny-mixtral");
    std::ifstream in(src + "/model.safetensors", std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.size() < 8) return "";
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    if (!header.contains(tensor)) return "";
    const auto& t = header[tensor];
    const uint64_t end = t["data_offsets"][1].get<uint64_t>();
    const std::string dt = t["dtype"];
    uint8_t* last = bytes.data() + 8 + n + end - (dt == "F32" ? 4 : 2);
    if (dt == "F32") {
        const uint32_t nan = 0x7fc00000u;
        std::memcpy(last, &nan, 4);
    } else {
        const uint16_t nan = 0x7fc0;
        std::memcpy(last, &nan, 2);
    }
    const fs::path dir = fs::path(::testing::TempDir()) / ("hr_loadpipe_nan_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    fs::copy_file(src + "/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
    std::ofstream(dir / "model.safetensors", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return dir.string();
}

// The tensor nan_fixture() spoils: an expert matrix, quantized in several chunks with 4 KiB staging.
inline constexpr const char* kNanTensor = "model.layers.0.block_sparse_moe.experts.1.w1.weight";

}  // namespace hr::test
