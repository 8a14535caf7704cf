// safetensors reader and writer (FORMATS.md section 5) with a minimal JSON parser of our own:
// the reader validates the header length, the JSON, dtypes, shapes and data offsets.
#include "engine/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "engine/error.h"
#include "engine/tensor.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this code copies host bytes as they are");

namespace engine {

namespace {

// Element size in bytes of every dtype the format defines (0 = unknown dtype).
i64 dtype_size(const std::string& dtype) {
    static const std::pair<const char*, i64> sizes[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
        {"I64", 8}, {"I32", 4}, {"I16", 2},  {"I8", 1},   {"U64", 8},     {"U32", 4},
        {"U16", 2}, {"U8", 1},  {"BOOL", 1},
    };
    for (const auto& s : sizes)
        if (dtype == s.first) return s.second;
    return 0;
}

// numel of a shape with an overflow check (a hostile header could claim 2^40 x 2^40).
bool checked_numel(const std::vector<i64>& shape, i64* numel) {
    i64 n = 1;
    for (i64 d : shape) {
        if (d < 0 || __builtin_mul_overflow(n, d, &n)) return false;
    }
    *numel = n;
    return true;
}

// ---------------------------------------------------------------------------------------------
// Minimal JSON: objects (key order kept), arrays, strings with every escape, numbers, literals.

struct Json {
    enum Kind { null, boolean, number, string, array, object } kind = null;
    bool b = false;
    bool is_int = false;  // the number was written as an integer that fits in i64
    i64 i = 0;
    double d = 0;
    std::string s;
    std::vector<Json> items;          // array elements, or object values
    std::vector<std::string> keys;    // object keys, same order as items
};

class JsonParser {
public:
    JsonParser(const std::string& text, const std::string& path, i64 base)
        : t_(text), path_(path), base_(base) {}

