// report.json (SPEC §5; fields and conventions in docs/render.md). Built as a Boost.JSON value (objects
// keep insertion order) and printed by a small pretty printer: Boost.JSON's serializer writes doubles
// in exponent form (94.0 -> 9.4E1), which is valid but hard to read.
#include "earshot/render/render.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <fstream>

namespace earshot::render {

namespace json = boost::json;

namespace {

// dB and seconds are rounded to `decimals` places for the report (levels to 0.01 dB); -inf (silence)
// becomes null. Dividing by the power of ten (a correctly rounded operation) gives the double nearest
// the decimal, so the shortest printed form is the decimal itself.
json::value num(double v, int decimals) {
    if (!std::isfinite(v)) return nullptr;
    const double scale = std::pow(10.0, decimals);
    const double r = std::round(v * scale) / scale;
    return r == 0.0 ? 0.0 : r; // no "-0.0"
}

void put_double(std::string& out, double v) {
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof(buf), v);
    std::string s(buf, res.ptr);
    if (s.find_first_of(".e") == std::string::npos) s += ".0"; // keep it visibly a real number
    out += s;
}

bool flat(const json::object& o) {
    for (const auto& kv : o)
        if (kv.value().is_object() || kv.value().is_array()) return false;
    return o.size() <= 6;
}

void emit(std::string& out, const json::value& v, int indent) {
    switch (v.kind()) {
    case json::kind::null:
        out += "null";
        break;
    case json::kind::bool_:
        out += v.get_bool() ? "true" : "false";
        break;
    case json::kind::int64:
        out += std::to_string(v.get_int64());
        break;
    case json::kind::uint64:
        out += std::to_string(v.get_uint64());
        break;
    case json::kind::double_:
        put_double(out, v.get_double());
        break;
    case json::kind::string:
        out += json::serialize(v);
        break;
    case json::kind::array: {
        const auto& a = v.get_array();
        if (a.empty()) {
            out += "[]";
            break;
        }
        out += "[\n";
        for (std::size_t i = 0; i < a.size(); ++i) {
            out.append(static_cast<std::size_t>(indent + 2), ' ');
            emit(out, a[i], indent + 2);
            out += i + 1 < a.size() ? ",\n" : "\n";
        }
        out.append(static_cast<std::size_t>(indent), ' ');
        out += "]";
        break;
    }
    case json::kind::object: {
        const auto& o = v.get_object();
        if (o.empty()) {
            out += "{}";
            break;
        }
        if (flat(o)) { // a leaf object (limiter, one ear) on one line
            out += "{ ";
            std::size_t i = 0;
            for (const auto& kv : o) {
                out += json::serialize(json::string(kv.key()));
                out += ": ";
                emit(out, kv.value(), indent);
                out += ++i < o.size() ? ", " : " }";
            }
            break;
        }
        out += "{\n";
        std::size_t i = 0;
        for (const auto& kv : o) {
            out.append(static_cast<std::size_t>(indent + 2), ' ');
            out += json::serialize(json::string(kv.key()));
            out += ": ";
            emit(out, kv.value(), indent + 2);
            out += ++i < o.size() ? ",\n" : "\n";
        }
        out.append(static_cast<std::size_t>(indent), ' ');
        out += "}";
        break;
    }
    }
}

json::object ear_json(const EarReport& e) {
    json::object o;
    o["laeq_dba"] = num(e.laeq_dba, 2);
    o["lcpeak_dbc"] = num(e.lcpeak_dbc, 2);
    o["lafmax_dba"] = num(e.lafmax_dba, 2);
    o["true_peak_db_spl"] = num(e.true_peak_db_spl, 2);
    o["sample_peak_dbfs"] = num(e.sample_peak_dbfs, 2);
    return o;
}

json::object musician_json(const MusicianReport& m) {
    json::object o;
    // SPEC §5 fields, in the SPEC's order.
    o["id"] = m.id;
    o["laeq_dba"] = num(m.laeq_dba, 2);
    o["lafmax_dba"] = num(m.lafmax_dba, 2);
    o["lcpeak_dbc"] = num(m.lcpeak_dbc, 2);
    o["true_peak_db_spl"] = num(m.true_peak_db_spl, 2);
    o["sample_peak_dbfs"] = num(m.sample_peak_dbfs, 2);
    json::object lim;
    lim["max_gain_reduction_db"] = num(m.limiter_max_gain_reduction_db, 3);
    lim["active_s"] = num(m.limiter_active_s, 6);
    o["limiter"] = std::move(lim);
    if (m.has_cap) {
        json::object cap;
        cap["max_laeq_1s_dba"] = num(m.cap_dba, 2);
        cap["max_gain_reduction_db"] = num(m.cap_max_gain_reduction_db, 3);
        o["loudness_cap"] = std::move(cap);
    }
    if (m.guard_max_attenuation_db > 0) {
        json::object g;
        g["max_attenuation_db"] = num(m.guard_max_attenuation_db, 3);
        o["guard"] = std::move(g);
    }
    if (!m.seconds.empty()) {
        json::array la, cg, gd, np;
        for (const SecondReport& sr : m.seconds) {
            la.push_back(num(sr.laeq_dba, 2));
            cg.push_back(num(sr.cap_gr_db, 3));
            gd.push_back(num(sr.guard_db, 6));
            np.push_back(num(sr.niosh_pct, 4));
        }
        json::object ps;
        ps["laeq_dba"] = std::move(la);
        ps["cap_gr_db"] = std::move(cg);
        ps["guard_db"] = std::move(gd);
        ps["niosh_pct"] = std::move(np);
        o["per_second"] = std::move(ps);
    }
    {
        const DoseReport& d = m.dose;
        json::object dose;
        dose["niosh_pct"] = num(d.niosh_pct, 4);
        dose["osha_pct"] = num(d.osha_pct, 4);
        dose["osha_action_pct"] = num(d.osha_action_pct, 4);
        dose["eu_lex8h_dba"] = num(d.eu_lex8h_dba, 2);
        dose["who_weekly_pct"] = num(d.who_weekly_pct, 4);
        dose["who_mode"] = d.who_mode;
        dose["pa2h"] = num(d.pa2h, 6);
        dose["laeq_dba"] = num(d.laeq_dba, 2);
        dose["lcpeak_max_dbc"] = num(d.lcpeak_max_dbc, 2);
        dose["niosh_time_left_s"] = num(d.niosh_seconds_left, 0);
        if (d.has_ambient) {
            json::object amb;
            amb["input"] = d.ambient_input;
            amb["isolation_db"] = num(d.isolation_db, 1);
            amb["stage_laeq_dba"] = num(d.stage_laeq_dba, 2);
            amb["leak_laeq_dba"] = num(d.leak_laeq_dba, 2);
            dose["ambient"] = std::move(amb);
        }
        o["dose"] = std::move(dose);
    }
    json::object ears;
    ears["L"] = ear_json(m.ears[0]);
    ears["R"] = ear_json(m.ears[1]);
    o["ears"] = std::move(ears);
    // Extras.
    o["name"] = m.name;
    o["output"] = m.channels == 2 ? "stereo" : "mono";
    o["file"] = m.output_file;
    o["calibration_reference"] = m.reference == config::Reference::field ? "field" : "eardrum";
    o["calibration_offset_db"] = num(m.calibration_offset_db, 4);
    o["ceiling_db_spl"] = num(m.ceiling_db_spl, 2);
    o["ceiling_dbfs"] = num(m.ceiling_dbfs, 4);
    o["latency_frames"] = m.latency_frames;
    o["clamped_samples"] = m.clamped_samples;
    return o;
}

} // namespace

std::string report_json(const RenderReport& r) {
    json::object o;
    if (r.sample_rate == std::floor(r.sample_rate) && r.sample_rate < 1e9)
        o["sample_rate"] = static_cast<std::int64_t>(r.sample_rate);
    else
        o["sample_rate"] = r.sample_rate;
    o["duration_s"] = num(r.duration_s, 6);
    o["latency_frames"] = r.latency_frames;
    json::array ms;
    for (const auto& m : r.musicians) ms.push_back(musician_json(m));
    o["musicians"] = std::move(ms);
    // Extras.
    o["frames"] = r.frames;
    o["block_frames"] = r.block;
    o["bad_input_blocks"] = r.bad_input_blocks;
    o["dose_frames_dropped"] = r.dose_frames_dropped;
    o["input"] = r.input_file;
    o["config"] = r.config_file;
    std::string out;
    emit(out, o, 0);
    out += '\n';
    return out;
}

void write_report(const RenderReport& r, const std::string& path) {
    const std::string text = report_json(r);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw RenderError(path + ": cannot create the report");
    f << text;
    f.close();
    if (!f) throw RenderError(path + ": error while writing the report");
}

} // namespace earshot::render
