#include "earshot/dosimetry/exposure_log.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace earshot::dosimetry {

namespace {

constexpr std::size_t columns = 21; // including the checksum

// FNV-1a, 32 bit: detects torn and corrupted lines (not an integrity seal against tampering).
uint32_t fnv1a(const char* p, std::size_t n) {
    uint32_t h = 2166136261u;
    for (std::size_t i = 0; i < n; ++i) {
        h ^= static_cast<unsigned char>(p[i]);
        h *= 16777619u;
    }
    return h;
}

std::string num(double v, int decimals) {
    if (!std::isfinite(v)) return ""; // silence: empty field
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", decimals, v);
    return b;
}

bool parse_num(const std::string& s, double& out) {
    if (s.empty()) {
        out = -std::numeric_limits<double>::infinity();
        return true;
    }
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && std::isfinite(out);
}

void write_all(int fd, const std::string& s, const std::string& what) {
    std::size_t off = 0;
    while (off < s.size()) {
        const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error("write " + what + ": " + std::strerror(errno));
        }
        off += static_cast<std::size_t>(n);
    }
}

void fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

// Opens for append; creates the file with `header` if new; terminates a torn last line.
int open_append(const std::string& path, const std::string& header) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
    struct stat st {};
    ::fstat(fd, &st);
    if (st.st_size == 0) {
        if (!header.empty()) write_all(fd, header + "\n", path);
        fsync_dir(fs::path(path).parent_path().string());
    } else {
        const int rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        char last = '\n';
        if (rfd >= 0) {
            if (::pread(rfd, &last, 1, st.st_size - 1) != 1) last = '\n';
            ::close(rfd);
        }
        if (last != '\n') write_all(fd, "\n", path);
    }
    return fd;
}

std::vector<std::string> split(const std::string& line) {
    std::vector<std::string> f;
    std::size_t a = 0;
    for (;;) {
        const std::size_t b = line.find(',', a);
        f.push_back(line.substr(a, b == std::string::npos ? std::string::npos : b - a));
        if (b == std::string::npos) break;
        a = b + 1;
    }
    return f;
}

// "<body>,<checksum of body>": the one line format of both files.
std::string with_checksum(const std::string& body) {
    char c[16];
    std::snprintf(c, sizeof c, ",%08x", fnv1a(body.data(), body.size()));
    return body + c;
}

// True if the line ends in a valid checksum of everything before its last comma.
bool checksum_ok(const std::string& line) {
    const std::size_t k = line.rfind(',');
    if (k == std::string::npos || line.size() - k != 9) return false;
    char c[16];
    std::snprintf(c, sizeof c, "%08x", fnv1a(line.data(), k));
    return line.compare(k + 1, 8, c) == 0;
}

// Journal line: t_utc,seconds,laeq_l,laeq_r,lafmax,lcpeak,leak,gr,checksum
std::string format_interval(const Interval& iv) {
    std::string s = num(iv.t_utc, 3) + "," + num(iv.seconds, 6) + "," + num(iv.laeq_l, 4) + "," +
                    num(iv.laeq_r, 4) + "," + num(iv.lafmax, 4) + "," + num(iv.lcpeak, 4) + "," +
                    num(iv.leak_dba, 4) + "," + num(iv.limiter_gr_db, 3);
    return with_checksum(s);
}

bool parse_interval(const std::string& line, Interval& iv) {
    if (!checksum_ok(line)) return false;
    const auto f = split(line.substr(0, line.rfind(',')));
    if (f.size() != 8) return false;
    double v[8];
    for (int i = 0; i < 8; ++i)
        if (!parse_num(f[static_cast<std::size_t>(i)], v[i])) return false;
    iv = Interval{v[0], v[1], v[2], v[3], v[4], v[5], v[6], std::isfinite(v[7]) ? v[7] : 0.0};
    return std::isfinite(iv.t_utc) && iv.seconds > 0;
}

} // namespace

const std::string& log_header() {
    static const std::string h =
        "start_utc,local_date,duration_s,laeq_dba,laeq_l_dba,laeq_r_dba,leak_dba,lafmax_dba,lcpeak_dbc,"
        "pa2s,leak_pa2s,niosh_pct,osha_pct,osha_action_pct,who_weekly_pct,limiter_gr_max_db,"
        "niosh_row_pct,osha_row_pct,osha_action_row_pct,musician,checksum";
    return h;
}

