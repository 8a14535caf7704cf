// MXNet RecordIO reading and writing (chunk framing, IRHeader, .idx) and the InsightFace training
// set layout on top of it (record 0, identity records, `property`); see FORMATS.md sections 1-2.
#include "data/recordio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/error.h"

namespace data {

using engine::ArgError;
using engine::FormatError;
using engine::IoError;
using engine::str;

namespace {

constexpr u32 kLengthMask = (1u << 29) - 1;  // lrec = cflag << 29 | length
constexpr u64 kMaxRecord = 1ull << 29;       // dmlc-core's writer limit (length < 2^29)

u32 load_u32(const u8* p) {
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}
u64 load_u64(const u8* p) { return (u64)load_u32(p) | (u64)load_u32(p + 4) << 32; }
float load_f32(const u8* p) {
    const u32 u = load_u32(p);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
void store_u32(u8* p, u32 v) {
    for (int i = 0; i < 4; ++i) p[i] = (u8)(v >> (8 * i));
}
void store_u64(u8* p, u64 v) {
    store_u32(p, (u32)v);
    store_u32(p + 4, (u32)(v >> 32));
}
u64 round_up4(u64 n) { return (n + 3) & ~u64(3); }

// "file F record key K at offset O" (the key only when known).
std::string where(const std::string& path, u64 offset, i64 key) {
    if (key >= 0) return str(path, ": record key ", key, " at offset ", offset);
    return str(path, ": record at offset ", offset);
}

// pread until n bytes arrived; false when the file ends first.
bool pread_full(int fd, void* buf, u64 n, u64 offset, const std::string& path) {
    u8* p = (u8*)buf;
    while (n > 0) {
        const ssize_t r = ::pread(fd, p, n, (off_t)offset);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw IoError(str(path, ": read failed at offset ", offset, ": ", std::strerror(errno)));
        }
        if (r == 0) return false;
        p += r;
        n -= (u64)r;
        offset += (u64)r;
    }
    return true;
}

// A label stored as float that must be a class id or a record key: a non-negative integer.
i64 integral_label(float v, const std::string& what) {
    if (!std::isfinite(v) || v < 0 || v != std::floor(v) || v > 2e9f)
        throw FormatError(str(what, ": label ", v, " is not a non-negative integer"));
    return (i64)v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// IRHeader

IRHeader parse_irheader(const std::vector<u8>& payload, std::vector<u8>* image,
                        const std::string& where_) {
    ENGINE_CHECK(payload.size() >= 24, FormatError, where_, ": record of ", payload.size(),
                 " bytes is shorter than the 24-byte IRHeader");
    IRHeader h;
    h.flag = load_u32(payload.data());
    h.label = load_f32(payload.data() + 4);
    h.id = load_u64(payload.data() + 8);
    h.id2 = load_u64(payload.data() + 16);
    const u64 need = 24 + 4 * (u64)h.flag;  // u64: a damaged flag cannot overflow this
    ENGINE_CHECK(payload.size() >= need, FormatError, where_, ": IRHeader flag ", h.flag,
                 " needs ", need, " bytes but the record has ", payload.size());
    h.labels.resize(h.flag);
    for (u32 i = 0; i < h.flag; ++i) h.labels[i] = load_f32(payload.data() + 24 + 4 * (u64)i);
    if (image) image->assign(payload.begin() + (std::ptrdiff_t)need, payload.end());
    return h;
}

std::vector<u8> make_irheader_payload(const IRHeader& h, const u8* image, size_t image_bytes) {
    ENGINE_CHECK(h.labels.size() == h.flag, ArgError, "IRHeader flag ", h.flag, " but ",
                 h.labels.size(), " labels");
    const u64 head = 24 + 4 * (u64)h.flag;
    std::vector<u8> out(head + image_bytes);
    store_u32(out.data(), h.flag);
    u32 lbits;
    const float label = h.flag > 0 ? 0.0f : h.label;  // MXNet zeroes the scalar when flag > 0
    std::memcpy(&lbits, &label, 4);
    store_u32(out.data() + 4, lbits);
    store_u64(out.data() + 8, h.id);
    store_u64(out.data() + 16, h.id2);
    for (u32 i = 0; i < h.flag; ++i) {
        std::memcpy(&lbits, &h.labels[i], 4);
        store_u32(out.data() + 24 + 4 * (u64)i, lbits);
    }
    if (image_bytes) std::memcpy(out.data() + head, image, image_bytes);
    return out;
}

// ---------------------------------------------------------------------------------------------
// RecordReader

RecordReader::RecordReader(const std::string& rec_path) : path_(rec_path) {
    fd_ = ::open(rec_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw IoError(str(rec_path, ": cannot open: ", std::strerror(errno)));
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
        const int e = errno;
        ::close(fd_);
        throw IoError(str(rec_path, ": cannot stat: ", std::strerror(e)));
    }
    size_ = (u64)st.st_size;
}

RecordReader::~RecordReader() {
    if (fd_ >= 0) ::close(fd_);
}

// Reads chunks from `offset`, joining them (with the magic put back between them) until a
// chunk with cflag 0 or 3; stops early once `max_bytes` of payload are known. Returns the
// payload and, through *end, the offset just past the record's padding.
static std::vector<u8> read_chunks(int fd, u64 size, const std::string& path, u64 offset,
                                   u64 max_bytes, i64 key, u64* end) {
    std::vector<u8> out;
    u64 pos = offset;
    int chunk = 0;
    for (;; ++chunk) {
        // A header-only read (IRHeaders at open time) gets the chunk header and the first
        // bytes in one pread: one system call per record instead of two.
        u8 head[8 + 64];
        ENGINE_CHECK(pos + 8 <= size, FormatError, where(path, offset, key),
                     ": truncated chunk header at offset ", pos, " (file has ", size, " bytes)");
        const u64 look = chunk == 0 && max_bytes <= 64 ? std::min<u64>(size - pos, 8 + 64) : 8;
        if (!pread_full(fd, head, look, pos, path))
            throw FormatError(str(where(path, offset, key), ": truncated chunk header at offset ",
                                  pos));
        const u32 magic = load_u32(head), lrec = load_u32(head + 4);
        ENGINE_CHECK(magic == kRecordMagic, FormatError, where(path, offset, key),
                     ": wrong magic 0x", std::hex, magic, std::dec, " at offset ", pos,
                     " (expected 0xced7230a)");
        const u32 cflag = lrec >> 29, len = lrec & kLengthMask;
        // The first chunk is whole (0) or a start (1); later ones continue (2) or end (3).
        if (chunk == 0) {
            ENGINE_CHECK(cflag == 0 || cflag == 1, FormatError, where(path, offset, key),
                         ": bad cflag sequence: first chunk has cflag ", cflag,
                         " (expected 0 or 1)");
        } else {
            ENGINE_CHECK(cflag == 2 || cflag == 3, FormatError, where(path, offset, key),
                         ": bad cflag sequence: chunk ", chunk, " at offset ", pos,
                         " has cflag ", cflag, " (expected 2 or 3 after a cflag 1 chunk)");
            // The writer dropped a magic word here when it split the record.
            const u8 m[4] = {0x0a, 0x23, 0xd7, 0xce};
            out.insert(out.end(), m, m + 4);
        }
        const u64 data = pos + 8;
        ENGINE_CHECK(data + len <= size, FormatError, where(path, offset, key),
                     ": truncated chunk at offset ", pos, ": ", len, " bytes announced, ",
                     size - data, " left in the file");
        const u64 want = out.size() >= max_bytes ? 0 : std::min<u64>(len, max_bytes - out.size());
        const size_t at = out.size();
        out.resize(at + want);
        if (want && 8 + want <= look)
            std::memcpy(out.data() + at, head + 8, want);
        else if (want && !pread_full(fd, out.data() + at, want, data, path))
            throw FormatError(str(where(path, offset, key), ": truncated chunk at offset ", pos));
        // Padding to 4 bytes; a file may end without the final padding.
        pos = std::min(size, round_up4(data + len));
        if (cflag == 0 || cflag == 3) break;
        if (out.size() >= max_bytes) break;  // prefix complete: the rest is not needed
    }
    if (out.size() > max_bytes) out.resize(max_bytes);
    if (end) *end = pos;
    return out;
}

std::vector<u8> RecordReader::read_at(u64 offset, i64 key) const {
    ENGINE_CHECK(offset % 4 == 0, FormatError, where(path_, offset, key),
                 ": offset is not a multiple of 4");
    return read_chunks(fd_, size_, path_, offset, ~u64(0), key, nullptr);
}

std::vector<u8> RecordReader::read_prefix_at(u64 offset, u64 max_bytes, i64 key) const {
    ENGINE_CHECK(offset % 4 == 0, FormatError, where(path_, offset, key),
                 ": offset is not a multiple of 4");
    return read_chunks(fd_, size_, path_, offset, max_bytes, key, nullptr);
}

bool RecordReader::read_next(u64* offset, std::vector<u8>* record) const {
    if (*offset >= size_) return false;
    u64 end = 0;
    std::vector<u8> r = read_chunks(fd_, size_, path_, *offset, ~u64(0), -1, &end);
    if (record) *record = std::move(r);
    *offset = end;
    return true;
}

// ---------------------------------------------------------------------------------------------
// RecordWriter

RecordWriter::RecordWriter(const std::string& rec_path, const std::string& idx_path)
    : rec_path_(rec_path), idx_path_(idx_path) {
    rec_ = std::fopen(rec_path.c_str(), "wb");
    if (!rec_) throw IoError(str(rec_path, ": cannot create: ", std::strerror(errno)));
    if (!idx_path.empty()) {
        idx_ = std::fopen(idx_path.c_str(), "w");
        if (!idx_) {
            const int e = errno;
            std::fclose(rec_);
            rec_ = nullptr;
            throw IoError(str(idx_path, ": cannot create: ", std::strerror(e)));
        }
    }
}

RecordWriter::~RecordWriter() {
    if (rec_) std::fclose(rec_);
    if (idx_) std::fclose(idx_);
}

void RecordWriter::write(i64 key, const std::vector<u8>& payload) {
    ENGINE_CHECK(rec_, ArgError, rec_path_, ": write after close");
    ENGINE_CHECK(payload.size() < kMaxRecord, ArgError, rec_path_, ": record key ", key, " has ",
                 payload.size(), " bytes; RecordIO records must be shorter than 2^29 bytes");
    const u64 start = offset_;
    const u8 magic[4] = {0x0a, 0x23, 0xd7, 0xce};
    auto put = [&](const void* p, size_t n) {
        if (n && std::fwrite(p, 1, n, rec_) != n)
            throw IoError(str(rec_path_, ": write failed at offset ", offset_, ": ",
                              std::strerror(errno)));
        offset_ += n;
    };
    auto chunk = [&](u32 cflag, const u8* p, u64 n) {
        u8 head[8];
        std::memcpy(head, magic, 4);
        store_u32(head + 4, cflag << 29 | (u32)n);
        put(head, 8);
        put(p, n);
    };
    // Split wherever the payload holds the magic at a 4-aligned offset: those 4 bytes are
    // dropped and the record continues in a new chunk (the reader puts them back).
    const u8* b = payload.data();
    const u64 len = payload.size(), aligned = len & ~u64(3);
    u64 from = 0;
    for (u64 i = 0; i < aligned; i += 4) {
        if (std::memcmp(b + i, magic, 4) == 0) {
            chunk(from == 0 ? 1u : 2u, b + from, i - from);
            from = i + 4;
        }
    }
    chunk(from == 0 ? 0u : 3u, b + from, len - from);
    const u8 zeros[4] = {0, 0, 0, 0};
    put(zeros, round_up4(len - from) - (len - from));
    if (idx_ && std::fprintf(idx_, "%lld\t%llu\n", (long long)key, (unsigned long long)start) < 0)
        throw IoError(str(idx_path_, ": write failed: ", std::strerror(errno)));
}

void RecordWriter::close() {
    bool ok = true;
    std::string why;
    if (rec_) {
        if (std::fclose(rec_) != 0) ok = false, why = rec_path_;
        rec_ = nullptr;
    }
    if (idx_) {
        if (std::fclose(idx_) != 0 && ok) ok = false, why = idx_path_;
        idx_ = nullptr;
    }
    ENGINE_CHECK(ok, IoError, why, ": write failed on close: ", std::strerror(errno));
}

// ---------------------------------------------------------------------------------------------
// RecordDataset

namespace {

// key -> offset from the .idx text; every damage names the line.
std::unordered_map<i64, u64> read_idx(const std::string& idx_path, u64 rec_size,
                                      const std::string& rec_path) {
    std::ifstream in(idx_path);
    if (!in) throw IoError(str(idx_path, ": cannot open index: ", std::strerror(errno)));
    std::unordered_map<i64, u64> m;
    std::string line;
    i64 lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        // "key<TAB>offset"; any blanks separate the two integers.
        const char* s = line.c_str();
        char* e1 = nullptr;
        char* e2 = nullptr;
        errno = 0;
        const long long key = std::strtoll(s, &e1, 10);
        const bool key_ok = e1 != s && errno == 0 && (*e1 == '\t' || *e1 == ' ');
        unsigned long long off = 0;
        bool off_ok = false;
        if (key_ok) {
            const char* t = e1;
            while (*t == '\t' || *t == ' ') ++t;
            off_ok = *t != '-' && *t != '\0';
            off = std::strtoull(t, &e2, 10);
            off_ok = off_ok && e2 != t && errno == 0;
            while (off_ok && (*e2 == ' ' || *e2 == '\t')) ++e2;
            off_ok = off_ok && *e2 == '\0';
        }
        ENGINE_CHECK(key_ok && off_ok, FormatError, idx_path, ": line ", lineno,
                     ": cannot parse \"", line, "\" (expected key<TAB>offset)");
        ENGINE_CHECK((u64)off + 8 <= rec_size, FormatError, idx_path, ": line ", lineno, ": key ",
                     key, " offset ", off, " is beyond the end of ", rec_path, " (", rec_size,
                     " bytes)");
        ENGINE_CHECK(m.emplace((i64)key, (u64)off).second, FormatError, idx_path, ": line ",
                     lineno, ": key ", key, " appears twice");
    }
    ENGINE_CHECK(!in.bad(), IoError, idx_path, ": read failed");
    return m;
}

bool read_property(const std::string& path, i64* classes, int* h, int* w) {
    std::ifstream in(path);
    if (!in) return false;
    std::string line;
    std::getline(in, line);
    long long c = -1;
    int hh = -1, ww = -1;
    char extra = 0;
    const int n = std::sscanf(line.c_str(), " %lld , %d , %d %c", &c, &hh, &ww, &extra);
    ENGINE_CHECK(n == 3 && c >= 0 && hh >= 0 && ww >= 0, FormatError, path, ": cannot parse \"",
                 line, "\" (expected num_classes,height,width)");
    *classes = c;
    *h = hh;
    *w = ww;
    return true;
}

}  // namespace

RecordDataset::RecordDataset(const std::string& path) {
    namespace fs = std::filesystem;
    std::string rec = path, dir;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        dir = path;
        rec = (fs::path(path) / "train.rec").string();
    } else {
        dir = fs::path(path).parent_path().string();
        if (dir.empty()) dir = ".";
    }
    idx_path_ = (fs::path(rec).replace_extension(".idx")).string();
    reader_ = std::make_unique<RecordReader>(rec);
    offsets_ = read_idx(idx_path_, reader_->file_size(), rec);
    const std::string prop = (fs::path(dir) / "property").string();
    const bool has_prop = read_property(prop, &num_classes_, &height_, &width_);

