#include "cli/parse_errors.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <string_view>
#include <vector>

#include "pals/common/config_keys.hpp"

namespace pals::cli {

namespace {

/// The root, then each subcommand the parse entered, deepest last.
std::vector<const CLI::App*> parsed_chain(const CLI::App& root) {
    std::vector<const CLI::App*> chain{&root};
    for (;;) {
        const std::vector<CLI::App*> parsed = chain.back()->get_subcommands();
        if (parsed.empty()) {
            return chain;
        }
        chain.push_back(parsed.back());
    }
}

/// "pals power set" for the chain up to and including `last`.
std::string path_to(const std::vector<const CLI::App*>& chain, const CLI::App* last) {
    std::string out = "pals";
    for (const CLI::App* app : chain) {
        if (app->get_parent() != nullptr) {
            out += " " + app->get_name();
        }
        if (app == last) {
            break;
        }
    }
    return out;
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
    return app.get_subcommands([](const CLI::App*) { return true; });
}

std::string names_of(const std::vector<const CLI::App*>& apps) {
    std::string out;
    for (const CLI::App* app : apps) {
        out += (out.empty() ? "" : ", ") + app->get_name();
    }
    return out;
}

/// Every long flag of `app` ("--max-num-seqs"), for "did you mean".
std::vector<std::string> flag_names(const CLI::App& app) {
    std::vector<std::string> out;
    for (const CLI::Option* option : app.get_options()) {
        for (const std::string& name : option->get_lnames()) {
            out.push_back("--" + name);
        }
    }
    return out;
}

std::string suggestion(std::string_view unknown, const std::vector<std::string>& known) {
    return did_you_mean(unknown, std::vector<std::string_view>(known.begin(), known.end()));
}

std::string help_hint(const std::string& path, bool has_subcommands) {
    return fmt::format("`{} --help` lists its {}", path, has_subcommands ? "commands" : "flags");
}

/// `text` without `prefix` / `suffix`, or "" when it does not have them.
bool strip(std::string_view text, std::string_view prefix, std::string_view suffix,
           std::string& out) {
    if (text.size() < prefix.size() + suffix.size() || !text.starts_with(prefix) ||
        !text.ends_with(suffix)) {
        return false;
    }
    out = std::string(text.substr(prefix.size(), text.size() - prefix.size() - suffix.size()));
    return true;
}

/// An unknown flag or a stray argument: the deepest command that has leftovers.
CliError describe_extras(const std::vector<const CLI::App*>& chain, const std::string& fallback) {
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        const std::vector<std::string> left = (*it)->remaining(false);
        if (left.empty()) {
            continue;
        }
        const std::string path = path_to(chain, *it);
        for (const std::string& arg : left) {
            if (arg.size() > 1 && arg.front() == '-') {
                const std::string name = arg.substr(0, arg.find('='));
                return {fmt::format("unknown flag '{}' for `{}`{}", name, path,
                                    suggestion(name, flag_names(**it))),
                        help_hint(path, false)};
            }
        }
        return {fmt::format("`{}` takes no argument '{}'", path, left.front()),
                help_hint(path, false)};
    }
    return {fallback, ""};
}

/// A missing required flag, argument or subcommand of `cmd`.
CliError describe_required(const CLI::App& cmd, const std::string& path, const std::string& what) {
    const std::vector<const CLI::App*> subs = subcommands_of(cmd);
    if (!subs.empty() && (what == "A subcommand is required" ||
                          std::string_view(what).starts_with("Requires at least"))) {
        return {fmt::format("`{}` needs a command: {}", path, names_of(subs)),
                help_hint(path, true)};
    }
    std::string name;
    if (!strip(what, "", " is required", name)) {
        return {what, help_hint(path, !subs.empty())};
    }
    const CLI::Option* option = cmd.get_option_no_throw(name);
    const std::string about = option != nullptr && !option->get_description().empty()
                                  ? " (" + option->get_description() + ")"
                                  : "";
    if (!name.empty() && name.front() == '-') {
        return {fmt::format("`{}` needs {}{}", path, name, about), help_hint(path, false)};
    }
    return {fmt::format("`{}` needs its argument '{}'{}", path, name, about),
            help_hint(path, false)};
}

/// CLI11's own wording of a value it could not take, in ours.
std::string describe_value_error(const CLI::ParseError& error, const std::string& what) {
    std::string name;
    std::string rest;
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&error) != nullptr) {
        // "--num-requests: 1 required INT missing"
        const std::size_t colon = what.find(": ");
        if (colon != std::string::npos &&
            strip(std::string_view(what).substr(colon + 2), "", " missing", rest)) {
            return what.substr(0, colon) + " needs a value";
        }
        return what;
    }
    if (dynamic_cast<const CLI::ConversionError*>(&error) != nullptr) {
        if (strip(what, "Could not convert: ", "", rest)) {  // "--x = y"
            const std::size_t eq = rest.find(" = ");
            if (eq != std::string::npos) {
                return fmt::format("{}: '{}' is not a valid value", rest.substr(0, eq),
                                   rest.substr(eq + 3));
            }
        }
        if (strip(what, "The value ", "", rest)) {  // "y is not an allowed value for --x"
            const std::size_t at = rest.find(" is not an allowed value for ");
            if (at != std::string::npos) {
                return fmt::format("{}: '{}' is not allowed", rest.substr(at + 29),
                                   rest.substr(0, at));
            }
        }
        if (strip(what, "", ": too many inputs for a flag", name)) {
            return name + " takes no value";
        }
        if (strip(what, "", ": Should be true/false or a number", name)) {
            return name + ": expected true/false or a number";
        }
        return what;
    }
    if (dynamic_cast<const CLI::ExcludesError*>(&error) != nullptr) {
        const std::size_t at = what.find(" excludes ");
        if (at != std::string::npos) {
            return fmt::format("{} and {} cannot be used together", what.substr(0, at),
                               what.substr(at + 10));
        }
    }
    if (dynamic_cast<const CLI::RequiresError*>(&error) != nullptr) {
        const std::size_t at = what.find(" requires ");
        if (at != std::string::npos) {
            return fmt::format("{} needs {} too", what.substr(0, at), what.substr(at + 10));
        }
    }
    return what;
}

}  // namespace

