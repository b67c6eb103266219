// earshot::daemon::MixState — the live mix (fader moves from MIDI or the CLI) on top of the config,
// persisted in <state-dir>/mix.json so a restart does not undo the soundcheck (docs/daemon.md).
//
// Every value is kept twice: `live` (what the musician hears) and `base` (the config's value the
// live one was derived from). When a config is (re)loaded, sync() keeps a live value only where the
// config still says what it said when the value was moved; where the config changed, the config
// wins. So an engineer's edit of the YAML takes effect, and a soundcheck survives a reload or a
// restart with an unchanged config.
//
// Thread contract: control thread; allocates; save() does blocking file I/O.
//
//   MixState st; st.load(state_dir + "/mix.json", err);   // at start-up (missing file: empty)
//   st.sync(cfg);                                        // merge with the config
//   config::Config eff = st.effective(cfg);              // what the engine runs
//   st.set_master("drums", -3.0);                        // a fader move; then save()
#pragma once

#include "earshot/config/config.hpp"

#include <map>
#include <string>

namespace earshot::daemon {

struct SendValue {
    double gain_db = -std::numeric_limits<double>::infinity(); // -inf = off
    double pan = 0;
    bool mute = false;
    bool operator==(const SendValue& o) const noexcept;
};

class MixState {
public:
    struct Send {
        SendValue live, base;
    };
    struct Musician {
        double master_live = 0, master_base = 0;
        std::map<std::string, Send> sends; // by input id; every input of the config
    };

    /// Reads a saved state. A missing file is an empty state (true); a corrupt one is reported in
    /// `err` (false) and leaves the state empty.
    bool load(const std::string& path, std::string& err);
    /// Writes the state atomically (temporary file, fsync, rename). False with `err` on failure.
    bool save(const std::string& path, std::string& err) const;

    /// Merges with a config (see above); musicians and inputs the config no longer has are dropped.
    void sync(const config::Config& cfg);
    /// The config with the live mix in place of its `mix` sections.
    config::Config effective(const config::Config& cfg) const;

    /// Live changes (after sync). False for an unknown musician or input.
    bool set_send(const std::string& musician, const std::string& input, const SendValue& v);
    bool set_master(const std::string& musician, double gain_db);
    const Musician* find(const std::string& musician) const;

    /// Whether the state changed since the last save()/load().
    bool dirty() const noexcept { return _dirty; }
    const std::map<std::string, Musician>& musicians() const noexcept { return _m; }

private:
    std::map<std::string, Musician> _m;
    mutable bool _dirty = false;
};

} // namespace earshot::daemon
