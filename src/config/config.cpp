#include "earshot/config/config.hpp"
#include "earshot/config/loader.hpp"

#include <regex>

namespace earshot::config {

bool connect_matches(const ConnectRule& rule, const std::string& port) {
    if (!rule.is_regex) return port == rule.pattern;
    // The loader has compiled every regex once, so this does not throw for a loaded Config.
    return std::regex_match(port, std::regex(rule.pattern, std::regex::ECMAScript));
}

int Config::input_index(const std::string& id) const noexcept {
    for (std::size_t i = 0; i < inputs.size(); ++i)
        if (inputs[i].id == id) return static_cast<int>(i);
    return -1;
}

int Config::musician_index(const std::string& id) const noexcept {
    for (std::size_t i = 0; i < musicians.size(); ++i)
        if (musicians[i].id == id) return static_cast<int>(i);
    return -1;
}

std::string ConfigError::format() const {
    std::string s = file;
    if (line > 0) {
        s.append(1, ':').append(std::to_string(line));
        s.append(1, ':').append(std::to_string(col));
    }
    s.append(": ");
    if (!key_path.empty()) s.append(key_path).append(": ");
    s.append(message);
    return s;
}

namespace {
std::string join(const std::vector<ConfigError>& e) {
    std::string s;
    for (const ConfigError& x : e) {
        if (!s.empty()) s += '\n';
        s += x.format();
    }
    return s;
}
} // namespace

ConfigErrors::ConfigErrors(std::vector<ConfigError> errors)
    : std::runtime_error(join(errors)), _errors(std::move(errors)) {}

} // namespace earshot::config
