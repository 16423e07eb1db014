#include "pals/common/status.hpp"

namespace pals {

int exit_code_for(const Status& status) {
    switch (status.code()) {
        case StatusCode::kOk:
            return 0;
        case StatusCode::kInvalidArgument:
        case StatusCode::kNotFound:
        case StatusCode::kOutOfRange:
            return 2;
        case StatusCode::kUnavailable:
            return 3;
        case StatusCode::kPermissionDenied:
            return 4;
        case StatusCode::kInternal:
            break;
    }
    return 1;
}

}  // namespace pals
