// The only translation unit that includes yaml-cpp.
#include "earshot/config/loader.hpp"
#include "params.hpp"

#include "earshot/midi/feedback.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <locale>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace earshot::config {

namespace {

constexpr double neg_inf = -std::numeric_limits<double>::infinity();

// Damerau-Levenshtein (optimal string alignment) distance, for "did you mean".
std::size_t distance(const std::string& a, const std::string& b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

// The closest option, if it is close enough to be a likely typo: at most 2 edits, and at most one
// edit per three characters of the option (so "xy" does not suggest "id").
std::string suggest(const std::string& word, const std::vector<std::string>& options) {
    std::string best;
    std::size_t best_d = 3;
    for (const std::string& o : options) {
        const std::size_t len_diff = word.size() > o.size() ? word.size() - o.size() : o.size() - word.size();
        if (len_diff > 2) continue; // the distance is at least the length difference
        const std::size_t d = distance(word, o);
        const std::size_t limit = std::min<std::size_t>(2, std::max<std::size_t>(1, o.size() / 3));
        if (d <= limit && d < best_d) {
            best_d = d;
            best = o;
        }
    }
    return best;
}

std::string fmt_num(double v) {
    if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
    std::ostringstream o;
    o.imbue(std::locale::classic());
    o << v;
    return o.str();
}

// A finite decimal number ("-6", "+0.5", "1e2"), independent of the process locale (a daemon
// running under a locale with a decimal comma must read "0.5" all the same).
bool parse_number(const std::string& s, double& out) {
    const char* first = s.data();
    const char* last = s.data() + s.size();
    if (first != last && *first == '+') { // YAML allows a leading '+'; from_chars does not
        ++first;
        if (first != last && *first == '-') return false; // "+-5"
    }
    const auto [end, ec] = std::from_chars(first, last, out, std::chars_format::general);
    return ec == std::errc() && end == last && std::isfinite(out);
}

// libstdc++'s regex compiler accumulates the digits of a repetition count ("x{123}") or of a
// back-reference ("\12") in a `long` with no overflow check: a long digit run is undefined
// behaviour there (found by tests/fuzz). Such patterns are refused before they reach std::regex.
// Conservative: any run of more than 9 digits after a backslash or inside braces.
bool regex_number_too_long(const std::string& re) {
    const auto digits_at = [&re](std::size_t i) {
        std::size_t n = 0;
        while (i + n < re.size() && re[i + n] >= '0' && re[i + n] <= '9') ++n;
        return n;
    };
    bool in_brace = false;
    for (std::size_t i = 0; i < re.size(); ++i) {
        const char c = re[i];
        if (c == '\\') {
            if (digits_at(i + 1) > 9) return true;
            ++i; // skip the escaped character
        } else if (c == '{') {
            in_brace = true;
        } else if (c == '}') {
            in_brace = false;
        } else if (in_brace && digits_at(i) > 9) {
            return true;
        }
    }
    return false;
}

struct Ctx {
    std::string file;
    std::vector<ConfigError> errors;
    std::vector<std::string> rejected_inputs;    // ids of input entries that were reported and dropped
    std::map<std::string, int> input_id_line;    // accepted input id -> 1-based line of its `id:` value
    std::map<std::string, int> musician_id_line; // the same for musicians

    void error(const YAML::Mark& m, const std::string& path, const std::string& msg) {
        ConfigError e;
        e.file = file;
        e.line = m.line >= 0 ? m.line + 1 : 0;
        e.col = m.column >= 0 ? m.column + 1 : 0;
        e.key_path = path;
        e.message = msg;
        errors.push_back(std::move(e));
    }
    void error(const YAML::Node& n, const std::string& path, const std::string& msg) {
        error(n.Mark(), path, msg);
    }

    // A key written twice in one mapping: yaml-cpp keeps both and lookups see only the first, so the
    // second would be ignored silently. Returns true when `key`, the index-th entry of `map`,
    // repeats an earlier key (compared by text, so an alias of an earlier key counts too).
    bool duplicate_key(const YAML::Node& map, std::size_t index, const YAML::Node& key,
                       const std::string& path) {
        std::size_t i = 0;
        for (auto it = map.begin(); it != map.end() && i < index; ++it, ++i) {
            if (it->first.IsScalar() && it->first.Scalar() == key.Scalar()) {
                error(key, path,
                      "duplicate key '" + key.Scalar() + "' (first defined at line " +
                          std::to_string(it->first.Mark().line + 1) + ")");
                return true;
            }
        }
        return false;
    }

    // Unknown and duplicate keys in a mapping, with a suggestion among the allowed ones.
    void check_keys(const YAML::Node& map, const std::string& path, const std::vector<std::string>& allowed) {
        std::size_t index = 0;
        for (auto it = map.begin(); it != map.end(); ++it, ++index) {
            const std::string k = it->first.Scalar();
            if (!it->first.IsScalar()) {
                error(it->first, path, "expected a key name" + got(it->first));
                continue;
            }
            if (duplicate_key(map, index, it->first, path.empty() ? k : path + "." + k)) continue;
            if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
            std::string msg = "unknown key '" + k + "'";
            const std::string s = suggest(k, allowed);
            if (!s.empty())
                msg += " (did you mean '" + s + "'?)";
            else {
                msg += " (allowed: ";
                for (std::size_t i = 0; i < allowed.size(); ++i) msg += (i ? ", " : "") + allowed[i];
                msg += ")";
            }
            error(it->first, path.empty() ? k : path + "." + k, msg);
        }
    }

    bool is_map(const YAML::Node& n, const std::string& path) {
        if (n.IsMap()) return true;
        error(n, path, "expected a mapping (key: value pairs)" + got(n));
        return false;
    }
    bool is_seq(const YAML::Node& n, const std::string& path) {
        if (n.IsSequence()) return true;
        error(n, path, "expected a list" + got(n));
        return false;
    }
    static std::string got(const YAML::Node& n) {
        if (n.IsScalar()) return ", got '" + n.Scalar() + "'";
        if (n.IsSequence()) return ", got a list";
        if (n.IsMap()) return ", got a mapping";
        return ", got nothing";
    }

    // A number from the parameter table: type, range, "off".
    void number(const YAML::Node& parent, const std::string& key, const std::string& path,
                std::string_view spec_key, double& out) {
        const ParamSpec* spec = find_param(spec_key);
        if (spec == nullptr) throw std::logic_error("config: no parameter spec for " + std::string(spec_key));
        const YAML::Node n = parent[key];
        if (!n) {
            if (spec->required) {
                const std::size_t dot = path.rfind('.');
                error(parent, dot == std::string::npos ? std::string() : path.substr(0, dot),
                      "missing required key '" + key + "'");
            }
            return;
        }
        if (!n.IsScalar()) {
            error(n, path, "expected a number" + got(n));
            return;
        }
        const std::string s = n.Scalar();
        if (spec->allows_off && (s == "off" || s == "-inf")) {
            out = neg_inf;
            return;
        }
        double v = 0;
        if (!parse_number(s, v)) {
            error(n, path,
                  "expected a number" + std::string(spec->allows_off ? " or 'off'" : "") + ", got '" + s +
                      "'");
            return;
        }
        if (v < spec->min || v > spec->max) {
            std::string unit = spec->unit.empty() ? "" : " " + std::string(spec->unit);
            std::string msg =
                s + " is out of range [" + fmt_num(spec->min) + ", " + fmt_num(spec->max) + "]" + unit;
            if (spec->min == spec->max) msg = s + " is not supported (must be " + fmt_num(spec->min) + ")";
            if (spec->allows_off) msg += " (or 'off')";
            error(n, path, msg);
            return;
        }
        out = v;
    }

    bool boolean(const YAML::Node& parent, const std::string& key, const std::string& path, bool& out) {
        const YAML::Node n = parent[key];
        if (!n) return false;
        if (n.IsScalar()) {
            const std::string s = n.Scalar();
            if (s == "true" || s == "yes" || s == "on") {
                out = true;
                return true;
            }
            if (s == "false" || s == "no" || s == "off") {
                out = false;
                return true;
            }
        }
        error(n, path, "expected true or false" + got(n));
        return false;
    }

    bool string(const YAML::Node& parent, const std::string& key, const std::string& path, std::string& out) {
        const YAML::Node n = parent[key];
        if (!n) return false;
        if (!n.IsScalar()) {
            error(n, path, "expected a string" + got(n));
            return false;
        }
        out = n.Scalar();
        return true;
    }

    bool id(const YAML::Node& parent, const std::string& path, std::string& out) {
        const YAML::Node n = parent["id"];
        if (!n) {
            error(parent, path, "missing required key 'id'");
            return false;
        }
        if (!n.IsScalar()) {
            error(n, path + ".id", "expected an id ([a-z0-9_-], 1 to 32 characters)" + got(n));
            return false;
        }
        if (n.Scalar().empty() || n.Scalar().size() > 32 ||
            !std::all_of(n.Scalar().begin(), n.Scalar().end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
            })) {
            error(n, path + ".id", "'" + n.Scalar() + "' is not a valid id ([a-z0-9_-], 1 to 32 characters)");
            return false;
        }
        out = n.Scalar();
        return true;
    }

    // A port name or /regex/ (a non-empty scalar already): the regex is checked here, once.
    bool rule(const YAML::Node& e, const std::string& ep, ConnectRule& r) {
        const std::string s = e.Scalar();
        if (s.size() >= 2 && s.front() == '/' && s.back() == '/') {
            r.is_regex = true;
            r.pattern = s.substr(1, s.size() - 2);
            if (r.pattern.empty()) {
                error(e, ep, "empty regular expression //");
                return false;
            }
            if (regex_number_too_long(r.pattern)) {
                error(e, ep,
                      "invalid regular expression /" + r.pattern +
                          "/: a repetition count or back-reference has more than 9 digits");
                return false;
            }
            try {
                std::regex re(r.pattern, std::regex::ECMAScript);
            } catch (const std::regex_error& ex) {
                error(e, ep, "invalid regular expression /" + r.pattern + "/: " + ex.what());
                return false;
            }
        } else {
            r.pattern = s;
        }
        return true;
    }

    void connect(const YAML::Node& parent, const std::string& path, std::vector<ConnectRule>& out,
                 std::size_t max_entries) {
        const YAML::Node n = parent["connect"];
        if (!n) return;
        const std::string p = path + ".connect";
        if (n.IsScalar()) {
            error(n, p, "expected a list of port names, e.g. [\"system:capture_1\"]" + got(n));
            return;
        }
        if (!is_seq(n, p)) return;
        if (n.size() > max_entries) {
            error(n, p,
                  std::to_string(n.size()) + " entries, but this output has " + std::to_string(max_entries) +
                      " channel(s): one destination per channel, in order (L, R)");
            return;
        }
        for (std::size_t i = 0; i < n.size(); ++i) {
            const YAML::Node e = n[i];
            const std::string ep = p + "[" + std::to_string(i) + "]";
            if (!e.IsScalar() || e.Scalar().empty()) {
                error(e, ep, "expected a port name or /regex/" + got(e));
                continue;
            }
            ConnectRule r;
            if (!rule(e, ep, r)) continue;
            out.push_back(r);
        }
    }
};

void load_inputs(Ctx& cx, const YAML::Node& root, Config& c) {
    const YAML::Node n = root["inputs"];
    if (!n) {
        cx.error(root, "", "missing required key 'inputs'");
        return;
    }
    if (!cx.is_seq(n, "inputs")) return;
    if (n.size() == 0 || n.size() > 256)
        cx.error(n, "inputs", std::to_string(n.size()) + " inputs: between 1 and 256 allowed");
    for (std::size_t i = 0; i < n.size(); ++i) {
        const YAML::Node e = n[i];
        const std::string p = "inputs[" + std::to_string(i) + "]";
        if (!cx.is_map(e, p)) continue;
        cx.check_keys(e, p, {"id", "connect", "measurement"});
        Input in;
        in.mark = Mark{cx.file, e.Mark().line + 1, e.Mark().column + 1};
        if (!cx.id(e, p, in.id)) {
            if (const YAML::Node idn = e["id"]; idn && idn.IsScalar())
                cx.rejected_inputs.push_back(idn.Scalar());
            continue;
        }
        cx.connect(e, p, in.connect, std::numeric_limits<std::size_t>::max()); // any number of sources
        if (const YAML::Node m = e["measurement"]; m && cx.is_map(m, p + ".measurement")) {
            const std::string mp = p + ".measurement";
            cx.check_keys(m, mp, {"sine_dbfs", "db_spl"});
            Measurement ms;
            cx.number(m, "sine_dbfs", mp + ".sine_dbfs", "inputs[].measurement.sine_dbfs", ms.sine_dbfs);
            cx.number(m, "db_spl", mp + ".db_spl", "inputs[].measurement.db_spl", ms.db_spl);
            in.measurement = ms;
        }
        const YAML::Node idn = e["id"];
        if (const auto first = cx.input_id_line.find(in.id); first != cx.input_id_line.end()) {
            cx.error(idn, p + ".id",
                     "duplicate input id '" + in.id + "' (first defined at line " +
                         std::to_string(first->second) + ")");
            continue;
        }
        cx.input_id_line.emplace(in.id, idn.Mark().line + 1);
        c.inputs.push_back(std::move(in));
    }
}

void load_musician(Ctx& cx, const YAML::Node& e, const std::string& p, Config& c,
                   const std::vector<std::string>& input_ids) {
    cx.check_keys(e, p, {"id", "name", "output", "connect", "calibration", "protection", "mix", "ambient"});
    Musician m;
    m.mark = Mark{cx.file, e.Mark().line + 1, e.Mark().column + 1};
    const bool id_ok = cx.id(e, p, m.id);
    m.name = m.id;
    cx.string(e, "name", p + ".name", m.name);
    if (const YAML::Node o = e["output"]) {
        if (o.IsScalar() && o.Scalar() == "mono")
            m.output = OutputKind::mono;
        else if (o.IsScalar() && o.Scalar() == "stereo")
            m.output = OutputKind::stereo;
        else
            cx.error(o, p + ".output", "expected 'mono' or 'stereo'" + Ctx::got(o));
    }
    cx.connect(e, p, m.connect, static_cast<std::size_t>(m.channels()));

    if (const YAML::Node cal = e["calibration"]; cal && cx.is_map(cal, p + ".calibration")) {
        const std::string cp = p + ".calibration";
        cx.check_keys(cal, cp, {"sine_dbfs", "db_spl", "reference"});
        cx.number(cal, "sine_dbfs", cp + ".sine_dbfs", "musicians[].calibration.sine_dbfs",
                  m.calibration.sine_dbfs);
        cx.number(cal, "db_spl", cp + ".db_spl", "musicians[].calibration.db_spl", m.calibration.db_spl);
        if (const YAML::Node r = cal["reference"]) {
            if (r.IsScalar() && r.Scalar() == "field")
                m.calibration.reference = Reference::field;
            else if (r.IsScalar() && r.Scalar() == "eardrum")
                m.calibration.reference = Reference::eardrum;
            else
                cx.error(r, cp + ".reference", "expected 'field' or 'eardrum'" + Ctx::got(r));
        }
    }
    const YAML::Node prot = e["protection"];
    if (!prot) {
        cx.error(e, p,
                 "missing required key 'protection' (every musician needs protection.peak_ceiling_db_spl)");
    } else if (cx.is_map(prot, p + ".protection")) {
        const std::string pp = p + ".protection";
        cx.check_keys(prot, pp, {"peak_ceiling_db_spl", "max_laeq_1s_dba", "lookahead_ms", "release_ms"});
        double ceil = std::nan("");
        cx.number(prot, "peak_ceiling_db_spl", pp + ".peak_ceiling_db_spl",
                  "musicians[].protection.peak_ceiling_db_spl", ceil);
        if (!std::isnan(ceil)) m.protection.peak_ceiling_db_spl = ceil;
        double cap = std::nan("");
        cx.number(prot, "max_laeq_1s_dba", pp + ".max_laeq_1s_dba", "musicians[].protection.max_laeq_1s_dba",
                  cap);
        if (!std::isnan(cap)) m.protection.max_laeq_1s_dba = cap;
        cx.number(prot, "lookahead_ms", pp + ".lookahead_ms", "musicians[].protection.lookahead_ms",
                  m.protection.lookahead_ms);
        cx.number(prot, "release_ms", pp + ".release_ms", "musicians[].protection.release_ms",
                  m.protection.release_ms);
    }
    if (const YAML::Node mix = e["mix"]; mix && cx.is_map(mix, p + ".mix")) {
        const std::string mp = p + ".mix";
        cx.check_keys(mix, mp, {"master_db", "sends"});
        cx.number(mix, "master_db", mp + ".master_db", "musicians[].mix.master_db", m.mix.master_db);
        if (const YAML::Node sends = mix["sends"]; sends && cx.is_map(sends, mp + ".sends")) {
            std::size_t index = 0;
            for (auto it = sends.begin(); it != sends.end(); ++it, ++index) {
                const std::string in = it->first.Scalar();
                const std::string sp = mp + ".sends." + in;
                if (!it->first.IsScalar()) {
                    cx.error(it->first, mp + ".sends", "expected an input id" + Ctx::got(it->first));
                    continue;
                }
                if (cx.duplicate_key(sends, index, it->first, sp)) continue;
                if (std::find(input_ids.begin(), input_ids.end(), in) == input_ids.end()) {
                    // An input whose own entry was rejected (bad or duplicate id) already has its error.
                    if (std::find(cx.rejected_inputs.begin(), cx.rejected_inputs.end(), in) !=
                        cx.rejected_inputs.end())
                        continue;
                    std::string msg = "unknown input '" + in + "'";
                    const std::string s = suggest(in, input_ids);
                    if (!s.empty()) msg += " (did you mean '" + s + "'?)";
                    cx.error(it->first, sp, msg);
                    continue;
                }
                Send sd;
                sd.input = in;
                sd.mark = Mark{cx.file, it->first.Mark().line + 1, it->first.Mark().column + 1};
                const YAML::Node v = it->second;
                if (v.IsNull()) {
                    m.mix.sends.push_back(sd);
                    continue;
                }
                if (!cx.is_map(v, sp)) continue;
                cx.check_keys(v, sp, {"gain_db", "pan", "mute"});
                cx.number(v, "gain_db", sp + ".gain_db", "musicians[].mix.sends.<input>.gain_db", sd.gain_db);
                cx.number(v, "pan", sp + ".pan", "musicians[].mix.sends.<input>.pan", sd.pan);
                cx.boolean(v, "mute", sp + ".mute", sd.mute);
                if (m.output == OutputKind::mono && sd.pan != 0.0)
                    cx.error(v["pan"], sp + ".pan",
                             "pan has no effect on a mono output (remove it or make the output stereo)");
                m.mix.sends.push_back(sd);
            }
        }
    }
    if (const YAML::Node amb = e["ambient"]; amb && cx.is_map(amb, p + ".ambient")) {
        const std::string ap = p + ".ambient";
        cx.check_keys(amb, ap, {"input", "isolation_db"});
        Ambient a;
        if (!amb["input"]) {
            cx.error(amb, ap, "missing required key 'input' (a measurement input's id)");
        } else if (cx.string(amb, "input", ap + ".input", a.input)) {
            const int idx = c.input_index(a.input);
            if (idx < 0) {
                std::string msg = "unknown input '" + a.input + "'";
                const std::string s = suggest(a.input, input_ids);
                if (!s.empty()) msg += " (did you mean '" + s + "'?)";
                cx.error(amb["input"], ap + ".input", msg);
            } else if (!c.inputs[static_cast<std::size_t>(idx)].measurement) {
                cx.error(amb["input"], ap + ".input",
                         "input '" + a.input +
                             "' is not a measurement mic (give it a measurement: {sine_dbfs, db_spl})");
            }
        }
        cx.number(amb, "isolation_db", ap + ".isolation_db", "musicians[].ambient.isolation_db",
                  a.isolation_db);
        m.ambient = a;
    }
    if (!id_ok) return;
    const YAML::Node idn = e["id"];
    if (const auto first = cx.musician_id_line.find(m.id); first != cx.musician_id_line.end()) {
        cx.error(idn, p + ".id",
                 "duplicate musician id '" + m.id + "' (first defined at line " +
                     std::to_string(first->second) + ")");
        return;
    }
    if (m.output == OutputKind::mono) {
        // A mono output's JACK port is named after the musician, like an input's port.
        if (const auto in = cx.input_id_line.find(m.id); in != cx.input_id_line.end()) {
            cx.error(idn, p + ".id",
                     "'" + m.id + "' names this mono output's JACK port, which input '" + m.id + "' (line " +
                         std::to_string(in->second) +
                         ") already uses; rename one of them (stereo outputs use '" + m.id + "_L'/'_R')");
            return;
        }
    }
    cx.musician_id_line.emplace(m.id, idn.Mark().line + 1);
    c.musicians.push_back(std::move(m));
}

// --- MIDI controllers ---------------------------------------------------------------------------

// The YAML nodes of one controller, kept to place the Mapper's build errors.
struct ControllerNodes {
    YAML::Node node;
    std::string path;
    std::vector<YAML::Node> mappings; // parallel to Controller::midi.mappings
    std::vector<char> action_bad;     // parallel: the mapping's action did not parse (its other
                                      // checks would only repeat that)
    bool parse_errors = false;        // the controller already has errors from parsing
};

const std::vector<std::string> source_keys = {"cc", "cc14", "note", "program", "pitch_bend"};

// A whole number from the parameter table (MIDI numbers, channels). False when absent or bad.
bool midi_number(Ctx& cx, const YAML::Node& parent, const std::string& key, const std::string& path,
                 std::string_view spec, int& out) {
    if (!parent[key]) return false;
    double v = std::nan("");
    const std::size_t before = cx.errors.size();
    cx.number(parent, key, path, spec, v);
    if (cx.errors.size() != before || std::isnan(v)) return false;
    if (v != std::floor(v)) {
        cx.error(parent[key], path, "expected a whole number, got '" + parent[key].Scalar() + "'");
        return false;
    }
    out = static_cast<int>(v);
    return true;
}

// The same for a list item (re-anchored at the item).
bool midi_number_item(Ctx& cx, const YAML::Node& item, const std::string& path, std::string_view spec,
                      int& out) {
    YAML::Node holder;
    holder["v"] = item;
    const std::size_t before = cx.errors.size();
    const bool ok = midi_number(cx, holder, "v", path, spec, out);
    for (std::size_t k = before; k < cx.errors.size(); ++k) {
        cx.errors[k].line = item.Mark().line + 1;
        cx.errors[k].col = item.Mark().column + 1;
    }
    return ok;
}

std::string names_of(const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
}

// `channel: 1-16` (or `any`) -> 0-15 / any_channel.
void midi_channel(Ctx& cx, const YAML::Node& parent, const std::string& path, std::string_view spec,
                  int8_t& out) {
    const YAML::Node n = parent["channel"];
    if (!n) return;
    if (n.IsScalar() && n.Scalar() == "any") {
        out = static_cast<int8_t>(midi::any_channel);
        return;
    }
    int ch = 0;
    if (midi_number(cx, parent, "channel", path, spec, ch)) out = static_cast<int8_t>(ch - 1);
}

// Returns false when the mapping's action could not be read.
bool load_mapping(Ctx& cx, const YAML::Node& m, const std::string& p, const Controller& ctl,
                  midi::Mapping& mp, std::string& target) {
    cx.check_keys(m, p, {"cc",     "cc14",     "note",   "program", "pitch_bend", "channel",   "kind",
                         "curve",  "min_db",   "max_db", "step_db", "takeover",   "pickup",    "feedback",
                         "action", "musician", "input",  "inputs",  "scene",      "amount_db", "target"});
    // The control: exactly one source key.
    std::vector<std::string> present;
    for (const std::string& k : source_keys)
        if (m[k]) present.push_back(k);
    if (present.empty()) cx.error(m, p, "missing the control: give one of " + names_of(source_keys));
    for (std::size_t k = 1; k < present.size(); ++k)
        cx.error(m[present[k]], p + "." + present[k],
                 "one control per mapping: '" + present[0] + "' is already given (write a second mapping)");
    const std::string src = present.empty() ? "" : present[0];
    midi::ControlSource& s = mp.source;
    int v = 0;
    if (src == "cc" || src == "note" || src == "program") {
        s.type = src == "cc"     ? midi::SourceType::cc
                 : src == "note" ? midi::SourceType::note
                                 : midi::SourceType::program;
        if (midi_number(cx, m, src, p + "." + src, "controllers[].mappings[]." + src, v))
            s.number = static_cast<uint8_t>(v);
    } else if (src == "cc14") {
        s.type = midi::SourceType::cc14;
        const YAML::Node n = m["cc14"];
        const std::string np = p + ".cc14";
        if (n.IsSequence() && n.size() == 2) {
            int a = 0, b = 0;
            if (midi_number_item(cx, n[0], np + "[0]", "controllers[].mappings[].cc14[]", a) &&
                midi_number_item(cx, n[1], np + "[1]", "controllers[].mappings[].cc14[]", b)) {
                s.number = static_cast<uint8_t>(a);
                s.lsb = static_cast<uint8_t>(b);
            }
        } else if (n.IsScalar()) {
            if (midi_number_item(cx, n, np, "controllers[].mappings[].cc14[]", v)) {
                if (v > 95)
                    cx.error(n, np,
                             std::to_string(v) + " has no LSB controller " + std::to_string(v + 32) +
                                 " (write [msb, lsb])");
                s.number = static_cast<uint8_t>(v);
                s.lsb = static_cast<uint8_t>(std::min(v + 32, 127));
            }
        } else {
            cx.error(n, np, "expected [msb, lsb], e.g. [0, 32]" + Ctx::got(n));
        }
    } else if (src == "pitch_bend") {
        s.type = midi::SourceType::pitch_bend;
        bool on = false;
        if (cx.boolean(m, "pitch_bend", p + ".pitch_bend", on) && !on)
            cx.error(m["pitch_bend"], p + ".pitch_bend",
                     "'pitch_bend: true' selects the pitch bend; false means nothing");
    }
    midi_channel(cx, m, p + ".channel", "controllers[].mappings[].channel", s.channel);

    // The action.
    bool action_ok = false;
    if (const YAML::Node a = m["action"]; !a) {
        cx.error(m, p,
                 "missing required key 'action' (master, send_gain, send_mute, more_me, talkback, scene, "
                 "dim_all, panic or learn)");
    } else if (!a.IsScalar()) {
        cx.error(a, p + ".action", "expected an action name" + Ctx::got(a));
    } else if (const auto t = midi::action_from_name(a.Scalar())) {
        mp.action.type = *t;
        action_ok = true;
    } else {
        std::vector<std::string> names;
        for (std::size_t k = 0; k < midi::action_type_count; ++k)
            names.emplace_back(midi::name(static_cast<midi::ActionType>(k)));
        std::string msg = "unknown action '" + a.Scalar() + "'";
        const std::string sug = suggest(a.Scalar(), names);
        msg += sug.empty() ? " (allowed: " + names_of(names) + ")" : " (did you mean '" + sug + "'?)";
        cx.error(a, p + ".action", msg);
    }
    cx.string(m, "musician", p + ".musician", mp.action.musician);
    cx.string(m, "input", p + ".input", mp.action.input);
    cx.string(m, "scene", p + ".scene", mp.action.scene);
    if (const YAML::Node ins = m["inputs"]) {
        if (!ins.IsSequence()) {
            cx.error(ins, p + ".inputs", "expected a list of input ids" + Ctx::got(ins));
        } else {
            for (std::size_t k = 0; k < ins.size(); ++k) {
                if (!ins[k].IsScalar()) {
                    cx.error(ins[k], p + ".inputs[" + std::to_string(k) + "]",
                             "expected an input id" + Ctx::got(ins[k]));
                    continue;
                }
                mp.action.inputs.push_back(ins[k].Scalar());
            }
        }
    }
    if (m["amount_db"]) {
        double amt = std::nan("");
        cx.number(m, "amount_db", p + ".amount_db", "controllers[].mappings[].amount_db", amt);
        if (!std::isnan(amt)) mp.action.amount_db = amt;
    }
    const midi::ActionType at = mp.action.type;
    const bool gain = at == midi::ActionType::send_gain || at == midi::ActionType::master;
    const bool sw = at == midi::ActionType::send_mute || at == midi::ActionType::more_me ||
                    at == midi::ActionType::talkback || at == midi::ActionType::dim_all;

    // How the control behaves: given, or the usual one for its control and action (also when
    // the given kind is not valid, so that error is not followed by others it caused).
    const bool panic = at == midi::ActionType::panic;
    switch (s.type) {
    case midi::SourceType::note: // pads: switches latch (toggle), talkback and triggers are held
        mp.kind = (sw && at != midi::ActionType::talkback) || panic ? midi::ControlKind::toggle
                                                                    : midi::ControlKind::momentary;
        break;
    case midi::SourceType::program:
        mp.kind = midi::ControlKind::toggle;
        break;
    case midi::SourceType::cc:
        if (gain)
            mp.kind = midi::ControlKind::absolute;
        else if (panic)
            mp.kind = midi::ControlKind::toggle; // a panic latches until pressed again
        else if (sw && at != midi::ActionType::talkback && ctl.midi.profile == midi::Profile::nanokontrol2)
            mp.kind = midi::ControlKind::toggle; // its factory buttons send 127 / 0 while held
        else if (sw)
            mp.kind = midi::ControlKind::absolute; // latching CC buttons: on at 64 and above
        else
            mp.kind = midi::ControlKind::momentary;
        break;
    default: // cc14, pitch bend
        mp.kind = gain || sw || panic ? midi::ControlKind::absolute : midi::ControlKind::momentary;
        break;
    }
    if (const YAML::Node k = m["kind"]) {
        const auto kd = k.IsScalar() ? midi::kind_from_name(k.Scalar()) : std::nullopt;
        if (kd)
            mp.kind = *kd;
        else
            cx.error(k, p + ".kind",
                     "expected one of absolute, relative_twos_complement, relative_signed_bit, "
                     "relative_binary_offset, momentary, toggle" +
                         Ctx::got(k));
    }
    if (const YAML::Node cu = m["curve"]) {
        const auto c = cu.IsScalar() ? midi::curve_from_name(cu.Scalar()) : std::nullopt;
        if (c)
            mp.curve = *c;
        else
            cx.error(cu, p + ".curve",
                     "expected one of db, linear_gain, audio_taper (or log)" + Ctx::got(cu));
    }
    cx.number(m, "min_db", p + ".min_db", "controllers[].mappings[].min_db", mp.min_db);
    cx.number(m, "max_db", p + ".max_db", "controllers[].mappings[].max_db", mp.max_db);
    cx.number(m, "step_db", p + ".step_db", "controllers[].mappings[].step_db", mp.step_db);
    cx.number(m, "pickup", p + ".pickup", "controllers[].mappings[].pickup", mp.pickup);
    cx.boolean(m, "takeover", p + ".takeover", mp.takeover);
    cx.boolean(m, "feedback", p + ".feedback", mp.feedback);
    if (!gain) {
        for (const char* k : {"curve", "min_db", "max_db", "step_db"})
            if (m[k] && action_ok)
                cx.error(m[k], p + "." + k,
                         std::string("'") + k + "' applies to gains (master, send_gain), not to '" +
                             midi::name(at) + "'");
    }

    // A learn pad's target.
    if (const YAML::Node t = m["target"]) {
        std::string text, why;
        if (action_ok && at != midi::ActionType::learn) {
            cx.error(t, p + ".target",
                     std::string("a target has no meaning for '") + midi::name(at) + "' (only learn)");
        } else if (cx.string(m, "target", p + ".target", text)) {
            if (const auto lt = parse_learn_target(text, why)) {
                if (ctl.midi.musician && lt->musician != *ctl.midi.musician)
                    cx.error(t, p + ".target",
                             "'" + lt->musician + "' is not this controller's musician '" +
                                 *ctl.midi.musician +
                                 "': a bound controller changes only its own musician's mix (SPEC §3.5)");
                target = lt->str();
            } else {
                cx.error(t, p + ".target", why);
            }
        }
    }
    return action_ok;
}

void load_controller(Ctx& cx, const YAML::Node& e, const std::string& p, Controller& ctl,
                     ControllerNodes& nodes) {
    cx.check_keys(e, p,
                  {"id", "api", "port", "feedback", "profile", "musician", "pair_timeout_ms", "mappings",
                   "dose_leds", "dose", "palette"});
    ctl.mark = Mark{cx.file, e.Mark().line + 1, e.Mark().column + 1};
    cx.id(e, p, ctl.id);
    ctl.midi.id = ctl.id;
    if (const YAML::Node a = e["api"]) {
        if (a.IsScalar() && a.Scalar() == "alsa")
            ctl.api = Controller::Api::alsa;
        else if (a.IsScalar() && a.Scalar() == "jack")
            ctl.api = Controller::Api::jack;
        else
            cx.error(a, p + ".api", "expected 'alsa' or 'jack'" + Ctx::got(a));
    }
    for (const char* key : {"port", "feedback"}) {
        const YAML::Node n = e[key];
        const std::string kp = p + "." + key;
        if (!n) {
            if (std::string(key) == "port")
                cx.error(e, p, "missing required key 'port' (a part of the MIDI source's name, or /regex/)");
            continue;
        }
        if (!n.IsScalar() || n.Scalar().empty()) {
            cx.error(n, kp, "expected a port name (a part of it) or /regex/" + Ctx::got(n));
            continue;
        }
        ConnectRule r;
        if (!cx.rule(n, kp, r)) continue;
        if (std::string(key) == "port")
            ctl.port = r;
        else
            ctl.feedback = r;
    }
    if (const YAML::Node pr = e["profile"]) {
        const auto prof = pr.IsScalar() ? midi::profile_from_name(pr.Scalar()) : std::nullopt;
        if (prof)
            ctl.midi.profile = *prof;
        else
            cx.error(pr, p + ".profile",
                     "expected one of generic, apc_mini, launchpad_mini, nanokontrol2" + Ctx::got(pr));
    }
    std::string bound;
    if (cx.string(e, "musician", p + ".musician", bound)) ctl.midi.musician = bound;
    cx.number(e, "pair_timeout_ms", p + ".pair_timeout_ms", "controllers[].pair_timeout_ms",
              ctl.midi.pair_timeout_ms);
    if (const YAML::Node d = e["dose"]; d && cx.is_map(d, p + ".dose")) {
        cx.check_keys(d, p + ".dose", {"amber_pct", "red_pct"});
        cx.number(d, "amber_pct", p + ".dose.amber_pct", "controllers[].dose.amber_pct",
                  ctl.midi.dose.amber_pct);
        cx.number(d, "red_pct", p + ".dose.red_pct", "controllers[].dose.red_pct", ctl.midi.dose.red_pct);
        if (ctl.midi.dose.amber_pct >= ctl.midi.dose.red_pct)
            cx.error(d, p + ".dose", "amber_pct must be below red_pct");
    }
    if (const YAML::Node pal = e["palette"]; pal && cx.is_map(pal, p + ".palette")) {
        const std::vector<std::string> leds = {"off",       "green", "green_blink", "red",
                                               "red_blink", "amber", "amber_blink"};
        cx.check_keys(pal, p + ".palette", leds);
        midi::LedPalette lp;
        bool ok = true;
        std::vector<std::string> missing;
        for (const std::string& k : leds)
            if (!pal[k]) missing.push_back(k);
        if (!missing.empty()) {
            cx.error(pal, p + ".palette",
                     "missing required key" + std::string(missing.size() > 1 ? "s '" : " '") +
                         names_of(missing) + "' (a palette gives all seven values: " + names_of(leds) + ")");
            ok = false;
        }
        for (std::size_t k = 0; k < leds.size(); ++k) {
            int v = 0;
            if (!pal[leds[k]]) {
                continue;
            } else if (midi_number(cx, pal, leds[k], p + ".palette." + leds[k], "controllers[].palette.<led>",
                                   v)) {
                lp.value[k] = static_cast<uint8_t>(v);
            } else {
                ok = false;
            }
        }
        if (ok) ctl.midi.palette = lp;
    }
    if (const YAML::Node dl = e["dose_leds"]; dl && cx.is_seq(dl, p + ".dose_leds")) {
        for (std::size_t k = 0; k < dl.size(); ++k) {
            const YAML::Node d = dl[k];
            const std::string dp = p + ".dose_leds[" + std::to_string(k) + "]";
            if (!cx.is_map(d, dp)) continue;
            cx.check_keys(d, dp, {"musician", "note", "cc", "channel"});
            midi::DoseLed led;
            led.musician = bound;
            if (!cx.string(d, "musician", dp + ".musician", led.musician) && bound.empty())
                cx.error(d, dp, "missing required key 'musician' (whose dose the LED shows)");
            if (d["note"] && d["cc"]) {
                cx.error(d["cc"], dp + ".cc", "give note or cc, not both");
            } else if (!d["note"] && !d["cc"]) {
                cx.error(d, dp, "missing the LED's control: note or cc");
            }
            int v = 0;
            if (midi_number(cx, d, "note", dp + ".note", "controllers[].dose_leds[].note", v)) {
                led.source.type = midi::SourceType::note;
                led.source.number = static_cast<uint8_t>(v);
            } else if (midi_number(cx, d, "cc", dp + ".cc", "controllers[].dose_leds[].cc", v)) {
                led.source.type = midi::SourceType::cc;
                led.source.number = static_cast<uint8_t>(v);
            }
            led.source.channel = 0;
            midi_channel(cx, d, dp + ".channel", "controllers[].dose_leds[].channel", led.source.channel);
            ctl.midi.dose_leds.push_back(led);
        }
    }
    if (const YAML::Node ms = e["mappings"]; ms && cx.is_seq(ms, p + ".mappings")) {
        if (ms.size() > midi::max_mappings)
            cx.error(ms, p + ".mappings",
                     std::to_string(ms.size()) + " mappings: at most " + std::to_string(midi::max_mappings));
        for (std::size_t k = 0; k < ms.size() && k < midi::max_mappings; ++k) {
            const YAML::Node m = ms[k];
            const std::string mp = p + ".mappings[" + std::to_string(k) + "]";
            if (!cx.is_map(m, mp)) continue;
            midi::Mapping mapping;
            std::string target;
            const bool action_ok = load_mapping(cx, m, mp, ctl, mapping, target);
            ctl.midi.mappings.push_back(std::move(mapping));
            ctl.learn_targets.push_back(std::move(target));
            nodes.mappings.push_back(m);
            nodes.action_bad.push_back(action_ok ? 0 : 1);
        }
    }
}

// Where a build error of the Mapper or Feedback belongs: its YAML key and node. On a controller
// that already has parse errors, a build error about a mapping whose action did not parse, or at
// a key that already has an error, is a consequence of that error and is not reported again.
void place_build_error(Ctx& cx, const ControllerNodes& nodes, const midi::BuildError& be) {
    if (nodes.parse_errors && be.mapping >= 0 &&
        static_cast<std::size_t>(be.mapping) < nodes.action_bad.size() &&
        nodes.action_bad[static_cast<std::size_t>(be.mapping)])
        return;
    YAML::Node at = nodes.node;
    std::string path = nodes.path;
    if (be.mapping >= 0 && static_cast<std::size_t>(be.mapping) < nodes.mappings.size()) {
        at = nodes.mappings[static_cast<std::size_t>(be.mapping)];
        path += ".mappings[" + std::to_string(be.mapping) + "]";
    }
    std::string key = be.key;
    if (key.rfind("action.", 0) == 0) key = key.substr(7);
    if (key == "source.channel") key = "channel";
    if (key == "source.lsb") key = "cc14";
    if (key == "source.number" || key == "source") {
        key.clear();
        for (const std::string& k : source_keys)
            if (at.IsMap() && at[k]) key = k;
    }
    // Walk "a.b[2].c" down the nodes as far as they exist.
    std::size_t pos = 0;
    while (!key.empty() && pos < key.size()) {
        std::size_t end = key.find('.', pos);
        if (end == std::string::npos) end = key.size();
        std::string part = key.substr(pos, end - pos);
        path += "." + part;
        int index = -1;
        if (const std::size_t br = part.find('['); br != std::string::npos) {
            index = std::atoi(part.c_str() + br + 1);
            part = part.substr(0, br);
        }
        if (at.IsMap() && at[part]) {
            YAML::Node next = at[part];
            if (index >= 0 && next.IsSequence() && static_cast<std::size_t>(index) < next.size())
                next = next[static_cast<std::size_t>(index)];
            at = next;
        }
        pos = end + 1;
    }
    if (nodes.parse_errors)
        for (const ConfigError& e : cx.errors) {
            if (e.key_path == path) return;
            // an error on a mapping or a dose LED as a whole (e.g. its control missing) covers its keys
            const bool below_controller = e.key_path.rfind(nodes.path + ".", 0) == 0;
            if (below_controller && path.rfind(e.key_path + ".", 0) == 0) return;
        }
    cx.error(at, path, be.message);
}

void load_controllers(Ctx& cx, const YAML::Node& root, Config& c) {
    const YAML::Node n = root["controllers"];
    if (!n || !cx.is_seq(n, "controllers")) return;
    if (n.size() > 32)
        cx.error(n, "controllers", std::to_string(n.size()) + " controllers: at most 32 allowed");
    // Every controller is checked with the MIDI core, also one with parse errors (with what could
    // be read), so that all errors come at once (SPEC §2); only clean ones are kept.
    std::vector<Controller> all;
    std::vector<ControllerNodes> nodes;
    std::map<std::string, int> id_line;
    for (std::size_t i = 0; i < n.size() && i < 32; ++i) {
        const std::string p = "controllers[" + std::to_string(i) + "]";
        if (!cx.is_map(n[i], p)) continue;
        Controller ctl;
        ControllerNodes cn{n[i], p, {}, {}, false};
        const std::size_t before = cx.errors.size();
        load_controller(cx, n[i], p, ctl, cn);
        if (!ctl.id.empty()) {
            if (const auto first = id_line.find(ctl.id); first != id_line.end()) {
                cx.error(n[i]["id"], p + ".id",
                         "duplicate controller id '" + ctl.id + "' (first defined at line " +
                             std::to_string(first->second) + ")");
            } else {
                id_line.emplace(ctl.id, n[i]["id"].Mark().line + 1);
            }
        }
        cn.parse_errors = cx.errors.size() != before;
        all.push_back(std::move(ctl));
        nodes.push_back(std::move(cn));
    }
    // Resolve ids and check ranges, scope and feedback with the MIDI core itself.
    c.controllers = all;
    const midi::Directory dir = midi_directory(c);
    c.controllers.clear();
    for (std::size_t i = 0; i < all.size(); ++i) {
        Controller& ctl = all[i];
        std::vector<midi::BuildError> errs;
        auto mapper = midi::Mapper::build(ctl.midi, dir, errs);
        if (!mapper) {
            // The feedback checks (dose LEDs, thresholds, palette) need a Mapper: build one from
            // the mappings that had no error, so their errors are reported now too.
            std::vector<char> bad(ctl.midi.mappings.size(), 0);
            for (const midi::BuildError& be : errs)
                if (be.mapping >= 0 && static_cast<std::size_t>(be.mapping) < bad.size())
                    bad[static_cast<std::size_t>(be.mapping)] = 1;
            midi::ControllerConfig rest = ctl.midi;
            rest.mappings.clear();
            for (std::size_t k = 0; k < ctl.midi.mappings.size(); ++k)
                if (!bad[k]) rest.mappings.push_back(ctl.midi.mappings[k]);
            std::vector<midi::BuildError> again;
            if (auto m2 = midi::Mapper::build(rest, dir, again)) {
                std::vector<midi::BuildError> fb;
                midi::Feedback::build(rest, *m2, dir, fb);
                for (const midi::BuildError& be : fb)
                    if (be.mapping < 0) errs.push_back(be);
            }
        } else {
            midi::Feedback::build(ctl.midi, *mapper, dir, errs);
        }
        for (std::size_t k = 0; k < ctl.learn_targets.size(); ++k) {
            if (ctl.learn_targets[k].empty()) continue;
            std::string why;
            const auto lt = parse_learn_target(ctl.learn_targets[k], why);
            if (lt && c.musician_index(lt->musician) < 0)
                errs.push_back({static_cast<int>(k), "target", "no musician '" + lt->musician + "'"});
            else if (lt && !lt->input.empty() && c.input_index(lt->input) < 0)
                errs.push_back({static_cast<int>(k), "target", "no input '" + lt->input + "'"});
        }
        for (const midi::BuildError& be : errs) place_build_error(cx, nodes[i], be);
        if (errs.empty() && !nodes[i].parse_errors) c.controllers.push_back(std::move(ctl));
    }
}

Config load_node(const YAML::Node& root, Ctx& cx) {
    Config c;
    c.source = cx.file;
    if (!root || root.IsNull()) {
        cx.error(YAML::Mark(), "", "the file is empty (expected version, inputs and musicians)");
        return c;
    }
    if (!cx.is_map(root, "")) return c;
    cx.check_keys(
        root, "",
        {"version", "jack", "control", "mixer", "dosimetry", "show", "inputs", "musicians", "controllers"});
    double version = std::nan("");
    cx.number(root, "version", "version", "version", version);
    if (!std::isnan(version)) c.version = static_cast<int>(version);
    if (const YAML::Node j = root["jack"]; j && cx.is_map(j, "jack")) {
        cx.check_keys(j, "jack", {"client_name"});
        std::string name;
        if (cx.string(j, "client_name", "jack.client_name", name)) {
            const bool ok =
                !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char ch) {
                    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
                });
            if (ok)
                c.jack.client_name = name;
            else
                cx.error(j["client_name"], "jack.client_name",
                         "'" + name + "' is not a valid client name ([A-Za-z0-9_-], 1 to 32 characters)");
        }
    }
    if (const YAML::Node ct = root["control"]; ct && cx.is_map(ct, "control")) {
        cx.check_keys(ct, "control", {"group", "read_group", "max_clients"});
        for (const char* key : {"group", "read_group"}) {
            std::string g;
            const std::string path = std::string("control.") + key;
            if (!cx.string(ct, key, path, g)) continue;
            const bool ok = !g.empty() && g.size() <= 32 &&
                            (std::islower(static_cast<unsigned char>(g[0])) || g[0] == '_') &&
                            std::all_of(g.begin(), g.end(), [](char ch) {
                                return std::islower(static_cast<unsigned char>(ch)) ||
                                       std::isdigit(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
                            });
            if (!ok) {
                cx.error(ct[key], path,
                         "'" + g + "' is not a group name ([a-z_][a-z0-9_-]*, at most 32 characters)");
                continue;
            }
            (std::string(key) == "group" ? c.control.group : c.control.read_group) = g;
        }
        double mc = c.control.max_clients;
        cx.number(ct, "max_clients", "control.max_clients", "control.max_clients", mc);
        c.control.max_clients = static_cast<int>(mc);
    }
    if (const YAML::Node mx = root["mixer"]; mx && cx.is_map(mx, "mixer")) {
        cx.check_keys(mx, "mixer", {"ramp_ms", "startup_ramp_ms"});
        cx.number(mx, "ramp_ms", "mixer.ramp_ms", "mixer.ramp_ms", c.mixer.ramp_ms);
        cx.number(mx, "startup_ramp_ms", "mixer.startup_ramp_ms", "mixer.startup_ramp_ms",
                  c.mixer.startup_ramp_ms);
    }
    if (const YAML::Node ds = root["dosimetry"]; ds && cx.is_map(ds, "dosimetry")) {
        cx.check_keys(ds, "dosimetry",
                      {"day_starts", "who_mode", "keep_days", "guard", "guard_budget",
                       "guard_rate_db_per_min", "guard_depth_db", "warn_pct", "rs2_dba"});
        std::string g;
        if (cx.string(ds, "guard", "dosimetry.guard", g)) {
            if (g == "off" || g == "false")
                c.dosimetry.guard = GuardMode::off;
            else if (g == "warn")
                c.dosimetry.guard = GuardMode::warn;
            else if (g == "limit")
                c.dosimetry.guard = GuardMode::limit;
            else
                cx.error(ds["guard"], "dosimetry.guard", "'" + g + "' is not one of off, warn, limit");
        }
        std::string b;
        if (cx.string(ds, "guard_budget", "dosimetry.guard_budget", b)) {
            if (b == "niosh")
                c.dosimetry.guard_budget = GuardBudget::niosh;
            else if (b == "who")
                c.dosimetry.guard_budget = GuardBudget::who;
            else
                cx.error(ds["guard_budget"], "dosimetry.guard_budget",
                         "'" + b + "' is not one of niosh, who");
        }
        cx.number(ds, "guard_rate_db_per_min", "dosimetry.guard_rate_db_per_min",
                  "dosimetry.guard_rate_db_per_min", c.dosimetry.guard_rate_db_per_min);
        cx.number(ds, "guard_depth_db", "dosimetry.guard_depth_db", "dosimetry.guard_depth_db",
                  c.dosimetry.guard_depth_db);
        cx.number(ds, "rs2_dba", "dosimetry.rs2_dba", "dosimetry.rs2_dba", c.dosimetry.rs2_dba);
        if (const YAML::Node w = ds["warn_pct"]) {
            if (!w.IsSequence() || w.size() == 0 || w.size() > 16) {
                cx.error(w, "dosimetry.warn_pct",
                         "expected a list of 1 to 16 percentages, e.g. [50, 80, 100]");
            } else {
                std::vector<double> v;
                bool ok = true;
                for (std::size_t i = 0; i < w.size(); ++i) {
                    double x = std::nan("");
                    const YAML::Node item = w[i];
                    YAML::Node holder;
                    holder["v"] = item;
                    const std::size_t before = cx.errors.size();
                    cx.number(holder, "v", "dosimetry.warn_pct[" + std::to_string(i) + "]",
                              "dosimetry.warn_pct[]", x);
                    if (cx.errors.size() != before) {
                        // Re-anchor the message at the item itself.
                        cx.errors.back().line = item.Mark().line + 1;
                        cx.errors.back().col = item.Mark().column + 1;
                        ok = false;
                        continue;
                    }
                    if (!v.empty() && !(x > v.back())) {
                        cx.error(item, "dosimetry.warn_pct[" + std::to_string(i) + "]",
                                 "thresholds must be in ascending order");
                        ok = false;
                    }
                    v.push_back(x);
                }
                if (ok) c.dosimetry.warn_pct = v;
            }
        }
        double keep = c.dosimetry.keep_days;
        cx.number(ds, "keep_days", "dosimetry.keep_days", "dosimetry.keep_days", keep);
        c.dosimetry.keep_days = static_cast<int>(keep);
        std::string t;
        if (cx.string(ds, "day_starts", "dosimetry.day_starts", t)) {
            int h = -1, mi = -1;
            char extra = 0;
            if (std::sscanf(t.c_str(), "%d:%d%c", &h, &mi, &extra) == 2 && h >= 0 && h <= 23 && mi >= 0 &&
                mi <= 59 && t.size() == 5)
                c.dosimetry.day_starts_min = h * 60 + mi;
            else
                cx.error(ds["day_starts"], "dosimetry.day_starts",
                         "'" + t + "' is not a local time HH:MM (00:00 to 23:59)");
        }
        double wm = 1;
        cx.number(ds, "who_mode", "dosimetry.who_mode", "dosimetry.who_mode", wm);
        if (wm != 1.0 && wm != 2.0)
            cx.error(ds["who_mode"], "dosimetry.who_mode", "must be 1 or 2");
        else
            c.dosimetry.who_mode = static_cast<int>(wm);
    }
    if (const YAML::Node sh = root["show"]; sh && cx.is_map(sh, "show")) {
        cx.check_keys(sh, "show", {"end", "length_min"});
        if (sh["end"] && sh["length_min"])
            cx.error(sh["length_min"], "show.length_min", "give show.end or show.length_min, not both");
        std::string t;
        if (cx.string(sh, "end", "show.end", t)) {
            int h = -1, mi = -1;
            char extra = 0;
            if (std::sscanf(t.c_str(), "%d:%d%c", &h, &mi, &extra) == 2 && h >= 0 && h <= 23 && mi >= 0 &&
                mi <= 59 && t.size() == 5)
                c.show.end_min = h * 60 + mi;
            else
                cx.error(sh["end"], "show.end", "'" + t + "' is not a local time HH:MM (00:00 to 23:59)");
        }
        double len = 0;
        if (sh["length_min"]) {
            cx.number(sh, "length_min", "show.length_min", "show.length_min", len);
            c.show.length_min = len;
        }
    }
    load_inputs(cx, root, c);
    std::vector<std::string> ids;
    for (const Input& in : c.inputs) ids.push_back(in.id);
    if (const YAML::Node ms = root["musicians"]) {
        if (cx.is_seq(ms, "musicians")) {
            if (ms.size() > 64)
                cx.error(ms, "musicians", std::to_string(ms.size()) + " musicians: at most 64 allowed");
            for (std::size_t i = 0; i < ms.size(); ++i) {
                const std::string p = "musicians[" + std::to_string(i) + "]";
                if (cx.is_map(ms[i], p)) load_musician(cx, ms[i], p, c, ids);
            }
        }
    }
    load_controllers(cx, root, c);
    return c;
}

Config finish(Ctx& cx, Config c) {
    if (cx.errors.empty()) return c;
    std::stable_sort(cx.errors.begin(), cx.errors.end(), [](const ConfigError& a, const ConfigError& b) {
        return a.line != b.line ? a.line < b.line : a.col < b.col;
    });
    throw ConfigErrors(std::move(cx.errors));
}

} // namespace

Config load_string(std::string_view yaml, const std::string& name) {
    Ctx cx;
    cx.file = name;
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        cx.error(e.mark, "", "YAML syntax error: " + e.msg);
        return finish(cx, Config{});
    }
    Config c;
    try {
        c = load_node(root, cx);
    } catch (const YAML::Exception& e) {
        cx.error(e.mark, "", "YAML error: " + e.msg);
    }
    return finish(cx, std::move(c));
}

Config load_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        ConfigError e;
        e.file = path;
        e.message = "cannot read the file (missing or not readable)";
        throw ConfigErrors({e});
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return load_string(ss.str(), path);
}

} // namespace earshot::config
