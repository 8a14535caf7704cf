// The training pipeline end to end on a tiny synthetic set: each stage trains (the loss falls),
// checkpoints reload, a resumed run continues exactly, and noise mining lists planted noise.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "apps/pipeline/mining.h"
#include "apps/pipeline/model_io.h"
#include "apps/pipeline/trainer.h"
#include "data/dataset_tools.h"
#include "data/recordio.h"
#include "data/synth.h"
#include "engine/gpu_context.h"
#include "engine/rng.h"
#include "engine/npy.h"
#include "layers/iresnet.h"
#include "tests/test_files.h"
#include "tests/test_util.h"

namespace {

// A tiny long-tailed set (16x16 faces), split at 9 images into head and tail; made once.
struct TinySets {
    std::string root, head, tail, val;
};
const TinySets& tiny_sets() {
    static TinySets s = [] {
        TinySets t;
        char tmpl[] = "/tmp/test_train_XXXXXX";
        t.root = mkdtemp(tmpl);
        data::SynthConfig c;
        c.identities = 30;
        c.images = 360;
        c.max_per_id = 40;
        c.min_per_id = 3;
        c.flip_frac = 0;
        c.outlier_frac = 0;
        c.split_ids = 0;
        c.heldout_ids = 8;
        c.pairs = 40;
        c.size = 16;
        c.seed = 5;
        c.threads = 1;
        data::generate_synth(c, t.root + "/all", nullptr);
        t.head = t.root + "/head";
        t.tail = t.root + "/tail";
        t.val = t.root + "/all/synth_val.bin";
        data::split_head_tail(t.root + "/all", t.head, t.tail, 9);
        return t;
    }();
    return s;
}

pipeline::TrainOptions tiny_options(const std::string& stage, const std::string& prefix) {
    const TinySets& t = tiny_sets();
    pipeline::TrainOptions o;
    o.stage = stage;
    o.network = "r18";
    o.width = 0.125;
    o.input_size = 16;
    o.num_features = 16;
    o.dropout = 0.4;
    o.margin_s = 16;  // a 16-d embedding over a dozen classes: a smaller scale trains stably
    o.data_dir = t.head;
    o.data_dir_tail = t.tail;
    o.batch_size = 16;
    o.tail_ids = 2;
    o.bag_size = 18;
    o.mining_batch = 12;
    o.lr = 0.05;
    o.max_steps = 40;
    o.verbose = 1000;
    o.log_every = 1000;
    o.prefix = prefix;
    o.targets = {t.val};
    o.device = "cpu";
    o.workers = 1;
    o.seed = 11;
    return o;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += v[i];
    return s / (double)(to - from);
}

// build/verify prints the table for a checkpoint (its accuracy equals the trainer's own
// evaluation of the same model) and build/embed writes (N, D) embeddings of a .rec set.
void check_verify_and_embed_apps(const std::string& model_path, double trainer_acc) {
    const TinySets& sets = tiny_sets();
    test::TempDir t("engine_test_apps");
    test::Run r = test::run(test::app("verify") + " --device cpu --model " + model_path +
                                " --target " + sets.val,
                            t);
    INFO(r.out);
    REQUIRE(r.rc == 0);
    const size_t at = r.out.find("synth_val");
    REQUIRE(at != std::string::npos);
    double pairs = 0, acc = -1;
    REQUIRE(std::sscanf(r.out.c_str() + at, "synth_val %lf %lf", &pairs, &acc) == 2);
    CHECK(pairs == 40);
    CHECK(acc == doctest::Approx(trainer_acc).epsilon(1e-4));
    r = test::run(test::app("embed") + " --device cpu --model " + model_path + " --input " +
                      sets.head + " --out " + (t / "emb.npy"),
                  t);
    REQUIRE(r.rc == 0);
    const engine::NpyArray a = engine::read_npy(t / "emb.npy");
    REQUIRE(a.shape.size() == 2);
    CHECK(a.shape[0] == data::RecordDataset(sets.head).size());
    CHECK(a.shape[1] == 16);
    r = test::run(test::app("verify") + " --device cpu --model " + (t / "missing.safetensors"), t);
    CHECK(r.rc != 0);
    CHECK(r.out.find("missing.safetensors") != std::string::npos);
}

}  // namespace

