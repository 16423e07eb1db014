#include "pals/report/frontier_chart.hpp"

#include <gtest/gtest.h>

#include "pals/profile/model_fit.hpp"
#include "unit/profile/profile_test_helpers.hpp"

namespace pals::report {
namespace {

profile::PowerModel sim_model() {
    auto fit = profile::fit_profile(profile::testing::small_sim_profile());
    EXPECT_TRUE(fit.is_ok()) << fit.status().message();
    return profile::PowerModel::parse(profile::model_json(fit.value()), "sim.json").value();
}

TEST(FrontierChartTest, SvgIsSelfContainedWithAxesLegendAndFrontier) {
    const profile::PowerModel m = sim_model();
    profile::FrontierConstraints c;
    c.max_itl_s = 0.03;
    auto f = profile::compute_frontier(m, "", c);
    ASSERT_OK(f);
    FrontierSvgOptions o;
    o.title = "Llama <8B> & co";
    o.subtitle = "default";
    const std::string svg = render_frontier_svg(f.value(), o);
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    EXPECT_NE(svg.find("Llama &lt;8B&gt; &amp; co"), std::string::npos);
    EXPECT_NE(svg.find("throughput (output tokens/s"), std::string::npos);
    EXPECT_NE(svg.find("energy per output token (J"), std::string::npos);
    EXPECT_NE(svg.find("Pareto frontier"), std::string::npos);
    EXPECT_NE(svg.find(">700 W<"), std::string::npos);  // legend entry per cap
    EXPECT_NE(svg.find(">200 W<"), std::string::npos);
    EXPECT_EQ(svg.find("http://", 60), std::string::npos);  // nothing external
    // One polyline per cap, plus the staircase.
    std::size_t lines = 0;
    for (std::size_t at = svg.find("<polyline"); at != std::string::npos;
         at = svg.find("<polyline", at + 1)) {
        ++lines;
    }
    EXPECT_EQ(lines, m.caps_w().size() + 1);
}

}  // namespace
}  // namespace pals::report
