// The offline render loop (render.hpp): the engine over a source of input blocks, per-musician
// latency compensation, and the whole-file levels from the engine's dose frames.
#include "earshot/render/render.hpp"
#include "earshot/dosimetry/dose.hpp"
#include "earshot/dosimetry/guard.hpp"

#include "earshot/dsp/limiter.hpp"
#include "earshot/dsp/true_peak.hpp"
#include "earshot/dsp/units.hpp"
#include "earshot/engine/engine.hpp"
#include "earshot/render/wav_io.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <system_error>

namespace earshot::render {

namespace {

// Fills dst[i][0..n) for every config input i; returns the frames read (n unless the source ended).
using ReadFn = std::function<std::size_t(float* const* dst, std::size_t n)>;
// Receives n aligned output frames of musician m (ch[0..channels)).
using WriteFn = std::function<void(std::size_t m, const float* const* ch, int channels, std::size_t n)>;

// Digital levels below this are silence (null in the report): a mix that carries nothing still
// shows the meters' anti-denormal dither, about -500 dB, and float outputs cannot carry audio there.
constexpr double silence_floor_db = -200.0;

double floor_silence(double db) noexcept {
    return db < silence_floor_db ? -std::numeric_limits<double>::infinity() : db;
}

// True peak (4x, dsp::TruePeakInterpolator: the same estimate as dsp::TruePeakMeter, sample for
// sample) and sample peak of one output channel. Stretches whose samples provably cannot beat the
// peak so far (max|x| * abs_sum_bound <= peak) skip the interpolation, which is most of the time.
class OutputPeak {
public:
    static constexpr std::size_t hist = dsp::TruePeakInterpolator::taps - 1; // samples of look-back

    OutputPeak() : _buf(hist, 0.0f) {}

    void process(const float* x, std::size_t n) {
        // The engine's outputs are finite (SPEC §3.3); a NaN would be ignored by the max()es anyway.
        _buf.resize(hist + n);
        std::copy_n(x, n, _buf.begin() + hist);
        _sample = std::max(_sample, abs_max(_buf.data() + hist, n));
        // Window j reads _buf[j .. j+hist]. Chunk c (windows 16c .. 16c+15) reads _buf[16c, 16c+27),
        // inside 16-sample blocks c and c+1: skip it when even the bound of their largest sample
        // cannot beat the true peak so far.
        constexpr std::size_t chunk = 16;
        static_assert(hist < chunk);
        const std::size_t len = hist + n, nb = (len + chunk - 1) / chunk;
        _bmax.resize(nb);
        for (std::size_t b = 0; b < nb; ++b)
            _bmax[b] = abs_max(_buf.data() + b * chunk, std::min(chunk, len - b * chunk));
        const float bound = _ip.abs_sum_bound();
        for (std::size_t c = 0; c * chunk < n; ++c) {
            const float wmax = c + 1 < nb ? std::max(_bmax[c], _bmax[c + 1]) : _bmax[c];
            if (wmax * bound <= _true) continue;
            for (std::size_t j = c * chunk; j < std::min(n, (c + 1) * chunk); ++j)
                _true = std::max(_true, _ip.interval_peak(&_buf[j]));
        }
        std::copy(_buf.end() - static_cast<std::ptrdiff_t>(hist), _buf.end(), _buf.begin());
        _buf.resize(hist);
    }
    /// Flushes the last intervals (the signal is followed by silence).
    void finish() {
        const float zeros[dsp::TruePeakInterpolator::delay] = {};
        const float keep = _sample;
        process(zeros, dsp::TruePeakInterpolator::delay);
        _sample = keep;
    }
    float true_peak() const noexcept { return _true; }
    float sample_peak() const noexcept { return _sample; }

private:
    // max |p[i]| over n samples, four independent maxima (no serial dependency chain).
    static float abs_max(const float* p, std::size_t n) noexcept {
        float m0 = 0.0f, m1 = 0.0f, m2 = 0.0f, m3 = 0.0f;
        std::size_t i = 0;
        for (; i + 4 <= n; i += 4) {
            m0 = std::max(m0, std::fabs(p[i]));
            m1 = std::max(m1, std::fabs(p[i + 1]));
            m2 = std::max(m2, std::fabs(p[i + 2]));
            m3 = std::max(m3, std::fabs(p[i + 3]));
        }
        for (; i < n; ++i) m0 = std::max(m0, std::fabs(p[i]));
        return std::max(std::max(m0, m1), std::max(m2, m3));
    }

