// ImageDataset: random access to a labelled set of encoded images (a .rec/.idx pair, an image
// folder, ...), the one interface the loader, the head/tail tools and the apps read through.
// Sample indices are 0 .. size()-1 in the dataset's own order (a .rec's key order); identities
// are contiguous ranges of samples.
#pragma once
#include <string>
#include <vector>

#include "engine/common.h"

namespace data {

struct IdentityRange {
    i64 begin = 0, end = 0;  // sample indices [begin, end)
    int label = -1;          // class id of the identity
};

class ImageDataset {
public:
    virtual ~ImageDataset() = default;
    virtual i64 size() const = 0;
    virtual int label(i64 i) const = 0;  // class id of sample i
    // Encoded image bytes (JPEG/PNG) of sample i. Must be safe to call from several threads.
    // Throws engine::FormatError/IoError naming the file and record on a damaged record.
    virtual std::vector<u8> encoded(i64 i) const = 0;
    // Where sample i comes from, for error messages ("train.rec record 17 at offset 4096").
    virtual std::string describe(i64 i) const = 0;
    virtual i64 num_classes() const = 0;
    // The identities as contiguous sample ranges, in order.
    virtual const std::vector<IdentityRange>& identities() const = 0;
};

}  // namespace data
