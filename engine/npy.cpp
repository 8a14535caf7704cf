// NumPy .npy reader and writer: version 1.0 written (header padded with spaces and '\n' to a
// multiple of 64 bytes, as numpy does), versions 1.0-3.0 read; C order, little-endian dtypes.
#include "engine/npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "engine/error.h"
#include "engine/tensor.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "npy data is written little-endian; this code copies host bytes as they are");

namespace engine {

namespace {

const char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

i64 descr_size(const std::string& d) {
    if (d == "<f4") return 4;
    if (d == "<f8" || d == "<i8") return 8;
    if (d == "|u1") return 1;
    return 0;
}

void write_raw(const std::string& path, const std::vector<i64>& shape, const void* data,
               const char* descr, i64 elem_size) {
    i64 n = 1;
    for (i64 d : shape) {
        ENGINE_CHECK(d >= 0, ShapeError, "npy ", path, ": negative dimension in ",
                     shape_str(shape));
        n *= d;
    }
    // The header is a Python dict literal; a 1-D shape needs the tuple's trailing comma.
    std::string h = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
    for (size_t k = 0; k < shape.size(); ++k) h += (k ? ", " : "") + std::to_string(shape[k]);
    if (shape.size() == 1) h += ",";
    h += "), }";
    // magic (6) + version (2) + header length (2) + header, padded with spaces and ended by
    // '\n' so that the data starts at a multiple of 64 bytes.
    const size_t total = 10 + h.size() + 1;
    h.append((64 - total % 64) % 64, ' ');
    h += '\n';
    ENGINE_CHECK(h.size() <= 65535, ShapeError, "npy ", path, ": header of ", h.size(),
                 " bytes does not fit format 1.0");

    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    ENGINE_CHECK(f.good(), IoError, "npy ", path, ": cannot open for writing");
    f.write(kMagic, 6);
    const char version[2] = {1, 0};
    f.write(version, 2);
    const u8 hl[2] = {(u8)(h.size() & 0xFF), (u8)(h.size() >> 8)};
    f.write(reinterpret_cast<const char*>(hl), 2);
    f.write(h.data(), (std::streamsize)h.size());
    f.write(static_cast<const char*>(data), (std::streamsize)(n * elem_size));
    f.close();
    ENGINE_CHECK(f.good(), IoError, "npy ", path, ": write failed (disk full?)");
}

// Parser of the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
class HeaderParser {
public:
    HeaderParser(const std::string& h, const std::string& path) : h_(h), path_(path) {}

    void parse(NpyArray& a, bool& fortran) {
        bool have_descr = false, have_order = false, have_shape = false;
        skip_ws();
        expect('{');
        for (;;) {
            skip_ws();
            if (peek() == '}') { ++p_; break; }
            const std::string key = parse_str();
            skip_ws();
            expect(':');
            skip_ws();
            if (key == "descr") {
                a.descr = parse_str();
                have_descr = true;
            } else if (key == "fortran_order") {
                if (h_.compare(p_, 4, "True") == 0) fortran = true, p_ += 4;
                else if (h_.compare(p_, 5, "False") == 0) fortran = false, p_ += 5;
                else fail("fortran_order must be True or False");
                have_order = true;
            } else if (key == "shape") {
                parse_shape(a.shape);
                have_shape = true;
            } else {
                fail("unknown key '" + key + "'");
            }
            skip_ws();
            if (peek() == ',') { ++p_; continue; }
            if (peek() == '}') { ++p_; break; }
            fail("expected ',' or '}'");
        }
        skip_ws();
        if (p_ != h_.size()) fail("unexpected text after the dict");
        if (!have_descr || !have_order || !have_shape)
            fail("the dict must have 'descr', 'fortran_order' and 'shape'");
    }

private:
    [[noreturn]] void fail(const std::string& what) {
        throw FormatError(str("npy ", path_, ": bad header at byte ", 10 + p_, ": ", what));
    }
    char peek() const { return p_ < h_.size() ? h_[p_] : '\0'; }
    void skip_ws() {
        while (p_ < h_.size() && (h_[p_] == ' ' || h_[p_] == '\n' || h_[p_] == '\t')) ++p_;
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++p_;
    }
    std::string parse_str() {
        const char q = peek();
        if (q != '\'' && q != '"') fail("expected a quoted string");
        ++p_;
        const size_t start = p_;
        while (p_ < h_.size() && h_[p_] != q) ++p_;
        if (p_ >= h_.size()) fail("unterminated string");
        return h_.substr(start, p_++ - start);
    }
    void parse_shape(std::vector<i64>& shape) {
        expect('(');
        for (;;) {
            skip_ws();
            if (peek() == ')') { ++p_; return; }
            if (peek() < '0' || peek() > '9') fail("shape entries must be non-negative integers");
            i64 d = 0;
            while (peek() >= '0' && peek() <= '9') {
                if (__builtin_mul_overflow(d, (i64)10, &d) ||
                    __builtin_add_overflow(d, (i64)(h_[p_] - '0'), &d))
                    fail("shape entry overflows 64 bits");
                ++p_;
            }
            shape.push_back(d);
            skip_ws();
            if (peek() == ',') { ++p_; continue; }
            if (peek() == ')') { ++p_; return; }
            fail("expected ',' or ')' in the shape");
        }
    }

