// earshot::config loader — YAML text -> validated Config, with every error at once.
//
// Errors carry file:line:col (1-based, from yaml-cpp's Node::Mark), the key path
// (e.g. "musicians[2].protection.peak_ceiling_db_spl"), the bad value and what is allowed, one per
// line, sorted by position (docs/configuration.md lists every message):
//
//   stage.yaml:42:7: musicians[2].protection.peak_ceiling_db_spl: 150 is out of range [80, 140] dB SPL
//   stage.yaml:12:5: musicians[0].calibraton: unknown key 'calibraton' (did you mean 'calibration'?)
//
// Thread contract: [control thread]; allocates, throws ConfigErrors.
//
//   try { auto cfg = config::load_file(path); }
//   catch (const config::ConfigErrors& e) { for (auto& err : e.errors()) std::cerr << err.format() << '\n'; }
#pragma once

#include "earshot/config/config.hpp"

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace earshot::config {

struct ConfigError {
    std::string file;
    int line = 0; // 1-based; 0 when the error has no position (e.g. file not found)
    int col = 0;  // 1-based
    std::string key_path;
    std::string message;

    /// "file:line:col: key.path: message" (position and key omitted when absent).
    std::string format() const;
};

/// Every error of one load, sorted by (line, col); what() is all of them formatted, one per line.
class ConfigErrors : public std::runtime_error {
public:
    explicit ConfigErrors(std::vector<ConfigError> errors);
    const std::vector<ConfigError>& errors() const noexcept { return _errors; }

private:
    std::vector<ConfigError> _errors;
};

/// Reads and validates a YAML file. Throws ConfigErrors (all errors found, in file order); a file
/// that cannot be read is one error with line 0.
Config load_file(const std::string& path);
/// Same, from text; `name` is used as the file name in errors.
Config load_string(std::string_view yaml, const std::string& name = "<string>");

} // namespace earshot::config
