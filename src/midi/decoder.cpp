// earshot::midi decoder: see include/earshot/midi/decoder.hpp for the contract and docs/midi.md
// for the counters.
#include "earshot/midi/decoder.hpp"

namespace earshot::midi {

namespace {

// The counters in one fixed order, for publishing them as atomics and for operator+=.
constexpr std::array<uint64_t DecoderStats::*, 13> stat_fields = {
    &DecoderStats::bytes,           &DecoderStats::events,        &DecoderStats::overflow,
    &DecoderStats::realtime,        &DecoderStats::sysex,         &DecoderStats::sysex_unterminated,
    &DecoderStats::truncated,       &DecoderStats::system_common, &DecoderStats::stray_data,
    &DecoderStats::undefined,       &DecoderStats::message_bytes, &DecoderStats::sysex_bytes,
    &DecoderStats::truncated_bytes,
};

// Data bytes after a channel voice status byte: 1 for Program Change and Channel Pressure.
constexpr uint8_t voice_data_bytes(uint8_t status) noexcept {
    const uint8_t hi = status & 0xF0;
    return (hi == 0xC0 || hi == 0xD0) ? 1 : 2;
}

} // namespace

const char* kind_name(EventKind k) noexcept {
    switch (k) {
    case EventKind::none:
        return "none";
    case EventKind::note_off:
        return "note_off";
    case EventKind::note_on:
        return "note_on";
    case EventKind::poly_aftertouch:
        return "poly_aftertouch";
    case EventKind::cc:
        return "cc";
    case EventKind::program:
        return "program";
    case EventKind::channel_aftertouch:
        return "channel_aftertouch";
    case EventKind::pitch_bend:
        return "pitch_bend";
    }
    return "?";
}

DecoderStats& DecoderStats::operator+=(const DecoderStats& o) noexcept {
    for (auto f : stat_fields) this->*f += o.*f;
    return *this;
}

static_assert(stat_fields.size() == 13, "keep Decoder::n_fields in step");

bool Decoder::feed_byte(uint8_t b, uint64_t time_us, MidiEvent& out) noexcept {
    ++_stats.bytes;

    // Real-time bytes may appear anywhere, even between the bytes of another message or inside
    // SysEx, and change nothing.
    if (b >= 0xF8) {
        ++_stats.realtime;
        return false;
    }

    if (_in_sysex) {
        if (b < 0x80) {
            ++_stats.sysex_bytes;
            return false;
        }
        ++_stats.sysex;
        _in_sysex = false;
        if (b == 0xF7) { // the proper end
            ++_stats.sysex_bytes;
            return false;
        }
        ++_stats.sysex_unterminated; // any other status ends it too, and is then decoded itself
    }

    if (b >= 0x80) {
        // A status byte: whatever message was in progress is cut short.
        if (_pending > 0) {
            ++_stats.truncated;
            _stats.truncated_bytes += _pending;
        }
        _pending = 0;
        _have = 0;
        if (b < 0xF0) { // channel voice: becomes the running status
            _status = b;
            _expected = voice_data_bytes(b);
            _pending = 1;
            return false;
        }
        _status = 0; // system exclusive and system common messages cancel running status
        switch (b) {
        case 0xF0:
            _in_sysex = true;
            ++_stats.sysex_bytes;
            return false;
        case 0xF1: // MTC quarter frame
        case 0xF3: // song select
            _status = b;
            _expected = 1;
            _pending = 1;
            return false;
        case 0xF2: // song position pointer
            _status = b;
            _expected = 2;
            _pending = 1;
            return false;
        case 0xF6: // tune request: complete in itself
            ++_stats.system_common;
            ++_stats.message_bytes;
            return false;
        default: // 0xF4, 0xF5 (undefined) and 0xF7 with no SysEx open
            ++_stats.undefined;
            return false;
        }
    }

    // A data byte.
    if (_status == 0) {
        ++_stats.stray_data;
        return false;
    }
    _data[_have++] = b;
    ++_pending;
    if (_have < _expected) return false;

    _stats.message_bytes += _pending;
    _pending = 0;
    _have = 0;
    if (_status >= 0xF0) { // a system common message: ignored, and no running status after it
        ++_stats.system_common;
        _status = 0;
        return false;
    }

    out = MidiEvent{};
    out.time_us = time_us;
    out.channel = _status & 0x0F;
    out.source = _source;
    switch (_status & 0xF0) {
    case 0x80:
        out.kind = EventKind::note_off;
        out.number = _data[0];
        out.value = _data[1];
        break;
    case 0x90:
        out.kind = _data[1] == 0 ? EventKind::note_off : EventKind::note_on;
        out.number = _data[0];
        out.value = _data[1];
        break;
    case 0xA0:
        out.kind = EventKind::poly_aftertouch;
        out.number = _data[0];
        out.value = _data[1];
        break;
    case 0xB0:
        out.kind = EventKind::cc;
        out.number = _data[0];
        out.value = _data[1];
        break;
    case 0xC0:
        out.kind = EventKind::program;
        out.number = _data[0];
        break;
    case 0xD0:
        out.kind = EventKind::channel_aftertouch;
        out.value = _data[0];
        break;
    default: // 0xE0
        out.kind = EventKind::pitch_bend;
        out.value = static_cast<uint16_t>(_data[0] | (_data[1] << 7));
        break;
    }
    ++_stats.events;
    return true;
}

void Decoder::end_message() noexcept {
    if (_in_sysex) {
        ++_stats.sysex;
        ++_stats.sysex_unterminated;
        _in_sysex = false;
    }
    if (_pending > 0) {
        ++_stats.truncated;
        _stats.truncated_bytes += _pending;
    }
    _pending = 0;
    _have = 0;
    _status = 0;
}

void Decoder::finish() noexcept {
    end_message();
    publish();
}

void Decoder::publish() noexcept {
    for (std::size_t i = 0; i < n_fields; ++i)
        _shared[i].store(_stats.*stat_fields[i], std::memory_order_relaxed);
}

DecoderStats Decoder::shared_stats() const noexcept {
    DecoderStats s;
    for (std::size_t i = 0; i < n_fields; ++i) s.*stat_fields[i] = _shared[i].load(std::memory_order_relaxed);
    return s;
}

DecodedMessage decode_message(const uint8_t* data, std::size_t size, uint64_t time_us,
                              uint8_t source) noexcept {
    DecodedMessage m;
    Decoder dec(source);
    if (data != nullptr) {
        MidiEvent e;
        for (std::size_t i = 0; i < size; ++i) {
            if (!dec.feed_byte(data[i], time_us, e)) continue;
            if (m.count < m.events.size())
                m.events[m.count++] = e;
            else
                ++m.stats.overflow;
        }
    }
    dec.finish();
    const uint64_t overflow = m.stats.overflow;
    m.stats = dec.stats();
    m.stats.overflow = overflow;
    return m;
}

} // namespace earshot::midi
