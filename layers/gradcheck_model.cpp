// Gradient checks of the IR unit and of a whole tiny iresnet in float64. Loss L = sum(out * R)
// for a fixed random R (dL/dout = R); one analytic backward, then central differences on the
// input and on every learnt parameter tensor.
//
// Kinks: every PReLU is a kink, and in a whole network in training mode BN couples all samples,
// so perturbing one early weight by h shifts every downstream PReLU input; with tens of
// thousands of them some lie within h of 0 and the checker must skip the point (a row fails
// when more than a tenth of its points are skipped). The network cases therefore evaluate at a
// point away from every kink: each BN that feeds a PReLU gets a small gamma (0.2..0.3) and a
// large beta of random sign (|beta| 1.2..1.6), so every PReLU input sits well to one side of 0
// (channels with negative beta take the slope branch, the others the identity branch). The
// unit cases keep ordinary random parameters (elementwise kinks are rare at their size), as
// does the layer-level PReLU check.
#include "layers/gradcheck_model.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <omp.h>

#include "engine/params.h"
#include "engine/rng.h"
#include "layers/ir_unit.h"
#include "layers/iresnet.h"

using engine::GradCheckCase;
using engine::GradCheckOptions;
using engine::GradCheckRow;
using engine::ParamEntry;
using engine::ParamKind;
using engine::ParamStore;
using engine::check_gradient;
using engine::weighted_sum;

using engine::random_values;

