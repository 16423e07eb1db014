#pragma once
// Status assertions shared by every test: EXPECT_OK / ASSERT_OK on a Status or a Result, and
// EXPECT_STATUS for an expected failure.

#include <gtest/gtest.h>

#include <string>

#include "pals/common/status.hpp"

namespace pals::testing {

/// The Status of a Status or a Result, for the macros below.
inline Status status_of(const Status& s) {
    return s;
}
template <class T>
Status status_of(const Result<T>& r) {
    return r.status();
}

}  // namespace pals::testing

#define EXPECT_OK(expr)                                                  \
    do {                                                                 \
        const ::pals::Status _pals_s = ::pals::testing::status_of(expr); \
        EXPECT_TRUE(_pals_s.is_ok()) << _pals_s.message();               \
    } while (false)
#define ASSERT_OK(expr)                                                  \
    do {                                                                 \
        const ::pals::Status _pals_s = ::pals::testing::status_of(expr); \
        ASSERT_TRUE(_pals_s.is_ok()) << _pals_s.message();               \
    } while (false)
/// Expects a failed Status/Result with `expected_code` whose message contains `substring`.
#define EXPECT_STATUS(expr, expected_code, substring)                    \
    do {                                                                 \
        const ::pals::Status _pals_s = ::pals::testing::status_of(expr); \
        EXPECT_EQ(_pals_s.code(), (expected_code)) << _pals_s.message(); \
        EXPECT_NE(_pals_s.message().find(substring), std::string::npos)  \
            << "message: " << _pals_s.message();                         \
    } while (false)
