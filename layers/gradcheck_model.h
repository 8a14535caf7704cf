// The gradient audit of the network's blocks: the IR unit (identity and projection shortcut, in
// training and inference mode) and a whole tiny iresnet (r18, width 1/8, 16x16 input), in
// float64. Used by the doctest suite and by build/gradcheck.
#pragma once
#include <vector>

#include "engine/gradcheck.h"

std::vector<engine::GradCheckCase> model_gradcheck_cases();
