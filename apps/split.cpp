// split: divides an InsightFace .rec set into a head set (classes with >= --min-images images)
// and a tail set (the others), each relabelled 0..C-1 (SPEC.md section 6).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "data/dataset_tools.h"
#include "engine/error.h"

namespace {

const char* kUsage =
    "usage: split --data DIR --min-images N --head OUTDIR --tail OUTDIR\n"
    "  classes with >= N images go to the head set, the others to the tail set; both are\n"
    "  relabelled 0..C-1 in the order classes appear in DIR and keep each class together.\n";

int run(int argc, char** argv) {
    std::string src, head, tail;
    long long min_images = -1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            ENGINE_CHECK(i + 1 < argc, engine::ArgError, "split: ", a, " needs a value\n", kUsage);
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (a == "--data") {
            src = value();
        } else if (a == "--head") {
            head = value();
        } else if (a == "--tail") {
            tail = value();
        } else if (a == "--min-images") {
            const std::string v = value();
            char* e = nullptr;
            min_images = std::strtoll(v.c_str(), &e, 10);
            ENGINE_CHECK(*e == '\0' && min_images >= 1, engine::ArgError,
                         "split: bad --min-images ", v);
        } else {
            throw engine::ArgError(engine::str("split: unknown argument ", a, "\n", kUsage));
        }
    }
    ENGINE_CHECK(!src.empty() && !head.empty() && !tail.empty() && min_images >= 1,
                 engine::ArgError, "split: --data, --min-images, --head and --tail are required\n",
                 kUsage);
    const data::SplitCounts c = data::split_head_tail(src, head, tail, min_images);
    std::printf("split: head %s: %lld classes, %lld images; tail %s: %lld classes, %lld images\n",
                head.c_str(), (long long)c.head_classes, (long long)c.head_images, tail.c_str(),
                (long long)c.tail_classes, (long long)c.tail_images);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "split: error: %s\n", e.what());
        return 1;
    }
}
