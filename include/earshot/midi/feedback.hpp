// earshot::midi feedback — LEDs and motor faders that follow the mix (docs/midi.md).
//
// Feedback is built from a controller's config and its built Mapper: each mapping with
// `feedback: true` whose control can show something becomes a slot (a mute LED, a toggle LED,
// a scene LED, the learn LED, a motor fader), plus one slot per dose LED. update(view) returns
// the MIDI messages for the slots whose state changed since they were last sent; resync(view)
// returns the profile's set-up messages and every slot's state, for a controller that was just
// (re)plugged. The bytes depend on the profile:
//   generic        Note On velocity 127 / 0 or CC value 127 / 0 for LEDs; motor faders get the
//                  gain's position as a CC (7-bit), a CC pair (14-bit, MSB then LSB) or a pitch
//                  bend. Colours collapse to "lit", unless a LedPalette gives values per colour.
//   apc_mini       Akai APC mini (mk1): Note On ch 1, note = pad, velocity = colour: 0 off,
//                  1 green, 2 green blink, 3 red, 4 red blink, 5 yellow, 6 yellow blink; the round
//                  track (64-71, red) and scene (82-89, green) buttons take 0 off / 1 on / 2 blink.
//                  Faders have no motors (no echo).
//   launchpad_mini Novation Launchpad Mini MK1/MK2 (Launchpad S programmer's reference): Note On
//                  ch 1 for the grid (note = 16 * row + column, the round column is column 8) and
//                  CC 104-111 for the top row; velocity = 16 * green + red + flags, green and red
//                  0-3, flags 12 = steady (copy + clear), 8 = flashing (clear). resync() first
//                  sends B0 00 00 (reset), B0 00 01 (X-Y layout) and B0 00 28 (automatic flashing).
//   nanokontrol2   Korg nanoKONTROL2 in CC mode with LED Mode = External: the same CC with 127
//                  (lit) / 0; any colour is "lit". Only the buttons with an LED in the factory
//                  layout can be lit: S 32-39, M 48-55, R 64-71, play 41, stop 42, rewind 43,
//                  fast forward 44, record 45, cycle 46 (not the faders, knobs, track and marker
//                  buttons). Faders have no motors.
// Sources and the values we could not verify are listed in docs/midi.md.
//
// Thread contract: build(), update() and resync() allocate their result [control thread].
// The free functions are pure and [RT-safe].
//
//   auto fb = Feedback::build(cfg, *mapper, dir, errs);
//   for (const MidiMessage& m : fb->update(view)) out.send(m.bytes.data(), m.size);
//   on replug: mapper->reset(); send(fb->resync(view));
#pragma once

#include "earshot/midi/mapping.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace earshot::midi {

/// What an LED should show. Profiles without colours show every value but `off` as "lit".
enum class Led : uint8_t { off, green, green_blink, red, red_blink, amber, amber_blink };
inline constexpr std::size_t led_count = 7;
const char* name(Led l) noexcept;

/// An outgoing short MIDI message (1-3 bytes).
struct MidiMessage {
    std::array<uint8_t, 3> bytes{};
    uint8_t size = 0;

    friend bool operator==(const MidiMessage&, const MidiMessage&) = default;
};

MidiMessage note_on_message(uint8_t channel, uint8_t note, uint8_t velocity) noexcept;
MidiMessage cc_message(uint8_t channel, uint8_t controller, uint8_t value) noexcept;
MidiMessage pitch_bend_message(uint8_t channel, uint16_t value14) noexcept;

// ---------------------------------------------------------------------------------------------
// Pure helpers (profiles and colours)