std::string command_path(const CLI::App& root) {
    const std::vector<const CLI::App*> chain = parsed_chain(root);
    return path_to(chain, chain.back());
}

CliError unknown_command(const CLI::App& root, int argc, const char* const* argv) {
    const CLI::App* current = &root;
    std::string path = "pals";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--") {
            break;
        }
        if (!arg.empty() && arg.front() == '-') {
            if ((arg == "--log-level" || arg == "--data-dir") && current == &root) {
                ++i;  // its value
            }
            continue;
        }
        const std::vector<const CLI::App*> subs = subcommands_of(*current);
        if (subs.empty()) {
            return {};
        }
        const CLI::App* next = nullptr;
        std::vector<std::string> names;
        for (const CLI::App* sub : subs) {
            names.push_back(sub->get_name());
            if (sub->get_name() == arg) {
                next = sub;
            }
        }
        if (next == nullptr) {
            const std::string where = current == &root ? "" : current->get_name() + " ";
            return {fmt::format("unknown command '{}{}'{} (known: {})", where, arg,
                                suggestion(arg, names), names_of(subs)),
                    help_hint(path, true)};
        }
        current = next;
        path += " " + next->get_name();
    }
    return {};
}

CliError describe_parse_error(const CLI::App& root, const CLI::ParseError& error, int argc,
                              const char* const* argv) {
    // A word that names no command stops CLI11 at "a subcommand is required" (a stray word
    // after a flag that takes none, or after an unknown flag, is an ExtrasError instead).
    if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr) {
        if (CliError unknown = unknown_command(root, argc, argv); !unknown.message.empty()) {
            return unknown;
        }
    }
    const std::vector<const CLI::App*> chain = parsed_chain(root);
    const CLI::App& cmd = *chain.back();
    const std::string path = path_to(chain, &cmd);
    const std::string what = error.what();
    if (dynamic_cast<const CLI::ExtrasError*>(&error) != nullptr) {
        return describe_extras(chain, what);
    }
    if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr) {
        return describe_required(cmd, path, what);
    }
    // The hint names the command whose flag it is ("--log-level" is the root's).
    const std::string message = describe_value_error(error, what);
    const std::string flag = message.substr(0, message.find_first_of(": "));
    const CLI::App* owner = &cmd;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        if ((*it)->get_option_no_throw(flag) != nullptr) {
            owner = *it;
            break;
        }
    }
    return {message, help_hint(path_to(chain, owner), false)};
}

std::string failure_hint(int exit_code, const std::string& path) {
    switch (exit_code) {
        case 0:
            return "";
        case kExitBadInput:
            return fmt::format("`{} --help` lists its flags with their ranges and defaults", path);
        case 3:
            return "the device, library or address named above is not available (`pals gpus` "
                   "lists the GPUs NVML sees; --nvml-lib or PALS_NVML_LIB name the library)";
        case 4:
            return "power limits need root or CAP_SYS_ADMIN, and the files named above need "
                   "write access";
        case 5:
            return "the bounds are the scenario's [expect] table (docs/evaluate.md)";
        default:
            return "this is a bug in pals: please report it with the command line and the "
                   "output of `pals --version`";
    }
}

void print_cli_error(const CliError& error) {
    std::fprintf(stderr, "pals: error: %s\n", error.message.c_str());
    if (!error.hint.empty()) {
        std::fprintf(stderr, "pals: hint: %s\n", error.hint.c_str());
    }
}

}  // namespace pals::cli
