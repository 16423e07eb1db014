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

TEST(SvgTest, ChartScalesWithThePageAndFollowsTheColourScheme) {
    SvgChart chart;
    chart.series.push_back({"pals", {0, 1}, {1, 2}, "", false, false});
    chart.series.push_back({"budget", {0, 1}, {3, 3}, kForegroundColor, true, true});
    const std::string svg = render_svg(chart);
    const std::string tag = svg.substr(0, svg.find('>'));
    EXPECT_NE(tag.find("viewBox=\"0 0 720 300\""), std::string::npos) << tag;
    EXPECT_NE(tag.find("width=\"100%\""), std::string::npos) << tag;
    EXPECT_EQ(tag.find("height="), std::string::npos) << tag;  // the aspect ratio sets it
    EXPECT_NE(svg.find("class=\"pals-bg\""), std::string::npos);
    EXPECT_NE(svg.find("class=\"pals-line-fg\""), std::string::npos);  // the budget line
    const std::string css = svg_theme_css();
    EXPECT_NE(css.find("prefers-color-scheme:dark"), std::string::npos);
    EXPECT_NE(css.find(".pals-line-fg"), std::string::npos);
}

TEST(SvgTest, LogAxisLabels125PerDecadeWhereTheyFit) {
    const LogAxis axis{0.005, 2.0, 0.0, 500.0};
    EXPECT_EQ(axis.ticks(std::size_t{11}),
              (std::vector<double>{0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0}));
    EXPECT_EQ(axis.ticks(std::size_t{4}), (std::vector<double>{0.01, 0.1, 1.0}));
    EXPECT_EQ(axis.minor_ticks().size(), 5u + 9u + 9u + 2u);  // 0.005-0.009, ..., 1, 2
    SvgChart cdf;
    cdf.log_x = true;
    cdf.series.push_back({"pals", {0.008, 0.03, 0.4}, {0.1, 0.5, 1.0}, "", false, false});
    cdf.x_markers.push_back({1.0, "SLO 1 s"});
    const std::string svg = render_svg(cdf);
    for (const char* label : {">0.01<", ">0.02<", ">0.05<", ">0.1<", ">0.2<", ">0.5<", ">1<"}) {
        EXPECT_NE(svg.find(label), std::string::npos) << label;
    }
    EXPECT_NE(svg.find(">SLO 1 s<"), std::string::npos);  // the marker, in the x range
    EXPECT_NE(svg.find("stroke-dasharray=\"2,3\""), std::string::npos);
}

TEST(SvgTest, CoincidingLinesAreDrawnOnceAndNamedTogether) {
    SvgChart chart;
    chart.series.push_back({"default", {0, 50, 100}, {700, 700, 700}, "", false, true});
    chart.series.push_back({"cap-only", {0, 30, 100}, {700, 400, 400}, "", false, true});
    // batch-only: the same steps as default, its run ending a second earlier
    chart.series.push_back({"batch-only", {0, 50, 99}, {700, 700, 700}, "", false, true});
    // clock-only: cap-only within a fraction of a pixel
    chart.series.push_back({"clock-only", {0, 30, 100}, {700, 400.5, 400.5}, "", false, true});
    chart.series.push_back({"pals", {0, 60, 100}, {700, 400, 400}, "", false, true});
    const std::string svg = render_svg(chart);
    EXPECT_EQ(count(svg, "<polyline"), 3u);
    EXPECT_NE(svg.find(">default = batch-only<"), std::string::npos) << svg;
    EXPECT_NE(svg.find(">cap-only = clock-only<"), std::string::npos) << svg;
    EXPECT_NE(svg.find(">pals<"), std::string::npos);  // steps at 60 s, not 30 s: its own line
}

}  // namespace
}  // namespace pals::report
