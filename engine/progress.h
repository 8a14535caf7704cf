// Training output: a one-line progress display (rewritten in place on a terminal, plain log lines
// otherwise) and a JSONL metrics writer (one JSON object per line, flushed per line).
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/common.h"

namespace engine {

struct NamedValue {
    std::string name;
    double value;
};

// What one progress line shows.
struct ProgressInfo {
    i64 step = 0, total = 0;  // completed steps and the run's total (total <= 0: unknown)
    double epoch = 0;
    double images_per_s = 0;
    std::vector<NamedValue> losses;  // each loss term by name ("loss", "arcface", "center")
    double lr = 0;
    double eta_s = -1;  // seconds to the end; < 0 when not known yet
};

// "42s", "3m05s", "1h02m", "2d03h"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// "step 120/1000 | epoch 0.35 | 812.3 img/s | arcface 12.346 center 0.0123 | lr 0.1 | ETA 1h02m"
std::string format_progress(const ProgressInfo& p);

class Progress {
public:
    enum class Mode { automatic, terminal, plain };  // automatic: isatty(out)

    // total_steps: for "step/total" and the ETA. log_every: a plain line every N steps (and at
    // the last step); on a terminal every update rewrites the line. out is not owned.
    Progress(i64 total_steps, i64 log_every = 50, FILE* out = stderr, Mode mode = Mode::automatic);
    ~Progress();

    // After each completed step (1-based `step`): images = samples processed by this step
    // (global batch). The rate is measured over windows of at least one second on a terminal,
    // and between printed lines in plain mode; the ETA from the mean time per step since the
    // first update (so a resumed run's ETA counts only its own steps).
    void update(i64 step, double epoch, i64 images, const std::vector<NamedValue>& losses,
                double lr);
    // A line that must stay (a verification result, a checkpoint): on a terminal it replaces
    // the progress line, which is drawn again below it.
    void message(const std::string& line);
    // Ends a pending terminal line with a newline (also done by the destructor).
    void finish();

    bool terminal() const { return terminal_; }
    const ProgressInfo& last() const { return last_; }
    // Seconds from an arbitrary origin; steady_clock by default. For tests.
    void set_clock(std::function<double()> now) { now_ = std::move(now); }

private:
    void draw(const std::string& line);

    i64 total_, log_every_;
    FILE* out_;
    bool terminal_;
    std::function<double()> now_;
    bool started_ = false, line_pending_ = false;
    double t_first_ = 0, t_window_ = 0, rate_ = 0;
    i64 step_first_ = 0, window_images_ = 0;
    size_t drawn_len_ = 0;
    std::string drawn_;
    ProgressInfo last_;
};

// JSON text for a number: shortest digits that read back to the same double; null for NaN and
// infinities (which JSON cannot hold).
std::string json_number(double v);
// A JSON string literal with quotes, backslashes and control characters escaped.
std::string json_string(const std::string& s);
// {"step": S, "time": T, then the labels as strings and the values as numbers, in order}
// as one line without the newline.
std::string metrics_json_line(i64 step, double time_s, const std::vector<NamedValue>& values,
                              const std::vector<std::pair<std::string, std::string>>& labels = {});

// Appends one JSON object per line to a .jsonl file, flushed after every line so a crashed or
// running job's metrics are complete up to the last step (tools/plot.py reads them).
class MetricsWriter {
public:
    MetricsWriter() = default;
    // append = false truncates (a new run), true continues a file (a resumed run).
    // Throws IoError naming the path when it cannot be opened.
    explicit MetricsWriter(const std::string& path, bool append = false);
    ~MetricsWriter();
    MetricsWriter(const MetricsWriter&) = delete;
    MetricsWriter& operator=(const MetricsWriter&) = delete;
    MetricsWriter(MetricsWriter&& o) noexcept;
    MetricsWriter& operator=(MetricsWriter&& o) noexcept;

    // Throws IoError (path and line number) when the write fails; a closed writer ignores it.
    void write(i64 step, double time_s, const std::vector<NamedValue>& values,
               const std::vector<std::pair<std::string, std::string>>& labels = {});
    bool is_open() const { return f_ != nullptr; }
    const std::string& path() const { return path_; }
    i64 lines_written() const { return lines_; }
    void close();

private:
    FILE* f_ = nullptr;
    std::string path_;
    i64 lines_ = 0;
};

}  // namespace engine
