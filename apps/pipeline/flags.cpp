// Flag parsing for the apps (see flags.h).
#include "apps/pipeline/flags.h"

#include <cstdio>
#include <cstdlib>

#include "engine/error.h"

namespace pipeline {

using engine::ArgError;

Flags::Flags(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void Flags::add(const std::string& name, const std::string& default_value,
                const std::string& help) {
    Flag f;
    f.value = default_value;
    f.help = help;
    order_.push_back(name);
    flags_[name] = f;
}

void Flags::add_switch(const std::string& name, const std::string& help) {
    Flag f;
    f.value = "0";
    f.help = help;
    f.is_switch = true;
    order_.push_back(name);
    flags_[name] = f;
}

bool Flags::parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(help().c_str(), stdout);
            return false;
        }
        ENGINE_CHECK(a.rfind("--", 0) == 0, ArgError, program_, ": unexpected argument '", a,
                     "' (see --help)");
        std::string name = a.substr(2), value;
        bool has_value = false;
        const size_t eq = name.find('=');
        if (eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        auto it = flags_.find(name);
        ENGINE_CHECK(it != flags_.end(), ArgError, program_, ": unknown flag --", name,
                     " (see --help)");
        Flag& f = it->second;
        if (f.is_switch) {
            f.value = has_value ? value : "1";
        } else {
            if (!has_value) {
                ENGINE_CHECK(i + 1 < argc, ArgError, program_, ": --", name, " needs a value");
                value = argv[++i];
            }
            f.value = value;
        }
        f.given = true;
    }
    return true;
}

const Flags::Flag& Flags::get(const std::string& name) const {
    auto it = flags_.find(name);
    ENGINE_CHECK(it != flags_.end(), ArgError, program_, ": flag --", name, " was never declared");
    return it->second;
}

std::string Flags::str(const std::string& name) const { return get(name).value; }

double Flags::num(const std::string& name) const {
    const std::string& v = get(name).value;
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    ENGINE_CHECK(!v.empty() && end && *end == '\0', ArgError, program_, ": --", name,
                 " expects a number, got '", v, "'");
    return d;
}

i64 Flags::integer(const std::string& name) const {
    const std::string& v = get(name).value;
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    ENGINE_CHECK(!v.empty() && end && *end == '\0', ArgError, program_, ": --", name,
                 " expects an integer, got '", v, "'");
    return (i64)x;
}

bool Flags::on(const std::string& name) const {
    const std::string& v = get(name).value;
    return !(v.empty() || v == "0" || v == "false" || v == "no");
}

bool Flags::given(const std::string& name) const { return get(name).given; }

std::vector<std::string> Flags::list(const std::string& name) const {
    std::vector<std::string> out;
    const std::string& v = get(name).value;
    size_t start = 0;
    while (start <= v.size()) {
        const size_t comma = v.find(',', start);
        const std::string item = v.substr(start, comma == std::string::npos ? std::string::npos
                                                                             : comma - start);
        if (!item.empty()) out.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

std::string Flags::help() const {
    std::string s = "usage: " + program_ + " [flags]\n" + summary_ + "\n\nflags:\n";
    for (const auto& name : order_) {
        const Flag& f = flags_.at(name);
        std::string left = "  --" + name + (f.is_switch ? "" : " V");
        if (left.size() < 26) left.resize(26, ' ');
        else left += "\n" + std::string(26, ' ');
        s += left + f.help;
        if (!f.is_switch && !f.value.empty()) s += " (default " + f.value + ")";
        s += "\n";
    }
    return s;
}

}  // namespace pipeline