TEST_CASE("train: every stage trains on a tiny set, the loss falls, checkpoints reload") {
    const std::string dir = tiny_sets().root + "/stages";
    std::string arcface_model;
    for (const std::string stage : {"arcface", "nr", "unequal"}) {
        INFO("stage ", stage);
        pipeline::TrainOptions o = tiny_options(stage, dir + "/" + stage + "/model");
        if (stage != "arcface") {
            o.pretrained = arcface_model;
            o.lr = 0.02;
        }
        pipeline::Trainer trainer(o);
        std::vector<double> head, tail;
        for (i64 s = 0; s < o.max_steps; ++s) {
            const pipeline::StepLosses l = trainer.step();
            REQUIRE(std::isfinite(l.head));
            REQUIRE(std::isfinite(l.tail));
            head.push_back(l.head);
            tail.push_back(l.tail);
        }
        const double first = mean(head, 0, 8), last = mean(head, head.size() - 8, head.size());
        MESSAGE(stage, ": head loss ", first, " -> ", last, ", tail loss ", tail.front(), " -> ",
                tail.back());
        CHECK(last < first);
        if (stage == "unequal") CHECK(tail.back() > 0.0);
        if (stage != "unequal") CHECK(tail.back() == 0.0);

        // The checkpoint reloads into a fresh model: same parameters, same classifier.
        const std::string prefix = dir + "/" + stage + "/final";
        trainer.save(prefix);
        const std::string model_path = prefix + ".safetensors";
        IResNet<float> reloaded(pipeline::config_from_checkpoint(model_path), 4);
        reloaded.load(model_path, true);
        CHECK(reloaded.params().params().to_host() == trainer.backbone_params());
        i64 C = 0, D = 0;
        CHECK(pipeline::load_classifier(pipeline::state_path_for(model_path), &C, &D) ==
              trainer.classifier());
        CHECK(C == trainer.num_classes());
        if (stage == "arcface") arcface_model = model_path;
        if (stage == "unequal") check_verify_and_embed_apps(model_path, trainer.verify());
    }
}

TEST_CASE("train: N steps straight equal K steps, resume, N-K steps (unequal stage)") {
    const std::string dir = tiny_sets().root + "/resume";
    pipeline::TrainOptions o = tiny_options("unequal", dir + "/straight");
    o.max_steps = 7;
    std::vector<pipeline::StepLosses> straight;
    std::vector<float> params_straight, classifier_straight;
    {
        pipeline::Trainer t(o);
        for (int s = 0; s < 7; ++s) straight.push_back(t.step());
        params_straight = t.backbone_params();
        classifier_straight = t.classifier();
    }
    {
        pipeline::Trainer t(tiny_options("unequal", dir + "/first"));
        for (int s = 0; s < 3; ++s) {
            const pipeline::StepLosses l = t.step();
            CHECK(l.head == straight[s].head);
            CHECK(l.tail == straight[s].tail);
        }
        t.save(dir + "/first-000003");
    }
    pipeline::TrainOptions r = tiny_options("unequal", dir + "/second");
    r.max_steps = 7;
    r.resume = dir + "/first-000003.state.safetensors";
    pipeline::Trainer t(r);
    CHECK(t.steps_done() == 3);
    for (int s = 3; s < 7; ++s) {
        const pipeline::StepLosses l = t.step();
        INFO("step ", s + 1);
        CHECK(l.head == straight[s].head);
        CHECK(l.tail == straight[s].tail);
    }
    CHECK(t.backbone_params() == params_straight);
    CHECK(t.classifier() == classifier_straight);
}

