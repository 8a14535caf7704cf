// Step learning-rate schedule: divisions at the listed steps, boundaries, and the parser.
#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/lr_schedule.h"

TEST_CASE("lr schedule: base rate divided by 10 after each listed step") {
    const engine::LrSchedule s(0.01, {50000, 90000});
    CHECK(s.lr_at(0) == 0.01);
    CHECK(s.lr_at(49999) == 0.01);       // update number 50000 still at the base rate
    CHECK(s.lr_at(50000) == 0.01 * 0.1);  // update 50001: first division
    CHECK(s.lr_at(89999) == 0.01 * 0.1);
    CHECK(s.lr_at(90000) == 0.01 * 0.1 * 0.1);
    CHECK(s.lr_at(1000000) == 0.01 * 0.1 * 0.1);
    CHECK(s.stage_at(49999) == 0);
    CHECK(s.stage_at(50000) == 1);
    CHECK(s.stage_at(90000) == 2);
}

TEST_CASE("lr schedule: no steps keeps the base rate; other factors") {
    const engine::LrSchedule flat(0.1);
    CHECK(flat.lr_at(0) == 0.1);
    CHECK(flat.lr_at(123456789) == 0.1);
    const engine::LrSchedule half(1.0, {3, 5}, 0.5);
    const double want[7] = {1, 1, 1, 0.5, 0.5, 0.25, 0.25};
    for (int i = 0; i < 7; ++i) CHECK(half.lr_at(i) == want[i]);
}

TEST_CASE("lr schedule: --lr-steps parsing and validation") {
    CHECK(engine::parse_lr_steps("50000,90000") == std::vector<i64>{50000, 90000});
    CHECK(engine::parse_lr_steps("7") == std::vector<i64>{7});
    CHECK(engine::parse_lr_steps("").empty());
    CHECK(engine::parse_lr_steps("100000000000") == std::vector<i64>{100000000000LL});
    CHECK_THROWS_AS(engine::parse_lr_steps("50000,,90000"), engine::ArgError);
    CHECK_THROWS_AS(engine::parse_lr_steps("50000,"), engine::ArgError);
    CHECK_THROWS_AS(engine::parse_lr_steps("5e4"), engine::ArgError);
    CHECK_THROWS_AS(engine::parse_lr_steps("90000,50000"), engine::ArgError);
    CHECK_THROWS_AS(engine::parse_lr_steps("0,10"), engine::ArgError);
    CHECK_THROWS_AS(engine::LrSchedule(0.1, {10, 10}), engine::ArgError);
    CHECK_THROWS_AS(engine::LrSchedule(-1.0, {}), engine::ArgError);
}
