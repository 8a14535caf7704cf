// MXNet RecordIO (.rec + .idx) as InsightFace uses it (../shared/FORMATS.md sections 1 and 2):
// record framing with chunk splitting at embedded magic words, the 24-byte IRHeader with optional
// float labels, the header record 0 and identity records, and the `property` file.
#pragma once
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/dataset.h"

namespace data {

constexpr u32 kRecordMagic = 0xced7230a;

// The 24-byte image record header, plus the float labels that follow it when flag > 0.
struct IRHeader {
    u32 flag = 0;
    float label = 0;
    u64 id = 0, id2 = 0;
    std::vector<float> labels;  // flag floats when flag > 0
};

// Splits a record payload into IRHeader and image bytes; throws FormatError (with `where`) when
// the payload is shorter than the header says.
IRHeader parse_irheader(const std::vector<u8>& payload, std::vector<u8>* image,
                        const std::string& where);
// Header + labels + image bytes -> payload.
std::vector<u8> make_irheader_payload(const IRHeader& h, const u8* image, size_t image_bytes);

// Low-level reader of one .rec file: read the record whose magic is at a byte offset (joining
// chunks), or scan sequentially. Thread-safe (positioned reads).
class RecordReader {
public:
    explicit RecordReader(const std::string& rec_path);
    ~RecordReader();
    // The record whose magic is at `offset`. Throws FormatError naming the file, the offset and,
    // when given (>= 0), the record key: wrong magic, truncated chunk, bad cflag sequence.
    std::vector<u8> read_at(u64 offset, i64 key = -1) const;
    // Only the first `max_bytes` of the record's payload (fewer when the record is shorter); one
    // small read when the first chunk holds them, used to read IRHeaders without the images.
    std::vector<u8> read_prefix_at(u64 offset, u64 max_bytes, i64 key = -1) const;
    // Sequential scan: the record at *offset, advancing *offset past it; false at end of file.
    bool read_next(u64* offset, std::vector<u8>* record) const;
    u64 file_size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
    u64 size_ = 0;
};

// Writes records (splitting at embedded magic words) and, when an index path is given, the .idx.
class RecordWriter {
public:
    RecordWriter(const std::string& rec_path, const std::string& idx_path);
    ~RecordWriter();
    void write(i64 key, const std::vector<u8>& payload);  // appends; records key -> offset
    void close();                                         // flushes both files; throws on error

private:
    std::string rec_path_, idx_path_;
    FILE* rec_ = nullptr;
    FILE* idx_ = nullptr;
    u64 offset_ = 0;
};

// An InsightFace training set on disk: DIR/train.rec, DIR/train.idx, DIR/property.
class RecordDataset : public ImageDataset {
public:
    // path: the directory, or the .rec file (its .idx beside it).
    explicit RecordDataset(const std::string& path);
    i64 size() const override { return (i64)image_keys_.size(); }
    int label(i64 i) const override { return labels_.at(i); }
    std::vector<u8> encoded(i64 i) const override;
    std::string describe(i64 i) const override;
    i64 num_classes() const override { return num_classes_; }
    const std::vector<IdentityRange>& identities() const override { return identities_; }
    i64 record_key(i64 i) const { return image_keys_.at(i); }
    const std::string& rec_path() const { return reader_->path(); }
    int image_height() const { return height_; }  // from `property` (0 when absent)
    int image_width() const { return width_; }
    i64 records() const { return (i64)offsets_.size(); }  // .idx entries (images + metadata)
    bool has_header_record() const { return has_header_; }  // InsightFace record 0 present
    const std::string& idx_path() const { return idx_path_; }

private:
    std::unique_ptr<RecordReader> reader_;
    std::unordered_map<i64, u64> offsets_;  // key -> byte offset
    std::vector<i64> image_keys_;
    std::vector<int> labels_;
    std::vector<IdentityRange> identities_;
    i64 num_classes_ = 0;
    int height_ = 0, width_ = 0;
    bool has_header_ = false;
    std::string idx_path_;
};

// Writes an InsightFace training set: images grouped by label, then the identity records and
// the header record 0 after them, and `property`.
class DatasetWriter {
public:
    DatasetWriter(const std::string& dir, int height, int width);
    // Images must arrive grouped by label (all of one identity together); labels 0..C-1.
    void add_image(int label, const std::vector<u8>& encoded);
    // num_classes written to `property` (default: largest label + 1); lets a set keep its class
    // count when its last classes have no images left (a denoised set). Labels must stay below.
    void set_num_classes(i64 c) { num_classes_ = c; }
    void close();  // writes identity records, record 0, property
    i64 images() const { return next_key_ - 1; }

private:
    std::string dir_;
    int height_, width_;
    std::unique_ptr<RecordWriter> writer_;
    i64 next_key_ = 1;
    std::vector<std::pair<int, std::pair<i64, i64>>> ids_;  // label -> [first key, last key + 1)
    i64 num_classes_ = -1;  // -1: largest label + 1
};

}  // namespace data
