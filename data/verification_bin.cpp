// Verification .bin files: a safe reader for the pickle subset of FORMATS.md section 3 (no code
// is ever run: the only callable accepted is _codecs.encode(text, 'latin1')) and a protocol-2
// writer in Python 2's style.
#include "data/verification_bin.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <unordered_map>

#include "engine/error.h"

namespace data {

using engine::ArgError;
using engine::FormatError;
using engine::IoError;
using engine::str;

namespace {

// The values a verification pickle can hold. Lists are shared (the memo and the stack may both
// refer to one list that APPENDS then fills).
struct Value {
    enum Kind { bytes, text, boolean, list, tuple, global, mark } kind;
    std::vector<u8> data;  // bytes: the bytes; text: UTF-8
    std::string module, name;
    bool flag = false;
    std::vector<std::shared_ptr<Value>> items;  // list / tuple
    explicit Value(Kind k) : kind(k) {}
};
using Ptr = std::shared_ptr<Value>;

const char* kind_name(Value::Kind k) {
    switch (k) {
        case Value::bytes: return "bytes";
        case Value::text: return "str";
        case Value::boolean: return "bool";
        case Value::list: return "list";
        case Value::tuple: return "tuple";
        case Value::global: return "global";
        case Value::mark: return "MARK";
    }
    return "?";
}

const char* kNumpyMessage =
    "numpy arrays (cv2.imencode output) are not supported; re-pickle the images as bytes "
    "(e.g. bins = [a.tobytes() for a in bins])";

class PickleReader {
public:
    PickleReader(const std::string& path, std::vector<u8> buf) : path_(path), b_(std::move(buf)) {}

