// earshot::daemon::DoseKeeper — the daemon's dosimetry: engine dose frames -> calibrated per-second
// intervals -> MusicianDose (day, rolling week) -> ExposureLog (CSV rows + journal) (SPEC §3.6, §4).
//
// At (re)configuration each musician's dose is rebuilt from its logs (rows of the last 8 dose days
// plus the journal of the minute in progress), so a restart, reload, JACK reconnect or SIGKILL
// resumes the day and the week. Every second heard is journaled before the next one is read; a
// SIGKILL loses nothing written, a power cut at most the last 5-10 s.
//
// A frame is turned into an interval exactly as `earshot render` does: per ear, the A-weighted
// mean square plus the musician's calibration offset (field-equivalent dB SPL; the eardrum
// correction already ran in the meter), the louder ear, plus the stage leak of a calibrated
// measurement input (ambient) by energy. The interval is stamped with the wall-clock time at which
// it was heard (when its frame arrived, minus its length), never earlier than the previous one.
//
// Thread contract: the daemon's control thread; allocates; blocking file I/O (fsync).
//
//   DoseKeeper k(state_dir);
//   k.configure(cfg, now);            // trackers for cfg's musicians, rebuilt from the logs
//   k.bind(engine);                   // frame keys of this engine
//   k.add(frame, heard, now);         // every frame popped from the engine
//   k.flush();                        // at shutdown: open rows to the CSV
#pragma once

#include "earshot/config/config.hpp"
#include "earshot/dosimetry/exposure_log.hpp"
#include "earshot/dosimetry/tracker.hpp"
#include "earshot/engine/engine.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace earshot::daemon {

/// The last second heard by a musician (for status views).
struct LastSecond {
    double t_utc = 0;
    double laeq_dba[2] = {dosimetry::neg_inf, dosimetry::neg_inf}; // per ear, mix only
    double level_dba = dosimetry::neg_inf;                         // musician level (louder ear + leak)
    double lcpeak_dbc = dosimetry::neg_inf;
    double limiter_gr_db = 0;
    int channels = 0;
};

class DoseKeeper {
public:
    explicit DoseKeeper(std::string state_dir);

    /// Trackers for cfg's musicians: new ones are rebuilt from the logs, removed ones are flushed
    /// to the logs and dropped; a change of dosimetry settings rebuilds every tracker. Prunes old
    /// logs (dosimetry.keep_days). Logs what it did.
    void configure(const config::Config& cfg, double now_utc);
    /// Frame keys of an engine (after each apply_config on it, and for a new engine).
    void bind(const engine::Engine& e);
    /// One frame popped from the engine; `heard` is false for audio nobody heard (freewheel).
    void add(const engine::DoseFrame& f, bool heard, double now_utc);
    /// Closes every open row into the CSV and syncs the journals (shutdown).
    void flush();
    /// Syncs the journals only (what was added so far survives a crash; the rows stay open).
    void sync();
    /// Daily housekeeping (prune at a new dose day); call about once a minute.
    void housekeeping(double now_utc);

    /// The musician's figures now (nullptr status if unknown).
    bool status(const std::string& musician, double now_utc, dosimetry::DoseStatus& out) const;
    const LastSecond* last(const std::string& musician) const;
    /// Intervals added and log errors since start.
    uint64_t seconds_added() const noexcept { return _seconds; }
    uint64_t log_errors() const noexcept { return _log_errors; }

private:
    struct Tracked {
        std::unique_ptr<dosimetry::MusicianDose> dose;
        double offset_db = 0;      // calibration offset
        std::string ambient_input; // measurement input for the leak ("" = none)
        double ambient_offset = 0;
        double isolation_db = 0;
        double last_t = 0; // stamp of the previous interval
        LastSecond last;
    };
    void write_rows(const std::string& id, const std::vector<dosimetry::LogRow>& rows);
    void start_tracker(const std::string& id, Tracked& t, double now_utc);

    dosimetry::ExposureLog _log;
    std::map<std::string, Tracked> _m;
    int _day_start = -1, _who_mode = 0, _keep_days = 730;
    dosimetry::Date _pruned_day{};
    std::map<uint32_t, std::string> _musician_keys;
    std::map<uint32_t, std::string> _measure_keys;
    std::map<std::string, std::pair<uint64_t, double>> _stage; // input -> (start_sample, digital dB)
    std::map<std::string, double> _measure_offset;             // input -> calibration offset
    double _fs = 48000;
    uint64_t _seconds = 0, _log_errors = 0;
};

} // namespace earshot::daemon
