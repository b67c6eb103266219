// The live status view shared by `earshot demo`, `earshot top` and `earshot status`: one frame of
// text from the daemon's status object (docs/daemon.md, status.json).
#include "status_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace earshot::cli {

namespace json = boost::json;

double num_or(const json::value* v, double fallback) {
    if (!v) return fallback;
    if (v->is_double()) return v->as_double();
    if (v->is_int64()) return double(v->as_int64());
    if (v->is_uint64()) return double(v->as_uint64());
    return fallback;
}

namespace {

constexpr double nan_d = std::numeric_limits<double>::quiet_NaN();

std::string bar(double value, double lo, double hi, int width) {
    const double f = std::isfinite(value) ? std::clamp((value - lo) / (hi - lo), 0.0, 1.0) : 0.0;
    const int n = static_cast<int>(std::lround(f * width));
    std::string s;
    for (int i = 0; i < width; ++i) s += i < n ? "#" : ".";
    return s;
}

std::string fmt_db(double v) {
    char b[16];
    if (!std::isfinite(v)) return "  -- ";
    std::snprintf(b, sizeof b, "%5.1f", v);
    return b;
}

std::string fmt_left(double s) {
    char b[32];
    if (!std::isfinite(s)) return "   --  ";
    if (s >= 3600 * 99) return " >99 h ";
    std::snprintf(b, sizeof b, "%3dh%02dm", static_cast<int>(s / 3600),
                  static_cast<int>(std::fmod(s, 3600) / 60));
    return b;
}

} // namespace

