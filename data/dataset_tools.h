// Tools on InsightFace .rec sets: split into head and tail by images per identity (SPEC.md
// section 6), and apply a noise list to get the denoised head set (SPEC.md section 5).
#pragma once
#include <string>

#include "engine/common.h"

namespace data {

struct SplitCounts {
    i64 head_classes = 0, head_images = 0;
    i64 tail_classes = 0, tail_images = 0;
};

// Classes of `src` (a .rec set directory or .rec file) with >= min_images images go to
// out_head, the others to out_tail; each output is relabelled 0..C-1 in the order the classes
// first appear in src, keeps each class's images together and in src order, and is written as
// an InsightFace set (identity records, record 0, property with src's image size), plus
// origin.txt: one line "key src_key src_label" per image of that output. A class
// whose images lie in several identity ranges is counted and written as one class (gathered).
SplitCounts split_head_tail(const std::string& src, const std::string& out_head,
                            const std::string& out_tail, i64 min_images);

struct DenoiseCounts {
    i64 images_in = 0, removed = 0, images_out = 0, classes = 0;
};

// Noise list lines "label record_index max_p p_label" (blank lines and lines starting with '#'
// are skipped). record_index is the record key of the image in src's .rec (the key in
// train.idx; for an InsightFace set, sample index + 1), and `label` must be that record's class
// id: a key that is not an image of src, a label that does not match, an unparsable line or a
// key listed twice is a FormatError naming the list file and line. The output keeps src's labels
// and num_classes (a class may end up with no image) and drops the listed records.
DenoiseCounts apply_noise_list(const std::string& src, const std::string& noise_list,
                               const std::string& out);

}  // namespace data
