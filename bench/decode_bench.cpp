// Decode + augment throughput on 112x112 JPEGs made by the synthetic face renderer: images per
// second per core (CPU time of one thread), the loader's per-sample work. bench/decode_bench.sh
// runs it beside bench/decode_bench.py (the same work with Pillow + NumPy) and prints the ratio.
//   build/bench_decode_bench [--images 512] [--passes 3] [--quality 90] [--dir DIR]
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/image.h"
#include "data/synth.h"
#include "engine/error.h"
#include "engine/timer.h"

namespace {

double thread_cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int run(int argc, char** argv) {
    int images = 512, passes = 3, quality = 90;
    std::string dir;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::puts("usage: bench_decode_bench [--images 512] [--passes 3] [--quality 90] [--dir DIR]\n"
                      "  --dir DIR  also write the JPEGs as DIR/NNNNN.jpg (for decode_bench.py)");
            return 0;
        }
        ENGINE_CHECK(i + 1 < argc, engine::ArgError, a, " needs a value");
        const std::string v = argv[++i];
        if (a == "--images") images = std::atoi(v.c_str());
        else if (a == "--passes") passes = std::atoi(v.c_str());
        else if (a == "--quality") quality = std::atoi(v.c_str());
        else if (a == "--dir") dir = v;
        else throw engine::ArgError("unknown option " + a);
    }
    ENGINE_CHECK(images > 0 && passes > 0, engine::ArgError, "--images and --passes must be > 0");
    const int S = 112;

    // Inputs: `images` faces of 64 people, JPEG at the given quality (as apps/synth writes).
    std::vector<std::vector<u8>> jpegs;
    for (int i = 0; i < images; ++i) {
        const i64 person = i % 64;
        const data::Image img = data::render_face(data::make_identity(1, person), 1, person, i / 64, S);
        jpegs.push_back(data::encode_jpeg(img, quality));
        if (!dir.empty()) {
            char name[32];
            std::snprintf(name, sizeof name, "/%05d.jpg", i);
            std::ofstream f(dir + name, std::ios::binary);
            f.write((const char*)jpegs.back().data(), (std::streamsize)jpegs.back().size());
            ENGINE_CHECK(f, engine::IoError, dir, name, ": write failed");
        }
    }
    double bytes = 0;
    for (const auto& j : jpegs) bytes += (double)j.size();

    // The loader's per-sample work with the step 2/3 augmentation (mirror 0.5, gray 0.2,
    // jitter 0.2), one thread; CPU time so that other load on the machine does not count.
    const auto cfg = data::AugmentConfig::step23(123);
    std::vector<float> out((size_t)3 * S * S);
    double checksum = 0, t_decode = 0, t_aug = 0;
    const double c0 = thread_cpu_seconds();
    engine::Timer wall;
    for (int p = 0; p < passes; ++p)
        for (int i = 0; i < images; ++i) {
            const double a = thread_cpu_seconds();
            const data::Image img = data::decode_image(jpegs[(size_t)i], "bench", S, S, data::SizePolicy::reject);
            const double b = thread_cpu_seconds();
            data::augment_to_chw(out.data(), img, data::draw_augment(cfg, i, p));
            t_aug += thread_cpu_seconds() - b;
            t_decode += b - a;
            checksum += out[(size_t)(i * 97) % out.size()];
        }
    const double cpu = thread_cpu_seconds() - c0;
    const double n = (double)images * passes;
    std::printf("decode_bench C++ (stb_image + augment): %d JPEGs %dx%d q%d (mean %.0f bytes), %d passes\n",
                images, S, S, quality, bytes / images, passes);
    std::printf("  decode  %.1f us/image   augment %.1f us/image\n", 1e6 * t_decode / n, 1e6 * t_aug / n);
    std::printf("  wall %.3f s, cpu %.3f s (checksum %.0f)\n", wall.seconds(), cpu, checksum);
    std::printf("cpp_images_per_cpu_second %.1f\n", n / cpu);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_decode_bench: error: %s\n", e.what());
        return 1;
    }
}
