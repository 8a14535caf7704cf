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
#include "engine/rng.h"
#include "engine/npy.h"
#include "layers/iresnet.h"
#include "tests/test_files.h"

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