std::string render_status(const json::value& st, const std::string& title) {
    std::ostringstream o;
    if (!st.is_object() || !st.as_object().if_contains("musicians") ||
        !st.as_object().at("musicians").is_array())
        return title + "\n(no status)\n";
    const json::object& root = st.as_object();
    const json::object* j =
        root.if_contains("jack") && root.at("jack").is_object() ? &root.at("jack").as_object() : nullptr;
    char head[256];
    std::snprintf(
        head, sizeof head, "%s   JACK '%s' %s", title.c_str(),
        j && j->if_contains("server") && j->at("server").is_string() ? j->at("server").as_string().c_str()
                                                                     : "?",
        j && j->if_contains("state") && j->at("state").is_string() ? j->at("state").as_string().c_str()
                                                                   : "?");
    o << head << "\n";
    if (j && j->if_contains("sample_rate")) {
        std::snprintf(head, sizeof head,
                      "%.0f Hz, %.0f frames/period, latency %.0f frames, xruns %.0f, DSP %.1f %%",
                      num_or(j->if_contains("sample_rate"), 0), num_or(j->if_contains("period"), 0),
                      num_or(j->if_contains("latency_frames"), 0), num_or(j->if_contains("xruns"), 0),
                      num_or(j->if_contains("dsp_load_pct"), 0));
        o << head << "\n";
    }
    o << "\n  musician                  ear  LAeq,1s dBA (70..110)          peak dB SPL  limiter   NIOSH "
         "today   WHO week  time left\n";
    for (const json::value& mv : root.at("musicians").as_array()) {
        if (!mv.is_object()) continue;
        const json::object& m = mv.as_object();
        const json::array* laeq = m.if_contains("laeq_1s_dba") && m.at("laeq_1s_dba").is_array()
                                      ? &m.at("laeq_1s_dba").as_array()
                                      : nullptr;
        const json::array* peak = m.if_contains("peak_db_spl") && m.at("peak_db_spl").is_array()
                                      ? &m.at("peak_db_spl").as_array()
                                      : nullptr;
        const json::object* dose =
            m.if_contains("dose") && m.at("dose").is_object() ? &m.at("dose").as_object() : nullptr;
        const int ch = static_cast<int>(num_or(m.if_contains("channels"), 1));
        const std::string name = m.if_contains("name") && m.at("name").is_string()
                                     ? std::string(m.at("name").as_string()).substr(0, 24)
                                     : "?";
        for (int c = 0; c < ch; ++c) {
            const double l = laeq && c < int(laeq->size()) ? num_or(&(*laeq)[std::size_t(c)], nan_d) : nan_d;
            const double p = peak && c < int(peak->size()) ? num_or(&(*peak)[std::size_t(c)], nan_d) : nan_d;
            char line[256];
            if (c == 0) {
                const double gr = num_or(m.if_contains("limiter_gr_db"), 0);
                const double niosh = dose ? num_or(dose->if_contains("niosh_pct"), 0) : 0;
                const double who = dose ? num_or(dose->if_contains("who_weekly_pct"), 0) : 0;
                const double left = dose ? num_or(dose->if_contains("niosh_seconds_left"), nan_d) : nan_d;
                std::snprintf(line, sizeof line,
                              "  %-24s  %s   %s %s   %s     %s  %5.1f dB   %7.3f %%   %7.3f %%   %s\n",
                              name.c_str(), ch == 1 ? "M" : "L", bar(l, 70, 110, 24).c_str(),
                              fmt_db(l).c_str(), fmt_db(p).c_str(), gr > 0.05 ? "GR" : "  ", gr, niosh, who,
                              fmt_left(left).c_str());
            } else {
                std::snprintf(line, sizeof line, "  %-24s  R   %s %s   %s\n", "", bar(l, 70, 110, 24).c_str(),
                              fmt_db(l).c_str(), fmt_db(p).c_str());
            }
            o << line;
        }
        // Dose-aware protection (docs/protection.md): the cap's and the guard's action, warnings.
        std::string prot;
        char part[160];
        if (const json::value* cp = m.if_contains("loudness_cap"); cp && cp->is_object()) {
            const double gr = num_or(cp->as_object().if_contains("gain_reduction_db"), 0);
            std::snprintf(part, sizeof part, "cap %.0f dBA%s",
                          num_or(cp->as_object().if_contains("cap_dba"), 0), gr > 0.05 ? "" : " (idle)");
            prot += part;
            if (gr > 0.05) {
                std::snprintf(part, sizeof part, " -%.1f dB", gr);
                prot += part;
            }
        }
        if (const json::value* gd = m.if_contains("guard"); gd && gd->is_object()) {
            const json::object& g = gd->as_object();
            const double att = num_or(g.if_contains("attenuation_db"), 0);
            const double proj = num_or(g.if_contains("projected_pct"), nan_d);
            const bool susp =
                g.if_contains("suspended") && g.at("suspended").is_bool() && g.at("suspended").as_bool();
            std::snprintf(part, sizeof part, "%sguard %s%s", prot.empty() ? "" : "   ",
                          g.if_contains("mode") && g.at("mode").is_string() ? g.at("mode").as_string().c_str()
                                                                            : "?",
                          susp ? " SUSPENDED" : "");
            prot += part;
            if (att > 0.05) {
                std::snprintf(part, sizeof part, " -%.1f dB", att);
                prot += part;
            }
            if (std::isfinite(proj)) {
                std::snprintf(part, sizeof part, ", projected %.0f %% at the end of the show", proj);
                prot += part;
            }
        }
        if (!prot.empty()) o << "  " << std::string(26, ' ') << "    " << prot << "\n";
        if (const json::value* w = m.if_contains("warnings"); w && w->is_array())
            for (const json::value& wv : w->as_array())
                if (wv.is_object() && wv.as_object().if_contains("message") &&
                    wv.as_object().at("message").is_string())
                    o << "  " << std::string(26, ' ') << "    ! "
                      << wv.as_object().at("message").as_string().c_str() << "\n";
    }
    if (const json::value* mx = root.if_contains("mixer"); mx && mx->is_object()) {
        const json::object& x = mx->as_object();
        if (x.if_contains("panic") && x.at("panic").is_bool() && x.at("panic").as_bool())
            o << "\n  PANIC: every mix is silenced (earshot panic off)\n";
        if (const json::value* d = x.if_contains("dim_db"); d && !d->is_null())
            o << "\n  DIM " << fmt_db(num_or(d, 0)) << " dB on every mix (earshot dim off)\n";
    }
    return o.str();
}

} // namespace earshot::cli
