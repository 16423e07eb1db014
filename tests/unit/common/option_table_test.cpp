// The option table: one declaration per option, read from TOML, text (flags, variables) and the
// environment with the same checks, printed back the same way.
#include "pals/common/option_table.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "pals/common/toml_values.hpp"
#include "status_assertions.hpp"

namespace pals {
namespace {

struct Config {
    std::string name = "x";
    double period_s = 1.0;
    int count = 4;
    bool chunked = true;
    std::uint64_t seed = 0;
    std::vector<int> gpus;
    std::string rank;
};

const OptionTable<Config>& options() {
    static const OptionTable<Config> kOptions = {
        {.key = "name", .help = "a name", .member = &Config::name},
        {.key = "period_s",
         .flag = "--period",
         .help = "period",
         .member = &Config::period_s,
         .range = {.lo = 0.0, .hi = 10.0, .lo_open = true, .unit = "s"}},
        {.key = "count", .help = "count", .member = &Config::count, .range = {.lo = 1, .hi = 100}},
        {.key = "chunked",
         .flag = "--no-chunked",
         .help = "off",
         .member = &Config::chunked,
         .flag_clears = true},
        {.key = "seed", .help = "seed", .member = &Config::seed, .in_file = false},
        {.key = "gpus", .help = "gpus", .member = &Config::gpus, .range = {.lo = 0, .hi = 7}},
        {.key = "rank", .help = "rank", .member = &Config::rank, .integer_as_text = true},
    };
    return kOptions;
}

TEST(OptionTableTest, FlagsAndVariablesDeriveFromTheKey) {
    EXPECT_EQ(option_flag(*find_option(options(), "count")), "--count");
    EXPECT_EQ(option_flag(*find_option(options(), "period_s")), "--period");
    EXPECT_EQ(option_env(*find_option(options(), "period_s")), "PALS_PERIOD");
    EXPECT_EQ(option_env(*find_option(options(), "chunked")), "PALS_NO_CHUNKED");
    EXPECT_EQ(find_option(options(), "nope"), nullptr);
}

TEST(OptionTableTest, TextIsParsedAndRangeChecked) {
    Config c;
    EXPECT_OK(set_option_from_text(c, *find_option(options(), "count"), " 12 "));
    EXPECT_EQ(c.count, 12);
    EXPECT_STATUS(set_option_from_text(c, *find_option(options(), "count"), "0"),
                  StatusCode::kOutOfRange, "must be 1-100 (got 0)");
    EXPECT_STATUS(set_option_from_text(c, *find_option(options(), "period_s"), "0"),
                  StatusCode::kOutOfRange, "must be > 0 s and <= 10 s (got 0 s)");
    EXPECT_STATUS(set_option_from_text(c, *find_option(options(), "period_s"), "nan"),
                  StatusCode::kInvalidArgument, "must be a number");
    EXPECT_OK(set_option_from_text(c, *find_option(options(), "chunked"), "1"));
    EXPECT_FALSE(c.chunked);  // the flag --no-chunked given
    EXPECT_OK(set_option_from_text(c, *find_option(options(), "gpus"), "0-2"));
    EXPECT_EQ(c.gpus, (std::vector<int>{0, 1, 2}));
    EXPECT_STATUS(set_option_from_text(c, *find_option(options(), "gpus"), "9"),
                  StatusCode::kOutOfRange, "must be 0-7 (got 9)");
    EXPECT_OK(set_option_from_text(c, *find_option(options(), "seed"), "18446744073709551615"));
    EXPECT_EQ(c.seed, 18446744073709551615ULL);
}

TEST(OptionTableTest, TomlTablesAreReadWithLocationsAndHints) {
    const std::string text = "name = \"y\"\ncount = 7\ngpus = [1, 3]\nrank = 2\n";
    const toml::table t = parse_toml(text, "c.toml").value();
    Config c;
    OptionOrigins origins;
    ASSERT_OK(read_toml_options(c, options(), t, "c.toml", "", origins));
    EXPECT_EQ(c.name, "y");
    EXPECT_EQ(c.count, 7);
    EXPECT_EQ(c.gpus, (std::vector<int>{1, 3}));
    EXPECT_EQ(c.rank, "2");  // an integer where text is expected
    EXPECT_EQ(origins.of("count"), "c.toml:2:1: count");
    EXPECT_EQ(origins.of("period_s"), "period_s (default)");

    const toml::table bad = parse_toml("[node]\ncont = 3\n", "b.toml").value();
    OptionOrigins o2;
    EXPECT_STATUS(read_toml_options(c, options(), *bad["node"].as_table(), "b.toml", "node", o2),
                  StatusCode::kInvalidArgument,
                  "b.toml:2:1: node: unknown key 'cont' (did you mean 'count'?)");
    const toml::table seed = parse_toml("seed = 3\n", "s.toml").value();
    EXPECT_STATUS(read_toml_options(c, options(), seed, "s.toml", "", o2),
                  StatusCode::kInvalidArgument, "unknown key 'seed'");  // a flag only
    const toml::table range = parse_toml("[n]\ncount = 1000\n", "r.toml").value();
    EXPECT_STATUS(read_toml_options(c, options(), *range["n"].as_table(), "r.toml", "n", o2),
                  StatusCode::kOutOfRange, "r.toml:2:1: n.count: must be 1-100 (got 1000)");
}

TEST(OptionTableTest, TheEnvironmentIsTheThirdFrontEnd) {
    const std::map<std::string, std::string> env = {{"PALS_COUNT", "9"}, {"PALS_NAME", ""}};
    const auto lookup = [&env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    Config c;
    OptionOrigins origins;
    ASSERT_OK(read_env_options(c, options(), lookup, origins));
    EXPECT_EQ(c.count, 9);
    EXPECT_EQ(c.name, "x");  // empty counts as unset
    EXPECT_EQ(origins.of("count"), "PALS_COUNT");
    const std::map<std::string, std::string> bad = {{"PALS_PERIOD", "20"}};
    EXPECT_STATUS(read_env_options(
                      c, options(),
                      [&bad](const std::string& n) -> std::optional<std::string> {
                          auto it = bad.find(n);
                          return it == bad.end() ? std::nullopt
                                                 : std::optional<std::string>(it->second);
                      },
                      origins),
                  StatusCode::kOutOfRange, "PALS_PERIOD: must be > 0 s and <= 10 s (got 20 s)");
}

TEST(OptionTableTest, ValuesPrintAsTomlAndJson) {
    Config c;
    c.gpus = {0, 1};
    c.name = "a\"b";
    EXPECT_EQ(option_value_text(c, *find_option(options(), "name"), true), "\"a\\\"b\"");
    EXPECT_EQ(option_value_text(c, *find_option(options(), "period_s"), true), "1.0");
    EXPECT_EQ(option_value_text(c, *find_option(options(), "period_s"), false), "1");
    EXPECT_EQ(option_value_text(c, *find_option(options(), "gpus"), true), "[0, 1]");
    EXPECT_EQ(option_value_text(c, *find_option(options(), "chunked"), true), "true");
}

TEST(OptionTableTest, QuantitiesReadAsPeopleWriteThem) {
    EXPECT_EQ(format_quantity(10'000'000, ""), "10000000");
    EXPECT_EQ(format_quantity(250, "W"), "250 W");
    EXPECT_EQ(format_quantity(0.05, "s"), "0.05 s");
    EXPECT_STATUS(check_value_range(5000, {.lo = 100, .hi = 700, .unit = "W"}),
                  StatusCode::kOutOfRange, "must be 100-700 W (got 5000 W)");
    EXPECT_STATUS(check_value_range(-1, {.lo = 0}), StatusCode::kOutOfRange,
                  "must be >= 0 (got -1)");
    EXPECT_OK(check_value_range(3, {}));
}

TEST(TomlReaderTest, ErrorsCarryFileLineAndKey) {
    const toml::table t = parse_toml("[run]\nseed = \"x\"\n", "s.toml").value();
    const TomlReader reader(t, "s.toml");
    EXPECT_STATUS(reader.get<int>("run.seed"), StatusCode::kInvalidArgument,
                  "s.toml:2:8: run.seed: must be an integer, not a string");
    EXPECT_FALSE(reader.get<int>("run.period_s").value().has_value());
    EXPECT_EQ(reader.origin("run.period_s"), "s.toml: run.period_s");
    EXPECT_STATUS(parse_toml("a = = 1\n", "bad.toml"), StatusCode::kInvalidArgument, "bad.toml:1:");
}

}  // namespace
}  // namespace pals
