// Progress display (plain and terminal modes, rate and ETA on a fake clock) and the JSONL
// metrics writer (exact lines, null for non-finite values, append, errors).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/progress.h"

namespace {

// Everything written to a temporary FILE*.
std::string read_all(FILE* f) {
    std::fflush(f);
    std::rewind(f);
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    return s;
}

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> v;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t nl = s.find('\n', pos);
        if (nl == std::string::npos) nl = s.size();
        v.push_back(s.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return v;
}

// Per-process name: several engineers' suites may run at the same time.
std::string temp_path(const char* name) {
    return "/tmp/engine_test_" + std::to_string((long long)getpid()) + "_" + name;
}

}  // namespace

TEST_CASE("progress: durations") {
    CHECK(engine::format_duration(0) == "0s");
    CHECK(engine::format_duration(42.4) == "42s");
    CHECK(engine::format_duration(185) == "3m05s");
    CHECK(engine::format_duration(3720) == "1h02m");
    CHECK(engine::format_duration(2 * 86400 + 3 * 3600 + 59) == "2d03h");
    CHECK(engine::format_duration(-1) == "?");
    CHECK(engine::format_duration(NAN) == "?");
}

TEST_CASE("progress: a line names every loss term, the rate, the lr and the ETA") {
    engine::ProgressInfo p;
    p.step = 120;
    p.total = 1000;
    p.epoch = 0.349;
    p.images_per_s = 812.34;
    p.losses = {{"arcface", 12.3456789}, {"center", 0.0123}};
    p.lr = 0.1;
    p.eta_s = 3720;
    CHECK(engine::format_progress(p) ==
          "step 120/1000 | epoch 0.35 | 812.3 img/s | arcface 12.346 center 0.0123 | lr 0.1 | "
          "ETA 1h02m");
    p.eta_s = -1;
    p.total = 0;
    CHECK(engine::format_progress(p).rfind("step 120 |", 0) == 0);
    CHECK(engine::format_progress(p).find("ETA ?") != std::string::npos);
}

TEST_CASE("progress: plain mode logs every N steps and the last, with rate and ETA") {
    FILE* f = std::tmpfile();
    REQUIRE(f);
    double clock = 100.0;
    {
        engine::Progress prog(10, 4, f, engine::Progress::Mode::plain);
        CHECK(!prog.terminal());
        prog.set_clock([&] { return clock; });
        for (i64 step = 1; step <= 10; ++step) {
            // Each step takes 0.5 s and processes 100 images: 200 img/s.
            clock += 0.5;
            prog.update(step, step / 5.0, 100, {{"loss", 10.0 / step}}, 0.01);
        }
        // ETA at step 4: 6 steps left at (2.0 - 0.5) s / 3 steps = 0.5 s each -> 3 s.
        CHECK(prog.last().images_per_s == doctest::Approx(200.0));
    }
    const std::string out = read_all(f);
    std::fclose(f);
    CHECK(out.find('\r') == std::string::npos);
    const auto lines = split_lines(out);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].rfind("step 4/10 |", 0) == 0);
    CHECK(lines[1].rfind("step 8/10 |", 0) == 0);
    CHECK(lines[2].rfind("step 10/10 |", 0) == 0);
    CHECK(lines[0] == "step 4/10 | epoch 0.80 | 200.0 img/s | loss 2.5 | lr 0.01 | ETA 3s");
    CHECK(lines[2].find("ETA 0s") != std::string::npos);
}

TEST_CASE("progress: terminal mode rewrites one line with \\r and keeps messages") {
    FILE* f = std::tmpfile();
    REQUIRE(f);
    double clock = 0.0;
    {
        engine::Progress prog(100, 50, f, engine::Progress::Mode::terminal);
        CHECK(prog.terminal());
        prog.set_clock([&] { return clock; });
        prog.update(1, 0.01, 64, {{"arcface", 20.0}, {"center", 0.5}}, 0.1);
        clock += 2.0;
        prog.update(2, 0.02, 64, {{"arcface", 19.0}, {"center", 0.4}}, 0.1);
        prog.message("lfw: acc 0.5");
        clock += 2.0;
        prog.update(3, 0.03, 64, {{"arcface", 18.0}, {"center", 0.3}}, 0.1);
        prog.finish();
    }
    const std::string out = read_all(f);
    std::fclose(f);
    // Three updates and one redraw after the message, each starting with a carriage return.
    size_t crs = 0;
    for (char c : out) crs += c == '\r';
    CHECK(crs == 5);  // 3 updates + the message + the redraw
    const auto lines = split_lines(out);
    REQUIRE(lines.size() == 2);  // the message's newline and finish()'s newline
    CHECK(lines[0].find("lfw: acc 0.5") != std::string::npos);
    CHECK(lines[1].find("step 3/100") != std::string::npos);
    CHECK(lines[1].find("arcface 18 center 0.3") != std::string::npos);
    CHECK(lines[1].find("32.0 img/s") != std::string::npos);  // 64 images over 2 s
}

TEST_CASE("metrics: JSON numbers, strings and lines") {
    CHECK(engine::json_number(0.1) == "0.1");
    CHECK(engine::json_number(12.0) == "12");
    CHECK(engine::json_number(1e-5) == "1e-05");
    CHECK(engine::json_number(NAN) == "null");
    CHECK(engine::json_number(INFINITY) == "null");
    CHECK(engine::json_number(-INFINITY) == "null");
    CHECK(std::stod(engine::json_number(0.1 + 0.2)) == 0.1 + 0.2);  // round-trips
    CHECK(engine::json_string("a\"b\\c\nd\x01") == "\"a\\\"b\\\\c\\nd\\u0001\"");
    CHECK(engine::metrics_json_line(3, 1.5, {{"loss", 0.25}, {"lfw_acc", NAN}},
                                    {{"stage", "nr"}}) ==
          "{\"step\": 3, \"time\": 1.5, \"stage\": \"nr\", \"loss\": 0.25, \"lfw_acc\": null}");
}

TEST_CASE("metrics: the writer flushes every line, truncates or appends") {
    const std::string path = temp_path("metrics.jsonl");
    {
        engine::MetricsWriter w(path);
        w.write(1, 0.5, {{"loss", 2.0}});
        // Flushed: a reader sees the line while the writer is still open.
        std::ifstream in(path);
        std::string line;
        REQUIRE(std::getline(in, line));
        CHECK(line == "{\"step\": 1, \"time\": 0.5, \"loss\": 2}");
        w.write(2, 1.0, {{"loss", INFINITY}});
        CHECK(w.lines_written() == 2);
    }
    {
        engine::MetricsWriter w(path, /*append=*/true);
        w.write(3, 1.5, {{"loss", 1.0}});
    }
    {
        std::ifstream in(path);
        std::vector<std::string> lines;
        std::string line;
        while (std::getline(in, line)) lines.push_back(line);
        REQUIRE(lines.size() == 3);
        CHECK(lines[1] == "{\"step\": 2, \"time\": 1, \"loss\": null}");
        CHECK(lines[2] == "{\"step\": 3, \"time\": 1.5, \"loss\": 1}");
    }
    {
        engine::MetricsWriter w(path);  // a new run truncates
        w.write(1, 0.0, {});
    }
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(all == "{\"step\": 1, \"time\": 0}\n");
    std::remove(path.c_str());
    CHECK_THROWS_AS(engine::MetricsWriter("/nonexistent-dir/m.jsonl"), engine::IoError);
}
