// InsightFace verification sets (lfw.bin, cfp_fp.bin, agedb_30.bin): a Python pickle of
// (list of 2P encoded images, list of P bools); pair i is images 2i and 2i+1
// (../shared/FORMATS.md section 3). The reader accepts the pickle subset listed there
// (protocols 2 to 5, Python 2 str and Python 3 bytes, the _codecs.encode form) and rejects
// anything else (numpy arrays, other globals) with a message that says what it found.
#pragma once
#include <string>
#include <vector>

#include "engine/common.h"

namespace data {

struct VerificationSet {
    std::vector<std::vector<u8>> images;  // 2 * pairs encoded images (JPEG/PNG bytes)
    std::vector<bool> issame;             // pairs
    int protocol = 0;                     // pickle protocol of the file read (0: unknown)
    i64 pairs() const { return (i64)issame.size(); }
};

// Throws engine::IoError / engine::FormatError naming the file and the byte offset.
VerificationSet read_verification_bin(const std::string& path);
// Writes protocol 2 with Python 2 str opcodes (SHORT_BINSTRING/BINSTRING), as InsightFace's
// Python 2 tools did; Python 3 loads it with pickle.load(f, encoding='bytes').
void write_verification_bin(const std::string& path, const VerificationSet& set);

}  // namespace data
