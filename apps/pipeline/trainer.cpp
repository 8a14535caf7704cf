// The training loop (see trainer.h). The step is a fixed sequence of calls; the CPU reference and
// the CUDA backend differ only in which function of each op is called and where buffers live.
#include "apps/pipeline/trainer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "apps/pipeline/embedder.h"
#include "apps/pipeline/evaluate.h"
#include "apps/pipeline/model_io.h"
#include "data/bag_sampler.h"
#include "data/recordio.h"
#include "engine/comm.h"
#include "engine/error.h"
#include "engine/lr_schedule.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "engine/sgd.h"
#include "engine/timer.h"
#include "layers/iresnet.h"
#include "losses/center_dispersed.h"
#include "losses/normalized_classifier.h"

namespace pipeline {

using engine::ArgError;
using engine::Buffer;
using engine::Device;
using engine::FormatError;
using engine::str;

constexpr i64 kImagesPerIdentity = 3;

MarginSoftmaxOptions TrainOptions::loss_options() const {
    MarginSoftmaxOptions o;
    if (loss_type == 4) o = arcface_options(margin_s, margin_m);
    else if (loss_type == 5) o = combined_margin_options(margin_s, margin_a, margin_m, margin_b);
    else if (loss_type == 2) o = cosface_options(margin_s, margin_m);
    else throw ArgError(str("--loss-type ", loss_type, " is not supported (2 CosFace, 4 ArcFace, ",
                            "5 combined margin)"));
    o.margin_gradient = margin_gradient;
    if (stage == "nr" || stage == "unequal") o = with_nr(o, noise_beta);
    o.seed_nr_grad_scale = seed_nr_grad_scale;
    return o;
}

namespace {

void make_parent_dirs(const std::string& path) {
    for (size_t i = 1; i < path.size(); ++i)
        if (path[i] == '/') ::mkdir(path.substr(0, i).c_str(), 0755);
}

bool file_exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

std::string step_name(const std::string& prefix, i64 step) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "-%06lld", (long long)step);
    return prefix + buf;
}

}  // namespace

struct Trainer::Impl {
    TrainOptions opt;
    MarginSoftmaxOptions lopt;
    std::unique_ptr<engine::GpuContext> gpu;
    Device dev = Device::cpu;
    engine::Comm comm;

    std::unique_ptr<data::RecordDataset> head_ds, tail_ds;
    std::unique_ptr<data::Loader> head_loader, tail_loader;
    std::unique_ptr<data::BagSampler> bag;
    std::unique_ptr<IResNet<float>> model;
    std::unique_ptr<Embedder> embedder;
    std::vector<VerificationTarget> targets;

    i64 C = 0, D = 0, S = 0, nh = 0, nt = 0, P = 0;
    // Classifier (fc7) and its gradient, momentum of both parameter sets.
    Buffer<float> W, dW, vW, vB;
    // Step buffers: input images, labels, the one (nh, C) cos/gradient buffer, normalised copies,
    // the embedding gradient, the center-dispersed cache, device-side loss scalars.
    Buffer<float> input, cosg, xn, xnorm, wn, wnorm, d_emb, cd_cache, loss_rows, loss_scalars;
    Buffer<std::int32_t> labels;
    std::vector<float> host_input;
    std::vector<std::int32_t> host_labels, tail_labels;
    // GPU: two pinned staging buffers, used alternately, each with the event recorded after the
    // upload that reads it: the host refills one only when its previous upload has run, so the
    // step never waits for the whole stream (and pageable uploads, which would, are avoided).
    struct Staging {
        float* images = nullptr;
        std::int32_t* labels = nullptr;
        engine::StreamEvent uploaded;
    };
    Staging staging[2];
    ~Impl() {
        for (auto& st : staging) {
            engine::pinned_free(st.images);
            engine::pinned_free(st.labels);
        }
    }