    dsp::TruePeakInterpolator _ip;
    std::vector<float> _buf;  // hist samples of history, then the block
    std::vector<float> _bmax; // max |.| of each 16-sample block of _buf
    float _true = 0.0f, _sample = 0.0f;
};

// Whole-file accumulation for one musician.
struct Accum {
    int latency = 0; // frames dropped at the start of this musician's output
    int out_slot[2] = {-1, -1};
    double sum_sq_a[2] = {0, 0};
    double laf_max_ms[2] = {0, 0};
    double c_peak[2] = {0, 0};
    float lim_min_gain = 1.0f;
    uint64_t lim_active = 0;
    uint64_t clamped = 0;
    OutputPeak peak[2];
    dosimetry::DoseTotals dose; // per-second intervals
    double leak_e = 0;          // leak energy, Pa^2 s
    double stage_e = 0;         // stage (measurement input) energy, Pa^2 s
    int ambient_key = -1;       // measurement key of the ambient input
    double ambient_offset = 0;  // its calibration offset
    double isolation_db = 0;
    float cap_min_gain = 1;
    float guard_min_gain = 1;
    std::vector<SecondReport> seconds;
    std::unique_ptr<dosimetry::DoseGuard> guard; // dosimetry.guard != off
    double audio_s = 0;                          // seconds of dose frames seen
};

RenderReport run(const config::Config& cfg, double fs, uint64_t frames, const RenderOptions& opt,
                 const ReadFn& read, const WriteFn& write, const ProgressFn& progress) {
    if (opt.block < min_block || opt.block > max_block)
        throw RenderError("block size " + std::to_string(opt.block) + " is out of range [" +
                          std::to_string(min_block) + ", " + std::to_string(max_block) + "] frames");
    if (!(fs >= 8000.0 && fs <= 384000.0))
        throw RenderError("sample rate " + std::to_string(fs) + " Hz is out of range [8000, 384000] Hz");

    engine::Engine e(fs, opt.block);
    if (!e.apply_config(cfg, engine::StartMode::immediate))
        throw RenderError("the engine could not build the mix graph for this config");

    const std::size_t n_in = cfg.inputs.size();
    const std::size_t n_mus = cfg.musicians.size();
    const std::size_t block = opt.block;

    std::vector<std::vector<float>> ins(n_in, std::vector<float>(block, 0.0f));
    std::vector<float*> in_dst;
    for (auto& v : ins) in_dst.push_back(v.data());
    // Inputs no send reads have no engine slot: they are read (the file has them) and ignored.
    std::vector<const float*> in_ptrs(static_cast<std::size_t>(e.input_slot_count()), nullptr);
    for (std::size_t i = 0; i < n_in; ++i) {
        const int slot = e.input_slot(cfg.inputs[i].id);
        if (slot >= 0 && static_cast<std::size_t>(slot) < in_ptrs.size())
            in_ptrs[static_cast<std::size_t>(slot)] = ins[i].data();
    }
    std::vector<std::vector<float>> outs(static_cast<std::size_t>(e.output_slot_count()),
                                         std::vector<float>(block, 0.0f));
    std::vector<float*> out_ptrs;
    for (auto& v : outs) out_ptrs.push_back(v.data());

    // Per-musician latency: the limiter's, for that musician's look-ahead at this rate (the engine's
    // latency_frames() is the largest of them). Channel count does not change it.
    const int engine_latency = e.latency_frames();
    std::vector<Accum> acc(n_mus);
    std::vector<std::size_t> key_to_index;
    for (std::size_t m = 0; m < n_mus; ++m) {
        const config::Musician& mu = cfg.musicians[m];
        dsp::TruePeakLimiter probe;
        probe.prepare(fs, 1, mu.protection.lookahead_ms, mu.protection.release_ms);
        acc[m].latency = probe.latency_frames();
        if (acc[m].latency > engine_latency)
            throw RenderError("internal: musician '" + mu.id + "' has a latency above the engine's");
        for (int c = 0; c < mu.channels(); ++c) {
            acc[m].out_slot[c] = e.output_slot(mu.id, c);
            if (acc[m].out_slot[c] < 0 || acc[m].out_slot[c] >= e.output_slot_count())
                throw RenderError("internal: no engine output for musician '" + mu.id + "'");
        }
        const uint32_t key = e.musician_key(mu.id);
        if (key == UINT32_MAX) throw RenderError("internal: no engine key for musician '" + mu.id + "'");
        if (key_to_index.size() <= key) key_to_index.resize(key + 1, SIZE_MAX);
        key_to_index[key] = m;
        if (mu.ambient) {
            const int ii = cfg.input_index(mu.ambient->input);
            const uint32_t ak = e.measurement_key(mu.ambient->input);
            if (ii < 0 || ak == UINT32_MAX || !cfg.inputs[static_cast<std::size_t>(ii)].measurement)
                throw RenderError("internal: ambient input '" + mu.ambient->input + "' is not metered");
            acc[m].ambient_key = static_cast<int>(ak);
            acc[m].ambient_offset =
                config::measurement_offset_db(*cfg.inputs[static_cast<std::size_t>(ii)].measurement);
            acc[m].isolation_db = mu.ambient->isolation_db;
        }
    }
    // The dose guard runs as in the daemon, once per second of audio: the show is the file (or
    // show.length_min from its start), the budget the file's own dose from zero.
    const double show_s = cfg.show.length_min > 0 ? cfg.show.length_min * 60.0 : double(frames) / fs;
    if (cfg.dosimetry.guard != config::GuardMode::off) {
        dosimetry::GuardSettings gs;
        gs.mode = cfg.dosimetry.guard == config::GuardMode::limit ? dosimetry::GuardMode::limit
                                                                  : dosimetry::GuardMode::warn;
        gs.budget = cfg.dosimetry.guard_budget == config::GuardBudget::who
                        ? dosimetry::GuardBudget::who_weekly
                        : dosimetry::GuardBudget::niosh_daily;
        gs.who_allowance_pa2h =
            cfg.dosimetry.who_mode == 2 ? dosimetry::who_mode2_pa2h : dosimetry::who_mode1_pa2h;
        gs.rate_db_per_s = cfg.dosimetry.guard_rate_db_per_min / 60.0;
        gs.depth_db = cfg.dosimetry.guard_depth_db;
        for (Accum& a : acc) a.guard = std::make_unique<dosimetry::DoseGuard>(gs);
    }
    const uint32_t guard_ramp = static_cast<uint32_t>(std::lround(fs)); // 1 s: the guard moves slowly

    // The stage level of the current interval per measurement key (frames of measurement inputs
    // come before the musicians' frames of the same interval).
    std::vector<std::pair<uint64_t, double>> stage_level; // (start_sample, dB SPL) by key

    auto drain = [&] {
        engine::DoseFrame f;
        while (e.pop_dose(f)) {
            if (f.source == 1) {
                if (stage_level.size() <= f.musician_key)
                    stage_level.resize(f.musician_key + 1, {UINT64_MAX, 0.0});
                // The measurement offset is applied per musician (inputs may differ); store digital dB.
                stage_level[f.musician_key] = {f.start_sample,
                                               dsp::power_to_db(f.ears[0].sum_sq_a / double(f.samples))};
                continue;
            }
            if (f.musician_key >= key_to_index.size() || key_to_index[f.musician_key] == SIZE_MAX) continue;
            const std::size_t mi = key_to_index[f.musician_key];
            Accum& a = acc[mi];
            {
                // The second's exposure: louder ear (field-equivalent dBA) + leak by energy.
                const double off = config::calibration_offset_db(cfg.musicians[mi].calibration);
                const double secs = double(f.samples) / fs;
                double ear = -std::numeric_limits<double>::infinity(), peak = ear;
                for (int c = 0; c < f.channels && c < 2; ++c) {
                    ear = std::max(ear, dsp::power_to_db(f.ears[c].sum_sq_a / double(f.samples)) + off);
                    peak = std::max(peak, dsp::gain_to_db(f.ears[c].c_peak) + off);
                }
                double leak = -std::numeric_limits<double>::infinity();
                if (a.ambient_key >= 0 && static_cast<std::size_t>(a.ambient_key) < stage_level.size() &&
                    stage_level[static_cast<std::size_t>(a.ambient_key)].first == f.start_sample) {
                    const double stage =
                        stage_level[static_cast<std::size_t>(a.ambient_key)].second + a.ambient_offset;
                    leak = stage - a.isolation_db;
                    a.stage_e += dosimetry::pa2(stage) * secs;
                    a.leak_e += dosimetry::pa2(leak) * secs;
                }
                // Below -200 dB digital is the meters' anti-denormal dither: silence.
                if (ear - off < -200.0) ear = -std::numeric_limits<double>::infinity();
                const double level = dosimetry::energy_sum_db(ear, leak);
                a.dose.add(level, peak, secs);
                a.audio_s += secs;
                if (a.guard) {
                    dosimetry::GuardInput gi;
                    gi.seconds = secs;
                    gi.level_dba = ear;
                    gi.leak_dba = leak;
                    gi.niosh_pct = a.dose.niosh_pct();
                    gi.week_pa2h = a.dose.pa2h();
                    gi.seconds_left = show_s - a.audio_s;
                    gi.applied_db =
                        f.guard_gain < 1.0f ? -dsp::gain_to_db(static_cast<double>(f.guard_gain)) : 0.0;
                    const double att = a.guard->update(gi);
                    e.set_guard(cfg.musicians[mi].id, -att, guard_ramp);
                }
                if (opt.per_second) {
                    SecondReport sr;
                    sr.laeq_dba = level;
                    sr.cap_gr_db =
                        f.cap_min_gain < 1.0f ? -dsp::gain_to_db(static_cast<double>(f.cap_min_gain)) : 0.0;
                    sr.guard_db =
                        f.guard_gain < 1.0f ? -dsp::gain_to_db(static_cast<double>(f.guard_gain)) : 0.0;
                    sr.niosh_pct = a.dose.niosh_pct();
                    a.seconds.push_back(sr);
                }
            }
            for (int c = 0; c < f.channels && c < 2; ++c) {
                a.sum_sq_a[c] += f.ears[c].sum_sq_a;
                a.laf_max_ms[c] = std::max(a.laf_max_ms[c], f.ears[c].laf_max_ms);
                a.c_peak[c] = std::max(a.c_peak[c], f.ears[c].c_peak);
            }
            a.lim_min_gain = std::min(a.lim_min_gain, f.limiter_min_gain);
            a.cap_min_gain = std::min(a.cap_min_gain, f.cap_min_gain);
            a.guard_min_gain = std::min(a.guard_min_gain, f.guard_gain);
            a.lim_active += f.limiter_active_samples;
            a.clamped += f.clamped_samples;
        }
        engine::MeterFrame mf;
        while (e.pop_meter(mf)) {
        } // live views only
    };

    const uint64_t total = frames + static_cast<uint64_t>(engine_latency);
    uint64_t t = 0;        // engine frames processed
    uint64_t consumed = 0; // input frames read
    while (t < total) {
        const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(block, total - t));
        std::size_t got = 0;
        if (consumed < frames) {
            const std::size_t want = static_cast<std::size_t>(std::min<uint64_t>(n, frames - consumed));
            got = read(in_dst.data(), want);
            if (got != want)
                throw RenderError("the input ended after " + std::to_string(consumed + got) + " of " +
                                  std::to_string(frames) + " frames");
            consumed += got;
        }
        for (auto& v : ins) std::fill(v.begin() + static_cast<std::ptrdiff_t>(got), v.end(), 0.0f);
        e.process(static_cast<uint32_t>(n), in_ptrs.data(), static_cast<int>(in_ptrs.size()), out_ptrs.data(),
                  static_cast<int>(out_ptrs.size()));
        // Engine frame k of musician m is input frame k - latency_m: keep [latency_m, latency_m + frames).
        for (std::size_t m = 0; m < n_mus; ++m) {
            Accum& a = acc[m];
            const uint64_t lat = static_cast<uint64_t>(a.latency);
            const uint64_t lo = std::max(t, lat);
            const uint64_t hi = std::min<uint64_t>(t + n, lat + frames);
            if (lo >= hi) continue;
            const std::size_t off = static_cast<std::size_t>(lo - t);
            const std::size_t cnt = static_cast<std::size_t>(hi - lo);
            const int ch = cfg.musicians[m].channels();
            const float* p[2] = {nullptr, nullptr};
            for (int c = 0; c < ch; ++c) {
                p[c] = out_ptrs[static_cast<std::size_t>(a.out_slot[c])] + off;
                a.peak[c].process(p[c], cnt);
            }
            write(m, p, ch, cnt);
        }
        drain();
        t += n;
        if (progress) progress(std::min(t, frames), frames);
    }
    e.flush_dose();
    drain();
    e.poll();

