// earshot CLI: the live status view (text) of a daemon status object, shared by `earshot top`,
// `earshot status` and `earshot demo`. Plain ASCII bars, so it reads the same over any SSH link.
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace earshot::cli {

struct ViewOptions {
    int width = 140;                  // terminal columns; lines use at most width - 1
    int height = 0;                   // terminal rows; 0 = every line (no scrolling)
    int scroll = 0;                   // the first body line shown (clamped)
    std::string title;                // first line, left
    std::vector<std::string> notices; // shown under the header, e.g. a staleness warning
};

struct Frame {
    std::vector<std::string> lines; // each at most width - 1 columns, no newline
    int body_first = 0;             // the scroll position used (clamped)
    int body_total = 0;             // body lines in all
    int body_shown = 0;             // body lines on screen
};

/// One screen: the header (title, JACK state; rate, period, latency, xruns, DSP load; panic and
/// dim; `notices`; the column heads) stays at the top, the body (musicians, then warnings)
/// scrolls, and with a height the last line says which part is shown.
///
/// At 120 columns or more, a line per ear: LAeq,1s bar (70..110 dBA), peak dB SPL, limiter gain
/// reduction, the day's NIOSH dose and the WHO weekly dose as bars (0..100 %) and numbers, time
/// left; then a line with the loudness cap's and the dose guard's action and the warnings. Below
/// 120 columns (an 80x24 SSH terminal), one line per musician: both ears' bars, limiter, cap (C)
/// and guard (G) flags, day and week dose bars, time left; the warnings follow the musicians.
Frame render_view(const boost::json::value& status, const ViewOptions& opt);

/// The whole view as text (140 columns, no height limit): `earshot status` and `earshot demo`.
std::string render_status(const boost::json::value& status, const std::string& title);

/// A number from a JSON value (nullptr or not a number: fallback).
double num_or(const boost::json::value* v, double fallback);

/// Columns a UTF-8 string takes (one per code point).
std::size_t text_width(const std::string& s);
/// `s` cut or padded with spaces to exactly `cols` columns, never splitting a UTF-8 sequence.
std::string fit(const std::string& s, std::size_t cols);

} // namespace earshot::cli
