// earshot::engine::Engine — every musician's chain of SPEC §3, independent of JACK.
//
//   sends (gain, pan, mute; ramped) -> sum -> master (ramped) -> true-peak look-ahead limiter at
//   the ceiling -> final safety clamp -> output; level meters (A/C, F/S, Leq, C peak) on the
//   signal that leaves, per ear.
//
// Threads:
//  - control thread: apply_config(), set_send(), set_master(), poll(), pop_*(). Builds MixGraphs
//    (prepare()d strips, limiters, meters) off the RT thread and queues them; deletes retired ones.
//  - RT thread (JACK process callback, render loop, bench): process() only. It never allocates,
//    locks, logs or makes system calls; commands arrive on a fixed-size SPSC queue and frames leave
//    on others (frames.hpp).
//
// Inputs and outputs are addressed by *slots*: each input id and each musician output channel gets
// a slot that stays the same across reloads (input_slot(), output_slot()); the JACK backend maps
// ports to slots. A slot that is absent (nullptr, or beyond the arrays given) is silence.
//
// Start-up and new musicians fade in from silence over mixer.startup_ramp_ms; fader, pan and mute
// changes ramp over mixer.ramp_ms; removed sends and musicians fade out before they disappear.
//
//   Engine e(48000, 256);
//   e.apply_config(cfg);                                 // [control] builds + queues graph
//   e.process(256, in_ptrs, n_in, out_ptrs, n_out);      // [RT]
//   e.poll(); DoseFrame f; while (e.pop_dose(f)) ...;    // [control]
#pragma once

#include "earshot/config/config.hpp"
#include "earshot/engine/frames.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace earshot::engine {

inline constexpr int max_input_slots = 512;
inline constexpr int max_output_slots = 256;

enum class StartMode {
    fade_in,   // outputs start silent and ramp up (live: start-up, reconnect) — the default
    immediate, // gains start at their targets (offline render of a file that starts mid-show)
};

/// Counters, readable from any thread.
struct EngineCounters {
    std::atomic<uint64_t> cycles{0};           // process() calls
    std::atomic<uint64_t> samples{0};          // engine sample clock
    std::atomic<uint64_t> commands_dropped{0}; // control -> RT queue full (control side)
    std::atomic<uint64_t> stale_commands{0};   // commands for a graph that was already replaced
    std::atomic<uint64_t> dose_dropped{0};     // RT -> control dose queue full
    std::atomic<uint64_t> meters_dropped{0};   // RT -> control meter queue full
    std::atomic<uint64_t> bad_input_blocks{0}; // input blocks that carried NaN/Inf (silenced)
    std::atomic<uint64_t> clamped_samples{0};  // samples cut by the final safety clamp
    std::atomic<uint32_t> live_generation{0};  // graph generation running on the RT side
};

class Engine {
public:
    /// [control] fs in Hz (8 k .. 384 k), max_block = the largest nframes process() will see
    /// (larger calls are split).
    Engine(double fs_hz, uint32_t max_block);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    /// [control] Builds a graph for cfg and queues it. Musicians and sends that already exist keep
    /// their running state and ramp to the new values; new ones fade in (or start at their values
    /// with StartMode::immediate on the very first config); removed ones fade out.
    /// Returns false if the command queue is full (nothing changes then).
    bool apply_config(const config::Config& cfg, StartMode mode = StartMode::fade_in);

    /// [control] Moves a send (dB, -inf = off; pan -1..1; mute). False: unknown ids or queue full.
    /// Like set_master(), the value is also kept in the engine's copy of the config, so a later
    /// compaction (which rebuilds the graph from that copy) keeps it.
    bool set_send(const std::string& musician, const std::string& input, double gain_db, double pan,
                  bool mute);
    /// [control] Moves a musician's master (dB, -inf = off) over ramp_samples (0 = mixer.ramp_ms;
    /// e.g. one period for a panic).
    bool set_master(const std::string& musician, double gain_db, uint32_t ramp_samples = 0);

    /// [control] The dose guard's attenuation of a musician's mix (dB <= 0), reached linearly over
    /// ramp_samples (the guard moves slowly: docs/protection.md). It sits after the loudness cap
    /// and before the limiter, and survives reloads. False: unknown musician or queue full.
    bool set_guard(const std::string& musician, double gain_db, uint32_t ramp_samples);

    /// [control] Housekeeping: deletes retired graphs, drops faded-out sends and musicians.
    void poll();

    /// [control] Frames produced by the RT side, oldest first.
    bool pop_dose(DoseFrame& f) noexcept;
    bool pop_meter(MeterFrame& f) noexcept;

    /// [RT] Runs every musician's chain for nframes. in[i] is input slot i (n_in of them), out[j]
    /// output slot j (n_out). Null or missing slots are silence / skipped.
    void process(uint32_t nframes, const float* const* in, int n_in, float* const* out, int n_out) noexcept;
    /// [RT] Emits the open (partial) dose interval of every musician, e.g. at the end of a render.
    void flush_dose() noexcept;

    // [control] Lookups against the newest config.
    int input_slot(const std::string& input_id) const;
    int output_slot(const std::string& musician_id, int channel) const;
    int input_slot_count() const noexcept { return _next_in_slot; }
    int output_slot_count() const noexcept { return _next_out_slot; }
    /// Musician id for a frame's musician_key ("" if unknown).
    std::string musician_id(uint32_t key) const;
    uint32_t musician_key(const std::string& musician_id) const;
    /// Key of the dose frames (source 1) of a measurement input (UINT32_MAX if none).
    uint32_t measurement_key(const std::string& input_id) const;

    double sample_rate() const noexcept { return _fs; }
    uint32_t max_block() const noexcept { return _max_block; }
    /// Frames of delay from input to output (the limiter's look-ahead; the largest over musicians).
    int latency_frames() const noexcept { return _latency.load(std::memory_order_relaxed); }
    /// [control] Frames of delay of one musician's outputs in the newest graph: the look-ahead of
    /// the limiter that actually runs (a running strip keeps its delay line when a reload changes
    /// lookahead_ms). -1 for an unknown musician.
    int latency_frames(const std::string& musician_id) const;
    const EngineCounters& counters() const noexcept { return _counters; }
    /// Samples per dose interval (1 s).
    uint32_t dose_interval() const noexcept { return _dose_len; }

private:
    struct Queues;
    struct Rt;
    struct Control;

    bool push_command(const EngineCommand& c);
    int strip_index(const std::string& musician) const; // live strip in the newest graph, or -1
    void remember_send(const std::string& musician, const std::string& input, double gain_db, double pan,
                       bool mute);
    void process_chunk(uint32_t n, const float* const* in, int n_in, float* const* out, int n_out) noexcept;
    void swap_rt(MixGraph* g) noexcept;

    double _fs;
    uint32_t _max_block;
    uint32_t _dose_len;
    uint32_t _meter_len;
    std::unique_ptr<Queues> _q;
    std::unique_ptr<Rt> _rt;       // data only accessed from the RT thread
    std::unique_ptr<Control> _ctl; // data only accessed from the control thread
    int _next_in_slot = 0, _next_out_slot = 0;
    std::atomic<int> _latency{0};
    std::atomic<uint64_t> _swap_clock{0}; // RT: engine clock at the last swap
    EngineCounters _counters;
};

} // namespace earshot::engine