    std::unique_ptr<engine::LrSchedule> schedule;
    i64 step = 0, total = 0;
    i64 steps_per_epoch = 1;
    double epoch = 0;  // fractional: epochs of the head set done
    double best_acc = -1;
    StepLosses last;

    bool unequal() const { return opt.stage == "unequal"; }
    bool on_gpu() const { return gpu != nullptr; }

    void build();
    void init_classifier(u64 seed);
    void load_pretrained();
    void resume(const std::string& state_path);
    void save(const std::string& path_prefix);
    StepLosses train_step(bool read);
    void embed_tail(const std::vector<i64>& samples, float* out);
};

void Trainer::Impl::build() {
    ENGINE_CHECK(opt.stage == "arcface" || opt.stage == "nr" || opt.stage == "unequal", ArgError,
                 "--stage must be arcface, nr or unequal, not '", opt.stage, "'");
    ENGINE_CHECK(!opt.data_dir.empty(), ArgError, "--data-dir is required");
    ENGINE_CHECK(opt.verbose > 0 && opt.log_every > 0, ArgError,
                 "--verbose and --log-every must be positive");
    ENGINE_CHECK(!unequal() || !opt.data_dir_tail.empty(), ArgError,
                 "--stage unequal needs --data-dir-tail");
    ENGINE_CHECK(opt.batch_size > 0, ArgError, "--batch-size must be positive");
    lopt = opt.loss_options();
    gpu = open_device(opt.device);
    dev = on_gpu() ? Device::cuda : Device::cpu;

    head_ds = std::make_unique<data::RecordDataset>(opt.data_dir);
    C = head_ds->num_classes();
    ENGINE_CHECK(C > 0, FormatError, opt.data_dir, ": no classes");
    IResNetConfig cfg = IResNetConfig::named(opt.network);
    cfg.width = opt.width;
    cfg.input_size = opt.input_size;
    cfg.num_features = opt.num_features;
    cfg.dropout = opt.dropout;
    S = cfg.input_size;
    D = cfg.num_features;
    nh = opt.batch_size;
    nt = unequal() ? opt.tail_ids * kImagesPerIdentity : 0;
    const i64 max_batch = std::max({nh + nt, opt.mining_batch, (i64)64});
    model = std::make_unique<IResNet<float>>(cfg, max_batch, gpu.get());
    // cuDNN plans and workspace for the step's batch and the tail-mining chunk now, not in a step.
    model->prepare(nh + nt);
    if (unequal()) model->prepare(std::max<i64>(1, opt.mining_batch));  // <= max_batch
    P = model->params().num_params();
    embedder = std::make_unique<Embedder>(*model, gpu.get());

    const bool step1 = opt.stage == "arcface";
    data::LoaderConfig lc;
    lc.batch_size = nh;
    lc.height = lc.width = (int)S;
    lc.size_policy = opt.resize ? data::SizePolicy::resize : data::SizePolicy::reject;
    lc.augment = step1 ? data::AugmentConfig::step1(opt.seed) : data::AugmentConfig::step23(opt.seed);
    lc.shuffle_seed = opt.seed;
    lc.workers = opt.workers;
    lc.pin_memory = on_gpu();  // a CPU run never touches the GPU
    // (the head loader is created after a resume has set the start position, below)

    if (unequal()) {
        tail_ds = std::make_unique<data::RecordDataset>(opt.data_dir_tail);
        data::LoaderConfig tc = lc;
        tc.batch_size = std::max<i64>(1, opt.mining_batch);
        tc.prefetch = 1;
        tc.workers = std::max(1, opt.workers);
        tail_loader = std::make_unique<data::Loader>(*tail_ds, tc);
        data::BagSamplerConfig bc;
        bc.bag_size = opt.bag_size;
        bc.batchsize_id = nt;
        bc.images_per_identity = kImagesPerIdentity;
        bc.embedding_dim = D;
        bc.mining_batch = opt.mining_batch;
        bc.refill_multiplier = opt.refill_multiplier;
        bc.seed = opt.seed + 17;
        bag = std::make_unique<data::BagSampler>(
            tail_ds->identities(), bc,
            [this](const std::vector<i64>& s, float* out) { embed_tail(s, out); });
    }

    W = Buffer<float>(C * D, dev);
    dW = Buffer<float>(C * D, dev);
    vW = Buffer<float>(C * D, dev);
    vB = Buffer<float>(P, dev);
    input = Buffer<float>(on_gpu() ? (nh + nt) * 3 * S * S : 0, dev);
    host_input.resize(on_gpu() ? 0 : (size_t)((nh + nt) * 3 * S * S));
    host_labels.resize((size_t)nh);
    if (on_gpu())
        for (auto& st : staging) {
            st.images = (float*)engine::pinned_alloc((size_t)((nh + nt) * 3 * S * S) * sizeof(float));
            st.labels = (std::int32_t*)engine::pinned_alloc((size_t)nh * sizeof(std::int32_t));
        }
    labels = Buffer<std::int32_t>(nh, dev);
    cosg = Buffer<float>(nh * C, dev);
    xn = Buffer<float>(nh * D, dev);
    xnorm = Buffer<float>(nh, dev);
    wn = Buffer<float>(C * D, dev);
    wnorm = Buffer<float>(C, dev);
    d_emb = Buffer<float>((nh + nt) * D, dev);
    cd_cache = Buffer<float>(nt ? center_dispersed_cache_numel(nt, D, kImagesPerIdentity) : 0, dev);
    loss_rows = Buffer<float>(nh, dev);
    loss_scalars = Buffer<float>(2, dev);
    schedule = std::make_unique<engine::LrSchedule>(opt.lr, opt.lr_steps);
    // The classifier backward's GEMM chunks use the shared workspace: reserve it now so that no
    // step grows it (growing synchronises the stream).
    if (gpu) gpu->reserve_workspace(normalized_classifier_workspace_bytes(C, D));

    model->init(opt.seed);
    model->set_dropout_rng(opt.seed + 101, 0);
    init_classifier(opt.seed + 1);
    // One rank, Remainder::drop: the partial last batch of an epoch is not used (data/loader.h).
    steps_per_epoch = head_ds->size() / nh;
    ENGINE_CHECK(steps_per_epoch > 0, ArgError, opt.data_dir, ": ", head_ds->size(),
                 " images is less than one batch of ", nh);
    total = opt.max_steps > 0 ? opt.max_steps : opt.end_epoch * steps_per_epoch;
    ENGINE_CHECK(total > 0, ArgError, "give --max-steps or --end-epoch");

    data::LoaderPosition start;
    if (!opt.resume.empty()) {
        resume(opt.resume);
        start.epoch = step / steps_per_epoch;
        start.step = step % steps_per_epoch;
    } else if (!opt.pretrained.empty()) {
        load_pretrained();
    }
    head_loader = std::make_unique<data::Loader>(*head_ds, lc, start);

    for (const auto& t : opt.targets)
        targets.push_back(load_target(t, opt.data_dir, (int)S));
}