    // The IRHeader (and its labels) of a record, read without the image bytes. 24 + 4*flag
    // bytes; real records have flag <= 2, so 64 bytes are enough in one read almost always.
    auto header_of = [&](i64 key, u64 off, std::vector<u8>* image) {
        std::vector<u8> p = reader_->read_prefix_at(off, 64, key);
        if (p.size() >= 24 && 24 + 4 * (u64)load_u32(p.data()) > p.size())
            p = reader_->read_at(off, key);
        if (image) p = reader_->read_at(off, key);
        return parse_irheader(p, image, where(rec, off, key));
    };

    // Record 0 is InsightFace's header when it has flag > 0, labels [first identity key, end)
    // and no image bytes. Otherwise (no record 0, or an image there) every key is an image.
    auto it0 = offsets_.find(0);
    i64 id_begin = 0, id_end = 0;
    if (it0 != offsets_.end()) {
        std::vector<u8> img;
        const IRHeader h0 = header_of(0, it0->second, &img);
        if (h0.flag >= 2 && img.empty()) {
            const std::string w0 = where(rec, it0->second, 0);
            id_begin = integral_label(h0.labels[0], w0);
            id_end = integral_label(h0.labels[1], w0);
            ENGINE_CHECK(id_begin >= 1 && id_end >= id_begin, FormatError, w0,
                         ": header record labels [", id_begin, ", ", id_end,
                         ") are not a valid identity key range");
            has_header_ = true;
        }
    }

