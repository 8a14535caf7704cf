// build/gradcheck: runs the float64 gradient audit of every layer, block, model and loss, and
// prints one table row per case and tensor. Exit status: 0 all pass, 1 a row fails (or an
// error), 2 usage error.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/gradcheck.h"
#include "layers/gradcheck_layers.h"
#include "layers/gradcheck_model.h"
#include "losses/gradcheck_losses.h"

namespace {

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: gradcheck --all | --layer NAME [--layer NAME ...] | --list | --help\n"
                 "  --all          run every gradient check (layers, blocks, model, losses)\n"
                 "  --layer NAME   run the cases whose name starts with NAME (repeatable),\n"
                 "                 e.g. --layer prelu --layer ir_unit.projection\n"
                 "  --list         list the cases and exit\n"
                 "  --help         this text\n"
                 "Each row compares the analytic gradient of one tensor with float64 central\n"
                 "differences; 'skipped' counts points next to a kink (PReLU switch). Exit status\n"
                 "0 when every row passes, 1 when one fails, 2 on a usage error.\n");
}

std::vector<engine::GradCheckCase> all_cases() {
    std::vector<engine::GradCheckCase> cases = layer_gradcheck_cases();
    for (auto& c : model_gradcheck_cases()) cases.push_back(std::move(c));
    for (auto& c : loss_gradcheck_cases()) cases.push_back(std::move(c));
    return cases;
}

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

int run(int argc, char** argv) {
    bool all = false, list = false;
    std::vector<std::string> prefixes;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--all") {
            all = true;
        } else if (a == "--list") {
            list = true;
        } else if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else if (a == "--layer") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "gradcheck: --layer needs a NAME\n");
                usage(stderr);
                return 2;
            }
            prefixes.push_back(argv[++i]);
        } else {
            std::fprintf(stderr, "gradcheck: unknown argument '%s'\n", a.c_str());
            usage(stderr);
            return 2;
        }
    }
    if ((int)all + (int)list + (int)!prefixes.empty() != 1) {
        std::fprintf(stderr, "gradcheck: give exactly one of --all, --layer NAME..., --list\n");
        usage(stderr);
        return 2;
    }

    const std::vector<engine::GradCheckCase> cases = all_cases();
    if (list) {
        size_t w = 4;
        for (const auto& c : cases) w = std::max(w, c.name.size());
        for (const auto& c : cases)
            std::printf("%-*s  %s\n", (int)w, c.name.c_str(), c.description.c_str());
        return 0;
    }

    std::vector<const engine::GradCheckCase*> selected;
    for (const auto& c : cases) {
        bool take = all;
        for (const auto& p : prefixes) take = take || starts_with(c.name, p);
        if (take) selected.push_back(&c);
    }
    for (const auto& p : prefixes) {
        bool any = false;
        for (const auto& c : cases) any = any || starts_with(c.name, p);
        if (!any) {
            std::fprintf(stderr, "gradcheck: no case starts with '%s' (see --list)\n", p.c_str());
            return 2;
        }
    }

    size_t wcase = 4;
    for (const auto* c : selected) wcase = std::max(wcase, c->name.size());
    const int wc = (int)wcase, wt = 32;
    std::printf("%-*s  %-*s  %15s  %7s  %13s  %13s  %9s  %s\n", wc, "case", wt, "tensor",
                "checked/total", "skipped", "max abs err", "max rel err", "tolerance", "result");
    i64 n_rows = 0, n_fail = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto* c : selected) {
        for (const engine::GradCheckRow& r : c->run()) {
            ++n_rows;
            if (!r.pass) ++n_fail;
            const std::string counts = engine::str(r.checked, "/", r.total);
            std::printf("%-*s  %-*s  %15s  %7lld  %13.3e  %13.3e  %9.1e  %s\n", wc, c->name.c_str(),
                        wt, r.tensor.c_str(), counts.c_str(), (long long)r.skipped,
                        r.max_abs_error, r.max_rel_error, r.tolerance, r.pass ? "PASS" : "FAIL");
            std::fflush(stdout);
        }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("gradcheck: %lld rows in %zu cases, %lld passed, %lld failed (%.1f s)\n",
                (long long)n_rows, selected.size(), (long long)(n_rows - n_fail),
                (long long)n_fail, secs);
    return n_fail ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const engine::Error& e) {
        std::fprintf(stderr, "gradcheck: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gradcheck: unexpected error: %s\n", e.what());
        return 1;
    }
}
