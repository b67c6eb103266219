// earshot::render — `earshot render` (SPEC §1, §5): the daemon's engine run offline over a
// multichannel file, one WAV per musician and a report of calibrated levels.
//
// Channel i of the input is config input i. The engine runs with StartMode::immediate (gains are at
// their targets from sample 0) at the file's rate. Each musician's output is exactly as long as the
// input and aligned with it: the engine runs `latency` extra frames of silence after the input and
// the first `latency` frames of each musician's output are dropped, where `latency` is that
// musician's own limiter look-ahead (musicians may differ in protection.lookahead_ms).
//
// Levels (report, SPEC §5) come from the engine's own dose frames (the meters on the signal that
// leaves the port, per ear) plus the musician's calibration offset, over the whole file; the true
// peak is measured on the written output (dsp::TruePeakMeter, 4x). Silence is -inf (JSON null).
// A musician's laeq is the louder ear's (SPEC §3); lafmax, lcpeak and peaks are the max over ears.
// A mono musician's one channel is what both ears hear: both ears report it.
//
// Thread contract: [control thread]; everything here allocates, does file I/O and throws.
//
//   config::Config cfg = config::load_file("band.yaml");
//   RenderReport r = render::render_file(cfg, "band.wav", "out", {});   // out/<id>.wav
//   render::write_report(r, "out/report.json");
#pragma once

#include "earshot/config/config.hpp"

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace earshot::render {

/// A render that cannot proceed: the input does not match the config, I/O failed, ... (exit code 1).
class RenderError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

inline constexpr uint32_t min_block = 16;
inline constexpr uint32_t max_block = 8192;

struct RenderOptions {
    uint32_t block = 256;    // frames per engine call, [min_block, max_block]
    bool per_second = false; // report.json gets each musician's per-second figures
};

/// One second of one musician (RenderOptions::per_second).
struct SecondReport {
    double laeq_dba = 0;  // the musician's level that second (louder ear + leak), -inf silence
    double cap_gr_db = 0; // the loudness cap's largest gain reduction that second (>= 0)
    double guard_db = 0;  // the dose guard's attenuation at the end of that second (>= 0)
    double niosh_pct = 0; // cumulative NIOSH dose at the end of that second
};

/// Called after each block: frames of the input done so far, and the total.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

/// Levels of one ear over the whole file. dB values are -inf for silence.
struct EarReport {
    double laeq_dba = 0;         // A-weighted Leq, dB SPL (field-referenced per calibration)
    double lafmax_dba = 0;       // max A-weighted, F time-weighted level, dB SPL
    double lcpeak_dbc = 0;       // max C-weighted peak, dB SPL (peak)
    double true_peak_db_spl = 0; // 4x oversampled peak of the output, dB SPL (peak)
    double sample_peak_dbfs = 0; // max |output sample|, dBFS
};

/// The `dose` object of SPEC §5: the file as one exposure starting from zero, per-second intervals,
/// the musician's level each second being the louder ear's plus the stage leak (if `ambient`).
struct DoseReport {
    double niosh_pct = 0;
    double osha_pct = 0;        // PEL: threshold 90 dBA
    double osha_action_pct = 0; // hearing conservation: threshold 80 dBA
    double eu_lex8h_dba = 0;    // -inf for silence
    double who_weekly_pct = 0;  // of the configured H.870 mode's allowance
    int who_mode = 1;
    double pa2h = 0;           // A-weighted exposure
    double laeq_dba = 0;       // exposure level over the file (louder ear + leak)
    double lcpeak_max_dbc = 0; // vs the EU 135 / 137 / 140 dB(C) peak action values
    bool has_ambient = false;
    std::string ambient_input;
    double isolation_db = 0;
    double leak_laeq_dba = 0;      // stage level minus isolation, over the file
    double stage_laeq_dba = 0;     // the measurement input's own level
    double niosh_seconds_left = 0; // to 100 % NIOSH if exposure went on at the file's level (+inf: silence)
};

struct MusicianReport {
    std::string id;
    std::string name;
    int channels = 2;        // 1 mono, 2 stereo
    std::string output_file; // file name written in the output directory ("<id>.wav")
    config::Reference reference = config::Reference::field;
    double calibration_offset_db = 0; // digital dB -> dB SPL
    double ceiling_dbfs = 0;          // the limiter's digital ceiling (peak)
    double ceiling_db_spl = 0;        // the same, as configured (peak dB SPL)
    int latency_frames = 0;           // this musician's limiter latency (compensated)
    // Over ears: laeq the louder ear's, the rest the max.
    double laeq_dba = 0, lafmax_dba = 0, lcpeak_dbc = 0, true_peak_db_spl = 0, sample_peak_dbfs = 0;
    double limiter_max_gain_reduction_db = 0; // >= 0
    double limiter_active_s = 0;              // time with limiter gain < 1, seconds
    uint64_t clamped_samples = 0;             // samples cut by the final safety clamp
    bool has_cap = false;                     // protection.max_laeq_1s_dba is set
    double cap_dba = 0;                       // its value
    double cap_max_gain_reduction_db = 0;     // >= 0
    double guard_max_attenuation_db = 0;      // >= 0 (dosimetry.guard: limit)
    EarReport ears[2];                        // L, R (mono: both the same)
    DoseReport dose;
    std::vector<SecondReport> seconds; // RenderOptions::per_second only
};

struct RenderReport {
    double sample_rate = 0;           // Hz, from the input file
    uint64_t frames = 0;              // input (= every output) length
    double duration_s = 0;            // frames / sample_rate
    int latency_frames = 0;           // the engine's latency (largest over musicians), compensated
    uint32_t block = 0;               // frames per engine call
    uint64_t bad_input_blocks = 0;    // engine blocks where an input carried NaN/Inf (silenced)
    uint64_t dose_frames_dropped = 0; // engine dose frames lost (0 unless something is badly wrong)
    std::string input_file;
    std::string config_file;
    std::vector<MusicianReport> musicians;
};

/// The rendered outputs of render_buffers(): [musician][channel][frame].
struct BufferRender {
    RenderReport report;
    std::vector<std::vector<std::vector<float>>> outputs;
};

/// Renders `input_path` with `cfg` into out_dir/<musician-id>.wav (out_dir is created if missing).
/// Does not write the report (write_report()). Throws RenderError / AudioError.
RenderReport render_file(const config::Config& cfg, const std::string& input_path, const std::string& out_dir,
                         const RenderOptions& opt = {}, const ProgressFn& progress = {});

/// The same engine run in memory: inputs[i] is config input i (all the same length). Throws RenderError.
BufferRender render_buffers(const config::Config& cfg, double sample_rate,
                            const std::vector<std::vector<float>>& inputs, const RenderOptions& opt = {});

/// report.json text (SPEC §5 fields plus the extras documented in docs/render.md).
std::string report_json(const RenderReport& r);
/// Writes report_json(r) to path. Throws RenderError.
void write_report(const RenderReport& r, const std::string& path);

} // namespace earshot::render

namespace earshot::cli {
/// `earshot render ...` (argv[0] = "render"). Exit codes: 0 ok, 1 error, 2 usage, 78 config error.
int render_main(int argc, char** argv);
/// `earshot generate ...` (argv[0] = "generate"). Exit codes: 0 ok, 1 error, 2 usage.
int generate_main(int argc, char** argv);
} // namespace earshot::cli
