#include "earshot/dosimetry/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

namespace fs = std::filesystem;

namespace earshot::dosimetry {

namespace {

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}
std::string db_or_dash(double v, const char* f = "%.1f") {
    return std::isfinite(v) ? fmt(f, v) : "-";
}
std::string json_num(double v, const char* f = "%.4f") {
    return std::isfinite(v) ? fmt(f, v) : "null";
}

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\')
            o += '\\', o += static_cast<char>(c);
        else if (c < 0x20)
            o += fmt("\\u%04x", c);
        else
            o += static_cast<char>(c);
    }
    return o + "\"";
}

std::string html_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
        case '&':
            o += "&amp;";
            break;
        case '<':
            o += "&lt;";
            break;
        case '>':
            o += "&gt;";
            break;
        case '"':
            o += "&quot;";
            break;
        case '\'':
            o += "&#39;";
            break;
        default:
            o += c;
        }
    }
    return o;
}

std::string hms(double s) {
    const long t = std::lround(s);
    char b[32];
    std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    return b;
}

} // namespace

double DayFigures::laeq_dba() const {
    return seconds > 0 ? level_db(pa2s / seconds) : neg_inf;
}
double DayFigures::lex8h_dba() const {
    return level_db(pa2s / (8.0 * 3600.0));
}

ExposureReport build_report(const ReportOptions& o) {
    ExposureReport r;
    r.from = o.from;
    r.to = o.to;
    r.who_allowance_pa2h = o.who_allowance_pa2h;
    r.week_end_utc = std::min(static_cast<double>(day_start(add_days(o.to, 1), o.day_start_min)), o.now_utc);
    const Date read_from = add_days(o.from, -8); // the week before `from` counts for the WHO figure

    std::set<std::string> ids;
    for (const std::string& dir : o.state_dirs)
        for (const std::string& id : logged_musicians(dir))
            if (o.musicians.empty() ||
                std::find(o.musicians.begin(), o.musicians.end(), id) != o.musicians.end())
                ids.insert(id);

    for (const std::string& id : ids) {
        std::vector<LogRow> rows;
        std::set<std::pair<long long, long long>> seen; // (start ms, duration ms): a row in two dirs
        for (const std::string& dir : o.state_dirs)
            for (const Date& d : log_days(dir, id)) {
                if (d < read_from || o.to < d) continue;
                auto rr = read_log_file((fs::path(dir) / "exposure" / id / (d.str() + ".csv")).string());
                r.skipped_lines += rr.skipped;
                for (const LogRow& row : rr.rows) {
                    const auto key = std::make_pair(std::llround(row.start_utc * 1000),
                                                    std::llround(row.duration_s * 1000));
                    if (!seen.insert(key).second) {
                        ++r.duplicate_rows;
                        continue;
                    }
                    rows.push_back(row);
                }
            }
        std::sort(rows.begin(), rows.end(),
                  [](const LogRow& a, const LogRow& b) { return a.start_utc < b.start_utc; });
        MusicianFigures m;
        m.id = id;
        std::map<Date, DayFigures> days;
        for (const LogRow& row : rows) {
            if (row.start_utc < r.week_end_utc && row.start_utc >= r.week_end_utc - 7 * 86400.0)
                m.week_pa2h += row.pa2s / 3600.0;
            if (row.day < o.from || o.to < row.day) continue;
            m.rows.push_back(row);
            DayFigures& f = days[row.day];
            f.day = row.day;
            f.seconds += row.duration_s;
            f.pa2s += row.pa2s;
            f.leak_pa2s += row.leak_pa2s;
            f.niosh_pct += row.niosh_row_pct;
            f.osha_pct += row.osha_row_pct;
            f.osha_action_pct += row.osha_action_row_pct;
            f.lafmax_dba = std::max(f.lafmax_dba, row.lafmax_dba);
            f.lcpeak_dbc = std::max(f.lcpeak_dbc, row.lcpeak_dbc);
            f.limiter_gr_max_db = std::max(f.limiter_gr_max_db, row.limiter_gr_max_db);
        }
        for (auto& [d, f] : days) {
            m.days.push_back(f);
            m.over_niosh |= f.niosh_pct > 100.0;
        }
        m.who_weekly_pct = 100.0 * m.week_pa2h / o.who_allowance_pa2h;
        m.over_who = m.who_weekly_pct > 100.0;
        if (!m.rows.empty() || m.week_pa2h > 0) r.musicians.push_back(std::move(m));
    }
    return r;
}

