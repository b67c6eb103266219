#include "earshot/dosimetry/tracker.hpp"

#include <algorithm>
#include <cmath>

namespace earshot::dosimetry {

namespace {
constexpr double week_s = 7.0 * 86400.0;
double maxd(double a, double b) {
    return a > b ? a : b;
}
} // namespace

MusicianDose::MusicianDose(std::string id, int day_start_min, double who_allowance_pa2h)
    : _id(std::move(id)), _start_min(day_start_min), _who_allow(who_allowance_pa2h) {}

void MusicianDose::roll_day(const Date& d) {
    if (_have_day && d == _day) return;
    _day = d;
    _have_day = true;
    _today = DoseTotals{};
}

void MusicianDose::add_week(double t, double pa2s) {
    const double b = std::floor(t / 60.0) * 60.0;
    if (!_week.empty() && _week.back().t == b) {
        _week.back().pa2s += pa2s;
    } else if (!_week.empty() && b < _week.back().t) {
        // Out of order (clock stepped back): keep the energy in the newest bucket.
        _week.back().pa2s += pa2s;
    } else {
        _week.push_back(Bucket{b, pa2s});
    }
    while (!_week.empty() && _week.front().t <= b - week_s) _week.pop_front();
}

double MusicianDose::week_pa2s(double now) const {
    double s = 0;
    for (const Bucket& b : _week)
        if (b.t > now - week_s) s += b.pa2s;
    return s;
}

void MusicianDose::add(const Interval& iv, std::vector<LogRow>& rows) {
    if (!(iv.seconds > 0)) return;
    const Date d = dose_day(static_cast<std::time_t>(std::floor(iv.t_utc)), _start_min);
    if (_row_open && !(d == _row.day)) flush(rows);
    roll_day(d);

    const double ear = maxd(iv.laeq_l, iv.laeq_r);
    const double level = energy_sum_db(ear, iv.leak_dba);
    _current_dba = level;
    _today.add(level, iv.lcpeak, iv.seconds);
    const double e = pa2(level) * iv.seconds;
    add_week(iv.t_utc, e);

    if (!_row_open) {
        _row = LogRow{};
        _row.start_utc = iv.t_utc;
        _row.day = d;
        _row_e_l = _row_e_r = _row_e_leak = 0;
        _row_dose = DoseTotals{};
        _row_open = true;
    }
    _row.duration_s += iv.seconds;
    _row_e_l += pa2(iv.laeq_l) * iv.seconds;
    _row_e_r += pa2(iv.laeq_r) * iv.seconds;
    _row_e_leak += pa2(iv.leak_dba) * iv.seconds;
    _row.pa2s += e;
    _row.lafmax_dba = maxd(_row.lafmax_dba, energy_sum_db(iv.lafmax, iv.leak_dba));
    _row.lcpeak_dbc = maxd(_row.lcpeak_dbc, iv.lcpeak);
    _row.limiter_gr_max_db = maxd(_row.limiter_gr_max_db, iv.limiter_gr_db);
    _row_dose.add(level, iv.lcpeak, iv.seconds);
    if (_row.duration_s >= row_seconds - 1e-9) flush(rows);
}

void MusicianDose::flush(std::vector<LogRow>& rows) {
    if (!_row_open) return;
    _row_open = false;
    if (!(_row.duration_s > 0)) return;
    const double t = _row.duration_s;
    _row.laeq_dba = level_db(_row.pa2s / t);
    _row.laeq_l_dba = level_db(_row_e_l / t);
    _row.laeq_r_dba = level_db(_row_e_r / t);
    _row.leak_dba = level_db(_row_e_leak / t);
    _row.leak_pa2s = _row_e_leak;
    _row.niosh_row_pct = _row_dose.niosh_pct();
    _row.osha_row_pct = _row_dose.osha_pct();
    _row.osha_action_row_pct = _row_dose.osha_action_pct();
    _row.niosh_pct = _today.niosh_pct();
    _row.osha_pct = _today.osha_pct();
    _row.osha_action_pct = _today.osha_action_pct();
    _row.who_weekly_pct = 100.0 * week_pa2s(_row.start_utc + t) / 3600.0 / _who_allow;
    rows.push_back(_row);
}

void MusicianDose::replay(const LogRow& row) {
    if (!(row.duration_s > 0)) return;
    roll_day(row.day);
    // The row's own contributions were accumulated per second when it was written, so the rebuilt
    // day equals the uninterrupted one (not an approximation from the row's mean level).
    const DoseTotals exact =
        DoseTotals::from_parts(row.duration_s, row.pa2s, row.niosh_row_pct, row.osha_row_pct,
                               row.osha_action_row_pct, row.lcpeak_dbc);
    _today.merge(exact);
    add_week(row.start_utc, row.pa2s);
    _current_dba = neg_inf;
}

DoseStatus MusicianDose::status(double now_utc) const {
    DoseStatus s;
    const Date d = dose_day(static_cast<std::time_t>(std::floor(now_utc)), _start_min);
    s.day = d;
    if (_have_day && d == _day) s.today = _today;
    s.week_pa2h = week_pa2s(now_utc) / 3600.0;
    s.who_weekly_pct = 100.0 * s.week_pa2h / _who_allow;
    s.current_dba = _current_dba;
    s.niosh_seconds_left = seconds_to_full(s.today.niosh_pct(), niosh_allowed_h(_current_dba));
    if (!(_current_dba > neg_inf)) s.niosh_seconds_left = s.today.niosh_pct() >= 100 ? 0 : INFINITY;
    s.who_seconds_left = who_seconds_to_full(s.week_pa2h, _current_dba, _who_allow);
    return s;
}

} // namespace earshot::dosimetry
