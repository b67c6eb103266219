// The parameter table: every numeric config key with its unit, range and default, in one place.
// The loader validates against it and docs/configuration.md mirrors it (a test checks that).
#pragma once

#include <string_view>
#include <vector>

namespace earshot::config {

struct ParamSpec {
    std::string_view key;  // path pattern, "[]" for list items: "musicians[].protection.release_ms"
    std::string_view unit; // "dB", "dB SPL", "dBFS", "ms", ...
    double min, max;
    double def; // NaN when the key is required or has no default
    bool required;
    bool allows_off; // the strings "off" / "-inf" are accepted (gains)
    std::string_view doc;
};

/// All numeric parameters.
const std::vector<ParamSpec>& param_table();
/// The spec for a pattern; nullptr if none.
const ParamSpec* find_param(std::string_view key);

} // namespace earshot::config
