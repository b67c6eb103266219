// earshot::dosimetry exposure reports — what `earshot report` prints (docs/report.md).
//
// Reads the exposure logs of one or more state directories (logs copied from several rigs: rows
// are merged by musician id, identical rows counted once), groups them by dose day and computes
// each day's figures from the rows' own contributions, plus the WHO/H.870 rolling-week figure.
// Formatters: aligned table, CSV, JSON (schema 1) and one self-contained HTML page with inline SVG
// charts (no script, no network).
//
// Thread contract: any thread; file I/O; allocates.
#pragma once

#include "earshot/dosimetry/exposure_log.hpp"

#include <string>
#include <vector>

namespace earshot::dosimetry {

struct ReportOptions {
    std::vector<std::string> state_dirs; // at least one
    std::vector<std::string> musicians;  // empty: all
    Date from, to;                       // dose days, inclusive
    double who_allowance_pa2h = who_mode1_pa2h;
    double now_utc = 0; // the week window ends at min(end of `to`, now)
    int day_start_min = 6 * 60;
};

struct DayFigures {
    Date day;
    double seconds = 0, pa2s = 0, leak_pa2s = 0;
    double niosh_pct = 0, osha_pct = 0, osha_action_pct = 0;
    double lafmax_dba = neg_inf, lcpeak_dbc = neg_inf, limiter_gr_max_db = 0;
    double laeq_dba() const;  // energy mean over the exposed time
    double lex8h_dba() const; // EU LEX,8h
};

struct MusicianFigures {
    std::string id;
    std::vector<DayFigures> days; // days with rows, ascending
    std::vector<LogRow> rows;     // rows of the range, by time
    double week_pa2h = 0;         // rolling 7 days ending at the report's end
    double who_weekly_pct = 0;
    bool over_niosh = false; // some day above 100 % NIOSH
    bool over_who = false;   // the week above 100 % of the allowance
};

struct ExposureReport {
    Date from, to;
    double week_end_utc = 0;
    double who_allowance_pa2h = who_mode1_pa2h;
    std::vector<MusicianFigures> musicians;
    std::size_t skipped_lines = 0;  // torn or corrupt lines
    std::size_t duplicate_rows = 0; // identical rows found in more than one state dir
};

ExposureReport build_report(const ReportOptions& o);

std::string format_table(const ExposureReport& r);
std::string format_csv(const ExposureReport& r);
std::string format_json(const ExposureReport& r);
std::string format_html(const ExposureReport& r);

} // namespace earshot::dosimetry
