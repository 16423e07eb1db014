#include "pals/common/file_util.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace pals {
namespace {

namespace fs = std::filesystem;

/// A fresh folder per test, removed afterwards.
class FileUtilTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        m_dir = fs::path(::testing::TempDir()) / (std::string("file_util_") + info->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }
    void TearDown() override { fs::remove_all(m_dir); }

    [[nodiscard]] fs::path file(const std::string& name) const { return m_dir / name; }

    static std::string slurp(const fs::path& path) {
        std::ifstream in(path, std::ios::binary);
        std::ostringstream out;
        out << in.rdbuf();
        return out.str();
    }

    static void expect_message(const Status& status, const std::string& part) {
        EXPECT_NE(status.message().find(part), std::string::npos)
            << "'" << part << "' not in: " << status.message();
    }

    fs::path m_dir;
};

TEST_F(FileUtilTest, ReadsARegularFileAndALinkToOne) {
    std::ofstream(file("a.txt"), std::ios::binary) << "hello\nworld";
    fs::create_symlink(file("a.txt"), file("link.txt"));
    auto text = read_file(file("a.txt"));
    ASSERT_TRUE(text.is_ok()) << text.status().message();
    EXPECT_EQ(*text, "hello\nworld");
    auto through = read_file(file("link.txt"));
    ASSERT_TRUE(through.is_ok()) << through.status().message();
    EXPECT_EQ(*through, "hello\nworld");
    std::ofstream(file("empty.txt"), std::ios::binary);
    auto empty = read_file(file("empty.txt"));
    ASSERT_TRUE(empty.is_ok());
    EXPECT_TRUE(empty->empty());
}

TEST_F(FileUtilTest, MissingAndDanglingAreNotFound) {
    auto missing = read_file(file("none.txt"));
    ASSERT_FALSE(missing.is_ok());
    EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
    expect_message(missing.status(), file("none.txt").string());
    fs::create_symlink(file("gone.txt"), file("dangling.txt"));
    auto dangling = read_file(file("dangling.txt"));
    ASSERT_FALSE(dangling.is_ok());
    EXPECT_EQ(dangling.status().code(), StatusCode::kNotFound);
    expect_message(dangling.status(), "dangling symbolic link");
}

/// A link to /dev/zero was read whole (std::bad_alloc); a FIFO blocked the reader forever.
TEST_F(FileUtilTest, RefusesWhatIsNotARegularFile) {
    fs::create_symlink("/dev/zero", file("zero.csv"));
    auto zero = read_file(file("zero.csv"));
    ASSERT_FALSE(zero.is_ok());
    EXPECT_EQ(zero.status().code(), StatusCode::kInvalidArgument);
    expect_message(zero.status(), file("zero.csv").string() + ": is a character device");

    ASSERT_EQ(::mkfifo(file("fifo").c_str(), 0600), 0);
    auto fifo = read_file(file("fifo"));  // returns at once: no writer is waited for
    ASSERT_FALSE(fifo.is_ok());
    expect_message(fifo.status(), "FIFO");

    fs::create_directory(file("dir"));
    auto dir = read_file(file("dir"));
    ASSERT_FALSE(dir.is_ok());
    expect_message(dir.status(), "is a directory");
}

TEST_F(FileUtilTest, BoundsTheSize) {
    std::ofstream(file("big.txt"), std::ios::binary) << std::string(1000, 'x');
    auto big = read_file(file("big.txt"), 999);
    ASSERT_FALSE(big.is_ok());
    EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
    expect_message(big.status(), file("big.txt").string());
    expect_message(big.status(), "1000 bytes exceeds the input size limit of 999 bytes");
    auto exact = read_file(file("big.txt"), 1000);
    ASSERT_TRUE(exact.is_ok()) << exact.status().message();
    EXPECT_EQ(exact->size(), 1000U);
    EXPECT_EQ(kDefaultMaxFileBytes, std::size_t{1} << 30);
}

TEST_F(FileUtilTest, WritesAndReplacesARegularFile) {
    ASSERT_TRUE(write_file_atomic(file("out.json"), "one").is_ok());
    EXPECT_EQ(slurp(file("out.json")), "one");
    const Status again = write_file_atomic(file("out.json"), "two");
    ASSERT_TRUE(again.is_ok()) << again.message();
    EXPECT_EQ(slurp(file("out.json")), "two");
    // No temporary file is left behind.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(m_dir)) {
        ++entries;
    }
    EXPECT_EQ(entries, 1U);
}

/// `--out` renamed over whatever was at the path: a FIFO or a symlink became a regular file, and
/// a directory gave "cannot rename temporary file: Success".
TEST_F(FileUtilTest, RefusesToReplaceWhatIsNotARegularFile) {
    ASSERT_EQ(::mkfifo(file("fifo").c_str(), 0600), 0);
    const Status fifo = write_file_atomic(file("fifo"), "x");
    ASSERT_FALSE(fifo.is_ok());
    EXPECT_EQ(fifo.code(), StatusCode::kInvalidArgument);
    expect_message(fifo, "FIFO");
    EXPECT_TRUE(fs::is_fifo(fs::symlink_status(file("fifo"))));

    std::ofstream(file("target"), std::ios::binary) << "old";
    fs::create_symlink(file("target"), file("link"));
    const Status link = write_file_atomic(file("link"), "new");
    ASSERT_FALSE(link.is_ok());
    expect_message(link, "symbolic link");
    EXPECT_TRUE(fs::is_symlink(fs::symlink_status(file("link"))));
    EXPECT_EQ(slurp(file("target")), "old");

    fs::create_directory(file("dir"));
    const Status dir = write_file_atomic(file("dir"), "x");
    ASSERT_FALSE(dir.is_ok());
    expect_message(dir, "is a directory");
    EXPECT_EQ(dir.message().find("Success"), std::string::npos) << dir.message();
    EXPECT_TRUE(fs::is_directory(file("dir")));

    // Nothing was left behind next to the targets.
    for (const auto& e : fs::directory_iterator(m_dir)) {
        EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
    }
}

/// A device node stays a device node. Only root can make one (mknod); the test never touches
/// the system's own /dev/null.
TEST_F(FileUtilTest, RefusesToReplaceADeviceNode) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "mknod needs root";
    }
    ASSERT_EQ(::mknod(file("mynull").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
    const Status status = write_file_atomic(file("mynull"), "x");
    ASSERT_FALSE(status.is_ok());
    expect_message(status, "character device");
    EXPECT_TRUE(fs::is_character_file(fs::symlink_status(file("mynull"))));
}

/// A temporary file left by an earlier process with the same pid, or a link planted at its
/// name, neither blocks the write nor is written through.
TEST_F(FileUtilTest, StaleTemporaryNameIsReplacedNotFollowed) {
    std::ofstream(file("victim"), std::ios::binary) << "keep";
    const fs::path tmp = file("out.json").string() + ".tmp." + std::to_string(::getpid());
    fs::create_symlink(file("victim"), tmp);
    const Status status = write_file_atomic(file("out.json"), "data");
    ASSERT_TRUE(status.is_ok()) << status.message();
    EXPECT_EQ(slurp(file("out.json")), "data");
    EXPECT_EQ(slurp(file("victim")), "keep");
    EXPECT_FALSE(fs::exists(fs::symlink_status(tmp)));
}

TEST_F(FileUtilTest, WriteErrorsCarryTheErrnoText) {
    const Status status = write_file_atomic(file("no_such_dir") / "out.json", "x");
    ASSERT_FALSE(status.is_ok());
    expect_message(status, "No such file or directory");
}

}  // namespace
}  // namespace pals