std::string format_table(const ExposureReport& r) {
    std::string s = "earshot exposure report, dose days " + r.from.str() + " to " + r.to.str() + "\n";
    if (r.musicians.empty()) return s + "no exposure logged in this range\n";
    for (const MusicianFigures& m : r.musicians) {
        s += "\n" + m.id + "   WHO weekly " + fmt("%.1f", m.who_weekly_pct) + " % (" +
             fmt("%.3f", m.week_pa2h) + " Pa2h)" + (m.over_who ? "  ** over the weekly allowance **" : "") +
             "\n";
        s += "  day          exposed   LAeq dBA  LAFmax dBA  LCpeak dBC  Pa2h     NIOSH %   OSHA %  OSHA-AL "
             "%  "
             "LEX,8h dBA  leak %  limiter dB\n";
        for (const DayFigures& f : m.days) {
            char b[256];
            std::snprintf(b, sizeof b,
                          "  %s  %8s  %8s  %10s  %10s  %7.4f  %8.1f  %7.1f  %9.1f  %10s  %6.1f  %10.1f%s\n",
                          f.day.str().c_str(), hms(f.seconds).c_str(), db_or_dash(f.laeq_dba()).c_str(),
                          db_or_dash(f.lafmax_dba).c_str(), db_or_dash(f.lcpeak_dbc).c_str(), f.pa2s / 3600.0,
                          f.niosh_pct, f.osha_pct, f.osha_action_pct, db_or_dash(f.lex8h_dba()).c_str(),
                          f.pa2s > 0 ? 100.0 * f.leak_pa2s / f.pa2s : 0.0, f.limiter_gr_max_db,
                          f.niosh_pct > 100.0 ? "  !" : "");
            s += b;
        }
    }
    if (r.skipped_lines)
        s += "\n" + std::to_string(r.skipped_lines) + " torn or corrupt log line(s) skipped\n";
    return s;
}

std::string format_csv(const ExposureReport& r) {
    std::string s =
        "musician,local_date,exposed_s,laeq_dba,lafmax_dba,lcpeak_dbc,pa2h,leak_pa2h,niosh_pct,osha_pct,"
        "osha_action_pct,eu_lex8h_dba,limiter_gr_max_db,who_weekly_pct\n";
    for (const MusicianFigures& m : r.musicians)
        for (const DayFigures& f : m.days) {
            auto n = [](double v, const char* f2) { return std::isfinite(v) ? fmt(f2, v) : std::string(); };
            s += m.id + "," + f.day.str() + "," + fmt("%.1f", f.seconds) + "," + n(f.laeq_dba(), "%.2f") +
                 "," + n(f.lafmax_dba, "%.2f") + "," + n(f.lcpeak_dbc, "%.2f") + "," +
                 fmt("%.6f", f.pa2s / 3600.0) + "," + fmt("%.6f", f.leak_pa2s / 3600.0) + "," +
                 fmt("%.4f", f.niosh_pct) + "," + fmt("%.4f", f.osha_pct) + "," +
                 fmt("%.4f", f.osha_action_pct) + "," + n(f.lex8h_dba(), "%.2f") + "," +
                 fmt("%.2f", f.limiter_gr_max_db) + "," + fmt("%.4f", m.who_weekly_pct) + "\n";
        }
    return s;
}

std::string format_json(const ExposureReport& r) {
    std::string s = "{\n  \"schema\": 1,\n  \"from\": \"" + r.from.str() + "\",\n  \"to\": \"" + r.to.str() +
                    "\",\n  \"who_allowance_pa2h\": " + json_num(r.who_allowance_pa2h, "%.6f") +
                    ",\n  \"skipped_lines\": " + std::to_string(r.skipped_lines) +
                    ",\n  \"duplicate_rows\": " + std::to_string(r.duplicate_rows) + ",\n  \"musicians\": [";
    for (std::size_t i = 0; i < r.musicians.size(); ++i) {
        const MusicianFigures& m = r.musicians[i];
        s += std::string(i ? "," : "") + "\n    {\"id\": " + json_str(m.id) +
             ", \"week_pa2h\": " + json_num(m.week_pa2h, "%.6f") +
             ", \"who_weekly_pct\": " + json_num(m.who_weekly_pct) +
             ", \"over_niosh\": " + (m.over_niosh ? "true" : "false") +
             ", \"over_who\": " + (m.over_who ? "true" : "false") + ",\n     \"days\": [";
        for (std::size_t k = 0; k < m.days.size(); ++k) {
            const DayFigures& f = m.days[k];
            s += std::string(k ? "," : "") + "\n       {\"date\": \"" + f.day.str() +
                 "\", \"exposed_s\": " + json_num(f.seconds, "%.1f") +
                 ", \"laeq_dba\": " + json_num(f.laeq_dba(), "%.2f") +
                 ", \"lafmax_dba\": " + json_num(f.lafmax_dba, "%.2f") +
                 ", \"lcpeak_dbc\": " + json_num(f.lcpeak_dbc, "%.2f") +
                 ", \"pa2h\": " + json_num(f.pa2s / 3600.0, "%.6f") +
                 ", \"leak_pa2h\": " + json_num(f.leak_pa2s / 3600.0, "%.6f") +
                 ", \"niosh_pct\": " + json_num(f.niosh_pct) + ", \"osha_pct\": " + json_num(f.osha_pct) +
                 ", \"osha_action_pct\": " + json_num(f.osha_action_pct) +
                 ", \"eu_lex8h_dba\": " + json_num(f.lex8h_dba(), "%.2f") +
                 ", \"limiter_gr_max_db\": " + json_num(f.limiter_gr_max_db, "%.2f") + "}";
        }
        s += "]}";
    }
    return s + "\n  ]\n}\n";
}

