// synth: writes the synthetic long-tailed noisy face set (data/synth.h) to a directory:
// train.rec/.idx/property, noise_truth.txt, synth_val.bin, synth.json, contact_sheet.png.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "data/synth.h"
#include "engine/error.h"

namespace {

const char* kUsage =
    "usage: synth --out DIR [options]\n"
    "  --out DIR          output directory (created); writes train.rec, train.idx, property,\n"
    "                     noise_truth.txt, synth_val.bin, synth.json, contact_sheet.png\n"
    "  --identities N     training identities (default 200)\n"
    "  --images N         training images in all, exact (default 4000)\n"
    "  --max-images N     images of the largest identity (default 500)\n"
    "  --min-images N     fewest images of an identity (default 3); counts follow\n"
    "                     max(min, max * rank^-a), a fitted so they sum to --images\n"
    "  --flip F           fraction of images labelled as another identity (default 0.025)\n"
    "  --outlier F        fraction of images of people outside the set (default 0.015)\n"
    "  --split-ids N      identities split under two labels (default 4); half of each such\n"
    "                     identity's images get a new label identities..identities+N-1\n"
    "  --heldout N        held-out identities for the verification pairs (default 60)\n"
    "  --pairs N          verification pairs, half same, half different (default 300)\n"
    "  --size N           image height and width (default 112)\n"
    "  --quality Q        JPEG quality 1..100 (default 90)\n"
    "  --pixel-noise S    pixel noise in grey levels (default 5)\n"
    "  --threads N        rendering threads (default: all)\n"
    "  --seed N           random seed (default 1); the set is a pure function of the flags\n"
    "noise_truth.txt: one line per noisy image, \"kind record_key true_person given_label\",\n"
    "kind flip | outlier | split; persons 0..identities-1 are the training identities (label =\n"
    "person), then the held-out people, then one outsider per outlier image.\n";

int run(int argc, char** argv) {
    data::SynthConfig cfg;
    std::string out;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        ENGINE_CHECK(i + 1 < argc, engine::ArgError, "synth: ", a, " needs a value (see --help)");
        const std::string v = argv[++i];
        auto integer = [&]() -> long long {
            char* end = nullptr;
            const long long x = std::strtoll(v.c_str(), &end, 10);
            ENGINE_CHECK(end && *end == 0 && !v.empty(), engine::ArgError, "synth: ", a,
                         " wants an integer, got '", v, "'");
            return x;
        };
        auto real = [&]() -> double {
            char* end = nullptr;
            const double x = std::strtod(v.c_str(), &end);
            ENGINE_CHECK(end && *end == 0 && !v.empty(), engine::ArgError, "synth: ", a,
                         " wants a number, got '", v, "'");
            return x;
        };
        if (a == "--out") out = v;
        else if (a == "--identities") cfg.identities = integer();
        else if (a == "--images") cfg.images = integer();
        else if (a == "--max-images") cfg.max_per_id = integer();
        else if (a == "--min-images") cfg.min_per_id = integer();
        else if (a == "--flip") cfg.flip_frac = real();
        else if (a == "--outlier") cfg.outlier_frac = real();
        else if (a == "--split-ids") cfg.split_ids = integer();
        else if (a == "--heldout") cfg.heldout_ids = integer();
        else if (a == "--pairs") cfg.pairs = integer();
        else if (a == "--size") cfg.size = (int)integer();
        else if (a == "--quality") cfg.jpeg_quality = (int)integer();
        else if (a == "--pixel-noise") cfg.pixel_noise = real();
        else if (a == "--threads") cfg.threads = (int)integer();
        else if (a == "--seed") cfg.seed = (u64)integer();
        else throw engine::ArgError(engine::str("synth: unknown option ", a, " (see --help)"));
    }
    ENGINE_CHECK(!out.empty(), engine::ArgError, "synth: --out DIR is required (see --help)");
    data::generate_synth(cfg, out, &std::cerr);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "synth: error: %s\n", e.what());
        return 1;
    }
}