    Ptr run(int* protocol) {
        while (true) {
            ENGINE_CHECK(pos_ < b_.size(), FormatError, path_, ": truncated pickle at offset ",
                         pos_, " (no STOP opcode)");
            op_at_ = pos_;
            const u8 op = b_[pos_++];
            switch (op) {
                case 0x80:  // PROTO
                    proto_ = u8_();
                    ENGINE_CHECK(proto_ >= 2 && proto_ <= 5, FormatError, path_,
                                 ": unsupported pickle protocol ", proto_, " at offset ", op_at_);
                    break;
                case 0x95:  // FRAME: the frame length only helps buffered readers
                    need(8);
                    pos_ += 8;
                    break;
                case ']':  // EMPTY_LIST
                    push(std::make_shared<Value>(Value::list));
                    break;
                case ')':  // EMPTY_TUPLE
                    push(std::make_shared<Value>(Value::tuple));
                    break;
                case '(':  // MARK
                    push(std::make_shared<Value>(Value::mark));
                    break;
                case 'a': {  // APPEND
                    Ptr v = pop();
                    Ptr l = top();
                    expect_list(l);
                    l->items.push_back(v);
                    break;
                }
                case 'e': {  // APPENDS: items since the last MARK onto the list below it
                    std::vector<Ptr> items = pop_to_mark();
                    Ptr l = top();
                    expect_list(l);
                    l->items.insert(l->items.end(), items.begin(), items.end());
                    break;
                }
                case 'l': {  // LIST (protocol 0/1 form, harmless)
                    auto l = std::make_shared<Value>(Value::list);
                    l->items = pop_to_mark();
                    push(l);
                    break;
                }
                case 't': {  // TUPLE
                    auto t = std::make_shared<Value>(Value::tuple);
                    t->items = pop_to_mark();
                    push(t);
                    break;
                }
                case 0x85:
                case 0x86:
                case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
                    const int n = op - 0x84;
                    auto t = std::make_shared<Value>(Value::tuple);
                    t->items.resize(n);
                    for (int i = n - 1; i >= 0; --i) t->items[i] = pop();
                    push(t);
                    break;
                }
                case 'U':  // SHORT_BINSTRING (Python 2 str)
                case 'C':  // SHORT_BINBYTES
                    push_bytes(Value::bytes, u8_());
                    break;
                case 'T': {  // BINSTRING: signed 32-bit length
                    const u32 n = u32_();
                    ENGINE_CHECK(n < 0x80000000u, FormatError, path_, ": negative BINSTRING length at offset ", op_at_);
                    push_bytes(Value::bytes, n);
                    break;
                }
                case 'B':  // BINBYTES
                    push_bytes(Value::bytes, u32_());
                    break;
                case 0x8E:  // BINBYTES8
                    push_bytes(Value::bytes, u64_());
                    break;
                case 'X':  // BINUNICODE
                    push_bytes(Value::text, u32_());
                    break;
                case 0x8C:  // SHORT_BINUNICODE
                    push_bytes(Value::text, u8_());
                    break;
                case 0x8D:  // BINUNICODE8
                    push_bytes(Value::text, u64_());
                    break;
                case 0x88:
                case 0x89: {  // NEWTRUE, NEWFALSE
                    auto v = std::make_shared<Value>(Value::boolean);
                    v->flag = op == 0x88;
                    push(v);
                    break;
                }
                case 'q':  // BINPUT
                    put(u8_());
                    break;
                case 'r':  // LONG_BINPUT
                    put(u32_());
                    break;
                case 0x94:  // MEMOIZE: the next free memo index
                    put((u32)memo_.size());
                    break;
                case 'h':  // BINGET
                    get(u8_());
                    break;
                case 'j':  // LONG_BINGET
                    get(u32_());
                    break;
                case 'c': {  // GLOBAL "module\nname\n"
                    auto g = std::make_shared<Value>(Value::global);
                    g->module = line_();
                    g->name = line_();
                    check_global(*g);
                    push(g);
                    break;
                }
                case 0x93: {  // STACK_GLOBAL: module and name strings from the stack
                    Ptr name = pop(), module = pop();
                    ENGINE_CHECK(name->kind == Value::text && module->kind == Value::text,
                                 FormatError, path_, ": STACK_GLOBAL at offset ", op_at_,
                                 " without module and name strings");
                    auto g = std::make_shared<Value>(Value::global);
                    g->module.assign(module->data.begin(), module->data.end());
                    g->name.assign(name->data.begin(), name->data.end());
                    check_global(*g);
                    push(g);
                    break;
                }
                case 'R':  // REDUCE: only _codecs.encode(text, 'latin1') is accepted
                    reduce();
                    break;
                case 'b':  // BUILD
                    throw FormatError(str(path_, ": pickle opcode BUILD at offset ", op_at_,
                                          " (object state) is not allowed in a verification "
                                          "set"));
                case '.': {  // STOP
                    Ptr v = pop();
                    *protocol = proto_;
                    return v;
                }
                default:
                    throw FormatError(str(path_, ": unsupported pickle opcode 0x", std::hex,
                                          (int)op, std::dec, " at offset ", op_at_,
                                          " (not one of the opcodes a verification set uses)"));
            }
        }
    }

private:
    void need(u64 n) {
        ENGINE_CHECK(n <= b_.size() - pos_, FormatError, path_, ": truncated pickle at offset ",
                     op_at_, ": needs ", n, " bytes, ", b_.size() - pos_, " left");
    }
    u32 u8_() {
        need(1);
        return b_[pos_++];
    }
    u32 u32_() {
        need(4);
        u32 v = 0;
        for (int i = 0; i < 4; ++i) v |= (u32)b_[pos_ + i] << (8 * i);
        pos_ += 4;
        return v;
    }
    u64 u64_() {
        need(8);
        u64 v = 0;
        for (int i = 0; i < 8; ++i) v |= (u64)b_[pos_ + i] << (8 * i);
        pos_ += 8;
        return v;
    }
    std::string line_() {
        const size_t start = pos_;
        while (pos_ < b_.size() && b_[pos_] != '\n' && pos_ - start < 256) ++pos_;
        ENGINE_CHECK(pos_ < b_.size() && b_[pos_] == '\n', FormatError, path_,
                     ": truncated or malformed GLOBAL at offset ", op_at_);
        std::string s(b_.begin() + (std::ptrdiff_t)start, b_.begin() + (std::ptrdiff_t)pos_);
        ++pos_;
        return s;
    }
    void push_bytes(Value::Kind k, u64 n) {
        need(n);
        auto v = std::make_shared<Value>(k);
        v->data.assign(b_.begin() + (std::ptrdiff_t)pos_, b_.begin() + (std::ptrdiff_t)(pos_ + n));
        pos_ += n;
        push(v);
    }
    void push(Ptr v) { stack_.push_back(std::move(v)); }
    Ptr pop() {
        ENGINE_CHECK(!stack_.empty(), FormatError, path_, ": malformed pickle: stack underflow at offset ", op_at_);
        Ptr v = stack_.back();
        stack_.pop_back();
        ENGINE_CHECK(v->kind != Value::mark, FormatError, path_,
                     ": malformed pickle: unexpected MARK at offset ", op_at_);
        return v;
    }
    Ptr top() {
        ENGINE_CHECK(!stack_.empty(), FormatError, path_, ": malformed pickle: stack underflow at offset ", op_at_);
        return stack_.back();
    }
    std::vector<Ptr> pop_to_mark() {
        size_t m = stack_.size();
        while (m > 0 && stack_[m - 1]->kind != Value::mark) --m;
        ENGINE_CHECK(m > 0, FormatError, path_, ": malformed pickle: no MARK before offset ", op_at_);
        std::vector<Ptr> items(stack_.begin() + (std::ptrdiff_t)m, stack_.end());
        stack_.resize(m - 1);
        return items;
    }
    void expect_list(const Ptr& l) {
        ENGINE_CHECK(l->kind == Value::list, FormatError, path_, ": malformed pickle: append to a ",
                     kind_name(l->kind), " at offset ", op_at_);
    }
    void put(u32 i) { memo_[i] = top(); }
    void get(u32 i) {
        auto it = memo_.find(i);
        ENGINE_CHECK(it != memo_.end(), FormatError, path_, ": malformed pickle: memo index ", i,
                     " read before it was written, at offset ", op_at_);
        push(it->second);
    }
    void check_global(const Value& g) {
        if (g.module.rfind("numpy", 0) == 0)
            throw FormatError(str(path_, ": pickle global ", g.module, ".", g.name, " at offset ",
                                  op_at_, ": ", kNumpyMessage));
        ENGINE_CHECK(g.module == "_codecs" && g.name == "encode", FormatError, path_,
                     ": pickle global ", g.module, ".", g.name, " at offset ", op_at_,
                     " is not allowed (only _codecs.encode, Python 3's protocol-2 form of bytes)");
    }
    // _codecs.encode(text, 'latin1'): text's code points are the bytes.
    void reduce() {
        Ptr args = pop(), fn = pop();
        ENGINE_CHECK(fn->kind == Value::global, FormatError, path_, ": REDUCE at offset ",
                     op_at_, " on a ", kind_name(fn->kind));
        ENGINE_CHECK(args->kind == Value::tuple && args->items.size() == 2 &&
                         args->items[0]->kind == Value::text &&
                         args->items[1]->kind == Value::text,
                     FormatError, path_, ": REDUCE at offset ", op_at_,
                     ": _codecs.encode expects (text, encoding)");
        const std::string enc(args->items[1]->data.begin(), args->items[1]->data.end());
        ENGINE_CHECK(enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1", FormatError,
                     path_, ": REDUCE at offset ", op_at_, ": encoding '", enc,
                     "' (only latin1 is accepted)");
        const std::vector<u8>& t = args->items[0]->data;
        auto v = std::make_shared<Value>(Value::bytes);
        v->data.reserve(t.size());
        for (size_t i = 0; i < t.size();) {
            // UTF-8 of code points below 256: one byte (< 0x80) or two (0xC2/0xC3, then 10xxxxxx).
            const u8 c = t[i];
            if (c < 0x80) {
                v->data.push_back(c);
                i += 1;
            } else if ((c == 0xC2 || c == 0xC3) && i + 1 < t.size() && (t[i + 1] & 0xC0) == 0x80) {
                v->data.push_back((u8)(((c & 0x1F) << 6) | (t[i + 1] & 0x3F)));
                i += 2;
            } else {
                throw FormatError(str(path_, ": REDUCE at offset ", op_at_,
                                      ": text is not latin-1 (UTF-8 byte 0x", std::hex, (int)c,
                                      std::dec, " at character byte ", i, ")"));
            }
        }
        push(v);
    }