namespace {

constexpr double kStep = 1e-5;  // the checker's default central-difference step

// The checks evaluate tiny tensors thousands of times; there OpenMP's fork/join (and its spin
// waits on a shared machine) costs more than the work, so they run on one thread. The previous
// thread count is restored on exit.
struct SingleThreaded {
    int saved = omp_get_max_threads();
    SingleThreaded() { omp_set_num_threads(1); }
    ~SingleThreaded() { omp_set_num_threads(saved); }
};

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Random, well-conditioned values for every entry of a store: conv/fc weights
// N(0, 2 / fan_out)-like uniform, BN gamma in [0.6, 1.4], beta in [-0.3, 0.3], running mean in
// [-0.3, 0.3], running variance in [0.5, 1.5], PReLU slopes in [0.1, 0.4]. Values away from the
// defaults (gamma 1, beta 0, slope 0.25) make every term of the backward matter.
//
// kink_free: the BNs that feed a PReLU (the stem's "bn1." and every unit's ".bn2.") get gamma in
// [0.2, 0.3] and beta = +-[1.2, 1.6] (random sign per channel), see the file comment.
void randomize_store(ParamStore<double>& store, u64 seed, bool kink_free = false) {
    engine::Rng rng(seed);
    for (size_t id = 0; id < store.entries().size(); ++id) {
        const ParamEntry& e = store.entry((int)id);
        double* p = store.value((int)id);
        const bool feeds_prelu = kink_free && (e.name.rfind("bn1.", 0) == 0 ||
                                               e.name.find(".bn2.") != std::string::npos);
        double lo, hi;
        if (feeds_prelu && ends_with(e.name, ".weight")) {
            lo = 0.2, hi = 0.3;
        } else if (feeds_prelu && ends_with(e.name, ".bias")) {
            for (i64 i = 0; i < e.numel; ++i)
                p[i] = (rng.uniform() < 0.5 ? -1 : 1) * (1.2 + 0.4 * rng.uniform());
            continue;
        } else if (e.shape.size() == 4) {
            const double a = std::sqrt(6.0 / (double)(e.shape[0] * e.shape[2] * e.shape[3]));
            lo = -a, hi = a;
        } else if (e.shape.size() == 2) {
            const double a = std::sqrt(6.0 / (double)e.shape[0]);
            lo = -a, hi = a;
        } else if (ends_with(e.name, "prelu.weight")) {
            lo = 0.1, hi = 0.4;
        } else if (ends_with(e.name, "running_var")) {
            lo = 0.5, hi = 1.5;
        } else if (e.kind == ParamKind::fixed) {
            continue;  // a fixed gamma stays 1
        } else if (ends_with(e.name, ".weight")) {
            lo = 0.6, hi = 1.4;
        } else {
            lo = -0.3, hi = 0.3;  // beta, running mean, bias
        }
        for (i64 i = 0; i < e.numel; ++i) p[i] = lo + (hi - lo) * rng.uniform();
    }
}

// One IR unit: rows for the input and for every learnt tensor, every element.
std::vector<GradCheckRow> check_ir_unit(bool projection, bool training) {
    const std::string group =
        std::string("ir_unit.") + (projection ? "projection" : "identity") + (training ? ".train" : ".infer");
    // identity: (2, 4, 5, 5) -> (2, 4, 5, 5); projection: (3, 3, 6, 6) -> (3, 5, 3, 3), stride 2.
    SingleThreaded one_thread;
    const i64 N = projection ? 3 : 2, Cin = projection ? 3 : 4, Cout = projection ? 5 : 4;
    const i64 H = projection ? 6 : 5, stride = projection ? 2 : 1;
    ParamStore<double> store;
    IRUnit<double> unit(store, "unit.", Cin, Cout, H, H, stride, N);
    store.allocate(engine::Device::cpu);
    unit.allocate(nullptr);
    randomize_store(store, projection ? 101 : 102);

    const i64 n_in = unit.in_numel(N), n_out = unit.out_numel(N);
    std::vector<double> x = random_values(n_in, 103, -1.5, 1.5);
    const std::vector<double> R = random_values(n_out, 104, -1, 1);
    auto loss = [&] { return weighted_sum(unit.forward(x.data(), N, training), R.data(), n_out); };

    store.grads().zero();
    std::vector<double> dx((size_t)n_in);
    unit.forward(x.data(), N, training);
    unit.backward(R.data(), dx.data());
    const std::vector<double> grads = store.grads().to_host();

    GradCheckOptions opt;
    opt.step = kStep;
    std::vector<GradCheckRow> rows;
    rows.push_back(check_gradient(group, "input", x.data(), n_in, dx.data(), loss, opt));
    for (size_t id = 0; id < store.entries().size(); ++id) {
        const ParamEntry& e = store.entry((int)id);
        if (e.kind != ParamKind::learnt) continue;
        rows.push_back(check_gradient(group, e.name.substr(5), store.value((int)id), e.numel,
                                      grads.data() + e.offset, loss, opt));
    }
    return rows;
}

// The tiny network: r18 at width 1/8 (stages of 8, 16, 32, 64 channels), 16x16 input, batch 4,
// 16 features. Batch 4 keeps BN's batch statistics well defined at layer4's 1x1 spatial size
// (a batch of 2 gives every normalised value +-1 and an ill-conditioned variance).
std::vector<GradCheckRow> check_iresnet_tiny(bool training) {
    const std::string group = std::string("iresnet.r18_tiny") + (training ? ".train" : ".infer");
    SingleThreaded one_thread;
    IResNetConfig cfg = IResNetConfig::named("r18");
    cfg.width = 0.125;
    cfg.input_size = 16;
    cfg.num_features = 16;
    cfg.bn_momentum = 0.5;  // so that two warm-up steps give realistic running statistics
    const i64 N = 4, S = cfg.input_size, n_img = N * 3 * S * S;
    IResNet<double> net(cfg, N);
    net.init(7);
    ParamStore<double>& store = net.params();
    randomize_store(store, 8, /*kink_free=*/true);
    std::vector<double> images = random_values(n_img, 9, 0, 255);
    const std::vector<double> R = random_values(N * cfg.num_features, 10, -1, 1);
    if (!training) {
        // Running statistics from two training steps on other images (momentum 0.5).
        for (u64 k = 0; k < 2; ++k) net.forward(random_values(n_img, 20 + k, 0, 255).data(), N, true);
    }
    const u64 drop_seed = 1234;
    auto loss = [&] {
        // The same dropout mask at every evaluation: the counter is reset before each forward.
        net.set_dropout_rng(drop_seed, 0);
        const double* emb = net.forward(images.data(), N, training);
        return weighted_sum(emb, R.data(), N * cfg.num_features);
    };

    net.zero_grad();
    std::vector<double> d_images((size_t)n_img);
    net.set_dropout_rng(drop_seed, 0);
    net.forward(images.data(), N, training);
    net.backward(R.data(), d_images.data());
    const std::vector<double> grads = store.grads().to_host();

    GradCheckOptions opt;
    opt.step = kStep;
    opt.max_points = 8;  // a random subset per tensor keeps the whole case at a few seconds
    std::vector<GradCheckRow> rows;
    u64 subset_seed = 1;
    for (size_t id = 0; id < store.entries().size(); ++id) {
        const ParamEntry& e = store.entry((int)id);
        if (e.kind != ParamKind::learnt) continue;
        opt.seed = subset_seed++;
        rows.push_back(check_gradient(group, e.name, store.value((int)id), e.numel,
                                      grads.data() + e.offset, loss, opt));
    }
    // Raw pixels enter as (x - 127.5) / 128: a step 128 times larger moves the normalised
    // input by the same 1e-6 as the other rows.
    opt.step = kStep * 128;
    opt.max_points = 16;
    opt.seed = subset_seed++;
    rows.push_back(check_gradient(group, "images", images.data(), n_img, d_images.data(), loss, opt));
    return rows;
}

}  // namespace

std::vector<GradCheckCase> model_gradcheck_cases() {
    std::vector<GradCheckCase> cases;
    cases.push_back({"ir_unit.identity.train",
                     "IR unit, identity shortcut, (2,4,5,5), BN batch statistics",
                     [] { return check_ir_unit(false, true); }});
    cases.push_back({"ir_unit.identity.infer",
                     "IR unit, identity shortcut, (2,4,5,5), BN running statistics",
                     [] { return check_ir_unit(false, false); }});
    cases.push_back({"ir_unit.projection.train",
                     "IR unit, 1x1 stride-2 projection, (3,3,6,6) -> (3,5,3,3), batch statistics",
                     [] { return check_ir_unit(true, true); }});
    cases.push_back({"ir_unit.projection.infer",
                     "IR unit, 1x1 stride-2 projection, (3,3,6,6) -> (3,5,3,3), running statistics",
                     [] { return check_ir_unit(true, false); }});
    cases.push_back({"iresnet.r18_tiny.train",
                     "r18 width 1/8, 16x16, batch 4, 16 features, training (dropout 0.4, fixed mask)",
                     [] { return check_iresnet_tiny(true); }});
    cases.push_back({"iresnet.r18_tiny.infer",
                     "r18 width 1/8, 16x16, batch 4, 16 features, inference",
                     [] { return check_iresnet_tiny(false); }});
    return cases;
}