void Trainer::Impl::init_classifier(u64 seed) {
    // Xavier gaussian, magnitude 2 over fan_out (= C rows), as the backbone's fc (SPEC.md 3).
    engine::Rng rng(seed);
    std::vector<float> w((size_t)(C * D));
    const double stddev = std::sqrt(2.0 / (double)C);
    for (auto& x : w) x = (float)(rng.normal() * stddev);
    W.copy_from_host(w);
    vW.zero();
}

void Trainer::Impl::load_pretrained() {
    model->load(opt.pretrained, true);
    const std::string sp = state_path_for(opt.pretrained);
    if (opt.drop_classifier) {
        std::fprintf(stderr, "pretrained %s: classifier dropped (re-initialised)\n",
                     opt.pretrained.c_str());
        return;
    }
    if (!file_exists(sp)) {
        std::fprintf(stderr, "pretrained %s: no %s, classifier initialised fresh\n",
                     opt.pretrained.c_str(), sp.c_str());
        return;
    }
    i64 c = 0, d = 0;
    std::vector<float> w = load_classifier(sp, &c, &d);
    ENGINE_CHECK(c == C && d == D, FormatError, sp, ": classifier is ", c, " x ", d,
                 " but this run has ", C, " classes x ", D,
                 " features (use --drop-classifier to start a new one)");
    W.copy_from_host(w);
    std::fprintf(stderr, "pretrained %s: backbone and classifier (%lld classes) loaded\n",
                 opt.pretrained.c_str(), (long long)C);
}

