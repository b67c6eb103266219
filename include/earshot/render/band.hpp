// earshot::render band generator — synthetic, musically plausible stems for render, bench, demo and
// tests. Standard library only; deterministic for a seed (bit-identical on every platform: own RNG,
// no <random> distributions), and the same however the output is cut into blocks.
//
// The band plays 120 bpm in 4/4, a 4-bar loop in E minor (Em - C - G - D). Channel i plays the part
// i % 4:
//   0 click   short 1.5 kHz (downbeat) / 1 kHz blips on every beat
//   1 drums   kick (decaying sine sweep down to ~55 Hz) on 1 and 3 (+ a pickup), snare (noise burst +
//             body tone) on 2 and 4, high-passed noise hats on the eighths; an accent every 4th bar
//   2 bass    saw-like (band-limited) notes following the 4-bar line, with envelope and low-pass
//   3 vocal   formant-filtered (vowel) pulse train with vibrato, glides and sung phrases with rests
// Channels >= 4 are further players of the same parts: pitch (transposition / click pitch / drum
// tuning), timing (a few ms late, swing) and level (+-4 dB) vary with the seed and the index.
// Levels: regular peaks around -12..-6 dBFS, accents and fills up to about -3 dBFS; never above -1.
//
// Thread contract: [any thread]; generate() allocates nothing after construction.
//
//   auto band = render::generate_band(4, 48000.0, 48000 * 30, 1);   // 4 stems, 30 s
//   BandGenerator g(8, 96000.0, 7); g.generate(ptrs, 4096);           // streaming
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace earshot::render {

/// The part a band channel plays (channel % 4).
enum class BandPart { click = 0, drums = 1, bass = 2, vocal = 3 };

inline BandPart band_part(int channel) noexcept {
    return static_cast<BandPart>(channel % 4);
}
/// Short name of a channel's part: "click", "drums", "bass", "vocal".
const char* band_part_name(int channel) noexcept;

/// Streaming generator of `channels` stems at fs_hz.
class BandGenerator {
public:
    /// channels >= 1, fs_hz in [8000, 384000]. Throws std::invalid_argument otherwise. [allocates]
    BandGenerator(int channels, double fs_hz, uint32_t seed);
    ~BandGenerator();
    BandGenerator(const BandGenerator&) = delete;
    BandGenerator& operator=(const BandGenerator&) = delete;

    /// Writes the next n frames of every channel: out[c][0..n). [no allocation]
    void generate(float* const* out, std::size_t n) noexcept;
    int channels() const noexcept;

    class Voice; // one channel's player (private to band.cpp)

private:
    std::vector<std::unique_ptr<Voice>> _voices;
};

/// The first `frames` frames of every channel, one vector per channel.
std::vector<std::vector<float>> generate_band(int channels, double fs, std::size_t frames, uint32_t seed);

} // namespace earshot::render