    const std::string& h_;
    const std::string& path_;
    size_t p_ = 0;
};

template <typename Src, typename T>
void convert(const std::vector<u8>& data, std::vector<T>& out) {
    const size_t n = data.size() / sizeof(Src);
    out.resize(n);
    for (size_t k = 0; k < n; ++k) {
        Src x;
        std::memcpy(&x, data.data() + k * sizeof(Src), sizeof(Src));
        out[k] = (T)x;
    }
}

}  // namespace

template <typename T>
std::vector<T> NpyArray::as() const {
    const i64 es = descr_size(descr);
    ENGINE_CHECK(es > 0 && shape_numel(shape) * es == (i64)data.size(), FormatError, "npy array ",
                 shape_str(shape), " of ", descr, ": ", data.size(),
                 " bytes do not hold its elements");
    std::vector<T> out;
    if (descr == "<f4") convert<float>(data, out);
    else if (descr == "<f8") convert<double>(data, out);
    else if (descr == "<i8") convert<i64>(data, out);
    else convert<u8>(data, out);
    return out;
}
template std::vector<float> NpyArray::as<float>() const;
template std::vector<double> NpyArray::as<double>() const;
template std::vector<i64> NpyArray::as<i64>() const;

void write_npy(const std::string& path, const std::vector<i64>& shape, const float* data) {
    write_raw(path, shape, data, "<f4", 4);
}
void write_npy(const std::string& path, const std::vector<i64>& shape, const double* data) {
    write_raw(path, shape, data, "<f8", 8);
}
void write_npy(const std::string& path, const std::vector<i64>& shape, const i64* data) {
    write_raw(path, shape, data, "<i8", 8);
}

NpyArray read_npy(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    ENGINE_CHECK(f.good(), IoError, "npy ", path, ": cannot open for reading");
    f.seekg(0, std::ios::end);
    const i64 file_size = (i64)f.tellg();
    f.seekg(0);
    ENGINE_CHECK(file_size >= 10, FormatError, "npy ", path, ": file is ", file_size,
                 " bytes, shorter than the 10-byte preamble");
    char pre[10];
    f.read(pre, 10);
    ENGINE_CHECK(std::memcmp(pre, kMagic, 6) == 0, FormatError, "npy ", path,
                 ": bad magic (not a .npy file)");
    const int major = (u8)pre[6], minor = (u8)pre[7];
    ENGINE_CHECK(major >= 1 && major <= 3 && minor == 0, FormatError, "npy ", path,
                 ": unsupported format version ", major, ".", minor);
    // Version 1.0 stores the header length in 2 bytes; 2.0 and 3.0 in 4.
    i64 header_len = (u8)pre[8] | (i64)(u8)pre[9] << 8, data_start = 10;
    if (major >= 2) {
        ENGINE_CHECK(file_size >= 12, FormatError, "npy ", path, ": truncated preamble");
        u8 more[2];
        f.read(reinterpret_cast<char*>(more), 2);
        header_len |= (i64)more[0] << 16 | (i64)more[1] << 24;
        data_start = 12;
    }
    ENGINE_CHECK(data_start + header_len <= file_size, FormatError, "npy ", path,
                 ": header length ", header_len, " runs past the end of the file (", file_size,
                 " bytes)");
    std::string header((size_t)header_len, '\0');
    f.read(&header[0], (std::streamsize)header_len);
    ENGINE_CHECK(f.good(), IoError, "npy ", path, ": read of the header failed");

    NpyArray a;
    bool fortran = false;
    HeaderParser(header, path).parse(a, fortran);
    const i64 es = descr_size(a.descr);
    ENGINE_CHECK(es > 0, FormatError, "npy ", path, ": unsupported dtype '", a.descr,
                 "' (supported: <f4, <f8, <i8, |u1)");
    ENGINE_CHECK(!fortran, FormatError, "npy ", path,
                 ": Fortran-order arrays are not supported (save with C order)");
    i64 n = 1;
    for (i64 d : a.shape)
        ENGINE_CHECK(!__builtin_mul_overflow(n, d, &n), FormatError, "npy ", path, ": shape ",
                     shape_str(a.shape), " overflows");
    i64 bytes = 0;
    ENGINE_CHECK(!__builtin_mul_overflow(n, es, &bytes), FormatError, "npy ", path, ": shape ",
                 shape_str(a.shape), " overflows");
    const i64 have = file_size - data_start - header_len;
    ENGINE_CHECK(have >= bytes, FormatError, "npy ", path, ": truncated: shape ",
                 shape_str(a.shape), " of ", a.descr, " needs ", bytes, " data bytes, the file has ",
                 have);
    ENGINE_CHECK(have == bytes, FormatError, "npy ", path, ": ", have - bytes,
                 " trailing bytes after the ", bytes, " data bytes");
    a.data.resize((size_t)bytes);
    f.read(reinterpret_cast<char*>(a.data.data()), (std::streamsize)bytes);
    ENGINE_CHECK(f.good() || bytes == 0, IoError, "npy ", path, ": read of the data failed");
    return a;
}

}  // namespace engine
