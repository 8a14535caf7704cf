// pack: builds an InsightFace training set (train.rec, train.idx, property) from an image folder
// DIR/<identity>/<images> or a .lst file, storing each image's file bytes as they are on disk.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// Declarations only: the library compiles stb_image once (data/stb_impl.cpp, JPEG and PNG
// only), so packing accepts exactly what the loader can decode.
#include <stb/stb_image.h>

#include "data/lst.h"
#include "data/recordio.h"
#include "engine/error.h"

using engine::str;

namespace {

const char* kUsage =
    "usage: pack (--folder DIR | --lst FILE [--root DIR]) --out OUTDIR [--size 112] [--skip-bad]\n"
    "  --folder DIR  DIR/<identity>/<image>.{jpg,jpeg,png}; identities sorted by name get\n"
    "                labels 0, 1, ...\n"
    "  --lst FILE    tab-separated list: InsightFace \"aligned path label [bbox landmarks]\" or\n"
    "                im2rec \"index label path\"; relative paths from --root (default: the\n"
    "                list's directory). Lines are grouped by label (stable) before packing.\n"
    "  --out OUTDIR  writes OUTDIR/train.rec, train.idx, property (\"classes,size,size\")\n"
    "  --size N      every image must decode (stb_image) to N x N pixels (default 112)\n"
    "  --skip-bad    count and skip images that do not decode or have the wrong size\n"
    "                (default: stop with an error naming the file)\n";

// The file's bytes, or an error message.
bool read_file(const std::string& path, std::vector<u8>* out, std::string* err) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        *err = str(path, ": cannot open: ", std::strerror(errno));
        return false;
    }
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) {
        *err = str(path, ": read failed");
        return false;
    }
    return true;
}

// Empty when the bytes decode to size x size, else why not.
std::string check_image(const std::string& path, const std::vector<u8>& bytes, int size) {
    if (bytes.empty()) return str(path, ": empty file");
    int w = 0, h = 0, c = 0;
    unsigned char* px = stbi_load_from_memory(bytes.data(), (int)bytes.size(), &w, &h, &c, 3);
    if (!px) return str(path, ": cannot decode (stb_image: ", stbi_failure_reason(), ")");
    stbi_image_free(px);
    if (w != size || h != size)
        return str(path, ": image is ", w, "x", h, ", expected ", size, "x", size);
    return "";
}

int run(int argc, char** argv) {
    std::string folder, lst, root, out;
    int size = 112;
    bool skip_bad = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            ENGINE_CHECK(i + 1 < argc, engine::ArgError, "pack: ", a, " needs a value\n", kUsage);
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else if (a == "--folder") {
            folder = value();
        } else if (a == "--lst") {
            lst = value();
        } else if (a == "--root") {
            root = value();
        } else if (a == "--out") {
            out = value();
        } else if (a == "--size") {
            const std::string v = value();
            char* e = nullptr;
            const long s = std::strtol(v.c_str(), &e, 10);
            ENGINE_CHECK(*e == '\0' && s > 0 && s < 65536, engine::ArgError, "pack: bad --size ", v);
            size = (int)s;
        } else if (a == "--skip-bad") {
            skip_bad = true;
        } else {
            throw engine::ArgError(str("pack: unknown argument ", a, "\n", kUsage));
        }
    }
    ENGINE_CHECK(folder.empty() != lst.empty(), engine::ArgError,
                 "pack: give exactly one of --folder and --lst\n", kUsage);
    ENGINE_CHECK(!out.empty(), engine::ArgError, "pack: --out is required\n", kUsage);

    std::vector<data::LstEntry> entries;
    if (!folder.empty()) {
        std::vector<std::string> names;
        entries = data::scan_image_folder(folder, &names);
        std::fprintf(stderr, "pack: %s: %zu identities, %zu images\n", folder.c_str(),
                     names.size(), entries.size());
    } else {
        entries = data::read_lst(lst, root);
        // InsightFace requires a list grouped by label; grouping (stably) costs nothing here.
        std::stable_sort(entries.begin(), entries.end(),
                         [](const data::LstEntry& x, const data::LstEntry& y) { return x.label < y.label; });
        std::fprintf(stderr, "pack: %s: %zu images\n", lst.c_str(), entries.size());
    }
    ENGINE_CHECK(!entries.empty(), engine::ArgError, "pack: no images found in ",
                 folder.empty() ? lst : folder);

    data::DatasetWriter writer(out, size, size);
    // Classes are the labels listed, even when --skip-bad empties the last ones.
    int max_label = -1;
    for (const auto& en : entries) max_label = std::max(max_label, en.label);
    writer.set_num_classes(max_label + 1);
    const i64 n = (i64)entries.size(), batch = 256;
    i64 written = 0, skipped = 0, next_report = 0;
    std::vector<std::vector<u8>> bytes((size_t)batch);
    std::vector<std::string> errs((size_t)batch);
    for (i64 b = 0; b < n; b += batch) {
        const i64 e = std::min(n, b + batch);
        // Read and decode-check a batch in parallel; write it in order.
#pragma omp parallel for schedule(dynamic)
        for (i64 i = b; i < e; ++i) {
            std::string& err = errs[(size_t)(i - b)];
            std::vector<u8>& buf = bytes[(size_t)(i - b)];
            err.clear();
            if (read_file(entries[(size_t)i].path, &buf, &err))
                err = check_image(entries[(size_t)i].path, buf, size);
        }
        for (i64 i = b; i < e; ++i) {
            const data::LstEntry& en = entries[(size_t)i];
            const std::string& err = errs[(size_t)(i - b)];
            if (!err.empty()) {
                const std::string where = en.line > 0 ? str(" (", lst, " line ", en.line, ")") : "";
                if (!skip_bad) throw engine::FormatError(err + where);
                std::fprintf(stderr, "pack: skipped %s%s\n", err.c_str(), where.c_str());
                ++skipped;
                continue;
            }
            writer.add_image(en.label, bytes[(size_t)(i - b)]);
            ++written;
        }
        if (e >= next_report || e == n) {
            std::fprintf(stderr, "pack: %lld/%lld images\n", (long long)e, (long long)n);
            next_report = e + std::max<i64>(n / 20, 1000);
        }
    }
    writer.close();
    std::printf("pack: wrote %s: %lld images, %d classes, %lld skipped\n", out.c_str(),
                (long long)written, max_label + 1, (long long)skipped);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const engine::Error& e) {
        std::fprintf(stderr, "pack: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pack: error: %s\n", e.what());
        return 1;
    }
}
