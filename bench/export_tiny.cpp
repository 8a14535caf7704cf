// Writes the tiny r18 checkpoint the PyTorch cross-check starts from (tests/make_fixtures.py):
//   build/bench_export_tiny PATH [SEED]
// IResNet<float>: r18, width 1/8, input 16, 16 features, dropout 0, batch 4, init(SEED).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/error.h"
#include "layers/iresnet.h"

// The configuration shared with tests/test_crosscheck.cpp and tests/make_fixtures.py.
static IResNetConfig tiny_config() {
    IResNetConfig c = IResNetConfig::named("r18");
    c.width = 0.125;
    c.input_size = 16;
    c.num_features = 16;
    c.dropout = 0.0;
    return c;
}

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s PATH [SEED]\n", argv[0]);
        return 2;
    }
    try {
        const u64 seed = argc == 3 ? std::strtoull(argv[2], nullptr, 10) : 7;
        IResNet<float> net(tiny_config(), 4);
        net.init(seed);
        net.save(argv[1]);
        std::printf("wrote %s (r18 width 1/8, input 16, 16 features, seed %llu, %lld parameters)\n",
                    argv[1], (unsigned long long)seed, (long long)net.params().num_params());
    } catch (const engine::Error& e) {
        std::fprintf(stderr, "bench_export_tiny: %s\n", e.what());
        return 1;
    }
    return 0;
}
