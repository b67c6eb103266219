// The live status view shared by `earshot demo`, `earshot top` and `earshot status`: one frame of
// text from the daemon's status object (docs/daemon.md, status.json; docs/cli.md for the layout).
#include "status_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace earshot::cli {

namespace json = boost::json;

double num_or(const json::value* v, double fallback) {
    if (!v) return fallback;
    if (v->is_double()) return v->as_double();
    if (v->is_int64()) return double(v->as_int64());
    if (v->is_uint64()) return double(v->as_uint64());
    return fallback;
}

std::size_t text_width(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

std::string fit(const std::string& s, std::size_t cols) {
    std::string out;
    std::size_t n = 0, i = 0;
    while (i < s.size()) {
        std::size_t len = 1; // the bytes of this code point
        while (i + len < s.size() && (static_cast<unsigned char>(s[i + len]) & 0xC0) == 0x80) ++len;
        if (n == cols) break;
        out.append(s, i, len);
        ++n;
        i += len;
    }
    out.append(cols - n, ' ');
    return out;
}

namespace {

constexpr double nan_d = std::numeric_limits<double>::quiet_NaN();
constexpr int wide_min = 120; // columns for the line-per-ear layout

std::string bar(double value, double lo, double hi, int width) {
    const double f = std::isfinite(value) ? std::clamp((value - lo) / (hi - lo), 0.0, 1.0) : 0.0;
    const int n = static_cast<int>(std::lround(f * width));
    std::string s;
    for (int i = 0; i < width; ++i) s += i < n ? '#' : '.';
    // Over the scale's top (a dose beyond 100 %): the last cell says so.
    if (std::isfinite(value) && value > hi && width > 0) s.back() = '!';
    return s;
}

std::string fmt(const char* f, double v, int cols) {
    if (!std::isfinite(v))
        return fit(std::string(static_cast<std::size_t>(std::max(0, cols - 2)), ' ') + "--", cols);
    char b[32];
    std::snprintf(b, sizeof b, f, v);
    std::string s = b;
    if (static_cast<int>(s.size()) < cols) s.insert(0, static_cast<std::size_t>(cols) - s.size(), ' ');
    return s;
}

std::string fmt_pct(double v, int cols) {
    if (!std::isfinite(v) || v < 1000) return fmt("%.1f%%", v, cols);
    std::string s = ">999%";
    if (static_cast<int>(s.size()) < cols) s.insert(0, static_cast<std::size_t>(cols) - s.size(), ' ');
    return s;
}

std::string fmt_left(double s) {
    char b[32];
    if (!std::isfinite(s)) return "     --";
    if (s >= 3600 * 99) return " >99 h ";
    std::snprintf(b, sizeof b, "%3dh%02dm", static_cast<int>(s / 3600),
                  static_cast<int>(std::fmod(s, 3600) / 60));
    return b;
}

// Five columns: "12h30", "  45m", " >99h".
std::string fmt_left_short(double s) {
    char b[32];
    if (!std::isfinite(s)) return "   --";
    if (s >= 3600 * 99) return " >99h";
    if (s >= 3600)
        std::snprintf(b, sizeof b, "%2dh%02d", static_cast<int>(s / 3600),
                      static_cast<int>(std::fmod(s, 3600) / 60));
    else
        std::snprintf(b, sizeof b, "%4dm", static_cast<int>(s / 60));
    return b;
}

const json::object* obj(const json::object& o, const char* k) {
    const json::value* v = o.if_contains(k);
    return v && v->is_object() ? &v->as_object() : nullptr;
}
const json::array* arr(const json::object& o, const char* k) {
    const json::value* v = o.if_contains(k);
    return v && v->is_array() ? &v->as_array() : nullptr;
}
std::string str(const json::object* o, const char* k, const char* def = "?") {
    if (!o) return def;
    const json::value* v = o->if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : def;
}
bool flag(const json::object* o, const char* k) {
    if (!o) return false;
    const json::value* v = o->if_contains(k);
    return v && v->is_bool() && v->as_bool();
}
double at(const json::array* a, int i) {
    return a && i < int(a->size()) ? num_or(&(*a)[std::size_t(i)], nan_d) : nan_d;
}

// What one musician's status says, read once.
struct Row {
    std::string name;
    int channels = 1;
    double laeq[2] = {nan_d, nan_d}, peak[2] = {nan_d, nan_d};
    double gr = 0, niosh = nan_d, who = nan_d, left = nan_d;
    bool cap_acting = false, guard_acting = false, guard_suspended = false;
    std::string prot;                  // the cap's and the guard's state, in words
    std::vector<std::string> warnings; // newest last
};

Row read_row(const json::object& m) {
    Row r;
    r.name = m.if_contains("name") && m.at("name").is_string() && !m.at("name").as_string().empty()
                 ? std::string(m.at("name").as_string())
                 : str(&m, "id");
    r.channels = std::clamp(static_cast<int>(num_or(m.if_contains("channels"), 1)), 1, 2);
    for (int c = 0; c < r.channels; ++c) {
        r.laeq[c] = at(arr(m, "laeq_1s_dba"), c);
        r.peak[c] = at(arr(m, "peak_db_spl"), c);
    }
    r.gr = num_or(m.if_contains("limiter_gr_db"), 0);
    if (const json::object* d = obj(m, "dose")) {
        r.niosh = num_or(d->if_contains("niosh_pct"), nan_d);
        r.who = num_or(d->if_contains("who_weekly_pct"), nan_d);
        r.left = num_or(d->if_contains("niosh_seconds_left"), nan_d);
    }
    char part[200];
    if (const json::object* cp = obj(m, "loudness_cap")) {
        const double g = num_or(cp->if_contains("gain_reduction_db"), 0);
        r.cap_acting = g > 0.05;
        std::snprintf(part, sizeof part, "cap %.0f dBA%s", num_or(cp->if_contains("cap_dba"), 0),
                      r.cap_acting ? "" : " (idle)");
        r.prot += part;
        if (r.cap_acting) {
            std::snprintf(part, sizeof part, " -%.1f dB", g);
            r.prot += part;
        }
    }
    if (const json::object* g = obj(m, "guard")) {
        const double att = num_or(g->if_contains("attenuation_db"), 0);
        const double proj = num_or(g->if_contains("projected_pct"), nan_d);
        r.guard_acting = att > 0.05;
        r.guard_suspended = flag(g, "suspended");
        std::snprintf(part, sizeof part, "%sguard %s%s", r.prot.empty() ? "" : "   ", str(g, "mode").c_str(),
                      r.guard_suspended ? " SUSPENDED" : "");
        r.prot += part;
        if (r.guard_acting) {
            std::snprintf(part, sizeof part, " -%.1f dB", att);
            r.prot += part;
        }
        if (std::isfinite(proj)) {
            std::snprintf(part, sizeof part, ", projected %.0f %% at the end of the show", proj);
            r.prot += part;
        }
    }
    if (const json::array* w = arr(m, "warnings"))
        for (const json::value& wv : *w)
            if (wv.is_object()) r.warnings.push_back(str(&wv.as_object(), "message", ""));
    return r;
}

// The name column of the wide layout: 16 to 24 columns, as the width allows (the rest takes 100).
std::size_t name_cols(int width) {
    return static_cast<std::size_t>(std::clamp(width - 1 - 100, 16, 24));
}

void wide_rows(const Row& r, std::size_t nc, std::vector<std::string>& out) {
    const std::string indent(nc + 9, ' ');
    for (int c = 0; c < r.channels; ++c) {
        std::string l = "  " + fit(c == 0 ? r.name : "", nc) + "  " +
                        fit(r.channels == 1 ? " M"
                            : c == 0        ? " L"
                                            : " R",
                            3) +
                        "  " + bar(r.laeq[c], 70, 110, 20) + " " + fmt("%.1f", r.laeq[c], 5) + "  " +
                        fmt("%.1f", r.peak[c], 5);
        if (c == 0)
            l += "  " + std::string(r.gr > 0.05 ? "GR" : "  ") + fmt("%.1f", r.gr, 5) + "  " +
                 bar(r.niosh, 0, 100, 10) + " " + fmt_pct(r.niosh, 7) + "  " + bar(r.who, 0, 100, 10) + " " +
                 fmt_pct(r.who, 7) + "  " + fmt_left(r.left);
        out.push_back(l);
    }
    if (!r.prot.empty()) out.push_back(indent + r.prot);
    for (auto it = r.warnings.rbegin(); it != r.warnings.rend(); ++it) out.push_back(indent + "! " + *it);
}

std::string compact_row(const Row& r) {
    std::string l = fit(r.name, 9) + " ";
    if (r.channels == 2)
        l += "L" + bar(r.laeq[0], 70, 110, 6) + fmt("%.0f", r.laeq[0], 4) + " R" +
             bar(r.laeq[1], 70, 110, 6) + fmt("%.0f", r.laeq[1], 4);
    else
        l += "M" + bar(r.laeq[0], 70, 110, 18) + fmt("%.0f", r.laeq[0], 4);
    l += " " + fmt("%.1f", r.gr, 5) + (r.cap_acting ? "C" : " ") +
         (r.guard_acting || r.guard_suspended ? "G" : " ");
    l += " " + bar(r.niosh, 0, 100, 8) + fmt_pct(r.niosh, 6) + " " + bar(r.who, 0, 100, 8) +
         fmt_pct(r.who, 6) + " " + fmt_left_short(r.left);
    if (!r.warnings.empty()) l += "!";
    return l;
}

} // namespace

Frame render_view(const json::value& st, const ViewOptions& opt) {
    Frame f;
    const std::size_t cols = static_cast<std::size_t>(std::max(20, opt.width) - 1);
    std::vector<std::string> head, body;
    if (!st.is_object() || !arr(st.as_object(), "musicians")) {
        head.push_back(opt.title);
        head.push_back("(no status)");
    } else {
        const json::object& root = st.as_object();
        const json::object* j = obj(root, "jack");
        const bool wide = opt.width >= wide_min;
        head.push_back(opt.title + "   JACK '" + str(j, "server") + "' " + str(j, "state"));
        if (j && j->if_contains("sample_rate")) {
            char b[256];
            std::snprintf(b, sizeof b,
                          wide ? "%.0f Hz, %.0f frames/period, latency %.0f frames, xruns %.0f, DSP %.1f %%"
                               : "%.0f Hz  %.0f fr/period  latency %.0f fr  xruns %.0f  DSP %.1f %%",
                          num_or(j->if_contains("sample_rate"), 0), num_or(j->if_contains("period"), 0),
                          num_or(j->if_contains("latency_frames"), 0), num_or(j->if_contains("xruns"), 0),
                          num_or(j->if_contains("dsp_load_pct"), 0));
            head.push_back(b);
        }
        if (const json::object* x = obj(root, "mixer")) {
            if (flag(x, "panic")) head.push_back("PANIC: every mix is silenced (earshot panic off)");
            if (const json::value* d = x->if_contains("dim_db"); d && !d->is_null())
                head.push_back("DIM " + fmt("%.1f", num_or(d, 0), 0) + " dB on every mix (earshot dim off)");
        }
        for (const std::string& n : opt.notices) head.push_back(n);
        std::vector<Row> rows;
        for (const json::value& mv : root.at("musicians").as_array())
            if (mv.is_object()) rows.push_back(read_row(mv.as_object()));
        if (wide) {
            head.push_back("");
            head.push_back("  " + fit("musician", name_cols(opt.width)) + "  " + fit("ear", 3) + "  " +
                           fit("LAeq,1s dBA (70..110)", 26) + "  " + fit(" peak", 5) + "  " +
                           fit("limiter", 7) + "  " + fit("NIOSH today", 18) + "  " + fit("WHO week", 18) +
                           "  " + "time left");
            for (const Row& r : rows) wide_rows(r, name_cols(opt.width), body);
        } else {
            head.push_back(fit("musician", 9) + " " + fit("LAeq,1s dBA  L  |  R", 23) + " " + fit(" lim", 7) +
                           " " + fit("NIOSH today", 14) + " " + fit("WHO week", 14) + " " + "left");
            for (const Row& r : rows) body.push_back(compact_row(r));
            // What the rows can only flag: the cap's and the guard's action, then the warnings.
            std::vector<std::string> more;
            for (const Row& r : rows) {
                if (r.cap_acting || r.guard_acting || r.guard_suspended)
                    more.push_back(fit(r.name, 9) + " " + r.prot);
                for (auto it = r.warnings.rbegin(); it != r.warnings.rend(); ++it)
                    more.push_back(fit(r.name, 9) + " ! " + *it);
            }
            if (!more.empty()) {
                body.push_back("");
                body.insert(body.end(), more.begin(), more.end());
            }
        }
    }
    f.body_total = static_cast<int>(body.size());
    int room = f.body_total;
    if (opt.height > 0) room = std::max(0, opt.height - static_cast<int>(head.size()) - 1); // 1: the footer
    f.body_shown = std::min(room, f.body_total);
    f.body_first = std::clamp(opt.scroll, 0, std::max(0, f.body_total - f.body_shown));
    for (const std::string& l : head) f.lines.push_back(l);
    for (int i = 0; i < f.body_shown; ++i)
        f.lines.push_back(body[static_cast<std::size_t>(f.body_first + i)]);
    if (opt.height > 0) {
        if (f.body_shown < f.body_total) {
            char b[160];
            std::snprintf(b, sizeof b,
                          "-- lines %d-%d of %d: up/down, PgUp/PgDn, Home/End scroll; q quits --",
                          f.body_first + 1, f.body_first + f.body_shown, f.body_total);
            f.lines.push_back(b);
        } else {
            f.lines.push_back("");
        }
        if (static_cast<int>(f.lines.size()) > opt.height)
            f.lines.resize(static_cast<std::size_t>(opt.height));
    }
    for (std::string& l : f.lines) {
        if (text_width(l) > cols) l = fit(l, cols);
        while (!l.empty() && l.back() == ' ') l.pop_back();
    }
    return f;
}

std::string render_status(const json::value& st, const std::string& title) {
    ViewOptions o;
    o.title = title;
    std::string out;
    for (const std::string& l : render_view(st, o).lines) out += l + "\n";
    return out;
}

} // namespace earshot::cli
