// Checkpoint metadata, state-file naming and device selection for the apps.
#include "apps/pipeline/model_io.h"

#include <cstdio>
#include <cstdlib>
#include <map>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/safetensors.h"

namespace pipeline {

using engine::FormatError;

IResNetConfig config_from_checkpoint(const std::string& path) {
    std::map<std::string, std::string> meta;
    engine::read_safetensors(path, &meta);
    auto need = [&](const char* key) {
        auto it = meta.find(key);
        ENGINE_CHECK(it != meta.end(), FormatError, path, ": checkpoint metadata has no '", key,
                     "' (not written by IResNet::save?)");
        return it->second;
    };
    IResNetConfig c = IResNetConfig::named(need("network"));
    c.width = std::atof(need("width").c_str());
    c.input_size = std::atoi(need("input_size").c_str());
    c.num_features = std::atoi(need("num_features").c_str());
    ENGINE_CHECK(c.width > 0 && c.input_size > 0 && c.num_features > 0, FormatError, path,
                 ": bad network metadata");
    return c;
}

std::string state_path_for(const std::string& model_path) {
    const std::string ext = ".safetensors";
    std::string base = model_path;
    if (base.size() > ext.size() && base.compare(base.size() - ext.size(), ext.size(), ext) == 0)
        base.resize(base.size() - ext.size());
    return base + ".state.safetensors";
}

std::unique_ptr<engine::GpuContext> open_device(const std::string& which) {
    ENGINE_CHECK(which == "cpu" || which == "cuda" || which == "auto", engine::ArgError,
                 "--device must be cpu, cuda or auto, not '", which, "'");
    if (which == "cpu") return nullptr;
    std::string why;
    const bool usable = engine::cuda_usable(&why);
    if (which == "auto" && !usable) {
        if (engine::built_with_cuda())  // a CUDA build that cannot use a GPU: say why
            std::fprintf(stderr, "--device auto: running on the CPU (%s)\n", why.c_str());
        return nullptr;
    }
    ENGINE_CHECK(usable, engine::DeviceError, "--device cuda: ", why);
    return std::make_unique<engine::GpuContext>(0);
}

std::vector<float> load_classifier(const std::string& state_path, i64* classes, i64* dim) {
    for (const auto& t : engine::read_safetensors(state_path)) {
        if (t.name != "fc7.weight") continue;
        ENGINE_CHECK(t.shape.size() == 2, FormatError, state_path, ": fc7.weight is not 2-D");
        *classes = t.shape[0];
        *dim = t.shape[1];
        return t.as<float>();
    }
    throw FormatError(engine::str(state_path, ": no fc7.weight (classifier) in this state file"));
}

}  // namespace pipeline
