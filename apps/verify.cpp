// verify: InsightFace's verification table (accuracy mean +- std with flip, XNorm, TAR at
// FAR 1e-3) for a checkpoint on .bin verification sets.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "apps/pipeline/evaluate.h"
#include "apps/pipeline/flags.h"
#include "apps/pipeline/model_io.h"
#include "engine/error.h"
#include "engine/timer.h"

int main(int argc, char** argv) {
    pipeline::Flags f("verify",
                      "Evaluates a backbone checkpoint on verification sets with InsightFace's\n"
                      "protocol (SPEC.md section 9): embedding of each image plus its mirror,\n"
                      "10 folds, best threshold on the other nine, mean +- std, XNorm, TAR@FAR.");
    f.add("model", "", "backbone checkpoint (.safetensors)");
    f.add("target", "lfw,cfp_fp,agedb_30", "names in --data-dir, or paths to .bin files");
    f.add("data-dir", ".", "where the named .bin files are");
    f.add("batch-size", "64", "images per forward");
    f.add("device", "auto", "cpu | cuda | auto");
    try {
        if (!f.parse(argc, argv)) return 0;
        ENGINE_CHECK(!f.str("model").empty(), engine::ArgError, "verify: --model is required");
        auto gpu = pipeline::open_device(f.str("device"));
        const IResNetConfig cfg = pipeline::config_from_checkpoint(f.str("model"));
        IResNet<float> model(cfg, f.integer("batch-size"), gpu.get());
        model.load(f.str("model"), true);
        pipeline::Embedder embedder(model, gpu.get());
        std::printf("%-14s %6s  %-19s %8s  %-19s %9s %6s\n", "target", "pairs",
                    "accuracy (+- std)", "XNorm", "TAR @ FAR=1e-3", "threshold", "time");
        bool any = false;
        for (const auto& name : f.list("target")) {
            engine::Timer t;
            const pipeline::VerificationTarget target =
                pipeline::load_target(name, f.str("data-dir"), cfg.input_size);
            const data::VerificationResult r = pipeline::evaluate_target(target, embedder);
            double thr = 0;
            for (double x : r.best_threshold) thr += x;
            thr /= (double)std::max<size_t>(1, r.best_threshold.size());
            std::printf("%-14s %6lld  %.5f +- %.5f  %8.3f  %.5f +- %.5f  %9.3f %5.1fs\n",
                        target.name.c_str(), (long long)r.pairs, r.accuracy_mean, r.accuracy_std,
                        r.xnorm, r.val_mean, r.val_std, thr, t.seconds());
            any = true;
        }
        ENGINE_CHECK(any, engine::ArgError, "verify: no --target given");
    } catch (const std::exception& e) {  // engine errors, bad_alloc, ...
        std::fprintf(stderr, "verify: %s\n", e.what());
        return 1;
    }
    return 0;
}