    std::string path_;
    std::vector<u8> b_;
    size_t pos_ = 0, op_at_ = 0;
    int proto_ = 0;
    std::vector<Ptr> stack_;
    std::unordered_map<u32, Ptr> memo_;
};

}  // namespace

VerificationSet read_verification_bin(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError(str(path, ": cannot open: ", std::strerror(errno)));
    std::vector<u8> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ENGINE_CHECK(!in.bad(), IoError, path, ": read failed");
    ENGINE_CHECK(!buf.empty(), FormatError, path, ": empty file (not a pickle)");
    ENGINE_CHECK(buf[0] == 0x80, FormatError, path,
                 ": not a pickle of protocol 2 or later (first byte 0x", std::hex, (int)buf[0],
                 std::dec, ", expected PROTO 0x80)");
    PickleReader r(path, std::move(buf));
    VerificationSet set;
    Ptr v = r.run(&set.protocol);
    ENGINE_CHECK(v->kind == Value::tuple && v->items.size() == 2, FormatError, path,
                 ": the pickle holds a ", kind_name(v->kind),
                 ", expected the tuple (bins, issame_list)");
    const Ptr& bins = v->items[0];
    const Ptr& same = v->items[1];
    ENGINE_CHECK(bins->kind == Value::list && same->kind == Value::list, FormatError, path,
                 ": expected (list, list), found (", kind_name(bins->kind), ", ",
                 kind_name(same->kind), ")");
    ENGINE_CHECK(bins->items.size() == 2 * same->items.size(), FormatError, path, ": ",
                 bins->items.size(), " images for ", same->items.size(),
                 " pairs (expected twice as many images as pairs)");
    set.images.reserve(bins->items.size());
    // Image bytes are moved out of the parsed values; a value the list holds twice (a memo
    // reference) is copied from its first place.
    std::unordered_map<const Value*, size_t> first;
    for (size_t i = 0; i < bins->items.size(); ++i) {
        const Ptr& b = bins->items[i];
        ENGINE_CHECK(b->kind == Value::bytes, FormatError, path, ": image ", i, " is a ",
                     kind_name(b->kind), ", expected bytes");
        auto seen = first.emplace(b.get(), i);
        if (seen.second)
            set.images.push_back(std::move(b->data));
        else
            set.images.push_back(set.images[seen.first->second]);
    }
    for (size_t i = 0; i < same->items.size(); ++i) {
        const Ptr& s = same->items[i];
        ENGINE_CHECK(s->kind == Value::boolean, FormatError, path, ": issame[", i, "] is a ",
                     kind_name(s->kind), ", expected bool");
        set.issame.push_back(s->flag);
    }
    return set;
}

