#include "earshot/daemon/dose_keeper.hpp"

#include "earshot/daemon/log.hpp"
#include "earshot/dosimetry/calendar.hpp"
#include "earshot/dsp/units.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <exception>

namespace earshot::daemon {

namespace {
double allowance(int who_mode) {
    return who_mode == 2 ? dosimetry::who_mode2_pa2h : dosimetry::who_mode1_pa2h;
}
} // namespace

DoseKeeper::DoseKeeper(std::string state_dir) : _log(std::move(state_dir)) {}

void DoseKeeper::write_rows(const std::string& id, const std::vector<dosimetry::LogRow>& rows) {
    if (rows.empty()) return;
    try {
        _log.append(id, rows);
        _log.clear_journal(id);
    } catch (const std::exception& e) {
        ++_log_errors;
        log::error_limited("exposure-log", "exposure log of '%s': %s (the dose stays in memory)", id.c_str(),
                           e.what());
    }
}

void DoseKeeper::start_tracker(const std::string& id, Tracked& t, double now_utc) {
    t.dose = std::make_unique<dosimetry::MusicianDose>(id, _day_start, allowance(_who_mode));
    std::vector<dosimetry::LogRow> completed;
    try {
        const auto rb = _log.rebuild(*t.dose, now_utc, completed);
        const auto st = t.dose->status(now_utc);
        log::info("dose of '%s' resumed from the logs: %zu rows, %zu journal seconds%s; today NIOSH %.2f %%, "
                  "week WHO %.2f %%",
                  id.c_str(), rb.rows, rb.journal_lines, rb.skipped ? " (torn or corrupt lines skipped)" : "",
                  st.today.niosh_pct(), st.who_weekly_pct);
    } catch (const std::exception& e) {
        ++_log_errors;
        log::error("exposure logs of '%s' could not be read: %s (starting from zero)", id.c_str(), e.what());
    }
    write_rows(id, completed);
}

void DoseKeeper::configure(const config::Config& cfg, double now_utc) {
    const bool settings_changed =
        cfg.dosimetry.day_starts_min != _day_start || cfg.dosimetry.who_mode != _who_mode;
    if (settings_changed && !_m.empty()) {
        log::info("dosimetry settings changed: rebuilding every musician's dose from the logs");
        flush();
        _m.clear();
    }
    _day_start = cfg.dosimetry.day_starts_min;
    _who_mode = cfg.dosimetry.who_mode;
    _keep_days = cfg.dosimetry.keep_days;

    // Removed musicians: their open row goes to the CSV.
    for (auto it = _m.begin(); it != _m.end();) {
        if (cfg.musician_index(it->first) < 0) {
            std::vector<dosimetry::LogRow> rows;
            it->second.dose->flush(rows);
            write_rows(it->first, rows);
            it = _m.erase(it);
        } else {
            ++it;
        }
    }
    _measure_offset.clear();
    for (const config::Input& in : cfg.inputs)
        if (in.measurement) _measure_offset[in.id] = config::measurement_offset_db(*in.measurement);
    for (const config::Musician& mu : cfg.musicians) {
        auto [it, fresh] = _m.try_emplace(mu.id);
        Tracked& t = it->second;
        if (fresh) start_tracker(mu.id, t, now_utc);
        t.offset_db = config::calibration_offset_db(mu.calibration);
        t.ambient_input.clear();
        if (mu.ambient) {
            t.ambient_input = mu.ambient->input;
            const auto mo = _measure_offset.find(mu.ambient->input);
            t.ambient_offset = mo == _measure_offset.end() ? 0.0 : mo->second;
            t.isolation_db = mu.ambient->isolation_db;
        }
    }
    housekeeping(now_utc);
}

void DoseKeeper::bind(const engine::Engine& e) {
    _fs = e.sample_rate();
    _musician_keys.clear();
    _measure_keys.clear();
    for (const auto& [id, t] : _m) {
        const uint32_t k = e.musician_key(id);
        if (k != UINT32_MAX) _musician_keys[k] = id;
        if (!t.ambient_input.empty()) {
            const uint32_t mk = e.measurement_key(t.ambient_input);
            if (mk != UINT32_MAX) _measure_keys[mk] = t.ambient_input;
        }
    }
    _stage.clear();
}

void DoseKeeper::add(const engine::DoseFrame& f, bool heard, double now_utc) {
    if (f.samples == 0) return;
    const double secs = double(f.samples) / _fs;
    if (f.source == 1) {
        const auto k = _measure_keys.find(f.musician_key);
        if (k != _measure_keys.end())
            _stage[k->second] = {f.start_sample, dsp::power_to_db(f.ears[0].sum_sq_a / double(f.samples))};
        return;
    }
    const auto k = _musician_keys.find(f.musician_key);
    if (k == _musician_keys.end()) return; // a musician that was removed (its fade-out)
    const auto it = _m.find(k->second);
    if (it == _m.end()) return;
    Tracked& t = it->second;

    dosimetry::Interval iv;
    iv.seconds = secs;
    iv.t_utc = std::max(now_utc - secs, t.last_t);
    double lafmax = dosimetry::neg_inf, lcpeak = dosimetry::neg_inf;
    double ear[2] = {dosimetry::neg_inf, dosimetry::neg_inf};
    const int ch = std::clamp<int>(f.channels, 1, 2);
    for (int c = 0; c < ch; ++c) {
        const double digital = dsp::power_to_db(f.ears[c].sum_sq_a / double(f.samples));
        // Below -200 dB digital is the meters' anti-denormal dither: silence.
        ear[c] = digital < -200.0 ? dosimetry::neg_inf : digital + t.offset_db;
        lafmax = std::max(lafmax, dsp::power_to_db(f.ears[c].laf_max_ms) + t.offset_db);
        lcpeak = std::max(lcpeak, dsp::gain_to_db(f.ears[c].c_peak) + t.offset_db);
    }
    if (ch == 1) ear[1] = ear[0];
    iv.laeq_l = ear[0];
    iv.laeq_r = ear[1];
    iv.lafmax = lafmax < -150.0 ? dosimetry::neg_inf : lafmax;
    iv.lcpeak = lcpeak < -150.0 ? dosimetry::neg_inf : lcpeak;
    if (!t.ambient_input.empty()) {
        const auto s = _stage.find(t.ambient_input);
        if (s != _stage.end() && s->second.first == f.start_sample)
            iv.leak_dba = s->second.second + t.ambient_offset - t.isolation_db;
    }
    iv.limiter_gr_db = f.limiter_min_gain > 0 ? std::max(0.0, -dsp::gain_to_db(f.limiter_min_gain)) : 0.0;

    t.last.t_utc = iv.t_utc;
    t.last.laeq_dba[0] = ear[0];
    t.last.laeq_dba[1] = ear[1];
    t.last.level_dba = dosimetry::energy_sum_db(std::max(ear[0], ear[1]), iv.leak_dba);
    t.last.lcpeak_dbc = iv.lcpeak;
    t.last.limiter_gr_db = iv.limiter_gr_db;
    t.last.channels = ch;
    if (!heard) return; // freewheel: computed, not heard, no dose
    t.last_t = iv.t_utc + secs;

    std::vector<dosimetry::LogRow> rows;
    t.dose->add(iv, rows);
    ++_seconds;
    if (rows.empty()) {
        try {
            _log.journal(it->first, iv);
        } catch (const std::exception& e) {
            ++_log_errors;
            log::error_limited("exposure-log", "exposure journal of '%s': %s", it->first.c_str(), e.what());
        }
    } else {
        write_rows(it->first, rows);
    }
}

void DoseKeeper::flush() {
    for (auto& [id, t] : _m) {
        std::vector<dosimetry::LogRow> rows;
        t.dose->flush(rows);
        write_rows(id, rows);
    }
    try {
        _log.sync();
    } catch (const std::exception& e) {
        log::error("exposure journals: %s", e.what());
    }
}

void DoseKeeper::sync() {
    try {
        _log.sync();
    } catch (const std::exception& e) {
        log::error("exposure journals: %s", e.what());
    }
}

void DoseKeeper::housekeeping(double now_utc) {
    if (_day_start < 0) return;
    const dosimetry::Date today = dosimetry::dose_day(static_cast<std::time_t>(now_utc), _day_start);
    if (today == _pruned_day) return;
    _pruned_day = today;
    try {
        const std::size_t n = _log.prune(today, _keep_days);
        if (n) log::info("exposure logs: %zu day file(s) older than %d dose days removed", n, _keep_days);
    } catch (const std::exception& e) {
        log::warn("exposure logs: pruning failed: %s", e.what());
    }
}

bool DoseKeeper::status(const std::string& musician, double now_utc, dosimetry::DoseStatus& out) const {
    const auto it = _m.find(musician);
    if (it == _m.end()) return false;
    out = it->second.dose->status(now_utc);
    return true;
}

const LastSecond* DoseKeeper::last(const std::string& musician) const {
    const auto it = _m.find(musician);
    return it == _m.end() ? nullptr : &it->second.last;
}

} // namespace earshot::daemon