std::string format_row(const std::string& id, const LogRow& r) {
    const double whole = std::floor(r.start_utc);
    std::string ts = iso_utc(static_cast<std::time_t>(whole));
    // Milliseconds keep rows from restarts mid-minute distinct: 2026-11-25T06:44:33.250Z
    char ms[8];
    std::snprintf(ms, sizeof ms, ".%03d",
                  static_cast<int>(std::lround((r.start_utc - whole) * 1000.0)) % 1000);
    ts.insert(ts.size() - 1, ms);
    std::string s = ts + "," + r.day.str() + "," + num(r.duration_s, 3) + "," + num(r.laeq_dba, 2) + "," +
                    num(r.laeq_l_dba, 2) + "," + num(r.laeq_r_dba, 2) + "," + num(r.leak_dba, 2) + "," +
                    num(r.lafmax_dba, 2) + "," + num(r.lcpeak_dbc, 2) + "," + num(r.pa2s, 9) + "," +
                    num(r.leak_pa2s, 9) + "," + num(r.niosh_pct, 6) + "," + num(r.osha_pct, 6) + "," +
                    num(r.osha_action_pct, 6) + "," + num(r.who_weekly_pct, 6) + "," +
                    num(r.limiter_gr_max_db, 2) + "," + num(r.niosh_row_pct, 9) + "," +
                    num(r.osha_row_pct, 9) + "," + num(r.osha_action_row_pct, 9) + "," + id;
    return with_checksum(s);
}

bool parse_row(const std::string& line, LogRow& r) {
    if (!checksum_ok(line)) return false;
    const auto f = split(line);
    if (f.size() != columns) return false;
    LogRow x;
    if (!parse_iso_utc(f[0], x.start_utc)) return false;
    if (!Date::parse(f[1], x.day)) return false;
    double* dst[] = {&x.duration_s,         &x.laeq_dba,          &x.laeq_l_dba,    &x.laeq_r_dba,
                     &x.leak_dba,           &x.lafmax_dba,        &x.lcpeak_dbc,    &x.pa2s,
                     &x.leak_pa2s,          &x.niosh_pct,         &x.osha_pct,      &x.osha_action_pct,
                     &x.who_weekly_pct,     &x.limiter_gr_max_db, &x.niosh_row_pct, &x.osha_row_pct,
                     &x.osha_action_row_pct};
    for (std::size_t i = 0; i < 17; ++i)
        if (!parse_num(f[i + 2], *dst[i])) return false;
    for (double* p : {&x.pa2s, &x.leak_pa2s, &x.niosh_pct, &x.osha_pct, &x.osha_action_pct, &x.who_weekly_pct,
                      &x.limiter_gr_max_db, &x.niosh_row_pct, &x.osha_row_pct, &x.osha_action_row_pct})
        if (!std::isfinite(*p)) *p = 0;
    if (!(x.duration_s > 0)) return false;
    r = x;
    return true;
}

ReadResult read_log_file(const std::string& path) {
    ReadResult res;
    std::ifstream f(path, std::ios::binary);
    if (!f) return res;
    std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::size_t a = 0;
    bool first = true;
    while (a < data.size()) {
        const std::size_t b = data.find('\n', a);
        if (b == std::string::npos) { // no newline: a torn last line
            ++res.skipped;
            break;
        }
        const std::string line = data.substr(a, b - a);
        a = b + 1;
        if (first && line == log_header()) {
            first = false;
            continue;
        }
        first = false;
        if (line.empty()) continue;
        LogRow r;
        if (parse_row(line, r))
            res.rows.push_back(r);
        else
            ++res.skipped;
    }
    return res;
}

std::vector<Date> log_days(const std::string& state_dir, const std::string& id) {
    std::vector<Date> days;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(state_dir) / "exposure" / id, ec)) {
        const std::string n = e.path().filename().string();
        Date d;
        if (n.size() == 14 && n.substr(10) == ".csv" && Date::parse(n.substr(0, 10), d)) days.push_back(d);
    }
    std::sort(days.begin(), days.end());
    return days;
}

std::vector<std::string> logged_musicians(const std::string& state_dir) {
    std::vector<std::string> ids;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(state_dir) / "exposure", ec))
        if (e.is_directory()) ids.push_back(e.path().filename().string());
    std::sort(ids.begin(), ids.end());
    return ids;
}

