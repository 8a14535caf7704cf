// split: divides an InsightFace .rec set into a head set (classes with >= --min-images images)
// and a tail set (the others), each relabelled 0..C-1 (SPEC.md section 6).
#include <cstdio>
#include <exception>

#include "apps/pipeline/flags.h"
#include "data/dataset_tools.h"
#include "engine/error.h"

int main(int argc, char** argv) {
    pipeline::Flags f("split",
                      "Classes with >= --min-images images go to the head set, the others to the\n"
                      "tail set; both are relabelled 0..C-1 in the order classes appear in --data\n"
                      "and keep each class together. Each output gets origin.txt (\"key src_key\n"
                      "src_label\" per image).");
    f.add("data", "", "source set (directory with train.rec, or the .rec file)");
    f.add("min-images", "9", "images an identity needs to be in the head set");
    f.add("head", "", "output directory of the head set");
    f.add("tail", "", "output directory of the tail set");
    try {
        if (!f.parse(argc, argv)) return 0;
        ENGINE_CHECK(!f.str("data").empty() && !f.str("head").empty() && !f.str("tail").empty(),
                     engine::ArgError, "split: --data, --head and --tail are required (see --help)");
        const data::SplitCounts c = data::split_head_tail(f.str("data"), f.str("head"),
                                                          f.str("tail"), f.integer("min-images"));
        std::printf("split: head %s: %lld classes, %lld images; tail %s: %lld classes, %lld images\n",
                    f.str("head").c_str(), (long long)c.head_classes, (long long)c.head_images,
                    f.str("tail").c_str(), (long long)c.tail_classes, (long long)c.tail_images);
    } catch (const std::exception& e) {  // engine errors, bad_alloc, ...
        std::fprintf(stderr, "split: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