void Trainer::Impl::embed_tail(const std::vector<i64>& samples, float* out) {
    const data::Batch& b = tail_loader->load(samples, 0, false);
    embedder->embed(b.images, b.n, out);
}

// One step. Every op reads and writes the buffers above; on the GPU all of it is queued on one
// stream and nothing synchronises unless `read` asks for the loss values.
StepLosses Trainer::Impl::train_step(bool read) {
    const i64 img = 3 * S * S;
    const data::Batch& hb = head_loader->get();
    ENGINE_CHECK(hb.n == nh, engine::DataError, "head loader returned ", hb.n, " samples, expected ",
                 nh);
    epoch = (double)hb.position.epoch + (double)(hb.position.step + 1) / (double)steps_per_epoch;
    // The step's input: [head | tail] images, head labels (host memory on the CPU path, a pinned
    // staging buffer on the GPU path).
    Staging& st = staging[step % 2];
    st.uploaded.host_wait();
    float* input_host = on_gpu() ? st.images : host_input.data();
    std::int32_t* labels_host = on_gpu() ? st.labels : host_labels.data();
    std::memcpy(input_host, hb.images, (size_t)(nh * img) * sizeof(float));
    std::memcpy(labels_host, hb.labels, (size_t)nh * sizeof(std::int32_t));
    if (nt) {
        const std::vector<i64> idx = bag->next_batch();
        const data::Batch& tb = tail_loader->load(idx, step, true);
        ENGINE_CHECK(tb.n == nt, engine::DataError, "tail batch has ", tb.n, " samples, expected ",
                     nt);
        std::memcpy(input_host + nh * img, tb.images, (size_t)(nt * img) * sizeof(float));
        tail_labels.assign(tb.labels, tb.labels + nt);
        // The CPU loss checks that each group of k shares one identity; the CUDA one takes no
        // labels, so check here (host data, no synchronisation).
        if (on_gpu())
            for (i64 i = 0; i < nt; ++i) {
                const i64 first = i / kImagesPerIdentity * kImagesPerIdentity;
                ENGINE_CHECK(tail_labels[(size_t)i] == tail_labels[(size_t)first],
                             engine::DataError, "tail samples ", first, "..",
                             first + kImagesPerIdentity - 1, " should be one identity, but sample ",
                             i, " has label ", tail_labels[(size_t)i], " and sample ", first,
                             " label ", tail_labels[(size_t)first]);
            }
    }
    const i64 n = nh + nt;
    const float lr = (float)schedule->lr_at(step);
    StepLosses out;
    model->zero_grad();

    if (!on_gpu()) {
        const float* emb = model->forward(host_input.data(), n, true);
        normalized_classifier_forward_cpu(cosg.data(), xn.data(), xnorm.data(), wn.data(),
                                          wnorm.data(), emb, W.data(), nh, C, D);
        out.head = margin_softmax_loss_cpu(cosg.data(), (float*)nullptr, host_labels.data(), nh,
                                           C, lopt);
        dW.zero();
        normalized_classifier_backward_cpu(d_emb.data(), dW.data(), cosg.data(), xn.data(),
                                           xnorm.data(), wn.data(), wnorm.data(), nh, C, D);
        if (nt) {
            out.tail = center_dispersed_forward_cpu(cd_cache.data(), emb + nh * D,
                                                    tail_labels.data(), nt, D, kImagesPerIdentity,
                                                    opt.interweight);
            center_dispersed_backward_cpu(d_emb.data() + nh * D, cd_cache.data(), nt, D,
                                          kImagesPerIdentity, opt.interweight);
        }
        model->backward(d_emb.data());
        comm.allreduce_mean(model->params().grads().data(), P, nullptr);
        comm.allreduce_mean(dW.data(), C * D, nullptr);
        engine::sgd_momentum_update_cpu(model->params().params().data(), vB.data(),
                                        model->params().grads().data(), P, lr, (float)opt.mom,
                                        (float)opt.wd, 1.0f);
        engine::sgd_momentum_update_cpu(W.data(), vW.data(), dW.data(), C * D, lr,
                                        (float)opt.mom, (float)opt.wd, 1.0f);
    } else {
#ifdef ENGINE_CUDA
        engine::GpuContext& g = *gpu;
        engine::device_copy_async(input.data(), input_host, (size_t)(n * img) * sizeof(float),
                                  g.stream());
        engine::device_copy_async(labels.data(), labels_host, (size_t)nh * sizeof(std::int32_t),
                                  g.stream());
        st.uploaded.record(g.stream());
        const float* emb = model->forward(input.data(), n, true);
        normalized_classifier_forward_cuda(cosg.data(), xn.data(), xnorm.data(), wn.data(),
                                           wnorm.data(), emb, W.data(), nh, C, D, g);
        margin_softmax_loss_cuda(cosg.data(), loss_rows.data(), loss_scalars.data(), labels.data(),
                                 nh, C, lopt, g);
        engine::device_zero_async(dW.data(), dW.bytes(), g.stream());
        normalized_classifier_backward_cuda(d_emb.data(), dW.data(), cosg.data(), xn.data(),
                                            xnorm.data(), wn.data(), wnorm.data(), nh, C, D, g);
        if (nt) {
            center_dispersed_forward_cuda(loss_scalars.data() + 1, cd_cache.data(), emb + nh * D,
                                          nt, D, kImagesPerIdentity, opt.interweight, g);
            center_dispersed_backward_cuda(d_emb.data() + nh * D, cd_cache.data(), nt, D,
                                           kImagesPerIdentity, opt.interweight, 1.0, g);
        }
        model->backward(d_emb.data());
        comm.allreduce_mean(model->params().grads().data(), P, &g);
        comm.allreduce_mean(dW.data(), C * D, &g);
        engine::sgd_momentum_update_cuda(model->params().params().data(), vB.data(),
                                         model->params().grads().data(), P, lr, (float)opt.mom,
                                         (float)opt.wd, 1.0f, g);
        engine::sgd_momentum_update_cuda(W.data(), vW.data(), dW.data(), C * D, lr,
                                         (float)opt.mom, (float)opt.wd, 1.0f, g);
        if (read) {
            // Log steps only. to_host copies on the legacy stream, which is not ordered with the
            // context's non-blocking stream: wait for the step first, or the values are stale.
            g.synchronize();
            const std::vector<float> l = loss_scalars.to_host();
            out.head = l[0];
            out.tail = nt ? l[1] : 0.0;
        } else {
            out = last;
        }
#endif
    }
    ++step;
    last = out;
    return out;
}