ExposureLog::ExposureLog(std::string state_dir) : _dir(std::move(state_dir)) {}

ExposureLog::~ExposureLog() {
    for (auto& [id, j] : _journals)
        if (j.fd >= 0) {
            ::fsync(j.fd);
            ::close(j.fd);
        }
}

std::string ExposureLog::musician_dir(const std::string& id) const {
    const fs::path p = fs::path(_dir) / "exposure" / id;
    std::error_code ec;
    fs::create_directories(p, ec);
    if (ec) throw std::runtime_error("create " + p.string() + ": " + ec.message());
    return p.string();
}

void ExposureLog::append(const std::string& id, const std::vector<LogRow>& rows) {
    if (rows.empty()) return;
    const std::string dir = musician_dir(id);
    std::size_t i = 0;
    while (i < rows.size()) {
        const Date d = rows[i].day;
        std::string block;
        for (; i < rows.size() && rows[i].day == d; ++i) block += format_row(id, rows[i]) + "\n";
        const std::string path = dir + "/" + d.str() + ".csv";
        const int fd = open_append(path, log_header());
        write_all(fd, block, path); // one write per file: a crash leaves whole rows or a torn tail
        ::fsync(fd);
        ::close(fd);
    }
}

ExposureLog::Journal& ExposureLog::journal_for(const std::string& id) {
    Journal& j = _journals[id];
    if (j.fd < 0) j.fd = open_append(musician_dir(id) + "/journal", "");
    return j;
}

void ExposureLog::journal(const std::string& id, const Interval& iv) {
    Journal& j = journal_for(id);
    write_all(j.fd, format_interval(iv) + "\n", "journal");
    j.unsynced_s += iv.seconds;
    if (j.unsynced_s >= 5.0) {
        ::fdatasync(j.fd);
        j.unsynced_s = 0;
    }
}

void ExposureLog::clear_journal(const std::string& id) {
    Journal& j = journal_for(id);
    if (::ftruncate(j.fd, 0) != 0)
        throw std::runtime_error(std::string("truncate journal: ") + std::strerror(errno));
    ::fdatasync(j.fd);
    j.unsynced_s = 0;
}

void ExposureLog::sync() {
    for (auto& [id, j] : _journals)
        if (j.fd >= 0) ::fdatasync(j.fd);
}

std::size_t ExposureLog::prune(const Date& today, int keep_days) {
    const Date oldest = add_days(today, -std::max(keep_days, 8));
    std::size_t removed = 0;
    for (const std::string& id : logged_musicians(_dir))
        for (const Date& d : log_days(_dir, id)) {
            if (!(d < oldest)) continue;
            std::error_code ec;
            if (fs::remove(fs::path(_dir) / "exposure" / id / (d.str() + ".csv"), ec)) ++removed;
        }
    return removed;
}

ExposureLog::Rebuilt ExposureLog::rebuild(MusicianDose& dose, double now_utc,
                                          std::vector<LogRow>& completed) {
    Rebuilt rb;
    const Date today = dose_day(static_cast<std::time_t>(std::floor(now_utc)), dose.day_start_min());
    const Date first = add_days(today, -8);
    std::vector<LogRow> rows;
    for (const Date& d : log_days(_dir, dose.id())) {
        if (d < first || today < d) continue;
        auto r = read_log_file((fs::path(_dir) / "exposure" / dose.id() / (d.str() + ".csv")).string());
        rb.skipped += r.skipped;
        rows.insert(rows.end(), r.rows.begin(), r.rows.end());
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [](const LogRow& a, const LogRow& b) { return a.start_utc < b.start_utc; });
    double end = -1;
    for (const LogRow& r : rows) {
        dose.replay(r);
        end = std::max(end, r.start_utc + r.duration_s);
        ++rb.rows;
    }
    // The journal holds the minute that had not reached the CSV.
    std::ifstream jf(fs::path(_dir) / "exposure" / dose.id() / "journal");
    std::string line;
    while (std::getline(jf, line)) {
        if (jf.eof()) { // a last line without newline is torn
            ++rb.skipped;
            break;
        }
        Interval iv;
        if (!parse_interval(line, iv)) {
            if (!line.empty()) ++rb.skipped;
            continue;
        }
        if (iv.t_utc + 1e-6 < end) continue; // already in the CSV
        dose.add(iv, completed);
        ++rb.journal_lines;
    }
    return rb;
}

} // namespace earshot::dosimetry
