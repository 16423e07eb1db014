#include "pals/common/data_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "status_assertions.hpp"

namespace pals {
namespace {

namespace fs = std::filesystem;

/// A fresh folder per test holding an install tree and a build tree, removed afterwards.
class DataDirTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_root = fs::path(::testing::TempDir()) / (std::string("data_dir_") + info->name());
        fs::remove_all(m_root);
        fs::create_directories(m_root);
    }
    void TearDown() override { fs::remove_all(m_root); }

    fs::path make(const std::string& relative) const {
        fs::create_directories(m_root / relative);
        return m_root / relative;
    }

    fs::path m_root;
};

TEST_F(DataDirTest, EnvironmentComesFirstAndMustExist) {
    make("opt/bin");
    make("opt/share/pals/models");
    DataDirSources s;
    s.env = make("elsewhere").string();
    s.executable = m_root / "opt/bin/pals";
    s.bin_to_data = "../share/pals";
    ASSERT_OK(find_data_dir(s));
    EXPECT_EQ(find_data_dir(s)->path, m_root / "elsewhere");
    EXPECT_EQ(find_data_dir(s)->origin, "PALS_SHARED_DIR");
    s.env = (m_root / "missing").string();  // named, so never skipped silently
    EXPECT_STATUS(find_data_dir(s), StatusCode::kNotFound, "missing' is not a directory");
}

TEST_F(DataDirTest, InstallTreeIsFoundBesideTheExecutableWhereverItIsMoved) {
    make("moved/prefix/bin");
    make("moved/prefix/share/pals/models");
    DataDirSources s;
    s.executable = m_root / "moved/prefix/bin/pals";
    s.bin_to_data = "../share/pals";
    ASSERT_OK(find_data_dir(s));
    EXPECT_EQ(find_data_dir(s)->path, fs::weakly_canonical(m_root / "moved/prefix/share/pals"));
    EXPECT_EQ(find_data_dir(s)->origin, "install");
}

TEST_F(DataDirTest, BuildTreeFindsTheSharedFolderBesideTheCheckout) {
    make("repo/build/release");
    make("shared/models");
    DataDirSources s;
    s.executable = m_root / "repo/build/release/pals";
    s.bin_to_data = "../share/pals";
    ASSERT_OK(find_data_dir(s));
    EXPECT_EQ(find_data_dir(s)->path, fs::weakly_canonical(m_root / "shared"));
    EXPECT_EQ(find_data_dir(s)->origin, "build tree");
}

TEST_F(DataDirTest, NothingFoundSaysWhatWasTriedAndWhatToDo) {
    make("lonely/bin");
    DataDirSources s;
    s.executable = m_root / "lonely/bin/pals";
    s.bin_to_data = "../share/pals";
    s.build_tree_levels = 2;
    EXPECT_STATUS(find_data_dir(s), StatusCode::kNotFound, "share/pals");
    EXPECT_STATUS(find_data_dir(s), StatusCode::kNotFound, "--data-dir");
    EXPECT_STATUS(find_data_dir(s), StatusCode::kNotFound, "PALS_SHARED_DIR");
    EXPECT_STATUS(find_data_dir(DataDirSources{}), StatusCode::kNotFound, "--data-dir");
    EXPECT_FALSE(executable_path().empty());  // /proc/self/exe of this test
}

}  // namespace
}  // namespace pals