    RenderReport r;
    r.sample_rate = fs;
    r.frames = frames;
    r.duration_s = static_cast<double>(frames) / fs;
    r.latency_frames = engine_latency;
    r.block = opt.block;
    r.bad_input_blocks = e.counters().bad_input_blocks.load();
    r.dose_frames_dropped = e.counters().dose_dropped.load();
    r.config_file = cfg.source;
    const double inf = std::numeric_limits<double>::infinity();
    for (std::size_t m = 0; m < n_mus; ++m) {
        const config::Musician& mu = cfg.musicians[m];
        Accum& a = acc[m];
        MusicianReport mr;
        mr.id = mu.id;
        mr.name = mu.name.empty() ? mu.id : mu.name;
        mr.channels = mu.channels();
        mr.output_file = mu.id + ".wav";
        mr.reference = mu.calibration.reference;
        const double off = config::calibration_offset_db(mu.calibration);
        mr.calibration_offset_db = off;
        mr.ceiling_dbfs = config::ceiling_dbfs(mu);
        mr.ceiling_db_spl = mu.protection.peak_ceiling_db_spl;
        mr.latency_frames = a.latency;
        mr.laeq_dba = mr.lafmax_dba = mr.lcpeak_dbc = mr.true_peak_db_spl = mr.sample_peak_dbfs = -inf;
        for (int ear = 0; ear < 2; ++ear) {
            const int c = mr.channels == 2 ? ear : 0; // mono: both ears hear channel 0
            if (ear == c) a.peak[c].finish();
            EarReport& er = mr.ears[ear];
            const double ms = frames ? a.sum_sq_a[c] / static_cast<double>(frames) : 0.0;
            er.laeq_dba = floor_silence(dsp::power_to_db(ms)) + off;
            er.lafmax_dba = floor_silence(dsp::power_to_db(a.laf_max_ms[c])) + off;
            er.lcpeak_dbc = floor_silence(dsp::gain_to_db(a.c_peak[c])) + off;
            er.true_peak_db_spl =
                floor_silence(dsp::gain_to_db(static_cast<double>(a.peak[c].true_peak()))) + off;
            er.sample_peak_dbfs =
                floor_silence(dsp::gain_to_db(static_cast<double>(a.peak[c].sample_peak())));
            mr.laeq_dba = std::max(mr.laeq_dba, er.laeq_dba); // the louder ear (SPEC §3)
            mr.lafmax_dba = std::max(mr.lafmax_dba, er.lafmax_dba);
            mr.lcpeak_dbc = std::max(mr.lcpeak_dbc, er.lcpeak_dbc);
            mr.true_peak_db_spl = std::max(mr.true_peak_db_spl, er.true_peak_db_spl);
            mr.sample_peak_dbfs = std::max(mr.sample_peak_dbfs, er.sample_peak_dbfs);
        }
        mr.limiter_max_gain_reduction_db =
            a.lim_min_gain < 1.0f ? -dsp::gain_to_db(static_cast<double>(a.lim_min_gain)) : 0.0;
        mr.limiter_active_s = static_cast<double>(a.lim_active) / fs;
        mr.clamped_samples = a.clamped;
        mr.has_cap = mu.protection.max_laeq_1s_dba.has_value();
        mr.cap_dba = mr.has_cap ? *mu.protection.max_laeq_1s_dba : 0.0;
        mr.cap_max_gain_reduction_db =
            a.cap_min_gain < 1.0f ? -dsp::gain_to_db(static_cast<double>(a.cap_min_gain)) : 0.0;
        mr.guard_max_attenuation_db =
            a.guard_min_gain < 1.0f ? -dsp::gain_to_db(static_cast<double>(a.guard_min_gain)) : 0.0;
        mr.seconds = std::move(a.seconds);
        {
            DoseReport& d = mr.dose;
            const double allowance =
                cfg.dosimetry.who_mode == 2 ? dosimetry::who_mode2_pa2h : dosimetry::who_mode1_pa2h;
            d.niosh_pct = a.dose.niosh_pct();
            d.osha_pct = a.dose.osha_pct();
            d.osha_action_pct = a.dose.osha_action_pct();
            d.eu_lex8h_dba = a.dose.eu_lex8h_dba();
            d.who_mode = cfg.dosimetry.who_mode;
            d.who_weekly_pct = a.dose.who_pct(allowance);
            d.pa2h = a.dose.pa2h();
            d.laeq_dba = a.dose.laeq_dba();
            d.lcpeak_max_dbc = a.dose.lcpeak_max_dbc();
            d.has_ambient = a.ambient_key >= 0;
            if (d.has_ambient) {
                d.ambient_input = mu.ambient->input;
                d.isolation_db = a.isolation_db;
                d.leak_laeq_dba = dosimetry::level_db(a.leak_e / a.dose.seconds());
                d.stage_laeq_dba = dosimetry::level_db(a.stage_e / a.dose.seconds());
            }
            // If the exposure went on at the file's level (its last second may be a fade or silence).
            d.niosh_seconds_left =
                dosimetry::seconds_to_full(d.niosh_pct, dosimetry::niosh_allowed_h(d.laeq_dba));
        }
        r.musicians.push_back(std::move(mr));
    }
    return r;
}

} // namespace

