// Host copies of tapped intermediates, appended per step, written as one safetensors file.
#include "loader/activation_dump.h"

#include <filesystem>

#include "io/safetensors_writer.h"

namespace hr {

ActivationTap ActivationDump::tap() {
    return [this](std::string_view name, const Tensor& t) {
        if (t.dtype != DType::f32) return;  // the router's i32 top-k ids (layer<l>.topk_ids) are not dumped
        be_.synchronize();
        Entry& e = entries_[std::string(name)];
        HR_CHECK_MSG(e.cols == 0 || e.cols == t.cols(), "activation dump: a name changed width between steps");
        e.cols = t.cols();
        const size_t old = e.values.size(), n = static_cast<size_t>(t.numel());
        e.values.resize(old + n);
        be_.download(e.values.data() + old, t.data, n * sizeof(float));
    };
}

Status ActivationDump::write(const std::string& dir) const {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return errorf("--dump-activations: cannot create directory '{}': {}", dir, ec.message());
    std::vector<io::TensorToWrite> ts;
    for (const auto& [name, e] : entries_) {
        const int64_t rows = e.cols > 0 ? static_cast<int64_t>(e.values.size()) / e.cols : 0;
        ts.push_back({name, "F32", {rows, e.cols}, e.values.data(), e.values.size() * sizeof(float)});
    }
    return io::write_safetensors(dir + "/activations.safetensors", ts, {{"producer", "headroom --dump-activations"}});
}

}  // namespace hr
