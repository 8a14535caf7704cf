// train: the three training stages of Unequal-Training (arcface, nr, unequal); all logic lives in
// apps/pipeline/trainer.cpp, this file maps the seed's flags onto TrainOptions.
#include <cstdio>
#include <exception>

#include "apps/pipeline/flags.h"
#include "apps/pipeline/trainer.h"
#include "engine/error.h"
#include "engine/lr_schedule.h"

int main(int argc, char** argv) {
    pipeline::Flags f("train",
                      "Trains an iresnet face-recognition network with one stage of Unequal-Training:\n"
                      "  --stage arcface  ArcFace on the head set (step 1)\n"
                      "  --stage nr       NR loss on the (denoised) head set (step 2b)\n"
                      "  --stage unequal  NR on the head stream + center-dispersed loss on mined tail\n"
                      "                   triples (step 3)\n"
                      "Writes PREFIX-NNNNNN.safetensors (backbone, loads in PyTorch iresnet), \n"
                      "PREFIX-NNNNNN.state.safetensors (classifier, optimiser state), PREFIX-best.*,\n"
                      "PREFIX.metrics.jsonl.");
    f.add("stage", "arcface", "arcface | nr | unequal");
    f.add("network", "r50", "r18 | r34 | r50 | r100");
    f.add("width", "1", "channel multiplier (1 = the real network)");
    f.add("input-size", "112", "input images are S x S (multiple of 16)");
    f.add("emb-size", "512", "embedding size");
    f.add("dropout", "0.4", "dropout before the embedding fc");
    f.add("loss-type", "4", "4 ArcFace (seed), 5 combined margin (a, m, b), 2 CosFace (m)");
    f.add("margin-s", "64", "scale s");
    f.add("margin-m", "0.5", "ArcFace m / combined m2 / CosFace m");
    f.add("margin-a", "1", "combined margin m1");
    f.add("margin-b", "0", "combined margin m3");
    f.add_switch("no-margin-grad", "no gradient through the margin (PyTorch InsightFace)");
    f.add("noise-beta", "0.9", "NR loss beta (stages nr and unequal)");
    f.add_switch("seed-nr-scale", "scale the NR gradient by 1/4 as the seed's two-GPU runs did");
    f.add("data-dir", "", "head training set (train.rec, train.idx, property)");
    f.add("data-dir-tail", "", "tail training set (stage unequal)");
    f.add("batch-size", "128", "head samples per step (batch-size1)");
    f.add("tail-ids", "120", "tail identities per step, 3 images each (batchsize_id / 3)");
    f.add("bag-size", "3600", "tail images per mined bag");
    f.add("mining-batch", "40", "batch size when embedding a bag (batch-size2)");
    f.add("refill-multiplier", "100", "a tail refill mines >= N x tail batch samples (seed: 100)");
    f.add("interweight", "1", "weight of the center-dispersed loss");
    f.add_switch("resize", "resize images to --input-size (default: reject other sizes)");
    f.add("workers", "2", "loader threads");
    f.add("lr", "0.1", "base learning rate");
    f.add("lr-steps", "", "comma-separated steps where lr is divided by 10");
    f.add("wd", "0.0005", "weight decay");
    f.add("mom", "0.9", "momentum");
    f.add("max-steps", "0", "steps to run (0: use --end-epoch)");
    f.add("end-epoch", "0", "epochs of the head set to run");
    f.add("pretrained", "", "start from this backbone checkpoint (and its .state classifier)");
    f.add_switch("drop-classifier", "with --pretrained: start a new classifier");
    f.add("resume", "", "continue exactly from PREFIX-NNNNNN.state.safetensors");
    f.add("prefix", "model/model", "checkpoint and metrics path prefix");
    f.add("verbose", "2000", "verification and checkpoint every N steps (and at the end)");
    f.add("log-every", "20", "progress line / metrics every N steps");
    f.add("target", "lfw,cfp_fp,agedb_30", "verification sets: names in --data-dir or .bin paths");
    f.add("seed", "0", "random seed (initialisation, shuffling, augmentation, dropout, bags)");
    f.add("device", "auto", "cpu | cuda | auto");
    try {
        if (!f.parse(argc, argv)) return 0;
        pipeline::TrainOptions o;
        o.stage = f.str("stage");
        o.network = f.str("network");
        o.width = f.num("width");
        o.input_size = (int)f.integer("input-size");
        o.num_features = (int)f.integer("emb-size");
        o.dropout = f.num("dropout");
        o.loss_type = (int)f.integer("loss-type");
        o.margin_s = f.num("margin-s");
        o.margin_m = f.num("margin-m");
        o.margin_a = f.num("margin-a");
        o.margin_b = f.num("margin-b");
        o.margin_gradient = !f.on("no-margin-grad");
        o.noise_beta = f.num("noise-beta");
        o.seed_nr_grad_scale = f.on("seed-nr-scale");
        o.data_dir = f.str("data-dir");
        o.data_dir_tail = f.str("data-dir-tail");
        o.batch_size = f.integer("batch-size");
        o.tail_ids = f.integer("tail-ids");
        o.bag_size = f.integer("bag-size");
        o.mining_batch = f.integer("mining-batch");
        o.interweight = f.num("interweight");
        o.refill_multiplier = f.integer("refill-multiplier");
        o.resize = f.on("resize");
        o.workers = (int)f.integer("workers");
        o.lr = f.num("lr");
        o.lr_steps = engine::parse_lr_steps(f.str("lr-steps"));
        o.wd = f.num("wd");
        o.mom = f.num("mom");
        o.max_steps = f.integer("max-steps");
        o.end_epoch = f.integer("end-epoch");
        o.pretrained = f.str("pretrained");
        o.drop_classifier = f.on("drop-classifier");
        o.resume = f.str("resume");
        o.prefix = f.str("prefix");
        o.verbose = f.integer("verbose");
        o.log_every = f.integer("log-every");
        o.targets = f.list("target");
        o.seed = (u64)f.integer("seed");
        o.device = f.str("device");
        pipeline::Trainer trainer(o);
        trainer.run();
    } catch (const std::exception& e) {  // engine errors, bad_alloc, ...
        std::fprintf(stderr, "train: %s\n", e.what());
        return 1;
    }
    return 0;
}
