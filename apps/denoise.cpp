// denoise: writes a copy of an InsightFace .rec set without the records of a noise list
// ("label record_index max_p p_label" lines, SPEC.md section 5); labels are kept.
#include <cstdio>
#include <string>

#include "data/dataset_tools.h"
#include "engine/error.h"

namespace {

const char* kUsage =
    "usage: denoise --data DIR --noise-list FILE --out OUTDIR\n"
    "  FILE lines: label record_index max_p p_label (record_index: the record key in train.idx;\n"
    "  label must match that record). OUTDIR keeps DIR's labels and class count.\n";

int run(int argc, char** argv) {
    std::string src, list, out;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            ENGINE_CHECK(i + 1 < argc, engine::ArgError, "denoise: ", a, " needs a value\n",
                         kUsage);
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (a == "--data") {
            src = value();
        } else if (a == "--noise-list") {
            list = value();
        } else if (a == "--out") {
            out = value();
        } else {
            throw engine::ArgError(engine::str("denoise: unknown argument ", a, "\n", kUsage));
        }
    }
    ENGINE_CHECK(!src.empty() && !list.empty() && !out.empty(), engine::ArgError,
                 "denoise: --data, --noise-list and --out are required\n", kUsage);
    const data::DenoiseCounts c = data::apply_noise_list(src, list, out);
    std::printf("denoise: %s: %lld images in, %lld removed, %lld written, %lld classes\n",
                out.c_str(), (long long)c.images_in, (long long)c.removed,
                (long long)c.images_out, (long long)c.classes);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "denoise: error: %s\n", e.what());
        return 1;
    }
}
