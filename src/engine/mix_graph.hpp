// earshot::engine::MixGraph — an immutable topology plus the DSP state of every strip.
// Private to the engine. Built and prepare()d on the control thread; while live, only the RT
// thread touches the DSP state (ramps, limiters, meters, buffers); the topology fields (ids, slots,
// targets, inherit indices) never change after build, so the control thread may read them.
#pragma once

#include "earshot/dsp/gain_ramp.hpp"
#include "earshot/dsp/level_meter.hpp"
#include "earshot/dsp/limiter.hpp"
#include "earshot/dsp/loudness_cap.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace earshot::engine {

struct SendState {
    std::string input_id; // topology
    int in_slot = -1;     // topology
    float target_l = 0;   // gains the ramps head for once the graph is live (linear)
    float target_r = 0;
    int inherit = -1;      // index of the same send in the previous graph's strip, or -1
    bool retiring = false; // removed: ramps to 0, dropped by the next compaction
    dsp::GainRamp gl, gr;  // RT state
};

struct Strip {
    std::string id;   // musician id
    uint32_t key = 0; // stable musician key for frames
    int channels = 2;
    int out_slot[2] = {-1, -1};
    double lookahead_ms = 1; // limiter parameters the strip was prepared with
    double release_ms = 80;
    float ceiling = 1;       // linear
    float master_target = 0; // linear
    uint32_t ramp_samples = 1;
    int inherit = -1; // index of the same musician's strip in the previous graph, or -1
    bool retiring = false;
    bool eardrum = false;       // calibration.reference: eardrum (meters apply the DF correction)
    bool has_cap = false;       // a cap unit runs: protection.max_laeq_1s_dba is set, or cap_releasing
    bool cap_releasing = false; // the cap was removed by a reload: the unit, disabled, lets its gain
                                // return to 1 at its release rate (no jump), then idles (reset)
    double cap_db = 0;          // the cap, digital A-weighted dB (max_laeq_1s_dba - calibration offset)
    std::vector<SendState> sends;

    // RT state
    dsp::GainRamp master;
    dsp::LoudnessCap cap; // after the master (has_cap only)
    dsp::GainRamp guard;  // the dose guard's attenuation, after the cap (daemon: Engine::set_guard)
    dsp::TruePeakLimiter lim;
    dsp::LevelMeter meter[2];
    std::vector<float> buf[2];       // max_block samples each
    std::vector<float> gains;        // max_block master gains
    std::vector<const float*> grp_x; // steady sends of this cycle (sized to sends at build)
    std::vector<float> grp_l, grp_r; // their gains
    std::vector<uint32_t> ramp_idx;  // send indices: ramping ones from the front, steady from the back
    int grp_count = 0;               // steady, audible sends (grp_l/grp_r valid)
    int ramp_count = 0;              // ramping sends
    bool grp_dirty = true;           // targets changed or a ramp ended: recompute the above
    float dose_peak[2] = {0, 0};
    float dose_lim_min = 1;
    uint32_t dose_lim_active = 0;
    uint32_t dose_clamped = 0;
    float meter_peak[2] = {0, 0};
    float meter_lim_min = 1;
    float dose_cap_min = 1;
    float meter_cap_min = 1;
};

/// A calibrated measurement input (stage-level mic), metered for the musicians' ambient leak.
struct AmbientMeter {
    std::string input_id; // topology
    int in_slot = -1;
    uint32_t key = 0;      // measurement key for frames
    int inherit = -1;      // index in the previous graph's ambient list
    dsp::LevelMeter meter; // RT state
};

class MixGraph {
public:
    uint32_t generation = 0;
    std::vector<int> used_inputs;  // input slots read by any send
    std::vector<float> in_scratch; // used_inputs.size() * max_block, for sanitised copies
    std::vector<Strip> strips;
    std::vector<AmbientMeter> ambient;
    int latency = 0; // max limiter latency over strips
    bool has_retiring = false;
    uint32_t max_ramp = 0; // longest ramp in samples (for compaction timing)
};

} // namespace earshot::engine
