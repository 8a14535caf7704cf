// The gradient audit of every loss (rows for build/gradcheck and the doctest suite).
#pragma once
#include <vector>

#include "engine/gradcheck.h"

std::vector<engine::GradCheckCase> loss_gradcheck_cases();