TEST_CASE("mine: planted noise is listed, clean samples are not, and the list denoises the set") {
    const TinySets& sets = tiny_sets();
    data::RecordDataset ds(sets.head);
    const i64 C = ds.num_classes(), D = 32, N = ds.size();
    REQUIRE(C < D);
    // Classifier rows: the first C unit vectors. A clean sample embeds near its label's row; a
    // planted outlier is orthogonal to every row (no class fits: flat softmax, low max_p); a
    // planted mislabelled sample embeds on another class's row (low p_label, high max_p).
    std::vector<float> W((size_t)(C * D), 0.f);
    for (i64 c = 0; c < C; ++c) W[(size_t)(c * D + c)] = 1.f;
    std::vector<int> kind((size_t)N, 0);  // 0 clean, 1 outlier, 2 mislabelled
    for (i64 i = 5; i < N; i += 37) kind[(size_t)i] = 1;
    for (i64 i = 11; i < N; i += 41)
        if (kind[(size_t)i] == 0) kind[(size_t)i] = 2;
    engine::Rng rng(3);
    auto embed = [&](const std::vector<i64>& samples, float* out) {
        for (size_t k = 0; k < samples.size(); ++k) {
            const i64 i = samples[k], y = ds.label(i);
            float* e = out + k * D;
            for (i64 j = 0; j < D; ++j) e[j] = (float)(0.02 * rng.normal());
            if (kind[(size_t)i] == 0) e[y] += 1.f;
            if (kind[(size_t)i] == 1) e[D - 1] += 1.f;  // a direction no class row has
            if (kind[(size_t)i] == 2) e[(y + 1) % C] += 1.f;
        }
    };
    pipeline::MiningOptions mo;
    mo.batch = 24;
    mo.threshold = 0.5;  // a dozen classes: an outlier's max_p is about 1/C
    const std::string list = sets.root + "/noise_list.txt";

    SUBCASE("the seed's rule (max_p < threshold) lists exactly the outliers") {
        const pipeline::MiningResult r = pipeline::mine_noise(ds, D, embed, W.data(), C, mo, list);
        i64 outliers = 0;
        for (int k : kind) outliers += k == 1;
        CHECK((i64)r.noisy.size() == outliers);
        for (i64 i : r.noisy) CHECK(kind[(size_t)i] == 1);
        const data::DenoiseCounts d = data::apply_noise_list(sets.head, list, sets.root + "/den1");
        CHECK(d.removed == outliers);
        CHECK(d.images_out == N - outliers);
    }
    SUBCASE("with --label-threshold the mislabelled samples are listed too") {
        mo.label_threshold = 0.01;
        const pipeline::MiningResult r = pipeline::mine_noise(ds, D, embed, W.data(), C, mo, list);
        i64 noisy = 0;
        for (int k : kind) noisy += k != 0;
        CHECK((i64)r.noisy.size() == noisy);
        for (i64 i : r.noisy) CHECK(kind[(size_t)i] != 0);
    }
}

GPU_TEST_CASE("cuda mining: scores and list match the CPU mining") {
    const TinySets& sets = tiny_sets();
    data::RecordDataset ds(sets.head);
    const i64 C = ds.num_classes(), D = 300, N = ds.size();  // D > 256 threads per row
    // A random classifier; embeddings are noise plus a class row: the label's (clean), the next
    // class's for every third sample (mislabelled: low p_label), none for every fifth (an
    // outsider: low max_p). Embeddings are a pure function of the sample.
    const std::vector<float> W = test::random_vector<float>(C * D, 41);
    auto embed = [&](const std::vector<i64>& samples, float* out) {
        for (size_t k = 0; k < samples.size(); ++k) {
            const i64 i = samples[k], y = (ds.label(i) + (i % 3 == 0)) % C;
            const float a = i % 5 == 0 ? 0.f : 1.f;
            engine::Rng rng(1000 + (u64)i);
            for (i64 j = 0; j < D; ++j)
                out[k * D + j] = (float)(0.3 * rng.normal()) + a * W[(size_t)(y * D + j)];
        }
    };
    pipeline::MiningOptions mo;
    mo.batch = 24;  // N is not a multiple: a short last batch
    mo.margin = arcface_options(8, 0.5);
    mo.threshold = 0.3;
    mo.label_threshold = 0.05;
    const pipeline::MiningResult cpu = pipeline::mine_noise(ds, D, embed, W.data(), C, mo, "");
    engine::GpuContext g(0);
    const pipeline::MiningResult gpu = pipeline::mine_noise(ds, D, embed, W.data(), C, mo, "", &g);
    REQUIRE(gpu.samples == N);
    // Both sides score the same float embeddings in float; cos differs by the order of a
    // 300-term dot product (~1e-6), logits by s times that: 1e-4 relative on the probabilities.
    CHECK(test::max_rel_diff(gpu.max_p.data(), cpu.max_p.data(), N, 1e-30) < 1e-4);
    CHECK(test::max_rel_diff(gpu.p_label.data(), cpu.p_label.data(), N, 1e-30) < 1e-4);
    // The lists agree except for samples within that tolerance of a threshold.
    std::vector<char> listed_cpu((size_t)N, 0), listed_gpu((size_t)N, 0);
    for (i64 i : cpu.noisy) listed_cpu[(size_t)i] = 1;
    for (i64 i : gpu.noisy) listed_gpu[(size_t)i] = 1;
    i64 differ = 0, borderline = 0;
    for (i64 i = 0; i < N; ++i) {
        const bool near = std::fabs(cpu.max_p[(size_t)i] / mo.threshold - 1) < 1e-3 ||
                          std::fabs(cpu.p_label[(size_t)i] / mo.label_threshold - 1) < 1e-3;
        borderline += near;
        differ += !near && listed_cpu[(size_t)i] != listed_gpu[(size_t)i];
    }
    INFO(cpu.noisy.size(), " listed on the CPU, ", gpu.noisy.size(), " on the GPU, ", borderline,
         " borderline");
    CHECK(differ == 0);
    // The data above lists the mislabelled and the outsider samples, not the clean ones.
    CHECK(cpu.noisy.size() > (size_t)N / 3);
    CHECK(cpu.noisy.size() < (size_t)N * 2 / 3);
}