std::string format_html(const ExposureReport& r) {
    // Colours the charts use (the browser test counts their pixels).
    const char* level_col = "#1f77b4"; // level line
    const char* line85 = "#ff9900";    // 85 dBA reference
    const char* line100 = "#d62728";   // 100 dBA reference / 100 % lines
    const char* bar_col = "#2ca02c";   // daily NIOSH bars
    const char* gauge_col = "#9467bd"; // WHO weekly gauge
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>earshot exposure "
        "report</title>\n"
        "<style>body{font-family:sans-serif;margin:20px;color:#222}h2{margin-top:28px}"
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
        "th{background:#eee}.warn{color:#d62728;font-weight:bold}svg{display:block;margin:8px 0}</style>"
        "</head><body>\n<h1>earshot exposure report</h1>\n<p>Dose days " +
        r.from.str() + " to " + r.to.str() + ". Levels are field-equivalent dB SPL at the ear.</p>\n";
    if (r.musicians.empty()) h += "<p>No exposure logged in this range.</p>\n";
    const double W = 1000, H = 260, L = 50, R = 10, T = 10, B = 30;
    for (const MusicianFigures& m : r.musicians) {
        h += "<h2>" + html_escape(m.id) + "</h2>\n";
        // 1. Level over time.
        double t0 = m.rows.empty() ? 0 : m.rows.front().start_utc;
        double t1 = m.rows.empty() ? 1 : m.rows.back().start_utc + m.rows.back().duration_s;
        if (t1 <= t0) t1 = t0 + 1;
        auto x = [&](double t) { return L + (W - L - R) * (t - t0) / (t1 - t0); };
        auto y = [&](double db) {
            return T + (H - T - B) * (1.0 - (std::clamp(db, 40.0, 120.0) - 40.0) / 80.0);
        };
        h += "<svg width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) +
             "\" role=\"img\" aria-label=\"level\">"
             "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>";
        for (int db = 40; db <= 120; db += 20)
            h += "<text x=\"4\" y=\"" + fmt("%.1f", y(db) + 4) + "\" font-size=\"11\">" + std::to_string(db) +
                 " dBA</text>";
        h += "<line x1=\"" + fmt("%.0f", L) + "\" x2=\"" + fmt("%.0f", W - R) + "\" y1=\"" +
             fmt("%.1f", y(85)) + "\" y2=\"" + fmt("%.1f", y(85)) + "\" stroke=\"" + line85 +
             "\" stroke-width=\"3\"/>";
        h += "<text x=\"" + fmt("%.0f", W - R - 60) + "\" y=\"" + fmt("%.1f", y(85) - 4) +
             "\" font-size=\"11\" fill=\"" + line85 + "\">85 dBA</text>";
        h += "<line x1=\"" + fmt("%.0f", L) + "\" x2=\"" + fmt("%.0f", W - R) + "\" y1=\"" +
             fmt("%.1f", y(100)) + "\" y2=\"" + fmt("%.1f", y(100)) + "\" stroke=\"" + line100 +
             "\" stroke-width=\"3\"/>";
        h += "<text x=\"" + fmt("%.0f", W - R - 60) + "\" y=\"" + fmt("%.1f", y(100) - 4) +
             "\" font-size=\"11\" fill=\"" + line100 + "\">100 dBA</text>";
        // One polyline per stretch of contiguous rows: no line is drawn across a break (between
        // shows, between days).
        std::string pts;
        double prev_end = -1;
        auto flush = [&] {
            if (!pts.empty())
                h += "<polyline fill=\"none\" stroke=\"" + std::string(level_col) +
                     "\" stroke-width=\"3\" points=\"" + pts + "\"/>";
            pts.clear();
        };
        for (const LogRow& row : m.rows) {
            if (prev_end >= 0 && row.start_utc - prev_end > 120.0) flush();
            const double lv = std::isfinite(row.laeq_dba) ? row.laeq_dba : 40.0;
            pts += fmt("%.1f", x(row.start_utc)) + "," + fmt("%.1f", y(lv)) + " " +
                   fmt("%.1f", x(row.start_utc + row.duration_s)) + "," + fmt("%.1f", y(lv)) + " ";
            prev_end = row.start_utc + row.duration_s;
        }
        flush();
        h += "<text x=\"" + fmt("%.0f", L) + "\" y=\"" + fmt("%.0f", H - 8) + "\" font-size=\"11\">" +
             html_escape(iso_utc(static_cast<std::time_t>(t0))) + "</text><text x=\"" +
             fmt("%.0f", W - R - 130) + "\" y=\"" + fmt("%.0f", H - 8) + "\" font-size=\"11\">" +
             html_escape(iso_utc(static_cast<std::time_t>(t1))) + "</text></svg>\n";
        // 2. Daily NIOSH dose bars.
        double maxpct = 150;
        for (const DayFigures& f : m.days) maxpct = std::max(maxpct, f.niosh_pct * 1.1);
        const double BH = 200,
                     bw = m.days.empty() ? 0 : std::min(80.0, (W - L - R) / double(m.days.size()) - 10);
        auto by = [&](double pct) { return T + (BH - T - B) * (1.0 - pct / maxpct); };
        h += "<svg width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", BH) +
             "\" role=\"img\" aria-label=\"daily dose\">"
             "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>";
        for (std::size_t i = 0; i < m.days.size(); ++i) {
            const DayFigures& f = m.days[i];
            const double bx = L + double(i) * (bw + 10);
            h += "<rect x=\"" + fmt("%.1f", bx) + "\" y=\"" + fmt("%.1f", by(f.niosh_pct)) + "\" width=\"" +
                 fmt("%.1f", bw) + "\" height=\"" + fmt("%.1f", by(0) - by(f.niosh_pct)) + "\" fill=\"" +
                 bar_col + "\"/>";
            h += "<text x=\"" + fmt("%.1f", bx) + "\" y=\"" + fmt("%.0f", BH - 12) + "\" font-size=\"10\">" +
                 f.day.str().substr(5) + " " + fmt("%.0f", f.niosh_pct) + "%</text>";
        }
        h += "<line x1=\"" + fmt("%.0f", L) + "\" x2=\"" + fmt("%.0f", W - R) + "\" y1=\"" +
             fmt("%.1f", by(100)) + "\" y2=\"" + fmt("%.1f", by(100)) + "\" stroke=\"" + line100 +
             "\" stroke-width=\"3\"/><text x=\"4\" y=\"" + fmt("%.1f", by(100) + 4) +
             "\" font-size=\"11\">100 % NIOSH</text></svg>\n";
        // 3. WHO weekly gauge.
        const double gw = 600, fillw = gw * std::min(m.who_weekly_pct, 200.0) / 200.0;
        h += "<svg width=\"" + fmt("%.0f", gw + 200) +
             "\" height=\"60\" role=\"img\" aria-label=\"WHO weekly\">"
             "<rect x=\"0\" y=\"10\" width=\"" +
             fmt("%.0f", gw) +
             "\" height=\"30\" fill=\"#eeeeee\"/>"
             "<rect x=\"0\" y=\"10\" width=\"" +
             fmt("%.1f", fillw) + "\" height=\"30\" fill=\"" + gauge_col +
             "\"/>"
             "<line x1=\"" +
             fmt("%.0f", gw / 2) + "\" x2=\"" + fmt("%.0f", gw / 2) + "\" y1=\"5\" y2=\"45\" stroke=\"" +
             line100 + "\" stroke-width=\"3\"/><text x=\"" + fmt("%.0f", gw + 10) +
             "\" y=\"30\" font-size=\"14\">WHO weekly " + fmt("%.1f", m.who_weekly_pct) + " %</text></svg>\n";
        // Summary table.
        h += "<table><tr><th>dose day</th><th>exposed</th><th>LAeq dBA</th><th>LAFmax dBA</th><th>LCpeak "
             "dBC</th>"
             "<th>NIOSH %</th><th>OSHA %</th><th>EU LEX,8h dBA</th></tr>\n";
        for (const DayFigures& f : m.days)
            h += "<tr><td>" + f.day.str() + "</td><td>" + hms(f.seconds) + "</td><td>" +
                 db_or_dash(f.laeq_dba()) + "</td><td>" + db_or_dash(f.lafmax_dba) + "</td><td>" +
                 db_or_dash(f.lcpeak_dbc) + "</td><td" + (f.niosh_pct > 100 ? " class=\"warn\"" : "") + ">" +
                 fmt("%.1f", f.niosh_pct) + "</td><td>" + fmt("%.1f", f.osha_pct) + "</td><td>" +
                 db_or_dash(f.lex8h_dba()) + "</td></tr>\n";
        h += "</table>\n";
    }
    return h + "</body></html>\n";
}

} // namespace earshot::dosimetry