/// Dose LED colour: green below amber_pct, amber from amber_pct, red from red_pct; off when the
/// dose is unknown (NaN) or negative. [RT-safe]
Led dose_led(double pct, const DoseThresholds& t) noexcept;
/// The same with a warning on top: `momentary` (the 1 s level over the cap or RS2) is red
/// blinking; `notice` (a dose warning just given) blinks the colour (amber when unknown). [RT-safe]
Led dose_led(double pct, const DoseThresholds& t, DoseAlert alert) noexcept;
/// The LED of a switch action's control: off when disengaged; engaged mute = red,
/// talkback and dim = amber, more me = green, panic = red blinking. [RT-safe]
Led switch_led(ActionType t, bool on) noexcept;
/// Whether a nanoKONTROL2 CC (factory layout) is a button with an LED. [RT-safe]
bool nanokontrol2_has_led(uint8_t cc) noexcept;

/// APC mini pad note: row 0 = top (notes 56-63), row 7 = bottom (0-7); column 0-7. [RT-safe]
uint8_t apc_mini_grid_note(int row, int col) noexcept;
/// APC mini velocity for an LED; grid pads (0-63) have colours, the round buttons on/blink.
uint8_t apc_mini_velocity(uint8_t note, Led l) noexcept;
/// Launchpad Mini note: 16 * row + col, row 0 = top, col 8 = the round button on the right.
uint8_t launchpad_grid_note(int row, int col) noexcept;
/// Launchpad Mini velocity: 16 * green + red + (flash ? 8 : 12), red and green clamped to 0-3.
uint8_t launchpad_colour(int red, int green, bool flash) noexcept;
uint8_t launchpad_velocity(Led l) noexcept;

/// The message lighting `l` on the control `s` with a profile; nullopt when that control has
/// no LED the profile can drive. A palette replaces the profile's value. [RT-safe]
std::optional<MidiMessage> led_message(Profile p, const ControlSource& s, Led l,
                                       const LedPalette* palette = nullptr) noexcept;
/// Motor-fader echo of a position in [0, 1] on `s` (cc: 1 message, cc14: MSB then LSB, pitch
/// bend: 1). Returns how many messages were written (0 when the profile has no motor faders).
std::size_t value_messages(Profile p, const ControlSource& s, double position,
                           std::array<MidiMessage, 2>& out) noexcept;
/// Messages a profile needs after plugging in (Launchpad: reset, X-Y layout, automatic flashing).
std::vector<MidiMessage> init_messages(Profile p);

// ---------------------------------------------------------------------------------------------

class Feedback {
public:
    /// Builds the feedback slots; checks dose_leds, the dose thresholds and the palette. On any
    /// error returns nullopt and appends the errors. [control thread; allocates]
    static std::optional<Feedback> build(const ControllerConfig& cfg, const Mapper& mapper,
                                         const Directory& dir, std::vector<BuildError>& errors);

    /// Messages for the slots whose state differs from what was last sent. [control thread]
    std::vector<MidiMessage> update(const MixView& view, bool learning = false);
    /// Set-up messages, then every slot's current state (after a replug). [control thread]
    std::vector<MidiMessage> resync(const MixView& view, bool learning = false);

    std::size_t slot_count() const noexcept { return _slots.size(); }
    Profile profile() const noexcept { return _profile; }

private:
    enum class SlotKind : uint8_t { value, switch_led, scene_led, learn_led, dose_led };
    static constexpr uint16_t unknown = 0xFFFF;

    struct Slot {
        SlotKind kind = SlotKind::switch_led;
        ControlSource source;    // where the LED / fader is
        Curve curve = Curve::db; // value: the fader's curve and range
        double min_db = -60.0;
        double max_db = 0.0;
        Action target;            // the state it shows (musician, input, scene, type)
        uint16_t shown = unknown; // last sent: an Led, or a 7/14-bit position
    };

    Feedback() = default;
    uint16_t desired(const Slot& s, const MixView& view, bool learning) const noexcept;
    void emit(const Slot& s, uint16_t code, std::vector<MidiMessage>& out) const;

    Profile _profile = Profile::generic;
    std::optional<LedPalette> _palette;
    DoseThresholds _dose;
    std::vector<Slot> _slots;
};

} // namespace earshot::midi