BufferRender render_buffers(const config::Config& cfg, double sample_rate,
                            const std::vector<std::vector<float>>& inputs, const RenderOptions& opt) {
    if (inputs.size() != cfg.inputs.size())
        throw RenderError("got " + std::to_string(inputs.size()) + " input signals but the config has " +
                          std::to_string(cfg.inputs.size()) + " inputs");
    const std::size_t frames = inputs.empty() ? 0 : inputs[0].size();
    for (const auto& v : inputs)
        if (v.size() != frames) throw RenderError("input signals of different lengths");
    BufferRender out;
    out.outputs.resize(cfg.musicians.size());
    for (std::size_t m = 0; m < cfg.musicians.size(); ++m)
        out.outputs[m].assign(static_cast<std::size_t>(cfg.musicians[m].channels()), std::vector<float>{});
    std::size_t pos = 0;
    const ReadFn read = [&](float* const* dst, std::size_t n) {
        for (std::size_t i = 0; i < inputs.size(); ++i)
            std::copy_n(inputs[i].begin() + static_cast<std::ptrdiff_t>(pos), n, dst[i]);
        pos += n;
        return n;
    };
    const WriteFn write = [&](std::size_t m, const float* const* ch, int channels, std::size_t n) {
        for (int c = 0; c < channels; ++c) {
            auto& v = out.outputs[m][static_cast<std::size_t>(c)];
            v.insert(v.end(), ch[c], ch[c] + n);
        }
    };
    out.report = run(cfg, sample_rate, frames, opt, read, write, {});
    return out;
}

