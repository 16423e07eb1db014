#include "pals/report/svg.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pals::report {
namespace {

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos;
         at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

TEST(SvgTest, EscapesMarkup) {
    EXPECT_EQ(escape_xml("a<b> & \"c\""), "a&lt;b&gt; &amp; &quot;c&quot;");
    EXPECT_EQ(escape_xml("plain"), "plain");
}

TEST(SvgTest, ViridisRunsFromPurpleToYellow) {
    EXPECT_EQ(viridis(0.0), "#440154");
    EXPECT_EQ(viridis(1.0), "#fde725");
    EXPECT_EQ(viridis(-3.0), viridis(0.0));  // clamped
    EXPECT_EQ(viridis(7.0), viridis(1.0));
}

TEST(SvgTest, LogAxisMapsDecadesLinearlyAndTicksInRange) {
    const LogAxis axis{10.0, 1000.0, 0.0, 200.0};
    EXPECT_DOUBLE_EQ(axis.map(10.0), 0.0);
    EXPECT_DOUBLE_EQ(axis.map(100.0), 100.0);
    EXPECT_DOUBLE_EQ(axis.map(1000.0), 200.0);
    const std::vector<double> ticks = axis.ticks();
    ASSERT_GE(ticks.size(), 4u);
    for (double t : ticks) {
        EXPECT_GE(t, 10.0);
        EXPECT_LE(t, 1000.0);
    }
}

TEST(SvgTest, LogRangePadsAndSkipsNonPositiveValues) {
    const auto [lo, hi] = log_range({-1.0, 0.0, 10.0, 100.0}, 0.0);
    EXPECT_DOUBLE_EQ(lo, 10.0);
    EXPECT_DOUBLE_EQ(hi, 100.0);
    const auto [none_lo, none_hi] = log_range({0.0}, 0.5);
    EXPECT_DOUBLE_EQ(none_lo, 1.0);
    EXPECT_DOUBLE_EQ(none_hi, 10.0);
    EXPECT_EQ(si_tick_label(1500.0), "1.5k");
    EXPECT_EQ(si_tick_label(2e6), "2M");
    EXPECT_EQ(si_tick_label(0.5), "0.5");
}

TEST(SvgTest, LineChartHasOneLineAndLegendEntryPerSeries) {
    SvgChart chart;
    chart.title = "power <W>";
    chart.x_label = "time (s)";
    chart.y_label = "power (W)";
    chart.series.push_back({"pals", {0, 1, 2}, {100, 200, 150}, "", false, false});
    chart.series.push_back({"budget", {0, 2}, {300, 250}, "#000", true, true});
    const std::string svg = render_svg(chart);
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_NE(svg.find("power &lt;W&gt;"), std::string::npos);
    EXPECT_EQ(count(svg, "<polyline"), 2u);
    EXPECT_NE(svg.find(">pals</text>"), std::string::npos);
    EXPECT_NE(svg.find(">budget</text>"), std::string::npos);
    EXPECT_NE(svg.find(palette_color(0)), std::string::npos);  // the first series' colour
    EXPECT_EQ(count(svg, "stroke-dasharray"), 2u);             // the dashed line and its key
}

}  // namespace
}  // namespace pals::report
