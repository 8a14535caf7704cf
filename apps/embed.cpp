// embed: embeddings of images (files, a folder DIR/<identity>/<images>, or a .rec set) with a
// checkpoint, written as .npy (float32, (N, D)), with labels and the image list beside them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <sys/stat.h>

#include "apps/pipeline/embedder.h"
#include "apps/pipeline/flags.h"
#include "apps/pipeline/model_io.h"
#include "data/lst.h"
#include "data/recordio.h"
#include "engine/error.h"
#include "engine/npy.h"

namespace {
bool is_dir(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool has_suffix(const std::string& s, const std::string& x) {
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}
std::vector<u8> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    ENGINE_CHECK(in, engine::IoError, path, ": cannot open");
    return std::vector<u8>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
}  // namespace

int main(int argc, char** argv) {
    pipeline::Flags f("embed",
                      "Embeds images with a backbone checkpoint. --input is a .rec set (a directory\n"
                      "with train.rec or the .rec file), a folder DIR/<identity>/<images>, or a\n"
                      "comma-separated list of image files. Writes OUT (float32 (N, D) .npy),\n"
                      "OUT.labels.npy (int64) and OUT.txt (one source per line).");
    f.add("model", "", "backbone checkpoint (.safetensors)");
    f.add("input", "", "images: .rec set, folder, or files");
    f.add("out", "embeddings.npy", "output .npy");
    f.add_switch("flip", "add the embedding of the mirrored image (as verification does)");
    f.add_switch("normalize", "L2-normalise each embedding");
    f.add("batch-size", "64", "images per forward");
    f.add("device", "auto", "cpu | cuda | auto");
    try {
        if (!f.parse(argc, argv)) return 0;
        ENGINE_CHECK(!f.str("model").empty() && !f.str("input").empty(), engine::ArgError,
                     "embed: --model and --input are required (see --help)");
        auto gpu = pipeline::open_device(f.str("device"));
        const IResNetConfig cfg = pipeline::config_from_checkpoint(f.str("model"));
        IResNet<float> model(cfg, f.integer("batch-size"), gpu.get());
        model.load(f.str("model"), true);
        pipeline::Embedder embedder(model, gpu.get());
        const int S = cfg.input_size;

        std::vector<data::Image> images;
        std::vector<i64> labels;
        std::vector<std::string> sources;
        const std::string in = f.str("input");
        if (has_suffix(in, ".rec") || (is_dir(in) && std::ifstream(in + "/train.rec").good())) {
            data::RecordDataset ds(in);
            for (i64 i = 0; i < ds.size(); ++i) {
                images.push_back(data::decode_image(ds.encoded(i), ds.describe(i), S, S,
                                                    data::SizePolicy::resize));
                labels.push_back(ds.label(i));
                sources.push_back(ds.describe(i));
            }
        } else {
            std::vector<data::LstEntry> entries;
            if (is_dir(in)) {
                entries = data::scan_image_folder(in);
            } else {
                for (const auto& p : f.list("input")) entries.push_back({p, -1, 0});
            }
            for (const auto& e : entries) {
                images.push_back(
                    data::decode_image(read_bytes(e.path), e.path, S, S, data::SizePolicy::resize));
                labels.push_back(e.label);
                sources.push_back(e.path);
            }
        }
        ENGINE_CHECK(!images.empty(), engine::ArgError, "embed: no images in ", in);
        const i64 n = (i64)images.size(), D = embedder.dim();
        std::vector<float> emb((size_t)(n * D));
        embedder.embed(images, false, emb.data());
        if (f.on("flip")) {
            std::vector<float> m((size_t)(n * D));
            embedder.embed(images, true, m.data());
            for (size_t i = 0; i < emb.size(); ++i) emb[i] += m[i];
        }
        if (f.on("normalize")) {
            for (i64 r = 0; r < n; ++r) {
                double s = 0;
                for (i64 j = 0; j < D; ++j) s += (double)emb[r * D + j] * emb[r * D + j];
                const float inv = s > 0 ? (float)(1.0 / std::sqrt(s)) : 0.f;
                for (i64 j = 0; j < D; ++j) emb[r * D + j] *= inv;
            }
        }
        const std::string out = f.str("out");
        engine::write_npy(out, {n, D}, emb.data());
        engine::write_npy(out + ".labels.npy", {n}, labels.data());
        std::ofstream txt(out + ".txt");
        for (const auto& s : sources) txt << s << "\n";
        ENGINE_CHECK(txt.good(), engine::IoError, out, ".txt: write failed");
        std::printf("embed: %lld images -> %s (%lld x %lld)\n", (long long)n, out.c_str(),
                    (long long)n, (long long)D);
    } catch (const std::exception& e) {  // engine errors, bad_alloc, ...
        std::fprintf(stderr, "embed: %s\n", e.what());
        return 1;
    }
    return 0;
}