    std::vector<std::pair<i64, i64>> id_ranges;  // identity records' [first key, last key + 1)
    if (has_header_) {
        for (i64 k = 1; k < id_begin; ++k) {
            ENGINE_CHECK(offsets_.count(k), FormatError, idx_path_, ": image key ", k,
                         " is missing (record 0 says images are keys 1..", id_begin - 1, ")");
            image_keys_.push_back(k);
        }
        for (i64 k = id_begin; k < id_end; ++k) {
            auto it = offsets_.find(k);
            ENGINE_CHECK(it != offsets_.end(), FormatError, idx_path_, ": identity key ", k,
                         " is missing (record 0 says identities are keys ", id_begin, "..",
                         id_end - 1, ")");
            const IRHeader h = header_of(k, it->second, nullptr);
            const std::string wk = where(rec, it->second, k);
            ENGINE_CHECK(h.flag >= 2, FormatError, wk, ": identity record has flag ", h.flag,
                         " (expected labels [first image key, last image key + 1])");
            const i64 a = integral_label(h.labels[0], wk), b = integral_label(h.labels[1], wk);
            ENGINE_CHECK(a >= 1 && a < b && b <= id_begin, FormatError, wk, ": identity range [",
                         a, ", ", b, ") is beyond the images (keys 1..", id_begin - 1, ")");
            id_ranges.emplace_back(a, b);
        }
    } else {
        for (const auto& kv : offsets_) image_keys_.push_back(kv.first);
        std::sort(image_keys_.begin(), image_keys_.end());
    }

