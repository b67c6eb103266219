// Exposure reports from real logs (written by ExposureLog): day figures, the WHO week, merging
// state dirs from several rigs, filters, skipped lines, and the formats.
#include "earshot/dosimetry/report.hpp"
#include "fixture.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace earshot::dosimetry;
using earshot::test::utc;
namespace fs = std::filesystem;

namespace {
// Writes `seconds` of a steady level for musician `id` starting at t0 into dir.
void exposure(const std::string& dir, const std::string& id, double t0, double seconds, double dba) {
    ExposureLog log(dir);
    MusicianDose d(id, 6 * 60, who_mode1_pa2h);
    std::vector<LogRow> rows;
    for (int i = 0; i < static_cast<int>(seconds); ++i) {
        Interval iv;
        iv.t_utc = t0 + i;
        iv.laeq_l = iv.laeq_r = dba;
        iv.lafmax = dba + 1;
        iv.lcpeak = dba + 10;
        d.add(iv, rows);
    }
    d.flush(rows);
    log.append(id, rows);
}
} // namespace

TEST_CASE("report: day figures and the WHO week from the logs", "[dosimetry][report]") {
    earshot::test::TzGuard tz(earshot::test::cet);
    const std::string dir = earshot::test::temp_dir();
    exposure(dir, "vocal", utc(2026, 6, 1, 18, 0), 3600, 94.0);  // NIOSH 100 %, LEX 84.97
    exposure(dir, "vocal", utc(2026, 6, 2, 19, 0), 1440, 100.0); // 24 min at 100 dBA: 1.6 Pa2h
    exposure(dir, "bass", utc(2026, 6, 2, 19, 0), 600, 90.0);
    ReportOptions o;
    o.state_dirs = {dir};
    o.from = Date{2026, 6, 1};
    o.to = Date{2026, 6, 2};
    o.now_utc = utc(2026, 6, 10, 0, 0);
    const auto r = build_report(o);
    REQUIRE(r.musicians.size() == 2);
    const auto& v = r.musicians[1];
    REQUIRE(v.id == "vocal");
    REQUIRE(v.days.size() == 2);
    CHECK(v.days[0].niosh_pct == Approx(100.0).margin(0.01));
    CHECK(v.days[0].lex8h_dba() == Approx(84.97).margin(0.01));
    CHECK(v.days[0].laeq_dba() == Approx(94.0).margin(1e-6));
    CHECK(v.days[0].seconds == 3600);
    CHECK(v.days[1].niosh_pct == Approx(100.0 * 0.4 / 0.25).margin(0.01)); // 24 min vs 15 min allowed
    CHECK(v.week_pa2h == Approx(1.0048 + 1.6).margin(0.001));
    CHECK(v.who_weekly_pct == Approx(100.0 * (1.0048 + 1.6) / 1.6).margin(0.1));
    CHECK(v.over_niosh);
    CHECK(v.over_who);
    CHECK(r.musicians[0].days.size() == 1);
    // Filters.
    o.musicians = {"bass"};
    CHECK(build_report(o).musicians.size() == 1);
    o.musicians.clear();
    o.from = o.to = Date{2026, 6, 1};
    const auto one = build_report(o);
    REQUIRE(one.musicians.size() == 1); // bass has nothing on the 1st
    CHECK(one.musicians[0].days.size() == 1);
    fs::remove_all(dir);
}

TEST_CASE("report: logs from several rigs merge by musician; duplicates and torn lines",
          "[dosimetry][report]") {
    earshot::test::TzGuard tz(earshot::test::cet);
    const std::string a = earshot::test::temp_dir(), b = earshot::test::temp_dir();
    exposure(a, "drums", utc(2026, 7, 1, 18, 0), 1800, 95.0); // rig A, day 1
    exposure(b, "drums", utc(2026, 7, 2, 18, 0), 1800, 95.0); // rig B, day 2
    // Rig B also has a copy of rig A's day-1 file: counted once.
    fs::create_directories(fs::path(b) / "exposure" / "drums");
    fs::copy_file(fs::path(a) / "exposure" / "drums" / "2026-07-01.csv",
                  fs::path(b) / "exposure" / "drums" / "2026-07-01.csv");
    {
        std::ofstream f(fs::path(b) / "exposure" / "drums" / "2026-07-02.csv", std::ios::app);
        f << "2026-07-02T19:00:00.000Z,2026-07-02,60.000,99.0"; // torn
    }
    ReportOptions o;
    o.state_dirs = {a, b};
    o.from = Date{2026, 7, 1};
    o.to = Date{2026, 7, 2};
    o.now_utc = utc(2026, 7, 3, 12, 0);
    const auto r = build_report(o);
    REQUIRE(r.musicians.size() == 1);
    const auto& m = r.musicians[0];
    REQUIRE(m.days.size() == 2);
    CHECK(m.days[0].seconds == 1800); // not 3600: the copy counted once
    CHECK(m.days[1].seconds == 1800);
    CHECK(r.duplicate_rows == 30);
    CHECK(r.skipped_lines == 1);
    CHECK(m.week_pa2h == Approx(2 * pa2(95.0) * 0.5).epsilon(1e-6));
    // Formats carry the figures.
    const std::string csv = format_csv(r), json = format_json(r), html = format_html(r),
                      table = format_table(r);
    CHECK(csv.find("drums,2026-07-01,1800.0,95.00") != std::string::npos);
    CHECK(json.find("\"schema\": 1") != std::string::npos);
    CHECK(json.find("\"skipped_lines\": 1") != std::string::npos);
    CHECK(table.find("1 torn or corrupt log line(s) skipped") != std::string::npos);
    CHECK(html.find("<svg") != std::string::npos);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("http") == std::string::npos); // nothing external
    fs::remove_all(a);
    fs::remove_all(b);
}

TEST_CASE("report: HTML escapes ids", "[dosimetry][report]") {
    ExposureReport r;
    MusicianFigures m;
    m.id = "a<b>&\"c\"";
    r.musicians.push_back(m);
    const std::string h = format_html(r);
    CHECK(h.find("a&lt;b&gt;&amp;&quot;c&quot;") != std::string::npos);
    CHECK(format_json(r).find("\"a<b>&\\\"c\\\"\"") != std::string::npos);
}
