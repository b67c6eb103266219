// earshot CLI: the live status view (text) of a daemon status object.
#pragma once

#include <boost/json/value.hpp>

#include <string>

namespace earshot::cli {

/// One frame: a header (`title`, the JACK server and state, rate/period/latency/xruns/DSP), then a
/// line per musician and ear: LAeq,1s bar (70..110 dBA), peak dB SPL, limiter gain reduction, the
/// day's NIOSH dose, the WHO weekly dose, time left; then dim/panic notices.
std::string render_status(const boost::json::value& status, const std::string& title);

/// A number from a JSON value (nullptr or not a number: fallback).
double num_or(const boost::json::value* v, double fallback);

} // namespace earshot::cli