    // Class ids: the header label when flag == 0, else the first float label.
    labels_.resize(image_keys_.size());
    i64 max_label = -1;
    for (size_t i = 0; i < image_keys_.size(); ++i) {
        const i64 k = image_keys_[i];
        const u64 off = offsets_.at(k);
        // Fast path (one pread, no strings): the class id straight from the header bytes.
        const std::vector<u8> p = reader_->read_prefix_at(off, 64, k);
        if (p.size() >= 24) {
            const u32 flag = load_u32(p.data());
            if (24 + 4 * (u64)flag <= p.size()) {
                const float v = load_f32(p.data() + (flag == 0 ? 4 : 24));
                if (v >= 0 && v == std::floor(v) && v < (has_prop ? (float)num_classes_ : 2e9f)) {
                    labels_[i] = (int)v;
                    max_label = std::max<i64>(max_label, (i64)v);
                    continue;
                }
            }
        }
        // Slow path: the same rules, with the error that names the record.
        const IRHeader h = header_of(k, off, nullptr);
        const std::string wk = where(rec, off, k);
        const i64 c = integral_label(h.flag == 0 ? h.label : h.labels[0], wk);
        if (has_prop)
            ENGINE_CHECK(c < num_classes_, FormatError, wk, ": label ", c,
                         " is out of range: ", prop, " says ", num_classes_, " classes");
        ENGINE_CHECK(c <= 0x7fffffff, FormatError, wk, ": label ", c, " too large");
        labels_[i] = (int)c;
        max_label = std::max(max_label, c);
    }
    if (!has_prop) num_classes_ = max_label + 1;

