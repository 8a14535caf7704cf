// Step learning-rate schedule (SPEC.md section 7, the seed's --lr / --lr-steps): the base rate
// divided by 10 at each listed step.
#pragma once
#include <string>
#include <vector>

#include "engine/common.h"

namespace engine {

class LrSchedule {
public:
    // steps: strictly increasing positive update counts. Throws ArgError otherwise.
    explicit LrSchedule(double base_lr, std::vector<i64> steps = {}, double factor = 0.1);

    // The rate for the update that follows `done` completed updates (0 for the first update).
    // It is multiplied by factor once for every listed step s with done >= s: with steps
    // {50000, 90000} updates 1..50000 use base_lr, 50001..90000 base_lr / 10, and so on. This is
    // the seed's batch callback (which divides after update number s) and MXNet's
    // MultiFactorScheduler (num_update > s).
    double lr_at(i64 done) const;
    // How many of the steps have passed (the number of divisions applied) after `done` updates.
    i64 stage_at(i64 done) const;

    double base_lr() const { return base_; }
    const std::vector<i64>& steps() const { return steps_; }

private:
    double base_, factor_;
    std::vector<i64> steps_;
};

// Parses a --lr-steps value: comma-separated positive integers, strictly increasing
// ("50000,90000"); an empty string means no steps. Throws ArgError naming the bad item.
std::vector<i64> parse_lr_steps(const std::string& text);

}  // namespace engine
