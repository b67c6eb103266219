// `earshot report` (SPEC §1): the exposure logs as a table, CSV, JSON or an HTML page with charts.
#include "earshot/dosimetry/report.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <unistd.h>

namespace earshot::cli {

namespace {
void report_usage(std::FILE* f) {
    std::fprintf(
        f,
        "usage: earshot report [--state-dir DIR]... [--musician ID]... [--days N | --from DATE --to DATE]\n"
        "                      [--format table|csv|json|html] [--output FILE] [--day-starts HH:MM]\n"
        "                      [--who-mode 1|2]\n"
        "Reads <state-dir>/exposure/<musician>/<YYYY-MM-DD>.csv (no daemon needed). --state-dir may repeat\n"
        "(logs from several rigs are merged by musician id). Default state dir: $STATE_DIRECTORY, else\n"
        "/var/lib/earshot. Default range: the 7 dose days ending today. Default format: table on a\n"
        "terminal, json otherwise.\n");
}
} // namespace

int exposure_report_main(int argc, char** argv) {
    dosimetry::ReportOptions o;
    std::string format, output;
    int days = 7;
    bool have_days = false, have_from = false, have_to = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "earshot report: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--state-dir")
            o.state_dirs.push_back(value());
        else if (a == "--musician")
            o.musicians.push_back(value());
        else if (a == "--format")
            format = value();
        else if (a == "--output")
            output = value();
        else if (a == "--days") {
            char* end = nullptr;
            const char* v = value();
            days = static_cast<int>(std::strtol(v, &end, 10));
            have_days = true;
            if (*end || days < 1 || days > 3650) {
                std::fprintf(stderr, "earshot report: --days: '%s' is not a number of days in [1, 3650]\n",
                             v);
                return 2;
            }
        } else if (a == "--from" || a == "--to") {
            const char* v = value();
            dosimetry::Date d;
            if (!dosimetry::Date::parse(v, d)) {
                std::fprintf(stderr, "earshot report: %s: '%s' is not a date YYYY-MM-DD\n", a.c_str(), v);
                return 2;
            }
            (a == "--from" ? o.from : o.to) = d;
            (a == "--from" ? have_from : have_to) = true;
        } else if (a == "--day-starts") {
            const char* v = value();
            int h = -1, m = -1;
            if (std::sscanf(v, "%d:%d", &h, &m) != 2 || h < 0 || h > 23 || m < 0 || m > 59) {
                std::fprintf(stderr, "earshot report: --day-starts: '%s' is not HH:MM\n", v);
                return 2;
            }
            o.day_start_min = h * 60 + m;
        } else if (a == "--who-mode") {
            const std::string v = value();
            if (v != "1" && v != "2") {
                std::fprintf(stderr, "earshot report: --who-mode must be 1 or 2\n");
                return 2;
            }
            o.who_allowance_pa2h = v == "2" ? dosimetry::who_mode2_pa2h : dosimetry::who_mode1_pa2h;
        } else if (a == "--help" || a == "-h") {
            report_usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "earshot report: unknown option '%s'\n", a.c_str());
            report_usage(stderr);
            return 2;
        }
    }
    if (have_days && have_from) {
        std::fprintf(stderr, "earshot report: give either --days or --from/--to\n");
        return 2;
    }
    if (have_from != have_to) {
        std::fprintf(stderr, "earshot report: --from and --to go together\n");
        return 2;
    }
    if (o.state_dirs.empty()) {
        const char* sd = std::getenv("STATE_DIRECTORY");
        o.state_dirs.push_back(sd && *sd ? sd : "/var/lib/earshot");
    }
    o.now_utc = static_cast<double>(std::time(nullptr));
    if (!have_from) {
        o.to = dosimetry::dose_day(static_cast<std::time_t>(o.now_utc), o.day_start_min);
        o.from = dosimetry::add_days(o.to, -(days - 1));
    } else if (o.to < o.from) {
        std::fprintf(stderr, "earshot report: --to is before --from\n");
        return 2;
    }
    if (format.empty()) format = (output.empty() && isatty(STDOUT_FILENO)) ? "table" : "json";
    const auto r = dosimetry::build_report(o);
    std::string text;
    if (format == "table")
        text = dosimetry::format_table(r);
    else if (format == "csv")
        text = dosimetry::format_csv(r);
    else if (format == "json")
        text = dosimetry::format_json(r);
    else if (format == "html")
        text = dosimetry::format_html(r);
    else {
        std::fprintf(stderr, "earshot report: --format must be table, csv, json or html\n");
        return 2;
    }
    if (r.skipped_lines && format != "table" && format != "json")
        std::fprintf(stderr, "earshot report: %zu torn or corrupt log line(s) skipped\n", r.skipped_lines);
    if (output.empty()) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        return 0;
    }
    std::ofstream f(output, std::ios::binary);
    f << text;
    if (!f) {
        std::fprintf(stderr, "earshot report: cannot write %s\n", output.c_str());
        return 1;
    }
    return 0;
}

} // namespace earshot::cli