    if (has_header_) {
        // Images are keys 1..N in order, so key k is sample k - 1.
        for (size_t j = 0; j < id_ranges.size(); ++j) {
            IdentityRange r;
            r.begin = id_ranges[j].first - 1;
            r.end = id_ranges[j].second - 1;
            r.label = labels_[r.begin];
            for (i64 i = r.begin; i < r.end; ++i) {
                const i64 k = image_keys_[i];
                ENGINE_CHECK(labels_[i] == r.label, FormatError,
                             where(rec, offsets_.at(id_begin + (i64)j), id_begin + (i64)j),
                             ": identity holds images of two labels (", r.label, " and ",
                             labels_[i], " at key ", k, ")");
            }
            identities_.push_back(r);
        }
    } else {
        // Without identity records, identities are runs of equal labels in key order.
        for (i64 i = 0; i < (i64)labels_.size(); ++i) {
            if (identities_.empty() || identities_.back().label != labels_[i]) {
                IdentityRange r;
                r.begin = i;
                r.end = i + 1;
                r.label = labels_[i];
                identities_.push_back(r);
            } else {
                identities_.back().end = i + 1;
            }
        }
    }
}

std::vector<u8> RecordDataset::encoded(i64 i) const {
    ENGINE_CHECK(i >= 0 && i < size(), ArgError, reader_->path(), ": sample ", i,
                 " out of range (", size(), " images)");
    const i64 k = image_keys_[i];
    const u64 off = offsets_.at(k);
    std::vector<u8> image;
    parse_irheader(reader_->read_at(off, k), &image, where(reader_->path(), off, k));
    return image;
}

std::string RecordDataset::describe(i64 i) const {
    if (i < 0 || i >= size()) return str(reader_->path(), " sample ", i, " (out of range)");
    const i64 k = image_keys_[i];
    return where(reader_->path(), offsets_.at(k), k);
}

// ---------------------------------------------------------------------------------------------
// DatasetWriter

DatasetWriter::DatasetWriter(const std::string& dir, int height, int width)
    : dir_(dir), height_(height), width_(width) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    ENGINE_CHECK(fs::is_directory(dir), IoError, dir, ": cannot create directory: ", ec.message());
    writer_ = std::make_unique<RecordWriter>((fs::path(dir) / "train.rec").string(),
                                             (fs::path(dir) / "train.idx").string());
}

