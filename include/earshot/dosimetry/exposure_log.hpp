// earshot::dosimetry exposure logs — durable, append-only CSV per musician per dose day (SPEC §4,
// docs/exposure-logs.md).
//
//   <state-dir>/exposure/<musician-id>/<YYYY-MM-DD>.csv   header + one row per minute of audio
//   <state-dir>/exposure/<musician-id>/journal             the open minute, one line per interval
//
// Durability: every row is written with a single write() and fsync()ed; the journal gets one line
// per interval (1 s) and is fsync()ed at least every 5 s of audio, then emptied when its minute is
// in the CSV. After SIGKILL nothing written is lost (the page cache survives the process); after a
// power loss at most the last 5-10 s are. A torn or corrupt line (each row ends in a checksum) is
// skipped by every reader; a file that does not end in a newline gets one before the next append,
// so a torn fragment never glues onto a new row. Old files are never rewritten.
//
// Thread contract: the dosimetry/control thread; blocking file I/O.
#pragma once

#include "earshot/dosimetry/tracker.hpp"

#include <map>
#include <string>
#include <vector>

namespace earshot::dosimetry {

/// The CSV header line (without newline).
const std::string& log_header();
/// One CSV row for r (without newline), ending in its checksum column.
std::string format_row(const std::string& musician_id, const LogRow& r);
/// Parses a row written by format_row. False for a torn, corrupt or foreign line.
bool parse_row(const std::string& line, LogRow& r);

struct ReadResult {
    std::vector<LogRow> rows;
    std::size_t skipped = 0; // lines that were not valid rows (torn, corrupt)
};

/// Reads one log file; missing file gives an empty result.
ReadResult read_log_file(const std::string& path);
/// Days that have a log for musician `id` under state_dir, sorted.
std::vector<Date> log_days(const std::string& state_dir, const std::string& id);
/// Musician ids that have logs under state_dir, sorted.
std::vector<std::string> logged_musicians(const std::string& state_dir);

class ExposureLog {
public:
    explicit ExposureLog(std::string state_dir);
    ~ExposureLog();
    ExposureLog(const ExposureLog&) = delete;
    ExposureLog& operator=(const ExposureLog&) = delete;

    /// Appends completed rows (fsync). Throws std::runtime_error on I/O errors.
    void append(const std::string& musician_id, const std::vector<LogRow>& rows);
    /// Journals one interval of the open row; fsyncs when 5 s of audio are unsynced.
    void journal(const std::string& musician_id, const Interval& iv);
    /// Empties the journal of a musician (its row reached the CSV).
    void clear_journal(const std::string& musician_id);
    /// fsyncs every open journal (shutdown).
    void sync();
    /// Bounded disk use: deletes day files of every musician whose dose day is more than keep_days
    /// before `today` (never the last 8 days, which the rebuild needs). Returns the files removed.
    std::size_t prune(const Date& today, int keep_days);

    /// Rebuilds a musician's dose from the logs: rows of the last 8 dose days before `now`, then the
    /// journal's intervals (replayed with add(), so they reach the CSV with the next row).
    /// Returns the number of rows and journal lines replayed, and skipped lines.
    struct Rebuilt {
        std::size_t rows = 0, journal_lines = 0, skipped = 0;
    };
    Rebuilt rebuild(MusicianDose& dose, double now_utc, std::vector<LogRow>& completed);

    const std::string& state_dir() const noexcept { return _dir; }

private:
    struct Journal {
        int fd = -1;
        double unsynced_s = 0;
    };
    std::string musician_dir(const std::string& id) const;
    Journal& journal_for(const std::string& id);

    std::string _dir;
    std::map<std::string, Journal> _journals;
};

} // namespace earshot::dosimetry
