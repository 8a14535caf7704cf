// Image lists for packing: .lst files (MXNet im2rec's and InsightFace's layouts) and image
// folders DIR/<identity>/<image files>. Both give (path, label) entries for apps/pack.
#pragma once
#include <string>
#include <vector>

#include "engine/common.h"

namespace data {

struct LstEntry {
    std::string path;  // resolved: absolute, or relative to the current directory
    int label = 0;
    i64 line = 0;      // 1-based line of the .lst (0 for folder scans), for error messages
};

// Reads a tab-separated .lst. Each line's layout is detected from its columns:
//  - InsightFace / "index path label": 3 columns "aligned_or_index<TAB>path<TAB>label", or 7
//    (+ bbox: 4 ints) or 17 (+ bbox and 10 landmark floats) columns; column 2 is the path and
//    column 3 an integer label. This is also the "index path label" layout.
//  - MXNet im2rec: "index<TAB>label[<TAB>label...]<TAB>path": the last column is the path and the
//    columns between are numbers; the first label (an integral float such as 3.000000) is used.
// A 3-column line is InsightFace's when its column 3 is an integer and column 2 is not a number,
// im2rec's when column 2 is a number and column 3 is not; a line that fits neither (or both) is
// a FormatError naming the file and line. Relative paths are resolved against `root` (default:
// the .lst's directory). Labels must be non-negative integers.
std::vector<LstEntry> read_lst(const std::string& lst_path, const std::string& root = "");

// Scans DIR/<identity>/<image>: identity folders sorted by name (byte order) get labels 0, 1, ..
// in that order; files with the extensions .jpg .jpeg .png (any case) inside each, sorted
// by name, are its images. Other files and hidden entries are ignored; identity folders without
// an image get no label (labels stay contiguous). identity_names (optional) receives the folder
// name of each label. Throws IoError when DIR cannot be read.
std::vector<LstEntry> scan_image_folder(const std::string& dir,
                                        std::vector<std::string>* identity_names = nullptr);

}  // namespace data