void Trainer::Impl::save(const std::string& path_prefix) {
    make_parent_dirs(path_prefix);
    const std::string model_path = path_prefix + ".safetensors";
    model->save(model_path);
    std::vector<engine::SafeTensor> ts;
    const std::vector<float> w = W.to_host(), vw = vW.to_host(), vb = vB.to_host();
    ts.push_back(engine::make_safetensor("fc7.weight", {C, D}, w.data()));
    ts.push_back(engine::make_safetensor("momentum.fc7", {C, D}, vw.data()));
    ts.push_back(engine::make_safetensor("momentum.backbone", {P}, vb.data()));
    const std::vector<i64> counters = {step, (i64)model->dropout_seed(),
                                       (i64)model->dropout_counter()};
    ts.push_back(engine::make_safetensor_i64("counters", {(i64)counters.size()}, counters.data()));
    if (bag) {
        const std::vector<i64> packed = bag->state().pack();
        ts.push_back(engine::make_safetensor_i64("bag_sampler", {(i64)packed.size()}, packed.data()));
    }
    std::map<std::string, std::string> meta;
    meta["stage"] = opt.stage;
    meta["model"] = model_path;
    meta["best_acc"] = str(best_acc);
    meta["classes"] = str(C);
    engine::write_safetensors(path_prefix + ".state.safetensors", ts, meta);
}

