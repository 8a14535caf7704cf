// inspect: prints a summary of a dataset or tensor file (.rec set, verification .bin,
// .safetensors, .npy); on a damaged file, one line naming what is wrong and a non-zero exit.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

// Declarations only: the library compiles stb_image once (data/stb_impl.cpp).
#include <stb/stb_image.h>

#include "data/recordio.h"
#include "data/verification_bin.h"
#include "engine/error.h"
#include "engine/npy.h"
#include "engine/safetensors.h"

namespace fs = std::filesystem;
using engine::str;

namespace {

const char* kUsage =
    "usage: inspect FILE|DIR\n"
    "  DIR or .rec: an InsightFace RecordIO set (every record's framing is checked)\n"
    "  .bin: a verification set (pickle)   .safetensors: tensors   .npy: a NumPy array\n";

std::string image_info(const std::vector<u8>& b) {
    int w = 0, h = 0, c = 0;
    if (b.empty() || !stbi_info_from_memory(b.data(), (int)b.size(), &w, &h, &c))
        return str("not a decodable image (", b.size(), " bytes)");
    return str(w, "x", h, ", ", c, " channels, ", b.size(), " bytes");
}

std::string shape_str(const std::vector<i64>& s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); ++i) r += str(i ? ", " : "", s[i]);
    return r + (s.size() == 1 ? ",)" : ")");
}

void inspect_rec(const std::string& path) {
    data::RecordDataset ds(path);
    // Walk the whole file so damage in any record (images, identities, header) is reported.
    data::RecordReader reader(ds.rec_path());
    u64 off = 0;
    i64 in_file = 0;
    while (reader.read_next(&off, nullptr)) ++in_file;
    int lo = 0, hi = -1;
    for (i64 i = 0; i < ds.size(); ++i) {
        lo = i ? std::min(lo, ds.label(i)) : ds.label(i);
        hi = std::max(hi, ds.label(i));
    }
    std::printf("%s: RecordIO set (%s)\n", path.c_str(),
                ds.has_header_record() ? "InsightFace layout: record 0 and identity records"
                                       : "no header record: every key is an image");
    std::printf("  records     %lld in %s, %lld in %s (%llu bytes)\n", (long long)ds.records(),
                ds.idx_path().c_str(), (long long)in_file, ds.rec_path().c_str(),
                (unsigned long long)reader.file_size());
    std::printf("  images      %lld\n", (long long)ds.size());
    std::printf("  identities  %lld\n", (long long)ds.identities().size());
    std::printf("  classes     %lld\n", (long long)ds.num_classes());
    if (ds.size() > 0)
        std::printf("  labels      %d..%d\n", lo, hi);
    else
        std::printf("  labels      none\n");
    if (ds.image_height() > 0)
        std::printf("  property    %dx%d\n", ds.image_height(), ds.image_width());
    if (ds.size() > 0) std::printf("  first image %s\n", image_info(ds.encoded(0)).c_str());
}

void inspect_bin(const std::string& path) {
    const data::VerificationSet s = data::read_verification_bin(path);
    const i64 same = std::count(s.issame.begin(), s.issame.end(), true);
    std::printf("%s: verification set (pickle protocol %d)\n", path.c_str(), s.protocol);
    std::printf("  images      %zu\n", s.images.size());
    std::printf("  pairs       %lld (%lld same, %lld different)\n", (long long)s.pairs(),
                (long long)same, (long long)(s.pairs() - same));
    if (!s.images.empty()) std::printf("  first image %s\n", image_info(s.images[0]).c_str());
}

void inspect_safetensors(const std::string& path) {
    std::map<std::string, std::string> meta;
    const std::vector<engine::SafeTensor> ts = engine::read_safetensors(path, &meta);
    u64 total = 0;
    std::printf("%s: safetensors, %zu tensors\n", path.c_str(), ts.size());
    for (const auto& t : ts) {
        std::printf("  %-40s %-4s %-20s %zu bytes\n", t.name.c_str(), t.dtype.c_str(),
                    shape_str(t.shape).c_str(), t.data.size());
        total += t.data.size();
    }
    for (const auto& kv : meta) std::printf("  metadata %s = %s\n", kv.first.c_str(), kv.second.c_str());
    std::printf("  total       %llu bytes\n", (unsigned long long)total);
}

void inspect_npy(const std::string& path) {
    const engine::NpyArray a = engine::read_npy(path);
    std::printf("%s: npy %s %s, %zu bytes\n", path.c_str(), a.descr.c_str(),
                shape_str(a.shape).c_str(), a.data.size());
}

int run(int argc, char** argv) {
    if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    ENGINE_CHECK(argc == 2, engine::ArgError, "inspect: expected one FILE or DIR\n", kUsage);
    const std::string path = argv[1];
    std::error_code ec;
    ENGINE_CHECK(fs::exists(path, ec), engine::IoError, path, ": no such file or directory");
    const std::string ext = fs::path(path).extension().string();
    if (fs::is_directory(path, ec) || ext == ".rec" || ext == ".idx")
        inspect_rec(ext == ".idx" ? fs::path(path).replace_extension(".rec").string() : path);
    else if (ext == ".bin")
        inspect_bin(path);
    else if (ext == ".safetensors")
        inspect_safetensors(path);
    else if (ext == ".npy")
        inspect_npy(path);
    else
        throw engine::ArgError(str(path, ": unknown file type (expected a .rec set directory, "
                                         ".rec, .bin, .safetensors or .npy)"));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "inspect: error: %s\n", e.what());
        return 1;
    }
}
