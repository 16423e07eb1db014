#include "pals/common/file_util.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace pals {

namespace {

/// Chunk size of the read loop.
constexpr std::size_t kReadChunkBytes = std::size_t{1} << 20;

/// What a stat mode is, for messages ("a FIFO", "a character device", ...).
const char* describe_file_type(mode_t mode) {
    if (S_ISDIR(mode)) {
        return "a directory";
    }
    if (S_ISFIFO(mode)) {
        return "a FIFO (named pipe)";
    }
    if (S_ISCHR(mode)) {
        return "a character device";
    }
    if (S_ISBLK(mode)) {
        return "a block device";
    }
    if (S_ISSOCK(mode)) {
        return "a socket";
    }
    if (S_ISLNK(mode)) {
        return "a symbolic link";
    }
    return "not a regular file";
}

/// A Status for a failed system call on `path`: the errno text, with the code the CLI maps to
/// its documented exit codes (2 bad input, 4 permission).
Status errno_status(const std::filesystem::path& path, const std::string& what, int error) {
    std::string message = path.string() + ": " + what + ": " + std::strerror(error);
    if (error == ENOENT) {
        return Status::not_found(std::move(message));
    }
    if (error == EACCES || error == EPERM) {
        return Status::permission_denied(std::move(message));
    }
    return Status::invalid_argument(std::move(message));
}

std::string too_large(const std::filesystem::path& path, const std::string& size,
                      std::size_t max_bytes) {
    return path.string() + ": file of " + size + " bytes exceeds the input size limit of " +
           std::to_string(max_bytes) + " bytes";
}

/// Closes a descriptor when it goes out of scope.
class FdGuard {
public:
    explicit FdGuard(int fd) : m_fd(fd) {}
    FdGuard(const FdGuard&) = delete;
    FdGuard& operator=(const FdGuard&) = delete;
    ~FdGuard() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    [[nodiscard]] int get() const { return m_fd; }

private:
    int m_fd;
};

}  // namespace

Result<std::string> read_file(const std::filesystem::path& path, std::size_t max_bytes) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        const int error = errno;
        if (error == ENOENT) {
            struct stat link {};
            if (::lstat(path.c_str(), &link) == 0) {
                return Status::not_found(path.string() + ": dangling symbolic link");
            }
            return Status::not_found(path.string() + ": no such file");
        }
        return errno_status(path, "cannot read", error);
    }
    if (S_ISDIR(st.st_mode)) {
        return Status::invalid_argument(path.string() + ": is a directory, expected a file");
    }
    if (!S_ISREG(st.st_mode)) {
        return Status::invalid_argument(path.string() + ": is " + describe_file_type(st.st_mode) +
                                        ", expected a regular file");
    }
    // O_NONBLOCK: should the path be swapped for a FIFO after the stat, open() does not wait
    // for a writer; the fstat below then refuses it.
    const FdGuard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (fd.get() < 0) {
        return errno_status(path, "cannot open", errno);
    }
    if (::fstat(fd.get(), &st) != 0) {
        return errno_status(path, "cannot stat", errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return Status::invalid_argument(path.string() + ": is " + describe_file_type(st.st_mode) +
                                        ", expected a regular file");
    }
    if (static_cast<unsigned long long>(st.st_size) > max_bytes) {
        return Status::invalid_argument(too_large(path, std::to_string(st.st_size), max_bytes));
    }
    std::string content;
    content.reserve(static_cast<std::size_t>(st.st_size));
    std::string chunk(kReadChunkBytes, '\0');
    while (true) {
        const ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_status(path, "read failed", errno);
        }
        if (n == 0) {
            break;
        }
        if (content.size() + static_cast<std::size_t>(n) > max_bytes) {
            return Status::invalid_argument(
                too_large(path, "more than " + std::to_string(max_bytes), max_bytes));
        }
        content.append(chunk.data(), static_cast<std::size_t>(n));
    }
    return content;
}

Status write_file_atomic(const std::filesystem::path& path, std::string_view content) {
    // Refuse a target that is not a regular file before creating anything (lstat: a link is
    // refused, not followed).
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            return Status::invalid_argument(
                path.string() + ": exists and is " + describe_file_type(st.st_mode) +
                "; refusing to replace it (name a regular file or a new path)");
        }
    } else if (errno != ENOENT) {
        return errno_status(path, "cannot write", errno);
    }
    std::filesystem::path tmp = path;
    tmp += ".tmp." + std::to_string(::getpid());
    // O_EXCL: never write through a link or a file someone placed at the temporary name. A
    // leftover of an earlier process with the same pid (a crash; containers reuse pids) is
    // removed once (unlink removes a link, never its target) and creation retried.
    constexpr int kCreateFlags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
    int fd = ::open(tmp.c_str(), kCreateFlags, 0666);
    if (fd < 0 && errno == EEXIST && ::unlink(tmp.c_str()) == 0) {
        fd = ::open(tmp.c_str(), kCreateFlags, 0666);
    }
    if (fd < 0) {
        const int error = errno;
        return errno_status(path, "cannot create temporary file " + tmp.string(), error);
    }
    auto fail = [&](const std::string& what, int error) {
        ::close(fd);
        ::unlink(tmp.c_str());
        return errno_status(path, what, error);
    };
    std::size_t written = 0;
    while (written < content.size()) {
        const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail("write failed", errno);
        }
        written += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) {
        const int error = errno;
        ::unlink(tmp.c_str());
        return errno_status(path, "write failed", error);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int error = errno;
        ::unlink(tmp.c_str());
        return errno_status(path, "cannot rename temporary file over it", error);
    }
    return Status::ok();
}

}  // namespace pals