void write_verification_bin(const std::string& path, const VerificationSet& set) {
    ENGINE_CHECK(set.images.size() == 2 * set.issame.size(), ArgError, path, ": ",
                 set.images.size(), " images for ", set.issame.size(), " pairs");
    std::vector<u8> out;
    u32 memo = 0;
    auto put_u32 = [&](u32 v) {
        for (int i = 0; i < 4; ++i) out.push_back((u8)(v >> (8 * i)));
    };
    // Python 2 memoizes every list and string: BINPUT below 256, LONG_BINPUT above.
    auto binput = [&]() {
        if (memo < 256) {
            out.push_back('q');
            out.push_back((u8)memo);
        } else {
            out.push_back('r');
            put_u32(memo);
        }
        ++memo;
    };
    // Lists go out in batches of 1000: MARK items APPENDS, a batch of one as item APPEND.
    auto write_list = [&](size_t n, auto&& item) {
        out.push_back(']');
        binput();
        for (size_t b = 0; b < n; b += 1000) {
            const size_t e = std::min(n, b + 1000);
            if (e - b > 1) out.push_back('(');
            for (size_t i = b; i < e; ++i) item(i);
            out.push_back(e - b > 1 ? 'e' : 'a');
        }
    };
    out.push_back(0x80);
    out.push_back(2);
    write_list(set.images.size(), [&](size_t i) {
        const std::vector<u8>& im = set.images[i];
        ENGINE_CHECK(im.size() < 0x80000000ull, ArgError, path, ": image ", i, " has ", im.size(),
                     " bytes (BINSTRING holds < 2^31)");
        if (im.size() < 256) {
            out.push_back('U');
            out.push_back((u8)im.size());
        } else {
            out.push_back('T');
            put_u32((u32)im.size());
        }
        out.insert(out.end(), im.begin(), im.end());
        binput();
    });
    write_list(set.issame.size(), [&](size_t i) { out.push_back(set.issame[i] ? 0x88 : 0x89); });
    out.push_back(0x86);  // TUPLE2
    binput();
    out.push_back('.');

    FILE* f = std::fopen(path.c_str(), "wb");
    ENGINE_CHECK(f, IoError, path, ": cannot create: ", std::strerror(errno));
    const size_t w = std::fwrite(out.data(), 1, out.size(), f);
    const int c = std::fclose(f);
    ENGINE_CHECK(w == out.size() && c == 0, IoError, path, ": write failed");
}

}  // namespace data
