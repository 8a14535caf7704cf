// A small command-line flag parser for the training apps: flags are declared with a default and
// a help line, parsed from argv (--name value, --name=value, --switch), and printed by --help.
// Unknown flags and bad values are engine::ArgError naming the flag.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/common.h"

namespace pipeline {

class Flags {
public:
    Flags(std::string program, std::string summary);
    // Declare before parse(). A switch takes no value ("--drop-classifier").
    void add(const std::string& name, const std::string& default_value, const std::string& help);
    void add_switch(const std::string& name, const std::string& help);
    // Returns false when --help was given (the help text has been printed to stdout).
    bool parse(int argc, char** argv);

    std::string str(const std::string& name) const;
    double num(const std::string& name) const;
    i64 integer(const std::string& name) const;
    bool on(const std::string& name) const;                   // a switch
    bool given(const std::string& name) const;                // set on the command line
    std::vector<std::string> list(const std::string& name) const;  // comma separated
    std::string help() const;

private:
    struct Flag {
        std::string value, help;
        bool is_switch = false, given = false;
    };
    const Flag& get(const std::string& name) const;
    std::string program_, summary_;
    std::vector<std::string> order_;
    std::map<std::string, Flag> flags_;
};

}  // namespace pipeline
