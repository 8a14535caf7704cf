// Head/tail split and noise-list application on InsightFace .rec sets, written through
// DatasetWriter so the outputs have InsightFace's layout.
#include "data/dataset_tools.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "data/recordio.h"
#include "engine/error.h"

namespace data {

using engine::ArgError;
using engine::FormatError;
using engine::IoError;
using engine::str;

SplitCounts split_head_tail(const std::string& src, const std::string& out_head,
                            const std::string& out_tail, i64 min_images) {
    ENGINE_CHECK(min_images >= 1, ArgError, "split: min_images must be >= 1, got ", min_images);
    RecordDataset ds(src);
    // Classes in order of first appearance, each with its samples in src order (every sample
    // counts, whether or not an identity record covers it).
    std::vector<int> order;
    std::unordered_map<int, std::vector<i64>> samples;
    for (i64 i = 0; i < ds.size(); ++i) {
        auto& v = samples[ds.label(i)];
        if (v.empty()) order.push_back(ds.label(i));
        v.push_back(i);
    }
    DatasetWriter head(out_head, ds.image_height(), ds.image_width());
    DatasetWriter tail(out_tail, ds.image_height(), ds.image_width());
    // origin.txt beside each output: "key src_key src_label" per image, so results on the split
    // sets (a noise list, a ground truth) can be traced back to the source records.
    std::ofstream head_origin(out_head + "/origin.txt"), tail_origin(out_tail + "/origin.txt");
    ENGINE_CHECK(head_origin && tail_origin, IoError, "split: cannot write origin.txt in ",
                 out_head, " or ", out_tail);
    head_origin << "# key src_key src_label (src: " << src << ")\n";
    tail_origin << "# key src_key src_label (src: " << src << ")\n";
    SplitCounts c;
    for (int label : order) {
        const std::vector<i64>& v = samples[label];
        const bool is_head = (i64)v.size() >= min_images;
        DatasetWriter& w = is_head ? head : tail;
        std::ofstream& origin = is_head ? head_origin : tail_origin;
        const int new_label = (int)(is_head ? c.head_classes++ : c.tail_classes++);
        for (i64 i : v) {
            w.add_image(new_label, ds.encoded(i));
            origin << w.images() << ' ' << ds.record_key(i) << ' ' << label << '\n';
        }
        (is_head ? c.head_images : c.tail_images) += (i64)v.size();
    }
    head.close();
    tail.close();
    ENGINE_CHECK(head_origin.flush() && tail_origin.flush(), IoError,
                 "split: writing origin.txt failed");
    return c;
}

DenoiseCounts apply_noise_list(const std::string& src, const std::string& noise_list,
                               const std::string& out) {
    RecordDataset ds(src);
    std::unordered_map<i64, i64> key_to_sample;
    for (i64 i = 0; i < ds.size(); ++i) key_to_sample[ds.record_key(i)] = i;

    std::ifstream in(noise_list);
    if (!in) throw IoError(str(noise_list, ": cannot open: ", std::strerror(errno)));
    std::unordered_set<i64> drop;  // sample indices
    std::string line;
    i64 lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        const size_t first = line.find_first_not_of(" \t\r");
        if (first == std::string::npos || line[first] == '#') continue;
        std::istringstream ls(line);
        long long label = 0, key = 0;
        double max_p = 0, p_label = 0;
        std::string extra;
        ENGINE_CHECK((ls >> label >> key >> max_p >> p_label) && !(ls >> extra), FormatError,
                     noise_list, ": line ", lineno, ": cannot parse \"", line,
                     "\" (expected: label record_index max_p p_label)");
        auto it = key_to_sample.find(key);
        ENGINE_CHECK(it != key_to_sample.end(), FormatError, noise_list, ": line ", lineno,
                     ": record_index ", key, " is not an image record of ", ds.rec_path());
        ENGINE_CHECK(ds.label(it->second) == label, FormatError, noise_list, ": line ", lineno,
                     ": label ", label, " but ", ds.describe(it->second), " has label ",
                     ds.label(it->second));
        ENGINE_CHECK(drop.insert(it->second).second, FormatError, noise_list, ": line ", lineno,
                     ": record_index ", key, " listed twice");
    }
    ENGINE_CHECK(!in.bad(), IoError, noise_list, ": read failed");

    DatasetWriter w(out, ds.image_height(), ds.image_width());
    w.set_num_classes(ds.num_classes());
    DenoiseCounts c;
    c.images_in = ds.size();
    c.classes = ds.num_classes();
    // src order (classes are grouped there already); every sample not listed is kept.
    for (i64 i = 0; i < ds.size(); ++i) {
        if (drop.count(i)) continue;
        w.add_image(ds.label(i), ds.encoded(i));
        ++c.images_out;
    }
    w.close();
    c.removed = (i64)drop.size();
    return c;
}

}  // namespace data
