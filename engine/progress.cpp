// Progress line (terminal or plain log) and the JSONL metrics writer.
#include "engine/progress.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>

#include "engine/error.h"

namespace engine {

std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    const long long t = (long long)std::llround(s);
    char buf[64];
    if (t < 60)
        std::snprintf(buf, sizeof buf, "%llds", t);
    else if (t < 3600)
        std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    else
        std::snprintf(buf, sizeof buf, "%lldd%02lldh", t / 86400, (t % 86400) / 3600);
    return buf;
}

std::string format_progress(const ProgressInfo& p) {
    char buf[128];
    std::string line;
    if (p.total > 0)
        std::snprintf(buf, sizeof buf, "step %lld/%lld", (long long)p.step, (long long)p.total);
    else
        std::snprintf(buf, sizeof buf, "step %lld", (long long)p.step);
    line += buf;
    std::snprintf(buf, sizeof buf, " | epoch %.2f | %.1f img/s |", p.epoch, p.images_per_s);
    line += buf;
    for (const NamedValue& v : p.losses) {
        std::snprintf(buf, sizeof buf, " %.5g", v.value);
        line += " " + v.name + buf;
    }
    std::snprintf(buf, sizeof buf, " | lr %.4g | ETA ", p.lr);
    line += buf;
    line += format_duration(p.eta_s);
    return line;
}

Progress::Progress(i64 total_steps, i64 log_every, FILE* out, Mode mode)
    : total_(total_steps), log_every_(log_every > 0 ? log_every : 1), out_(out) {
    terminal_ = mode == Mode::terminal || (mode == Mode::automatic && out_ && isatty(fileno(out_)));
    now_ = [] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    };
}

Progress::~Progress() { finish(); }

void Progress::draw(const std::string& line) {
    // Carriage return, the line, then spaces over whatever remains of a longer previous line.
    std::string s = "\r" + line;
    if (line.size() < drawn_len_) s.append(drawn_len_ - line.size(), ' ');
    std::fputs(s.c_str(), out_);
    std::fflush(out_);
    drawn_len_ = line.size();
    drawn_ = line;
    line_pending_ = true;
}

void Progress::update(i64 step, double epoch, i64 images, const std::vector<NamedValue>& losses,
                      double lr) {
    const double now = now_();
    if (!started_) {
        // The first update has no interval behind it: it starts the clocks (its own images
        // count toward nothing, since its duration is unknown).
        started_ = true;
        t_first_ = t_window_ = now;
        step_first_ = step;
        window_images_ = 0;
    } else {
        window_images_ += images;
    }
    const double window = now - t_window_;
    const bool plain_due = step % log_every_ == 0 || (total_ > 0 && step >= total_);
    if (window > 0 && (terminal_ ? window >= 1.0 || rate_ == 0 : plain_due)) {
        rate_ = (double)window_images_ / window;
        t_window_ = now;
        window_images_ = 0;
    }
    ProgressInfo p;
    p.step = step;
    p.total = total_;
    p.epoch = epoch;
    p.images_per_s = rate_;
    p.losses = losses;
    p.lr = lr;
    if (step > step_first_ && total_ > 0)
        p.eta_s = (double)(total_ - step) * (now - t_first_) / (double)(step - step_first_);
    last_ = p;
    if (!out_) return;
    if (terminal_) {
        draw(format_progress(p));
    } else if (plain_due) {
        std::fprintf(out_, "%s\n", format_progress(p).c_str());
        std::fflush(out_);
    }
}

void Progress::message(const std::string& line) {
    if (!out_) return;
    if (terminal_ && line_pending_) {
        std::string s = "\r" + line;
        if (line.size() < drawn_len_) s.append(drawn_len_ - line.size(), ' ');
        std::fprintf(out_, "%s\n", s.c_str());
        drawn_len_ = 0;
        draw(drawn_);
    } else {
        std::fprintf(out_, "%s\n", line.c_str());
        std::fflush(out_);
    }
}

void Progress::finish() {
    if (out_ && terminal_ && line_pending_) {
        std::fputc('\n', out_);
        std::fflush(out_);
    }
    line_pending_ = false;
    drawn_len_ = 0;
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    // std::to_chars without a format gives the shortest representation that round-trips
    // ("0.1", "1e-05", "12"), all of them valid JSON numbers.
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

std::string json_string(const std::string& s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    o += buf;
                } else {
                    o += (char)c;  // UTF-8 bytes pass through unchanged
                }
        }
    }
    return o + "\"";
}

std::string metrics_json_line(i64 step, double time_s, const std::vector<NamedValue>& values,
                              const std::vector<std::pair<std::string, std::string>>& labels) {
    std::string o = "{\"step\": " + std::to_string((long long)step) +
                    ", \"time\": " + json_number(time_s);
    for (const auto& l : labels) o += ", " + json_string(l.first) + ": " + json_string(l.second);
    for (const NamedValue& v : values) o += ", " + json_string(v.name) + ": " + json_number(v.value);
    return o + "}";
}

MetricsWriter::MetricsWriter(const std::string& path, bool append) : path_(path) {
    f_ = std::fopen(path.c_str(), append ? "a" : "w");
    ENGINE_CHECK(f_ != nullptr, IoError, "metrics: cannot open ", path, " for writing: ",
                 std::strerror(errno));
}

MetricsWriter::~MetricsWriter() { close(); }

MetricsWriter::MetricsWriter(MetricsWriter&& o) noexcept
    : f_(o.f_), path_(std::move(o.path_)), lines_(o.lines_) {
    o.f_ = nullptr;
}

MetricsWriter& MetricsWriter::operator=(MetricsWriter&& o) noexcept {
    if (this != &o) {
        close();
        f_ = o.f_;
        path_ = std::move(o.path_);
        lines_ = o.lines_;
        o.f_ = nullptr;
    }
    return *this;
}

void MetricsWriter::close() {
    if (f_) std::fclose(f_);
    f_ = nullptr;
}

void MetricsWriter::write(i64 step, double time_s, const std::vector<NamedValue>& values,
                          const std::vector<std::pair<std::string, std::string>>& labels) {
    if (!f_) return;
    const std::string line = metrics_json_line(step, time_s, values, labels) + "\n";
    const bool ok = std::fwrite(line.data(), 1, line.size(), f_) == line.size() &&
                    std::fflush(f_) == 0;
    ENGINE_CHECK(ok, IoError, "metrics: write failed on ", path_, " at line ", lines_ + 1, ": ",
                 std::strerror(errno));
    ++lines_;
}

}  // namespace engine
