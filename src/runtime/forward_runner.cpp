// ForwardRunner: forward() then one download of the requested logits rows.
#include "runtime/forward_runner.h"

namespace hr {

Status ForwardRunner::run(const StepBatch& batch, std::span<float> logits) {
    const size_t rows = batch.logit_rows.size();
    const size_t need = rows * static_cast<size_t>(cfg_.vocab_size);
    if (logits.size() < need) {
        return errorf("logits buffer holds {} floats, step needs {} ({} rows x vocab {})", logits.size(), need,
                      rows, cfg_.vocab_size);
    }
    HR_TRY(forward(be_, cfg_, weights_, limits_, act_, kv_, batch));
    if (rows > 0) be_.download(logits.data(), act_.logits.data, need * sizeof(float));
    be_.synchronize();
    return ok();
}

}  // namespace hr
