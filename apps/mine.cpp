// mine: noise mining (the seed's step 2a). Runs every head sample through a trained model and its
// classifier, writes the noise list, and (with --out-dir) the denoised set.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "apps/pipeline/flags.h"
#include "apps/pipeline/embedder.h"
#include "apps/pipeline/mining.h"
#include "apps/pipeline/model_io.h"
#include "apps/pipeline/trainer.h"
#include "data/dataset_tools.h"
#include "data/loader.h"
#include "engine/error.h"

int main(int argc, char** argv) {
    pipeline::Flags f("mine",
                      "Noise mining (SPEC.md section 5): with a step-1 model and its classifier\n"
                      "(MODEL.state.safetensors beside it), lists every head sample whose largest\n"
                      "softmax probability (margin applied as in training) is below --threshold:\n"
                      "lines \"label record_key max_p p_label\". With --out-dir also writes the\n"
                      "denoised set (the head set without the listed records).");
    f.add("model", "", "backbone checkpoint (PREFIX-NNNNNN.safetensors or PREFIX-best.safetensors)");
    f.add("data-dir", "", "head set (train.rec, train.idx, property)");
    f.add("threshold", "0.007", "noise when max_p < threshold (the seed's rule)");
    f.add("label-threshold", "0", "also noise when p_label < this (0: off; not in the seed)");
    f.add("noise-list", "noise_list.txt", "where to write the list");
    f.add("out-dir", "", "write the denoised set here (optional)");
    f.add("loss-type", "4", "margin as in training: 4 ArcFace, 5 combined, 2 CosFace");
    f.add("margin-s", "64", "scale s");
    f.add("margin-m", "0.5", "ArcFace m / combined m2 / CosFace m");
    f.add("margin-a", "1", "combined m1");
    f.add("margin-b", "0", "combined m3");
    f.add("batch-size", "64", "samples per forward");
    f.add_switch("resize", "resize images to the model's input size");
    f.add("device", "auto", "cpu | cuda | auto");
    try {
        if (!f.parse(argc, argv)) return 0;
        ENGINE_CHECK(!f.str("model").empty() && !f.str("data-dir").empty(), engine::ArgError,
                     "mine: --model and --data-dir are required (see --help)");
        pipeline::TrainOptions t;  // only for its margin presets
        t.stage = "arcface";
        t.loss_type = (int)f.integer("loss-type");
        t.margin_s = f.num("margin-s");
        t.margin_m = f.num("margin-m");
        t.margin_a = f.num("margin-a");
        t.margin_b = f.num("margin-b");
        pipeline::MiningOptions mo;
        mo.margin = t.loss_options();
        mo.threshold = f.num("threshold");
        mo.label_threshold = f.num("label-threshold");
        mo.batch = f.integer("batch-size");

        const std::string model_path = f.str("model");
        auto gpu = pipeline::open_device(f.str("device"));
        IResNet<float> model(pipeline::config_from_checkpoint(model_path), mo.batch, gpu.get());
        model.load(model_path, true);
        i64 C = 0, D = 0;
        const std::vector<float> W =
            pipeline::load_classifier(pipeline::state_path_for(model_path), &C, &D);
        ENGINE_CHECK(D == model.embedding_size(), engine::FormatError, model_path,
                     ": classifier has ", D, " features, the model ", model.embedding_size());
        pipeline::Embedder embedder(model, gpu.get());
        data::RecordDataset ds(f.str("data-dir"));
        data::LoaderConfig lc;
        lc.batch_size = mo.batch;
        lc.height = lc.width = model.config().input_size;
        lc.size_policy = f.on("resize") ? data::SizePolicy::resize : data::SizePolicy::reject;
        lc.shuffle = false;
        lc.prefetch = 1;
        lc.pin_memory = gpu != nullptr;
        data::Loader loader(ds, lc);
        auto embed = [&](const std::vector<i64>& samples, float* out) {
            const data::Batch& b = loader.load(samples, 0, false);
            embedder.embed(b.images, b.n, out);
        };
        std::fprintf(stderr, "mine: %lld samples, %lld classes, threshold %g\n",
                     (long long)ds.size(), (long long)C, mo.threshold);
        const pipeline::MiningResult r =
            pipeline::mine_noise(ds, D, embed, W.data(), C, mo, f.str("noise-list"), gpu.get());
        std::printf("mine: %lld of %lld samples listed as noise (%.2f%%) -> %s\n",
                    (long long)r.noisy.size(), (long long)r.samples,
                    100.0 * (double)r.noisy.size() / (double)std::max<i64>(1, r.samples),
                    f.str("noise-list").c_str());
        if (!f.str("out-dir").empty()) {
            const data::DenoiseCounts c =
                data::apply_noise_list(f.str("data-dir"), f.str("noise-list"), f.str("out-dir"));
            std::printf("mine: denoised set %s: %lld images (%lld removed), %lld classes\n",
                        f.str("out-dir").c_str(), (long long)c.images_out, (long long)c.removed,
                        (long long)c.classes);
        }
    } catch (const std::exception& e) {  // engine errors, bad_alloc, ...
        std::fprintf(stderr, "mine: %s\n", e.what());
        return 1;
    }
    return 0;
}
