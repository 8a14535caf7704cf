// The gradient audit of every layer: one GradCheckCase per layer and mode, each giving one row
// per tensor the gradient is taken against. Used by the doctest suite and by build/gradcheck.
#pragma once
#include <vector>

#include "engine/gradcheck.h"

std::vector<engine::GradCheckCase> layer_gradcheck_cases();
