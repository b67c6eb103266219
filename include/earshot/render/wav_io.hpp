// earshot::render WAV I/O — the only doorway to libsndfile (src/render/wav_io.cpp is the one TU that
// includes <sndfile.h>).
//
// AudioReader opens any file libsndfile reads (WAV/WAVEX/RF64, FLAC, AIFF, CAF, Ogg, ...; any sample
// format) and streams it as float frames, 0 dBFS = amplitude 1.0 (integer formats are normalised;
// float files keep their values, overs included). Long files are read block by block, never whole.
// AudioWriter writes 32-bit float WAV (WAVE_FORMAT_IEEE_FLOAT) of any channel count; when the
// expected length makes the data 4 GiB or more (beyond WAV's 32-bit sizes) it writes RF64 instead.
//
// Errors throw AudioError with a message that names the file and what is wrong ("no such file",
// "not an audio file libsndfile can read", ...).
//
// Thread contract: [control thread]; everything here does file I/O and may throw.
//
//   AudioReader r("band.wav");                      // r.info().channels, .sample_rate, .frames
//   std::vector<float> buf(256 * r.info().channels);
//   while (std::size_t n = r.read(buf.data(), 256)) { ... }   // interleaved frames
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace earshot::render {

class AudioError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct AudioInfo {
    int channels = 0;
    double sample_rate = 0; // Hz
    uint64_t frames = 0;    // length, frames
    std::string format;     // e.g. "WAV (Microsoft), 32 bit float"
};

/// Streams frames of an audio file as interleaved floats.
class AudioReader {
public:
    /// Opens `path`. Throws AudioError (no such file, not audio, no frames info, ...).
    explicit AudioReader(const std::string& path);
    ~AudioReader();
    AudioReader(const AudioReader&) = delete;
    AudioReader& operator=(const AudioReader&) = delete;

    const AudioInfo& info() const noexcept { return _info; }
    const std::string& path() const noexcept { return _path; }
    /// Reads up to `frames` frames into `interleaved` (frames * channels floats). Returns the number
    /// read; 0 at the end. Throws AudioError on a read error.
    std::size_t read(float* interleaved, std::size_t frames);

private:
    void* _sf = nullptr; // SNDFILE*
    std::string _path;
    AudioInfo _info;
};

/// Writes a 32-bit float WAV, frame by frame.
class AudioWriter {
public:
    /// Creates (truncates) `path`. channels >= 1, sample_rate in Hz; expected_frames (0: unknown,
    /// taken as small) picks RF64 over WAV for 4 GiB of data or more. Throws AudioError.
    AudioWriter(const std::string& path, int channels, double sample_rate, uint64_t expected_frames = 0);
    ~AudioWriter();
    AudioWriter(const AudioWriter&) = delete;
    AudioWriter& operator=(const AudioWriter&) = delete;

    /// Appends `frames` interleaved frames. Throws AudioError on a write error (disk full, ...).
    void write(const float* interleaved, std::size_t frames);
    /// Finalises the header and closes the file (the destructor does it too, silently). Throws on error.
    void close();
    int channels() const noexcept { return _channels; }
    uint64_t frames_written() const noexcept { return _written; }

private:
    void* _sf = nullptr; // SNDFILE*
    std::string _path;
    int _channels = 0;
    uint64_t _written = 0;
};

/// Reads a whole file into one vector per channel (tests, small files). Throws AudioError.
std::vector<std::vector<float>> read_audio(const std::string& path, double* sample_rate = nullptr);

/// Writes channels (all the same length) as a float WAV. Throws AudioError.
void write_wav(const std::string& path, const std::vector<std::vector<float>>& channels, double sample_rate);

} // namespace earshot::render
