// UTF-8 validation for stream names and event types (names are UTF-8 per the data model).
#pragma once

#include <string_view>

namespace cairn::util {

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace cairn::util
