// Collective communication between the ranks of a tensor-parallel group (docs/parallel.md): one rank
// per device, each driven by its own host thread, all in one process. The forward pass needs one
// collective, a sum over ranks (after the attention output projection and after the FFN down
// projection / MoE combine).
#pragma once

#include <chrono>

#include "core/status.h"
#include "core/tensor.h"

namespace hr {

// Default bound on how long a rank waits for its peers (a collective, or the wait for one): a peer that
// died or hung ends the step with an error instead of hanging the process.
constexpr std::chrono::milliseconds kDefaultCollectiveTimeout{60000};

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;

    // buf (f32, in this rank's backend memory) := the elementwise sum of every rank's buf, the same values
    // on every rank. Ordered after the backend's earlier ops on this rank and before its later ones (on a
    // GPU: enqueued on the backend's stream, so a CUDA graph may capture it). Every rank must call it the
    // same number of times with the same numel. After a failure it does nothing (status() says why).
    virtual void all_reduce_sum(Tensor buf) = 0;

    // Waits (at most the communicator's timeout) until this rank's collectives so far have completed, and
    // returns the first failure, sticky: a peer that did not arrive within the timeout, a peer that
    // failed, or a library error. The failed group is unusable afterwards (every rank sees an error).
    virtual Status synchronize() = 0;
};

}  // namespace hr