GPU_TEST_CASE("cuda trainer: steps match the CPU trainer; checkpoints and resume on the GPU") {
    // The whole GPU step of the trainer (pinned staging, the classifier and its loss, SGD of the
    // backbone and the classifier, the loss read) against the CPU trainer in float on the same
    // batches. Stages arcface and nr: their batches do not depend on the model. (The unequal
    // stage's tail batches come from mining on the model's embeddings, where float differences
    // may reorder near-equal center distances; it is checked GPU against GPU below.)
    const std::string dir = tiny_sets().root + "/cuda_trainer";
    for (const std::string stage : {"arcface", "nr"}) {
        INFO("stage ", stage);
        pipeline::TrainOptions o = tiny_options(stage, dir + "/" + stage + "_cpu");
        o.max_steps = 4;
        std::vector<double> loss_cpu;
        std::vector<float> params_cpu, classifier_cpu;
        {
            pipeline::Trainer t(o);
            for (int s = 0; s < 4; ++s) loss_cpu.push_back(t.step().head);
            params_cpu = t.backbone_params();
            classifier_cpu = t.classifier();
        }
        o.device = "cuda";
        o.prefix = dir + "/" + stage + "_gpu";
        pipeline::Trainer t(o);
        for (int s = 0; s < 4; ++s) {
            const double l = t.step().head;
            INFO("step ", s + 1, ": gpu ", l, ", cpu ", loss_cpu[(size_t)s]);
            // float on both sides, reductions in other orders: ~1e-5 after a few steps
            CHECK(std::fabs(l - loss_cpu[(size_t)s]) <= 1e-3 * std::fabs(loss_cpu[(size_t)s]));
        }
        CHECK(test::scaled_diff(t.backbone_params(), params_cpu) < 1e-3);
        CHECK(test::scaled_diff(t.classifier(), classifier_cpu) < 1e-3);
        // A checkpoint written from the GPU reloads on the CPU with the same values.
        t.save(dir + "/" + stage + "_gpu_final");
        IResNet<float> reloaded(
            pipeline::config_from_checkpoint(dir + "/" + stage + "_gpu_final.safetensors"), 4);
        reloaded.load(dir + "/" + stage + "_gpu_final.safetensors", true);
        CHECK(reloaded.params().params().to_host() == t.backbone_params());
    }

    // Unequal stage on the GPU: 5 steps straight equal 2 steps + resume + 3 steps, bit for bit
    // (deterministic cuDNN algorithms, our reductions have a fixed order).
    pipeline::TrainOptions o = tiny_options("unequal", dir + "/unequal_straight");
    o.device = "cuda";
    o.max_steps = 5;
    std::vector<pipeline::StepLosses> straight;
    std::vector<float> params_straight;
    {
        pipeline::Trainer t(o);
        for (int s = 0; s < 5; ++s) straight.push_back(t.step());
        params_straight = t.backbone_params();
    }
    for (const auto& l : straight) {
        CHECK(std::isfinite(l.head));
        CHECK(l.tail > 0.0);
    }
    o.prefix = dir + "/unequal_first";
    {
        pipeline::Trainer t(o);
        for (int s = 0; s < 2; ++s) t.step();
        t.save(dir + "/unequal_first-000002");
    }
    o.prefix = dir + "/unequal_second";
    o.resume = dir + "/unequal_first-000002.state.safetensors";
    pipeline::Trainer t(o);
    for (int s = 2; s < 5; ++s) {
        const pipeline::StepLosses l = t.step();
        INFO("step ", s + 1);
        CHECK(l.head == straight[(size_t)s].head);
        CHECK(l.tail == straight[(size_t)s].tail);
    }
    CHECK(t.backbone_params() == params_straight);
}