RenderReport render_file(const config::Config& cfg, const std::string& input_path, const std::string& out_dir,
                         const RenderOptions& opt, const ProgressFn& progress) {
    AudioReader reader(input_path);
    const AudioInfo& info = reader.info();
    if (static_cast<std::size_t>(info.channels) != cfg.inputs.size()) {
        std::string ids;
        for (std::size_t i = 0; i < cfg.inputs.size(); ++i) ids += (i ? ", " : "") + cfg.inputs[i].id;
        throw RenderError(input_path + " has " + std::to_string(info.channels) + " channel" +
                          (info.channels == 1 ? "" : "s") + " but " +
                          (cfg.source.empty() ? std::string("the config") : cfg.source) + " has " +
                          std::to_string(cfg.inputs.size()) + " input" + (cfg.inputs.size() == 1 ? "" : "s") +
                          (ids.empty() ? "" : " (" + ids + ")") +
                          "; channel i of the file feeds the i-th entry of `inputs`");
    }
    if (info.sample_rate != std::floor(info.sample_rate))
        throw RenderError(input_path + ": non-integer sample rate");

    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw RenderError(out_dir + ": cannot create the output directory (" + ec.message() + ")");
    if (!std::filesystem::is_directory(out_dir)) throw RenderError(out_dir + ": not a directory");

    std::vector<std::unique_ptr<AudioWriter>> writers;
    for (const config::Musician& mu : cfg.musicians)
        writers.push_back(
            std::make_unique<AudioWriter>((std::filesystem::path(out_dir) / (mu.id + ".wav")).string(),
                                          mu.channels(), info.sample_rate, info.frames));

    // File I/O in chunks of io_frames (libsndfile passes each call to read()/write() straight to
    // the system): the engine's small blocks are served from and collected into these buffers.
    constexpr std::size_t io_frames = 16384;
    const std::size_t ch = static_cast<std::size_t>(info.channels);
    std::vector<float> ibuf(io_frames * ch);
    std::size_t ipos = 0, iavail = 0; // frames consumed / held in ibuf
    const ReadFn read = [&](float* const* dst, std::size_t n) {
        std::size_t done = 0;
        while (done < n) {
            if (ipos == iavail) { // libsndfile may return short reads of compressed formats
                iavail = reader.read(ibuf.data(), io_frames);
                ipos = 0;
                if (iavail == 0) break;
            }
            const std::size_t k = std::min(n - done, iavail - ipos);
            const float* src = ibuf.data() + ipos * ch;
            for (std::size_t i = 0; i < k; ++i)
                for (std::size_t c = 0; c < ch; ++c) dst[c][done + i] = src[i * ch + c];
            ipos += k;
            done += k;
        }
        return done;
    };
    std::vector<std::vector<float>> obuf(cfg.musicians.size());
    std::vector<std::size_t> ofill(cfg.musicians.size(), 0); // frames held per musician
    for (std::size_t m = 0; m < obuf.size(); ++m)
        obuf[m].resize(io_frames * static_cast<std::size_t>(cfg.musicians[m].channels()));
    auto flush = [&](std::size_t m) {
        writers[m]->write(obuf[m].data(), ofill[m]);
        ofill[m] = 0;
    };
    const WriteFn write = [&](std::size_t m, const float* const* chans, int channels, std::size_t n) {
        const std::size_t nc = static_cast<std::size_t>(channels);
        for (std::size_t done = 0; done < n;) {
            const std::size_t k = std::min(n - done, io_frames - ofill[m]);
            float* o = obuf[m].data() + ofill[m] * nc;
            for (std::size_t i = 0; i < k; ++i)
                for (std::size_t c = 0; c < nc; ++c) o[i * nc + c] = chans[c][done + i];
            ofill[m] += k;
            done += k;
            if (ofill[m] == io_frames) flush(m);
        }
    };
    RenderReport r = run(cfg, info.sample_rate, info.frames, opt, read, write, progress);
    for (std::size_t m = 0; m < writers.size(); ++m) {
        flush(m);
        writers[m]->close();
    }
    r.input_file = input_path;
    return r;
}

} // namespace earshot::render
