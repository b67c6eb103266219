#include "earshot/config/config.hpp"
#include "earshot/config/loader.hpp"

#include <algorithm>
#include <regex>

namespace earshot::config {

bool connect_matches(const ConnectRule& rule, const std::string& port) {
    if (!rule.is_regex) return port == rule.pattern;
    // The loader has compiled every regex once, so this does not throw for a loaded Config.
    return std::regex_match(port, std::regex(rule.pattern, std::regex::ECMAScript));
}

bool midi_port_matches(const ConnectRule& rule, const std::string& port_name) {
    if (!rule.is_regex) return port_name.find(rule.pattern) != std::string::npos;
    return std::regex_match(port_name, std::regex(rule.pattern, std::regex::ECMAScript));
}

std::string LearnTarget::str() const {
    switch (kind) {
    case Kind::master:
        return musician + ".master";
    case Kind::send:
        return musician + ".send." + input;
    case Kind::mute:
        return musician + ".mute." + input;
    }
    return musician;
}

std::optional<LearnTarget> parse_learn_target(std::string_view text, std::string& err) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = text.find('.', start);
        parts.emplace_back(
            text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    const bool empty_part =
        std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); });
    LearnTarget t;
    if (!empty_part && parts.size() == 2 && parts[1] == "master") {
        t.musician = parts[0];
        return t;
    }
    if (!empty_part && parts.size() == 3 && (parts[1] == "send" || parts[1] == "mute")) {
        t.kind = parts[1] == "send" ? LearnTarget::Kind::send : LearnTarget::Kind::mute;
        t.musician = parts[0];
        t.input = parts[2];
        return t;
    }
    err = "'" + std::string(text) +
          "' is not a learn target (MUSICIAN.master, MUSICIAN.send.INPUT or MUSICIAN.mute.INPUT)";
    return std::nullopt;
}

midi::Directory midi_directory(const Config& cfg) {
    midi::Directory d;
    for (const Musician& m : cfg.musicians) d.musicians.push_back(m.id);
    for (const Input& in : cfg.inputs) d.inputs.push_back(in.id);
    for (const Controller& c : cfg.controllers)
        for (const midi::Mapping& mp : c.midi.mappings)
            if (!mp.action.scene.empty() &&
                std::find(d.scenes.begin(), d.scenes.end(), mp.action.scene) == d.scenes.end())
                d.scenes.push_back(mp.action.scene);
    return d;
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