void DatasetWriter::add_image(int label, const std::vector<u8>& encoded) {
    ENGINE_CHECK(writer_, ArgError, dir_, ": add_image after close");
    ENGINE_CHECK(label >= 0, ArgError, dir_, ": negative label ", label);
    const i64 key = next_key_;
    if (ids_.empty() || ids_.back().first != label) {
        for (const auto& id : ids_)
            ENGINE_CHECK(id.first != label, ArgError, dir_, ": images of label ", label,
                         " are not grouped (image key ", key, " comes after another label)");
        ids_.push_back({label, {key, key + 1}});
    } else {
        ids_.back().second.second = key + 1;
    }
    // InsightFace's newer builder: flag 0, the class id as the scalar label, id = key.
    IRHeader h;
    h.label = (float)label;
    h.id = (u64)key;
    writer_->write(key, make_irheader_payload(h, encoded.data(), encoded.size()));
    ++next_key_;
}

void DatasetWriter::close() {
    if (!writer_) return;
    const i64 n = next_key_ - 1, k = (i64)ids_.size();
    i64 max_label = -1;
    for (const auto& id : ids_) max_label = std::max<i64>(max_label, id.first);
    const i64 classes = num_classes_ >= 0 ? num_classes_ : max_label + 1;
    // Identity records hold image keys as float32 labels: exact only up to 2^24.
    ENGINE_CHECK(n + 1 + k <= (1 << 24), ArgError, dir_, ": ", n, " images and ", k,
                 " identities: record keys above 2^24 do not fit InsightFace's float labels");
    ENGINE_CHECK(max_label < classes, ArgError, dir_, ": label ", max_label,
                 " but num_classes set to ", classes);
    // Identity records N+1..N+K with [first image key, last + 1), then record 0 with
    // [N+1, N+1+K], physically after the images as InsightFace writes them.
    for (i64 j = 0; j < k; ++j) {
        IRHeader h;
        h.flag = 2;
        h.labels = {(float)ids_[j].second.first, (float)ids_[j].second.second};
        writer_->write(n + 1 + j, make_irheader_payload(h, nullptr, 0));
    }
    IRHeader h0;
    h0.flag = 2;
    h0.labels = {(float)(n + 1), (float)(n + 1 + k)};
    writer_->write(0, make_irheader_payload(h0, nullptr, 0));
    writer_->close();
    writer_.reset();
    const std::string prop = (std::filesystem::path(dir_) / "property").string();
    FILE* f = std::fopen(prop.c_str(), "w");
    ENGINE_CHECK(f, IoError, prop, ": cannot create: ", std::strerror(errno));
    const int r = std::fprintf(f, "%lld,%d,%d\n", (long long)classes, height_, width_);
    const int c = std::fclose(f);
    ENGINE_CHECK(r > 0 && c == 0, IoError, prop, ": write failed");
}

}  // namespace data