    Json parse_document() {
        skip_ws();
        Json v = parse_value(0);
        skip_ws();
        if (p_ != t_.size()) fail("unexpected '", t_[p_], "' after the top-level value");
        return v;
    }

private:
    template <typename... A>
    [[noreturn]] void fail(const A&... a) {
        throw FormatError(str("safetensors ", path_, ": bad JSON header at byte ", base_ + (i64)p_,
                              ": ", a...));
    }
    bool at_end() const { return p_ >= t_.size(); }
    void skip_ws() {
        while (!at_end() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r'))
            ++p_;
    }
    void expect(char c) {
        if (at_end() || t_[p_] != c) fail("expected '", c, "'");
        ++p_;
    }

    Json parse_value(int depth) {
        // Our headers nest three deep; the limit keeps a hostile file from exhausting the stack.
        if (depth > 64) fail("nesting deeper than 64 levels");
        skip_ws();
        if (at_end()) fail("unexpected end of the header");
        const char c = t_[p_];
        if (c == '{') return parse_object(depth);
        if (c == '[') return parse_array(depth);
        if (c == '"') {
            Json v;
            v.kind = Json::string;
            v.s = parse_string();
            return v;
        }
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
        Json v;
        if (t_.compare(p_, 4, "true") == 0) {
            v.kind = Json::boolean, v.b = true, p_ += 4;
        } else if (t_.compare(p_, 5, "false") == 0) {
            v.kind = Json::boolean, p_ += 5;
        } else if (t_.compare(p_, 4, "null") == 0) {
            p_ += 4;
        } else {
            fail("unexpected character '", c, "'");
        }
        return v;
    }

    Json parse_object(int depth) {
        Json v;
        v.kind = Json::object;
        expect('{');
        skip_ws();
        if (!at_end() && t_[p_] == '}') return ++p_, v;
        for (;;) {
            skip_ws();
            if (at_end() || t_[p_] != '"') fail("expected a string key");
            std::string key = parse_string();
            if (std::find(v.keys.begin(), v.keys.end(), key) != v.keys.end())
                fail("duplicate key \"", key, "\"");
            skip_ws();
            expect(':');
            v.items.push_back(parse_value(depth + 1));
            v.keys.push_back(std::move(key));
            skip_ws();
            if (at_end()) fail("unterminated object");
            if (t_[p_] == ',') { ++p_; continue; }
            if (t_[p_] == '}') { ++p_; return v; }
            fail("expected ',' or '}' in an object");
        }
    }

    Json parse_array(int depth) {
        Json v;
        v.kind = Json::array;
        expect('[');
        skip_ws();
        if (!at_end() && t_[p_] == ']') return ++p_, v;
        for (;;) {
            v.items.push_back(parse_value(depth + 1));
            skip_ws();
            if (at_end()) fail("unterminated array");
            if (t_[p_] == ',') { ++p_; continue; }
            if (t_[p_] == ']') { ++p_; return v; }
            fail("expected ',' or ']' in an array");
        }
    }

    u32 parse_hex4() {
        if (p_ + 4 > t_.size()) fail("truncated \\u escape");
        u32 cp = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = t_[p_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') cp |= (u32)(h - '0');
            else if (h >= 'a' && h <= 'f') cp |= (u32)(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') cp |= (u32)(h - 'A' + 10);
            else fail("bad hex digit '", h, "' in a \\u escape");
        }
        return cp;
    }

    static void append_utf8(std::string& out, u32 cp) {
        if (cp < 0x80) {
            out += (char)cp;
        } else if (cp < 0x800) {
            out += (char)(0xC0 | (cp >> 6));
            out += (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += (char)(0xE0 | (cp >> 12));
            out += (char)(0x80 | ((cp >> 6) & 0x3F));
            out += (char)(0x80 | (cp & 0x3F));
        } else {
            out += (char)(0xF0 | (cp >> 18));
            out += (char)(0x80 | ((cp >> 12) & 0x3F));
            out += (char)(0x80 | ((cp >> 6) & 0x3F));
            out += (char)(0x80 | (cp & 0x3F));
        }
    }

    std::string parse_string() {
        expect('"');
        std::string out;
        for (;;) {
            if (at_end()) fail("unterminated string");
            const char c = t_[p_++];
            if (c == '"') return out;
            if ((unsigned char)c < 0x20) fail("raw control character in a string");
            if (c != '\\') {
                out += c;  // other bytes (UTF-8 included) are kept as they are
                continue;
            }
            if (at_end()) fail("unterminated escape");
            const char e = t_[p_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    u32 cp = parse_hex4();
                    // UTF-16 surrogate pair: a high surrogate must be followed by \u low.
                    if (cp >= 0xD800 && cp < 0xDC00) {
                        if (t_.compare(p_, 2, "\\u") != 0) fail("lone high surrogate");
                        p_ += 2;
                        const u32 lo = parse_hex4();
                        if (lo < 0xDC00 || lo >= 0xE000) fail("bad low surrogate");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp < 0xE000) {
                        fail("lone low surrogate");
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: fail("unknown escape '\\", e, "'");
            }
        }
    }

    Json parse_number() {
        const size_t start = p_;
        if (t_[p_] == '-') ++p_;
        auto digits = [&] {
            const size_t d0 = p_;
            while (!at_end() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
            if (p_ == d0) fail("expected a digit");
        };
        if (!at_end() && t_[p_] == '0') ++p_;  // JSON forbids leading zeros
        else digits();
        bool integral = true;
        if (!at_end() && t_[p_] == '.') { ++p_; digits(); integral = false; }
        if (!at_end() && (t_[p_] == 'e' || t_[p_] == 'E')) {
            ++p_;
            if (!at_end() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
            digits();
            integral = false;
        }
        const std::string text = t_.substr(start, p_ - start);
        Json v;
        v.kind = Json::number;
        v.d = std::strtod(text.c_str(), nullptr);
        if (integral) {
            errno = 0;
            const long long x = std::strtoll(text.c_str(), nullptr, 10);
            if (errno != ERANGE) v.is_int = true, v.i = (i64)x;
        }
        return v;
    }

    const std::string& t_;
    const std::string& path_;
    i64 base_;  // file offset of the header's first byte, for messages
    size_t p_ = 0;
};

// JSON string literal of s: quotes, backslashes and control characters escaped; other bytes
// (UTF-8) as they are.
std::string json_quote(const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if ((unsigned char)c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", (unsigned)(unsigned char)c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

template <typename Src, typename T>
void convert(const std::vector<u8>& data, i64 n, std::vector<T>& out) {
    out.resize((size_t)n);
    for (i64 k = 0; k < n; ++k) {
        Src x;
        std::memcpy(&x, data.data() + k * (i64)sizeof(Src), sizeof(Src));
        out[(size_t)k] = (T)x;
    }
}

template <typename T>
SafeTensor make_typed(const std::string& name, const std::vector<i64>& shape, const T* data,
                      const char* dtype) {
    SafeTensor t;
    t.name = name;
    t.dtype = dtype;
    t.shape = shape;
    i64 n = 0;
    ENGINE_CHECK(checked_numel(shape, &n), ShapeError, "make_safetensor ", name, ": bad shape ",
                 shape_str(shape));
    t.data.resize((size_t)(n * (i64)sizeof(T)));
    if (n > 0) std::memcpy(t.data.data(), data, t.data.size());
    return t;
}

}  // namespace

template <typename T>
std::vector<T> SafeTensor::as() const {
    i64 n = 0;
    const i64 es = dtype_size(dtype);
    ENGINE_CHECK(checked_numel(shape, &n) && es > 0 && n * es == (i64)data.size(), FormatError,
                 "tensor ", name, ": ", data.size(), " bytes do not hold ", shape_str(shape),
                 " of dtype ", dtype);
    std::vector<T> out;
    if (dtype == "F32") convert<float>(data, n, out);
    else if (dtype == "F64") convert<double>(data, n, out);
    else if (dtype == "I64") convert<i64>(data, n, out);
    else throw FormatError(str("tensor ", name, ": dtype ", dtype, " cannot be converted"));
    return out;
}
template std::vector<float> SafeTensor::as<float>() const;
template std::vector<double> SafeTensor::as<double>() const;
template std::vector<i64> SafeTensor::as<i64>() const;

SafeTensor make_safetensor(const std::string& name, const std::vector<i64>& shape,
                           const float* data) {
    return make_typed(name, shape, data, "F32");
}
SafeTensor make_safetensor(const std::string& name, const std::vector<i64>& shape,
                           const double* data) {
    return make_typed(name, shape, data, "F64");
}
SafeTensor make_safetensor_i64(const std::string& name, const std::vector<i64>& shape,
                               const i64* data) {
    return make_typed(name, shape, data, "I64");
}

void write_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    // Header: {"__metadata__": {...}, name: {"dtype", "shape", "data_offsets"}, ...} with the
    // tensors in the caller's order and their bytes laid out contiguously in that order.
    std::string h = "{";
    bool first = true;
    if (!metadata.empty()) {
        h += "\"__metadata__\":{";
        bool f = true;
        for (const auto& kv : metadata) {
            h += (f ? "" : ",") + json_quote(kv.first) + ":" + json_quote(kv.second);
            f = false;
        }
        h += "}";
        first = false;
    }
    std::set<std::string> seen;
    i64 offset = 0;
    for (const auto& t : tensors) {
        ENGINE_CHECK(t.name != "__metadata__", ArgError, "safetensors ", path,
                     ": a tensor cannot be named __metadata__");
        ENGINE_CHECK(seen.insert(t.name).second, ArgError, "safetensors ", path,
                     ": duplicate tensor name ", t.name);
        const i64 es = dtype_size(t.dtype);
        ENGINE_CHECK(es > 0, ArgError, "safetensors ", path, ": tensor ", t.name,
                     ": unknown dtype ", t.dtype);
        i64 n = 0;
        ENGINE_CHECK(checked_numel(t.shape, &n) && n * es == (i64)t.data.size(), ShapeError,
                     "safetensors ", path, ": tensor ", t.name, " has ", t.data.size(),
                     " bytes for shape ", shape_str(t.shape), " of ", t.dtype);
        h += (first ? "" : ",") + json_quote(t.name) + ":{\"dtype\":\"" + t.dtype +
             "\",\"shape\":[";
        for (size_t k = 0; k < t.shape.size(); ++k) h += (k ? "," : "") + std::to_string(t.shape[k]);
        h += "],\"data_offsets\":[" + std::to_string(offset) + "," +
             std::to_string(offset + (i64)t.data.size()) + "]}";
        offset += (i64)t.data.size();
        first = false;
    }
    h += "}";
    // The reference writer pads the header with spaces to a multiple of 8 bytes, so the data
    // section starts 8-byte aligned.
    h.append((8 - h.size() % 8) % 8, ' ');

    // Write to a temporary name and rename, so a crash mid-save never leaves a half checkpoint
    // under the real name.
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        ENGINE_CHECK(f.good(), IoError, "safetensors ", path, ": cannot open ", tmp,
                     " for writing");
        u8 len[8];
        for (int k = 0; k < 8; ++k) len[k] = (u8)((u64)h.size() >> (8 * k));
        f.write(reinterpret_cast<const char*>(len), 8);
        f.write(h.data(), (std::streamsize)h.size());
        for (const auto& t : tensors)
            f.write(reinterpret_cast<const char*>(t.data.data()), (std::streamsize)t.data.size());
        f.close();
        if (!f.good()) {
            std::remove(tmp.c_str());
            throw IoError(str("safetensors ", path, ": write failed (disk full?)"));
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw IoError(str("safetensors ", path, ": cannot rename ", tmp, ": ", std::strerror(errno)));
    }
}

std::vector<SafeTensor> read_safetensors(const std::string& path,
                                         std::map<std::string, std::string>* metadata) {
    std::ifstream f(path, std::ios::binary);
    ENGINE_CHECK(f.good(), IoError, "safetensors ", path, ": cannot open for reading");
    f.seekg(0, std::ios::end);
    const i64 file_size = (i64)f.tellg();
    f.seekg(0);
    ENGINE_CHECK(file_size >= 8, FormatError, "safetensors ", path, ": file is ", file_size,
                 " bytes, shorter than the 8-byte header length");
    u8 len[8];
    f.read(reinterpret_cast<char*>(len), 8);
    u64 header_len = 0;
    for (int k = 0; k < 8; ++k) header_len |= (u64)len[k] << (8 * k);
    ENGINE_CHECK(header_len <= (u64)(file_size - 8), FormatError, "safetensors ", path,
                 ": header length ", header_len, " runs past the end of the file (", file_size,
                 " bytes)");
    std::string header((size_t)header_len, '\0');
    f.read(&header[0], (std::streamsize)header_len);
    ENGINE_CHECK(f.good(), IoError, "safetensors ", path, ": read of the header failed");
    const i64 data_start = 8 + (i64)header_len, data_size = file_size - data_start;

    const Json top = JsonParser(header, path, 8).parse_document();
    ENGINE_CHECK(top.kind == Json::object, FormatError, "safetensors ", path,
                 ": the header is not a JSON object");

    struct Pending {
        SafeTensor t;
        i64 begin, end;
    };
    std::vector<Pending> pending;
    for (size_t k = 0; k < top.keys.size(); ++k) {
        const std::string& name = top.keys[k];
        const Json& v = top.items[k];
        if (name == "__metadata__") {
            ENGINE_CHECK(v.kind == Json::object, FormatError, "safetensors ", path,
                         ": __metadata__ is not an object");
            for (size_t m = 0; m < v.keys.size(); ++m) {
                ENGINE_CHECK(v.items[m].kind == Json::string, FormatError, "safetensors ", path,
                             ": __metadata__ value of \"", v.keys[m], "\" is not a string");
                if (metadata) (*metadata)[v.keys[m]] = v.items[m].s;
            }
            continue;
        }
        auto bad = [&](const std::string& what) {
            return FormatError(str("safetensors ", path, ": tensor ", name, ": ", what));
        };
        if (v.kind != Json::object) throw bad("entry is not an object");
        const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
        for (size_t m = 0; m < v.keys.size(); ++m) {
            if (v.keys[m] == "dtype") dtype = &v.items[m];
            else if (v.keys[m] == "shape") shape = &v.items[m];
            else if (v.keys[m] == "data_offsets") offsets = &v.items[m];
            else throw bad("unknown field \"" + v.keys[m] + "\"");
        }
        if (!dtype || dtype->kind != Json::string) throw bad("missing or non-string dtype");
        if (!shape || shape->kind != Json::array) throw bad("missing or non-array shape");
        if (!offsets || offsets->kind != Json::array || offsets->items.size() != 2)
            throw bad("data_offsets must be an array of two integers");
        Pending p;
        p.t.name = name;
        p.t.dtype = dtype->s;
        for (const Json& d : shape->items) {
            if (d.kind != Json::number || !d.is_int || d.i < 0)
                throw bad("shape entries must be non-negative integers");
            p.t.shape.push_back(d.i);
        }
        for (const Json& o : offsets->items)
            if (o.kind != Json::number || !o.is_int || o.i < 0)
                throw bad("data_offsets must be non-negative integers");
        p.begin = offsets->items[0].i;
        p.end = offsets->items[1].i;
        const i64 es = dtype_size(p.t.dtype);
        if (es == 0) throw bad("unknown dtype " + p.t.dtype);
        i64 n = 0;
        if (!checked_numel(p.t.shape, &n) || __builtin_mul_overflow(n, es, &n))
            throw bad("shape " + shape_str(p.t.shape) + " overflows");
        if (p.end < p.begin || p.end > data_size)
            throw bad(str("data_offsets [", p.begin, ", ", p.end, "] out of range: the data section is ",
                          data_size, " bytes"));
        if (p.end - p.begin != n)
            throw bad(str("dtype ", p.t.dtype, " x shape ", shape_str(p.t.shape), " = ", n,
                          " bytes but data_offsets [", p.begin, ", ", p.end, "] hold ",
                          p.end - p.begin));
        pending.push_back(std::move(p));
    }

    // The tensors must tile the data section exactly, as the reference reader requires: sorted
    // by begin, each starts where the previous ended, and the last ends at the file's end.
    std::vector<const Pending*> order;
    for (const auto& p : pending) order.push_back(&p);
    std::stable_sort(order.begin(), order.end(), [](const Pending* a, const Pending* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    i64 at = 0;
    const Pending* prev = nullptr;
    for (const Pending* p : order) {
        if (p->begin < at)
            throw FormatError(str("safetensors ", path, ": tensors ", prev->t.name, " [",
                                  prev->begin, ", ", prev->end, ") and ", p->t.name, " [",
                                  p->begin, ", ", p->end, ") overlap"));
        if (p->begin > at)
            throw FormatError(str("safetensors ", path, ": tensor ", p->t.name, " starts at ",
                                  p->begin, ", leaving a gap of ", p->begin - at,
                                  " unused bytes before it"));
        at = p->end;
        prev = p;
    }
    ENGINE_CHECK(at == data_size, FormatError, "safetensors ", path, ": ", data_size - at,
                 " bytes after the last tensor",
                 prev ? str(" (", prev->t.name, ")") : std::string(), " belong to no tensor");

    std::vector<SafeTensor> out;
    out.reserve(pending.size());
    for (auto& p : pending) {
        p.t.data.resize((size_t)(p.end - p.begin));
        f.seekg(data_start + p.begin);
        f.read(reinterpret_cast<char*>(p.t.data.data()), (std::streamsize)p.t.data.size());
        ENGINE_CHECK(f.good(), IoError, "safetensors ", path, ": read of tensor ", p.t.name,
                     " failed");
        out.push_back(std::move(p.t));
    }
    return out;
}

}  // namespace engine
