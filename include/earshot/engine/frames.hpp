// earshot::engine frames and commands — the fixed-size messages that cross the RT boundary.
//
// Every type here is trivially copyable and travels through a boost::lockfree::spsc_queue:
//   commands   control -> RT   (EngineCommand; drained at the top of each cycle, at most 256 per cycle)
//   retire     RT -> control   (MixGraph* replaced by a swap; deleted off the RT thread)
//   dose       RT -> control   (DoseFrame: one per measurement input, then one per musician, per second)
//   meters     RT -> control   (MeterFrame: one per musician every 100 ms, for live views)
#pragma once

#include <cstdint>
#include <type_traits>

namespace earshot::engine {

class MixGraph;

/// Per-ear figures of one dose interval. Digital values: mean squares re amplitude 1.0 and
/// peak amplitudes; add the musician's calibration offset to get dB SPL.
struct EarInterval {
    double sum_sq_a = 0;   // sum of A-weighted squares over the interval
    double laf_max_ms = 0; // max F-weighted A mean square
    double las_max_ms = 0; // max S-weighted A mean square
    double c_peak = 0;     // max |C-weighted sample|
    float sample_peak = 0; // max |output sample|
};

struct DoseFrame {
    uint8_t source = 0;        // 0: a musician's ears; 1: a calibrated measurement input (stage level, key =
                               // Engine::measurement_key)
    uint32_t musician_key = 0; // stable per musician id (Engine::musician_id(key))
    uint32_t generation = 0;   // graph generation that produced the frame
    uint64_t start_sample = 0; // engine sample clock at the start of the interval
    uint32_t samples = 0;      // interval length (fs samples, shorter at a flush)
    uint8_t channels = 0;      // 1 (mono: ears[0] is what both ears hear) or 2
    EarInterval ears[2];
    float limiter_min_gain = 1;          // lowest limiter gain in the interval (linear)
    uint32_t limiter_active_samples = 0; // samples with limiter gain < 1
    uint32_t clamped_samples = 0;        // samples cut by the final safety clamp
    float cap_min_gain = 1;              // lowest loudness-cap gain in the interval (linear)
    float guard_gain = 1;                // dose-guard gain at the end of the interval (linear)
};

struct MeterFrame {
    uint32_t musician_key = 0;
    uint64_t sample = 0;    // engine sample clock at the end of the 100 ms window
    float peak[2] = {0, 0}; // max |output sample| per ear in the window
    float limiter_gain = 1; // lowest limiter gain in the window (linear)
    float master_gain = 0;  // master ramp gain at the end of the window (linear)
    float cap_gain = 1;     // lowest loudness-cap gain in the window (linear)
    float guard_gain = 1;   // dose-guard gain at the end of the window (linear)
};

struct SetSend {
    uint32_t generation; // graph the indices refer to
    uint16_t strip;
    uint16_t send;
    float gain_l; // linear, pan law and mute applied
    float gain_r;
};

struct SetMaster {
    uint32_t generation;
    uint16_t strip;
    float gain;    // linear
    uint32_t ramp; // ramp length in samples, 0 = the strip's (mixer.ramp_ms)
};

struct SetGuard {
    uint32_t generation;
    uint16_t strip;
    float gain;    // linear, <= 1
    uint32_t ramp; // samples
};

struct SwapGraph {
    MixGraph* graph; // ownership passes to the RT side until it comes back on the retire queue
};

struct EngineCommand {
    enum class Kind : uint8_t { set_send, set_master, set_guard, swap_graph } kind;
    union {
        SetSend send;
        SetMaster master;
        SetGuard guard;
        SwapGraph swap;
    };
};

static_assert(std::is_trivially_copyable_v<EngineCommand>);
static_assert(std::is_trivially_copyable_v<DoseFrame>);
static_assert(std::is_trivially_copyable_v<MeterFrame>);

} // namespace earshot::engine