void Trainer::Impl::resume(const std::string& state_path) {
    std::map<std::string, std::string> meta;
    const auto ts = engine::read_safetensors(state_path, &meta);
    std::string model_path = state_path;
    const std::string suffix = ".state.safetensors";
    ENGINE_CHECK(model_path.size() > suffix.size() &&
                     model_path.compare(model_path.size() - suffix.size(), suffix.size(), suffix) == 0,
                 ArgError, "--resume expects a PREFIX-NNNNNN.state.safetensors file, got ",
                 state_path);
    model_path.replace(model_path.size() - suffix.size(), suffix.size(), ".safetensors");
    model->load(model_path, true);
    std::map<std::string, const engine::SafeTensor*> by_name;
    for (const auto& t : ts) by_name[t.name] = &t;
    auto need = [&](const std::string& name, i64 numel) -> const engine::SafeTensor& {
        auto it = by_name.find(name);
        ENGINE_CHECK(it != by_name.end(), FormatError, state_path, ": no tensor ", name);
        i64 count = 1;
        for (i64 d : it->second->shape) count *= d;
        ENGINE_CHECK(numel < 0 || count == numel, FormatError, state_path, ": ", name, " has ",
                     count, " elements, this run needs ", numel);
        return *it->second;
    };
    W.copy_from_host(need("fc7.weight", C * D).as<float>());
    vW.copy_from_host(need("momentum.fc7", C * D).as<float>());
    vB.copy_from_host(need("momentum.backbone", P).as<float>());
    const auto& c = need("counters", 3);
    std::vector<i64> counters(3);
    std::memcpy(counters.data(), c.data.data(), 3 * sizeof(i64));
    step = counters[0];
    model->set_dropout_rng((u64)counters[1], (u64)counters[2]);
    if (bag) {
        const auto& b = need("bag_sampler", -1);
        std::vector<i64> packed(b.data.size() / sizeof(i64));
        std::memcpy(packed.data(), b.data.data(), b.data.size());
        bag->restore(data::BagSamplerState::unpack(packed));
    }
    auto it = meta.find("best_acc");
    if (it != meta.end()) best_acc = std::atof(it->second.c_str());
    std::fprintf(stderr, "resumed %s at step %lld\n", state_path.c_str(), (long long)step);
}

Trainer::Trainer(const TrainOptions& opt) : impl_(std::make_unique<Impl>()) {
    impl_->opt = opt;
    impl_->build();
}
Trainer::~Trainer() = default;

StepLosses Trainer::step(bool read_losses) { return impl_->train_step(read_losses); }
i64 Trainer::steps_done() const { return impl_->step; }
i64 Trainer::total_steps() const { return impl_->total; }
i64 Trainer::num_classes() const { return impl_->C; }
double Trainer::current_lr() const { return impl_->schedule->lr_at(impl_->step); }
void Trainer::save(const std::string& path_prefix) { impl_->save(path_prefix); }
// (the GPU step's kernels may still be writing the parameters: wait for them before the copy)
std::vector<float> Trainer::backbone_params() const {
    if (impl_->gpu) impl_->gpu->synchronize();
    return impl_->model->params().params().to_host();
}
std::vector<float> Trainer::classifier() const {
    if (impl_->gpu) impl_->gpu->synchronize();
    return impl_->W.to_host();
}

