// .lst parsing (layout detected per line) and image-folder scanning for apps/pack.
#include "data/lst.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"

namespace data {

using engine::FormatError;
using engine::IoError;
using engine::str;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> cols;
    size_t a = 0;
    while (true) {
        const size_t b = line.find('\t', a);
        cols.push_back(line.substr(a, b == std::string::npos ? std::string::npos : b - a));
        if (b == std::string::npos) break;
        a = b + 1;
    }
    return cols;
}

bool is_integer(const std::string& s, long long* v = nullptr) {
    if (s.empty()) return false;
    char* e = nullptr;
    errno = 0;
    const long long x = std::strtoll(s.c_str(), &e, 10);
    if (*e != '\0' || errno != 0) return false;
    if (v) *v = x;
    return true;
}

bool is_number(const std::string& s, double* v = nullptr) {
    if (s.empty()) return false;
    char* e = nullptr;
    const double x = std::strtod(s.c_str(), &e);
    if (*e != '\0' || !std::isfinite(x)) return false;
    if (v) *v = x;
    return true;
}

bool is_image_name(const std::string& name) {
    std::string ext = fs::path(name).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".jpg" || ext == ".jpeg" || ext == ".png";  // what the loader decodes
}

}  // namespace

std::vector<LstEntry> read_lst(const std::string& lst_path, const std::string& root_arg) {
    std::ifstream in(lst_path);
    if (!in) throw IoError(str(lst_path, ": cannot open: ", std::strerror(errno)));
    fs::path root = root_arg.empty() ? fs::path(lst_path).parent_path() : fs::path(root_arg);
    std::vector<LstEntry> out;
    std::string line;
    i64 lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        const std::vector<std::string> c = split_tabs(line);
        const size_t n = c.size();
        ENGINE_CHECK(n >= 3, FormatError, lst_path, ": line ", lineno, ": ", n,
                     " tab-separated columns, expected at least 3");
        // InsightFace: aligned path label [bbox(4) [landmarks(10)]].
        const bool insightface = (n == 3 || n == 7 || n == 17) && is_integer(c[2]) &&
                                 !is_number(c[1]);
        // im2rec: index label... path.
        bool im2rec = !is_number(c[n - 1]) && is_integer(c[0]);
        for (size_t i = 1; i + 1 < n; ++i) im2rec = im2rec && is_number(c[i]);
        ENGINE_CHECK(insightface != im2rec, FormatError, lst_path, ": line ", lineno,
                     ": cannot tell the layout of \"", line,
                     "\" (expected aligned<TAB>path<TAB>label or index<TAB>label<TAB>path)");
        LstEntry e;
        e.line = lineno;
        double label = 0;
        std::string p;
        if (insightface) {
            p = c[1];
            is_number(c[2], &label);
            for (size_t i = 3; i < n; ++i)
                ENGINE_CHECK(is_number(c[i]), FormatError, lst_path, ": line ", lineno,
                             ": column ", i + 1, " (bbox/landmark) is not a number: \"", c[i], "\"");
        } else {
            p = c[n - 1];
            is_number(c[1], &label);
        }
        ENGINE_CHECK(label >= 0 && label == std::floor(label) && label < 2147483648.0,
                     FormatError, lst_path, ": line ", lineno, ": label ", label,
                     " is not a non-negative integer");
        e.label = (int)label;
        const fs::path fp(p);
        e.path = fp.is_absolute() ? p : (root / fp).string();
        out.push_back(std::move(e));
    }
    ENGINE_CHECK(!in.bad(), IoError, lst_path, ": read failed");
    return out;
}

std::vector<LstEntry> scan_image_folder(const std::string& dir,
                                        std::vector<std::string>* identity_names) {
    std::error_code ec;
    ENGINE_CHECK(fs::is_directory(dir, ec), IoError, dir, ": not a directory");
    std::vector<std::string> idents;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.empty() || name[0] == '.') continue;
        if (it->is_directory(ec)) idents.push_back(name);
    }
    ENGINE_CHECK(!ec, IoError, dir, ": cannot list: ", ec.message());
    std::sort(idents.begin(), idents.end());
    std::vector<LstEntry> out;
    if (identity_names) identity_names->clear();
    int label = 0;
    for (const std::string& id : idents) {
        const fs::path sub = fs::path(dir) / id;
        std::vector<std::string> files;
        for (fs::directory_iterator it(sub, ec), end; !ec && it != end; it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (name.empty() || name[0] == '.' || !is_image_name(name)) continue;
            if (it->is_regular_file(ec)) files.push_back(name);
        }
        ENGINE_CHECK(!ec, IoError, sub.string(), ": cannot list: ", ec.message());
        if (files.empty()) continue;
        std::sort(files.begin(), files.end());
        for (const std::string& f : files) {
            LstEntry e;
            e.path = (sub / f).string();
            e.label = label;
            out.push_back(std::move(e));
        }
        if (identity_names) identity_names->push_back(id);
        ++label;
    }
    return out;
}

}  // namespace data
