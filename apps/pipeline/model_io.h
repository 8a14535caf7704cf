// Loading models for the apps: the network configuration stored in a checkpoint's metadata,
// the classifier (fc7) and training state kept beside a model checkpoint, and a model on the
// chosen device ready for inference.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/gpu_context.h"
#include "layers/iresnet.h"

namespace pipeline {

// Network, width, input size and embedding size of a checkpoint written by IResNet::save()
// (from its metadata; dropout is not stored and keeps its default). Throws FormatError.
IResNetConfig config_from_checkpoint(const std::string& path);

// "model-000100.safetensors" -> "model-000100.state.safetensors": the training state (classifier,
// momentum, step, stream positions) saved beside each model checkpoint.
std::string state_path_for(const std::string& model_path);

// The device the user asked for: "cpu", "cuda", or "auto" (cuda when usable). Returns a context
// for cuda, nullptr for cpu; "cuda" without a usable GPU is a DeviceError saying why.
std::unique_ptr<engine::GpuContext> open_device(const std::string& which);

// The classifier rows (C, D) stored as "fc7.weight" in a state file; throws FormatError when the
// file has none.
std::vector<float> load_classifier(const std::string& state_path, i64* classes, i64* dim);

}  // namespace pipeline