double Trainer::verify() {
    Impl& m = *impl_;
    if (m.targets.empty()) return NAN;
    double sum = 0;
    for (const auto& t : m.targets) sum += evaluate_target(t, *m.embedder).accuracy_mean;
    return sum / (double)m.targets.size();
}

void Trainer::run() {
    Impl& m = *impl_;
    const std::string metrics_path = m.opt.prefix + ".metrics.jsonl";
    make_parent_dirs(metrics_path);
    engine::MetricsWriter metrics(metrics_path, !m.opt.resume.empty());
    engine::Progress progress(m.total, m.opt.log_every);
    engine::Timer clock;
    std::fprintf(stderr,
                 "train %s: %s width %g input %lld, %lld classes, %lld head images%s, batch %lld"
                 "%s, %lld steps on %s, %lld parameters\n",
                 m.opt.stage.c_str(), m.opt.network.c_str(), m.opt.width, (long long)m.S,
                 (long long)m.C, (long long)m.head_ds->size(),
                 m.tail_ds ? str(" + ", m.tail_ds->identities().size(), " tail identities").c_str()
                           : "",
                 (long long)m.nh, m.nt ? str(" + ", m.nt, " tail").c_str() : "",
                 (long long)m.total, m.on_gpu() ? "cuda" : "cpu", (long long)m.P);

    auto evaluate_and_save = [&]() {
        std::vector<engine::NamedValue> vals;
        double sum = 0;
        for (const auto& t : m.targets) {
            const data::VerificationResult r = evaluate_target(t, *m.embedder);
            progress.message(r.summary(t.name));
            // key names as tools/plot.py expects them (NAME_acc, NAME_acc_std)
            vals.push_back({t.name + "_acc", r.accuracy_mean});
            vals.push_back({t.name + "_acc_std", r.accuracy_std});
            vals.push_back({t.name + "_xnorm", r.xnorm});
            vals.push_back({t.name + "_tar", r.val_mean});
            sum += r.accuracy_mean;
        }
        const std::string name = step_name(m.opt.prefix, m.step);
        m.save(name);
        if (!m.targets.empty()) {
            const double acc = sum / (double)m.targets.size();
            vals.push_back({"mean_acc", acc});
            metrics.write(m.step, clock.seconds(), vals, {{"kind", "verification"}});
            if (acc > m.best_acc) {
                m.best_acc = acc;
                m.save(m.opt.prefix + "-best");
                progress.message(str("checkpoint ", name, " (best so far: mean accuracy ", acc,
                                     ")"));
                return;
            }
        }
        progress.message(str("checkpoint ", name));
    };

    while (m.step < m.total) {
        const bool log_now = (m.step + 1) % m.opt.log_every == 0 || m.step + 1 == m.total;
        const StepLosses l = m.train_step(log_now || !m.on_gpu());
        std::vector<engine::NamedValue> losses = {
            {m.opt.stage == "arcface" ? "loss_arcface" : "loss_nr", l.head}};
        if (m.nt) losses.push_back({"loss_center", l.tail});
        const double lr = m.schedule->lr_at(m.step - 1);
        progress.update(m.step, m.epoch, m.nh + m.nt, losses, lr);
        if (log_now) {
            std::vector<engine::NamedValue> vals = losses;
            vals.push_back({"loss", l.total()});
            vals.push_back({"lr", lr});
            vals.push_back({"epoch", m.epoch});
            vals.push_back({"images_per_s", progress.last().images_per_s});
            metrics.write(m.step, clock.seconds(), vals, {{"kind", "train"}});
        }
        if (!std::isfinite(l.total()))
            throw engine::DataError(str("loss is not finite at step ", m.step,
                                        " (lower --lr or check the data)"));
        if (m.step % m.opt.verbose == 0 || m.step == m.total) evaluate_and_save();
    }
    progress.finish();
}

}  // namespace pipeline
