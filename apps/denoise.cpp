// denoise: writes a copy of an InsightFace .rec set without the records of a noise list
// ("label record_index max_p p_label" lines, SPEC.md section 5); labels are kept.
#include <cstdio>
#include <exception>

#include "apps/pipeline/flags.h"
#include "data/dataset_tools.h"
#include "engine/error.h"

int main(int argc, char** argv) {
    pipeline::Flags f("denoise",
                      "Copies a set without the records of a noise list. List lines:\n"
                      "\"label record_index max_p p_label\" (record_index: the record key in\n"
                      "train.idx; label must match that record). The copy keeps the labels and\n"
                      "the class count.");
    f.add("data", "", "source set (directory with train.rec, or the .rec file)");
    f.add("noise-list", "", "the noise list (as build/mine writes it)");
    f.add("out", "", "output directory");
    try {
        if (!f.parse(argc, argv)) return 0;
        ENGINE_CHECK(!f.str("data").empty() && !f.str("noise-list").empty() &&
                         !f.str("out").empty(),
                     engine::ArgError,
                     "denoise: --data, --noise-list and --out are required (see --help)");
        const data::DenoiseCounts c =
            data::apply_noise_list(f.str("data"), f.str("noise-list"), f.str("out"));
        std::printf("denoise: %s: %lld images in, %lld removed, %lld written, %lld classes\n",
                    f.str("out").c_str(), (long long)c.images_in, (long long)c.removed,
                    (long long)c.images_out, (long long)c.classes);
    } catch (const std::exception& e) {  // engine errors, bad_alloc, ...
        std::fprintf(stderr, "denoise: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
