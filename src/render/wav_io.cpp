// The only TU that includes <sndfile.h> (docs/ARCHITECTURE.md).
#include "earshot/render/wav_io.hpp"

#include <sndfile.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace earshot::render {

namespace {

SNDFILE* handle(void* p) noexcept {
    return static_cast<SNDFILE*>(p);
}

std::string format_name(int format) {
    std::string out;
    SF_FORMAT_INFO fi{};
    fi.format = format & SF_FORMAT_TYPEMASK;
    if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof(fi)) == 0 && fi.name) out = fi.name;
    SF_FORMAT_INFO si{};
    si.format = format & SF_FORMAT_SUBMASK;
    if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &si, sizeof(si)) == 0 && si.name)
        out += (out.empty() ? "" : ", ") + std::string(si.name);
    return out;
}

} // namespace

AudioReader::AudioReader(const std::string& path) : _path(path) {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(st)) throw AudioError(path + ": no such file");
    if (std::filesystem::is_directory(st)) throw AudioError(path + ": is a directory, not an audio file");
    SF_INFO si{};
    SNDFILE* sf = sf_open(path.c_str(), SFM_READ, &si);
    if (!sf) {
        const int err = sf_error(nullptr);
        const std::string why = sf_strerror(nullptr);
        if (err == SF_ERR_UNRECOGNISED_FORMAT || err == SF_ERR_MALFORMED_FILE ||
            err == SF_ERR_UNSUPPORTED_ENCODING)
            throw AudioError(path + ": not an audio file libsndfile can read (" + why + ")");
        throw AudioError(path + ": cannot open (" + why + ")");
    }
    _sf = sf;
    if (si.channels < 1 || si.samplerate < 1) {
        sf_close(sf);
        _sf = nullptr;
        throw AudioError(path + ": the file declares no channels or no sample rate");
    }
    if (si.frames < 0 || si.frames == SF_COUNT_MAX) {
        sf_close(sf);
        _sf = nullptr;
        throw AudioError(path + ": the file's length is unknown (a stream without a frame count)");
    }
    _info.channels = si.channels;
    _info.sample_rate = si.samplerate;
    _info.frames = static_cast<uint64_t>(si.frames);
    _info.format = format_name(si.format);
}

AudioReader::~AudioReader() {
    if (_sf) sf_close(handle(_sf));
}

std::size_t AudioReader::read(float* interleaved, std::size_t frames) {
    if (frames == 0) return 0;
    const sf_count_t n = sf_readf_float(handle(_sf), interleaved, static_cast<sf_count_t>(frames));
    if (n < 0 || (n == 0 && sf_error(handle(_sf)) != SF_ERR_NO_ERROR))
        throw AudioError(_path + ": read error (" + sf_strerror(handle(_sf)) + ")");
    return static_cast<std::size_t>(n);
}

AudioWriter::AudioWriter(const std::string& path, int channels, double sample_rate, uint64_t expected_frames)
    : _path(path), _channels(channels) {
    if (channels < 1) throw AudioError(path + ": cannot write a file with no channels");
    if (!(sample_rate >= 1.0 && sample_rate <= 2147483647.0))
        throw AudioError(path + ": sample rate out of range");
    SF_INFO si{};
    si.channels = channels;
    si.samplerate = static_cast<int>(sample_rate);
    // Plain WAV (32-bit chunk sizes) unless the data may reach 4 GiB: then RF64.
    const uint64_t bytes = expected_frames * static_cast<uint64_t>(channels) * sizeof(float);
    const bool big = bytes >= (uint64_t{1} << 32) - 4096;
    si.format = (big ? SF_FORMAT_RF64 : SF_FORMAT_WAV) | SF_FORMAT_FLOAT;
    SNDFILE* sf = sf_open(path.c_str(), SFM_WRITE, &si);
    if (!sf) throw AudioError(path + ": cannot create (" + std::string(sf_strerror(nullptr)) + ")");
    _sf = sf;
}

AudioWriter::~AudioWriter() {
    if (_sf) sf_close(handle(_sf));
}

void AudioWriter::write(const float* interleaved, std::size_t frames) {
    if (!_sf) throw AudioError(_path + ": write after close");
    if (frames == 0) return;
    const sf_count_t n = sf_writef_float(handle(_sf), interleaved, static_cast<sf_count_t>(frames));
    if (n != static_cast<sf_count_t>(frames))
        throw AudioError(_path + ": write error (" + std::string(sf_strerror(handle(_sf))) + ")");
    _written += frames;
}

void AudioWriter::close() {
    if (!_sf) return;
    sf_write_sync(handle(_sf));
    const int err = sf_error(handle(_sf));
    const std::string why = err ? sf_strerror(handle(_sf)) : "";
    const int rc = sf_close(handle(_sf));
    _sf = nullptr;
    if (err || rc)
        throw AudioError(_path + ": error while closing (" + (why.empty() ? sf_error_number(rc) : why) + ")");
}

std::vector<std::vector<float>> read_audio(const std::string& path, double* sample_rate) {
    AudioReader r(path);
    const auto ch = static_cast<std::size_t>(r.info().channels);
    if (sample_rate) *sample_rate = r.info().sample_rate;
    std::vector<std::vector<float>> out(ch);
    for (auto& c : out) c.reserve(static_cast<std::size_t>(r.info().frames));
    constexpr std::size_t block = 4096;
    std::vector<float> buf(block * ch);
    while (const std::size_t n = r.read(buf.data(), block))
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t c = 0; c < ch; ++c) out[c].push_back(buf[i * ch + c]);
    return out;
}

void write_wav(const std::string& path, const std::vector<std::vector<float>>& channels, double sample_rate) {
    if (channels.empty()) throw AudioError(path + ": cannot write a file with no channels");
    const std::size_t frames = channels[0].size();
    for (const auto& c : channels)
        if (c.size() != frames) throw AudioError(path + ": channels of different lengths");
    AudioWriter w(path, static_cast<int>(channels.size()), sample_rate, frames);
    constexpr std::size_t block = 4096;
    const std::size_t ch = channels.size();
    std::vector<float> buf(block * ch);
    for (std::size_t pos = 0; pos < frames; pos += block) {
        const std::size_t n = std::min(block, frames - pos);
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t c = 0; c < ch; ++c) buf[i * ch + c] = channels[c][pos + i];
        w.write(buf.data(), n);
    }
    w.close();
}

} // namespace earshot::render
