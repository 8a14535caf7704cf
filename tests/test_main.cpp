// doctest entry point. Besides doctest's own summary it prints one plain line
// "tests: N passed, N failed, N skipped" and lists every skipped case with its reason, so a GPU
// parity case that could not run is visible, never silently green.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace {
struct Counts {
    int passed = 0, failed = 0, skipped = 0;
    std::vector<std::string> skipped_names;
} g_counts;

// A listener: counts cases by outcome (skip decorators only, not cases filtered out by -tc).
struct CountingListener : doctest::IReporter {
    explicit CountingListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats&) override {}
    void test_case_start(const doctest::TestCaseData&) override {}
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats& s) override {
        (s.testCaseSuccess ? g_counts.passed : g_counts.failed)++;
    }
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData& d) override {
        if (!d.m_skip) return;
        g_counts.skipped++;
        g_counts.skipped_names.push_back(d.m_name);
    }
};
REGISTER_LISTENER("counting", 1, CountingListener);
}  // namespace

int main(int argc, char** argv) {
    doctest::Context ctx;
    ctx.applyCommandLine(argc, argv);
    const int rc = ctx.run();
    if (ctx.shouldExit()) return rc;
    // doctest reports skip-decorated cases as skipped even when a filter (-tc, -sf, ...) would
    // have excluded them; with a filter the list is only indicative.
    bool filtered = false;
    for (int i = 1; i < argc; ++i) filtered = filtered || std::string(argv[i]).rfind("-", 0) == 0;
    if (!g_counts.skipped_names.empty()) {
        std::printf("skipped cases%s (reason: %s):\n",
                    filtered ? " (including any outside the filter)" : "",
                    test::gpu_skip_reason().c_str());
        for (const auto& n : g_counts.skipped_names) std::printf("  - %s\n", n.c_str());
    }
    std::printf("tests: %d passed, %d failed, %d skipped\n", g_counts.passed, g_counts.failed,
                g_counts.skipped);
    return rc;
}
