// StringMap<V>: an unordered_map keyed by std::string that is searched with a
// std::string_view, so a lookup builds no string. Not thread-safe, as any
// unordered_map.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace convstore {

struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    return std::hash<std::string_view>()(s);
  }
};

template <typename V>
using StringMap =
    std::unordered_map<std::string, V, TransparentStringHash, std::equal_to<>>;

}  // namespace convstore
