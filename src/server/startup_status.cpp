// The /health body during start-up (see startup_status.h).
#include "server/startup_status.h"

#include <cmath>

#include "server/openai_types.h"

namespace hr::server {

std::string StartupStatus::health_json() const {
    const StartupPhase p = phase_.load();
    nlohmann::json j;
    j["status"] = p == StartupPhase::starting ? "starting" : "loading";
    j["phase"] = p == StartupPhase::starting ? "starting" : p == StartupPhase::loading ? "weights" : "warm-up";
    j["uptime_s"] = std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count() * 10) / 10;
    const ProgressSnapshot s = weights_.snapshot();
    if (p != StartupPhase::starting && s.total > 0) {  // total is 0 until the loader has counted the tensors
        const double eta = s.eta_s();
        j["weights"] = {{"done_bytes", s.done},
                        {"total_bytes", s.total},
                        {"fraction", s.total ? static_cast<double>(s.done) / static_cast<double>(s.total) : 0.0},
                        {"gb_per_s", std::round(s.bytes_per_s() * 1e-7) / 100},
                        {"eta_s", eta >= 0 ? nlohmann::json(std::round(eta * 10) / 10) : nlohmann::json(nullptr)}};
    }
    return dump_json(j);
}

}  // namespace hr::server
