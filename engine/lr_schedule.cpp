// Step learning-rate schedule and the --lr-steps parser.
#include "engine/lr_schedule.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "engine/error.h"

namespace engine {

LrSchedule::LrSchedule(double base_lr, std::vector<i64> steps, double factor)
    : base_(base_lr), factor_(factor), steps_(std::move(steps)) {
    ENGINE_CHECK(std::isfinite(base_lr) && base_lr >= 0, ArgError, "lr schedule: base lr ", base_lr,
                 " must be finite and >= 0");
    ENGINE_CHECK(std::isfinite(factor) && factor > 0, ArgError, "lr schedule: factor ", factor,
                 " must be finite and > 0");
    for (size_t i = 0; i < steps_.size(); ++i) {
        ENGINE_CHECK(steps_[i] > 0, ArgError, "lr schedule: step ", steps_[i], " must be > 0");
        ENGINE_CHECK(i == 0 || steps_[i] > steps_[i - 1], ArgError, "lr schedule: steps must be ",
                     "strictly increasing (", steps_[i - 1], " then ", steps_[i], ")");
    }
}

i64 LrSchedule::stage_at(i64 done) const {
    // Number of steps s <= done.
    return (i64)(std::upper_bound(steps_.begin(), steps_.end(), done) - steps_.begin());
}

double LrSchedule::lr_at(i64 done) const {
    // Repeated multiplication (not pow) so the rates are exactly what dividing step by step in
    // the training loop would give: 0.1 -> 0.010000000000000002 -> ...
    double lr = base_;
    for (i64 s = stage_at(done); s > 0; --s) lr *= factor_;
    return lr;
}

std::vector<i64> parse_lr_steps(const std::string& text) {
    std::vector<i64> steps;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t comma = text.find(',', pos);
        if (comma == std::string::npos) comma = text.size();
        const std::string item = text.substr(pos, comma - pos);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(item.c_str(), &end, 10);
        ENGINE_CHECK(!item.empty() && end == item.c_str() + item.size() && errno == 0, ArgError,
                     "--lr-steps: '", item, "' in '", text, "' is not an integer");
        steps.push_back((i64)v);
        pos = comma + 1;
        ENGINE_CHECK(comma + 1 < text.size() || comma == text.size(), ArgError,
                     "--lr-steps: '", text, "' ends with a comma");
    }
    for (size_t i = 0; i < steps.size(); ++i) {
        ENGINE_CHECK(steps[i] > 0, ArgError, "--lr-steps: step ", steps[i], " in '", text,
                     "' must be > 0");
        ENGINE_CHECK(i == 0 || steps[i] > steps[i - 1], ArgError, "--lr-steps: '", text,
                     "' is not strictly increasing");
    }
    return steps;
}

}  // namespace engine
