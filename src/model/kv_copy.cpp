// Copy-on-write of paged KV blocks (forward.h copy_kv_blocks): one strided backend copy per part of the
// cache (k, v, k_scale, v_scale) moves a block's rows of every layer at once.
#include <cstdint>
#include <vector>

#include "model/forward.h"

namespace hr {

namespace {

// One part of every layer (its k, say): the tensors, and the distance between consecutive layers' bases
// when it is the same for all of them (carve_kv_cache lays the layers out that way), else 0.
struct KvPart {
    std::vector<const Tensor*> layers;
    ptrdiff_t layer_pitch = 0;
};

KvPart part_of(const KvCache& kv, const Tensor KvLayer::*member) {
    KvPart p;
    for (const KvLayer& l : kv.layers) p.layers.push_back(&(l.*member));
    if (p.layers.empty() || !p.layers[0]->data) return p;
    if (p.layers.size() == 1) return p;
    const auto base = [&](size_t i) { return static_cast<const uint8_t*>(p.layers[i]->data); };
    const ptrdiff_t pitch = base(1) - base(0);
    for (size_t i = 1; i < p.layers.size(); ++i) {
        if (base(i) - base(i - 1) != pitch) return p;
    }
    p.layer_pitch = pitch > 0 ? pitch : 0;
    return p;
}

}  // namespace

void copy_kv_blocks(Backend& be, const KvCache& kv, std::span<const KvBlockCopy> copies) {
    if (copies.empty() || kv.layers.empty() || kv.n_blocks <= 0) return;
    for (const Tensor KvLayer::*member : {&KvLayer::k, &KvLayer::v, &KvLayer::k_scale, &KvLayer::v_scale}) {
        const KvPart part = part_of(kv, member);
        if (part.layers.empty() || !part.layers[0]->data) continue;  // no scales in a float cache
        // A block's rows are contiguous in each layer's [n_blocks, block_size, ...] tensor.
        const size_t block_bytes = part.layers[0]->bytes() / static_cast<size_t>(kv.n_blocks);
        for (const KvBlockCopy& c : copies) {
            const size_t src_off = static_cast<size_t>(c.src) * block_bytes;
            const size_t dst_off = static_cast<size_t>(c.dst) * block_bytes;
            if (part.layer_pitch > 0) {
                auto* base = static_cast<uint8_t*>(part.layers[0]->data);
                const size_t pitch = static_cast<size_t>(part.layer_pitch);
                be.copy_rows(base + dst_off, pitch, base + src_off, pitch, block_bytes, part.layers.size());
                continue;
            }
            for (const Tensor* t : part.layers) {
                auto* base = static_cast<uint8_t*>(t->data);
                be.copy_rows(base + dst_off, block_bytes, base + src_off, block_bytes, block_bytes, 1);
            }
        }
    }
}

}  // namespace hr
