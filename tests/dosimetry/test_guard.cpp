// Dose budget guard (issue 7): the highest steady level for a budget (NIOSH daily, WHO weekly),
// the controller (3-hour shows: steady, songs and breaks, louder and quieter halves, sets, end at or
// below the budget; the attenuation never moves faster than the rate nor deeper than the depth; few
// changes of direction; the over-budget warning once per episode; depth saturation; warn mode;
// engineer suspension; the stage leak; the saved state), and the dose/momentary warnings (once per
// crossing, in order, re-arm with hysteresis, every further 100 %, bounded work, hold-off).
// `test_dosimetry "[.figures]"` prints the figures in docs/protection.md.
#include "earshot/dosimetry/dose.hpp"
#include "earshot/dosimetry/guard.hpp"
#include "earshot/dosimetry/warnings.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace earshot::dosimetry;

namespace {
constexpr double inf = std::numeric_limits<double>::infinity();

struct Show {
    double niosh_pct = 0;      // the day's NIOSH dose at the end
    double who_pct = 0;        // the weekly dose at the end (% of 1.6 Pa^2 h)
    double max_up = 0;         // largest attenuation increase in one update, dB
    double max_down = 0;       // largest attenuation decrease in one update while planning, dB
    double max_atten = 0;      // dB
    double final_atten = 0;    // dB
    int reversals = 0;         // changes of direction of the attenuation while planning
    int announced = 0;         // over-budget episodes opened (over_budget_started())
    std::vector<double> atten; // per second
};

// Plays a show of `seconds` (1 s intervals): the mix would be level(t) dBA at the ear without the
// guard; the engine applies the guard's last output, so the musician hears level(t) - atten.
// "While planning" = while seconds_left > 0 (at the planned end itself nothing is planned any more
// and the guard lets go at the rate).
Show play(DoseGuard& g, const std::function<double(double)>& level, double seconds, double niosh0 = 0.0,
          double week0_pa2h = 0.0, double leak_dba = -inf,
          const std::function<void(int, DoseGuard&)>& at = {}) {
    Show s;
    DoseTotals day;
    double atten = g.attenuation_db(), week = week0_pa2h, dir = 0.0;
    const int n = static_cast<int>(std::lround(seconds));
    for (int t = 0; t < n; ++t) {
        if (at) at(t, g);
        const double lv = level(t);
        const double mix = lv == -inf ? -inf : lv - atten;
        const double heard = energy_sum_db(mix, leak_dba);
        day.add(heard, -inf, 1.0);
        week += pa2(heard) / 3600.0;
        GuardInput in;
        in.seconds = 1.0;
        in.level_dba = mix;
        in.leak_dba = leak_dba;
        in.niosh_pct = niosh0 + day.niosh_pct();
        in.week_pa2h = week;
        in.seconds_left = seconds - (t + 1);
        const double a = g.update(in);
        const double d = a - atten;
        s.max_up = std::max(s.max_up, d);
        if (in.seconds_left > 0) {
            s.max_down = std::max(s.max_down, -d);
            if (std::fabs(d) > 1e-9) {
                if (dir != 0.0 && (d > 0.0) != (dir > 0.0)) ++s.reversals;
                dir = d;
            }
        }
        if (g.over_budget_started()) ++s.announced;
        atten = a;
        s.max_atten = std::max(s.max_atten, a);
        s.atten.push_back(a);
    }
    s.niosh_pct = niosh0 + day.niosh_pct();
    s.who_pct = 100.0 * week / who_mode1_pa2h;
    s.final_atten = atten;
    return s;
}

// The NIOSH dose of a show heard with a fixed attenuation throughout (an oracle that knows the show).
double niosh_with(const std::function<double(double)>& level, double seconds, double atten_db) {
    DoseTotals d;
    for (int t = 0; t < static_cast<int>(seconds); ++t) {
        const double lv = level(t);
        d.add(lv == -inf ? -inf : lv - atten_db, -inf, 1.0);
    }
    return d.niosh_pct();
}

// The least NIOSH dose any guard limited to `rate` and `depth` could reach on a show: the
// attenuation rising at the rate from 0 to the depth at once, and staying there.
double niosh_floor(const std::function<double(double)>& level, double seconds, double rate, double depth) {
    DoseTotals d;
    for (int t = 0; t < static_cast<int>(seconds); ++t) {
        const double lv = level(t);
        d.add(lv == -inf ? -inf : lv - std::min(depth, rate * t), -inf, 1.0);
    }
    return d.niosh_pct();
}

// Songs of ~98 dBA (a new phrase level, normal with sd 3 dB, every 20 s) of 230 s with 40 s gaps
// at 72 dBA: the audit's "songs and gaps" show.
std::vector<double> songs_230_40(double seconds) {
    std::mt19937 rng(1);
    std::normal_distribution<double> n(0, 3);
    std::vector<double> lv(static_cast<std::size_t>(seconds));
    double cur = 98;
    for (std::size_t t = 0; t < lv.size(); ++t) {
        if (t % 20 == 0) cur = 98 + n(rng);
        lv[t] = t % 270 < 230 ? cur : 72;
    }
    return lv;
}
GuardSettings limit(double depth_db = 12.0) {
    GuardSettings s;
    s.mode = GuardMode::limit;
    s.depth_db = depth_db;
    return s;
}
} // namespace

TEST_CASE("guard: highest steady level for a NIOSH daily budget", "[dosimetry][guard]") {
    CHECK(niosh_level_for(0, 15 * 60) == Approx(100.0).margin(1e-9)); // 100 dBA for 15 min = 100 %
    CHECK(niosh_level_for(0, 8 * 3600) == Approx(85.0).margin(1e-9));
    CHECK(niosh_level_for(50, 8 * 3600) == Approx(82.0).margin(1e-9)); // 82 dBA x 8 h = 50 % (§7.1)
    CHECK(niosh_level_for(0, 3600) == Approx(94.0).margin(1e-9));
    CHECK(niosh_level_for(0, 3 * 3600) == Approx(85.0 + 3.0 * std::log2(8.0 / 3.0)).margin(1e-9));
    CHECK(niosh_level_for(75, 3600, 200) == Approx(94.0 + 3.0 * std::log2(1.25)).margin(1e-9));
    CHECK(niosh_level_for(100, 3600) == -inf); // used up
    CHECK(niosh_level_for(140, 3600) == -inf);
    CHECK(niosh_level_for(10, 0) == inf); // no time left
    CHECK(niosh_level_for(10, 3600, inf) == inf);
    CHECK(niosh_level_for(std::nan(""), 3600) == -inf);
    // The level is exactly the one whose projection lands on the budget.
    for (double used : {0.0, 12.5, 60.0, 99.0})
        for (double t : {60.0, 1800.0, 10800.0})
            CHECK(niosh_projected_pct(used, niosh_level_for(used, t), t) == Approx(100.0).epsilon(1e-12));
    CHECK(niosh_projected_pct(20, -inf, 3600) == 20.0);
    CHECK(niosh_projected_pct(0, 100, 2 * 3600) == Approx(800.0)); // §7.1
}

TEST_CASE("guard: highest steady level for a WHO weekly budget", "[dosimetry][guard]") {
    CHECK(who_level_for(0, 40 * 3600) == Approx(80.0).margin(1e-9)); // 1.6 Pa^2 h = 80 dBA x 40 h
    CHECK(who_level_for(0, 24 * 60) == Approx(100.0).margin(1e-9));  // 100 dBA for 24 min (§7.4)
    CHECK(who_level_for(0, 4 * 3600) == Approx(90.0).margin(1e-9));  // 90 dBA for 4 h
    CHECK(who_level_for(0, 40 * 3600, who_mode2_pa2h) == Approx(75.0).margin(1e-9));
    CHECK(who_level_for(0.8, 4 * 3600) == Approx(90.0 - 10 * std::log10(2.0)).margin(1e-9)); // half left
    CHECK(who_level_for(1.6, 3600) == -inf);
    CHECK(who_level_for(1.0, 0) == inf);
    CHECK(who_level_for(1.6, 3600, who_mode1_pa2h, 150) == Approx(level_db(0.8)).margin(1e-9));
    CHECK(who_projected_pct(0, 100, 24 * 60) == Approx(100.0).epsilon(1e-12));
    CHECK(who_projected_pct(0, 94, 3600) == Approx(62.80).margin(0.01)); // §7.4
    for (double e : {0.0, 0.4, 1.5})
        CHECK(who_projected_pct(e, who_level_for(e, 7200), 7200) == Approx(100.0).epsilon(1e-12));
}

TEST_CASE("guard: a 3-hour show at 100 dBA with the guard limiting ends on 100 % NIOSH",
          "[dosimetry][guard]") {
    // 100 dBA uses the whole NIOSH day in 15 minutes. The guard (12 dB, 1 dB per 30 s) ramps for
    // about 5.5 min (13.3 % of the dose on the way), then holds about 11.3 dB: 88.7 dBA for the
    // remaining 2.9 h is the other 85.7 %.
    DoseGuard g(limit());
    bool saturated = false;
    const Show s = play(
        g, [](double) { return 100.0; }, 3 * 3600.0, 0.0, 0.0, -inf,
        [&](int, DoseGuard& gg) { saturated = saturated || gg.saturated(); });
    CAPTURE(s.niosh_pct, s.final_atten, s.max_atten);
    CHECK(s.niosh_pct <= 100.0);
    CHECK(s.niosh_pct >= 98.0);
    CHECK(s.max_atten <= 12.0);
    CHECK(s.final_atten == Approx(11.3).margin(0.2));
    // Never faster than the rate, and no oscillation: it only ever goes up.
    CHECK(s.max_up <= 1.0 / 30.0 + 1e-12);
    CHECK(s.max_down <= 1e-9);
    CHECK(s.reversals == 0);
    // The plan holds: the show ends on the budget less the 1 % planning margin, and 12 dB was
    // enough all along.
    CHECK(s.niosh_pct == Approx(99.0).margin(0.1));
    CHECK_FALSE(saturated);
    CHECK(s.announced == 1);
}

TEST_CASE("guard: 3-hour shows of songs and breaks end at or below the budget, without hunting",
          "[dosimetry][guard]") {
    // The shows the audit of the first guard measured (it planned from the last 60 s and let go in
    // every break: 116.8 % with 40 reversals on the first one, 71 reversals and 36 over-budget
    // warnings on the third). The plan is 99 % (the 1 % margin). A show that ends in a break ends
    // that break's share under it: no guard that cannot see the future can spend it.
    const std::vector<double> songs = songs_230_40(3 * 3600.0);
    struct Case {
        const char* name;
        std::function<double(double)> level;
        double min_pct;    // the final dose is within [min_pct, 100]
        int max_reversals; // changes of direction while planning
    };
    const std::vector<Case> cases = {
        {"steady 100 dBA", [](double) { return 100.0; }, 98.9, 0},
        {"steady 95 dBA", [](double) { return 95.0; }, 98.9, 0},
        {"3 min 102 / 3 min 80 dBA", [](double t) { return std::fmod(t, 360) < 180 ? 102.0 : 80.0; }, 96.5,
         8},
        {"4 min 100 / 1 min 75 dBA", [](double t) { return std::fmod(t, 300) < 240 ? 100.0 : 75.0; }, 97.0,
         2},
        {"4 min 100 dBA / 1 min silence", [](double t) { return std::fmod(t, 300) < 240 ? 100.0 : -inf; },
         97.0, 2},
        {"4 min 100 / 2 min 70 dBA", [](double t) { return std::fmod(t, 360) < 240 ? 100.0 : 70.0; }, 96.5,
         4},
        {"230 s songs ~98 dBA / 40 s gaps", [&](double t) { return songs[static_cast<std::size_t>(t)]; },
         96.5, 6},
        {"two sets, 30 min break", [](double t) { return t < 4500 || t >= 6300 ? 100.0 : 70.0; }, 98.5, 2},
        {"a 90 dBA ballad every 20 min", [](double t) { return std::fmod(t, 1200) >= 900 ? 90.0 : 100.0; },
         96.0, 4},
        {"quiet hour at 80, then 2 h at 100 dBA", [](double t) { return t < 3600 ? 80.0 : 100.0; }, 98.5, 0},
        {"1 h at 100, then 2 h at 95 dBA", [](double t) { return t < 3600 ? 100.0 : 95.0; }, 98.5, 1},
    };
    for (const Case& c : cases) {
        DoseGuard g(limit());
        const Show s = play(g, c.level, 3 * 3600.0);
        INFO(c.name << ": NIOSH " << s.niosh_pct << " %, " << s.reversals << " reversals, " << s.announced
                    << " over-budget warnings, attenuation " << s.max_atten << " dB max, " << s.final_atten
                    << " dB at the end (a constant " << niosh_with(c.level, 3 * 3600.0, s.final_atten)
                    << " % at the final attenuation)");
        CHECK(s.niosh_pct <= 100.0);
        CHECK(s.niosh_pct >= c.min_pct);
        CHECK(s.reversals <= c.max_reversals);
        CHECK(s.announced == 1); // once, at the start of the show: the plan then holds
        CHECK(s.max_up <= 1.0 / 30.0 + 1e-12);
        CHECK(s.max_down <= 1.0 / 30.0 + 1e-12);
        CHECK(s.max_atten <= 12.0);
    }
}

TEST_CASE("guard: a show the depth cannot hold does as well as any guard at that rate could",
          "[dosimetry][guard]") {
    // 5 min at 104 dBA / 5 min at 70 dBA for 3 hours: a constant 11.8 dB from the first second
    // would end on 99 %, but at 1 dB per 30 s the first song alone uses a third of the day before
    // 10 dB are reached, and 12 dB then leave 92 dBA songs: no guard of this rate and depth can end
    // under about 122 %. This one holds the full depth through every break and gets there.
    const auto level = [](double t) { return std::fmod(t, 600) < 300 ? 104.0 : 70.0; };
    const double floor = niosh_floor(level, 3 * 3600.0, 1.0 / 30.0, 12.0);
    DoseGuard g(limit());
    bool saturated = false;
    const Show s = play(g, level, 3 * 3600.0, 0.0, 0.0, -inf,
                        [&](int t, DoseGuard& gg) { saturated = saturated || (t > 900 && gg.saturated()); });
    CAPTURE(floor, s.niosh_pct, s.reversals);
    CHECK(floor > 115.0);
    CHECK(s.niosh_pct <= floor * 1.005);
    CHECK(saturated);
    CHECK(s.reversals == 0);
    CHECK(s.announced == 1);
    // With 24 dB of depth the same show fits.
    DoseGuard g24(limit(24.0));
    const Show s24 = play(g24, level, 3 * 3600.0);
    CAPTURE(s24.niosh_pct, s24.max_atten);
    CHECK(s24.niosh_pct <= 100.0);
    CHECK(s24.niosh_pct >= 96.0);
    CHECK(s24.max_up <= 1.0 / 30.0 + 1e-12);
}

TEST_CASE("guard: random shows of songs and breaks end within 2 % of the budget", "[dosimetry][guard]") {
    // 3-hour shows: songs of 2.5-7 min at a level drawn around a base of 94-101 dBA (sd 2 dB) that
    // drifts by up to +-4 dB over the show, breaks of 10 s - 3 min (silence or 60-75 dBA). Only
    // shows a constant attenuation of at most 9 dB would fit (the guard has to ramp there first and
    // has 12 dB). The first guard ended such shows up to 31 % over.
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    std::normal_distribution<double> nrm(0.0, 1.0);
    int played = 0;
    double worst = 0, lowest = 1e9;
    int most_reversals = 0;
    for (int k = 0; k < 40; ++k) {
        const double base = 94 + 7 * u01(rng), song = 150 + 270 * u01(rng), gap = 10 + 170 * u01(rng);
        const double gap_level =
            std::array<double, 4>{-inf, 60, 70, 75}[static_cast<std::size_t>(4 * u01(rng)) % 4];
        const double trend = -4 + 8 * u01(rng);
        std::vector<double> lv;
        while (lv.size() < 3 * 3600) {
            const double l = base + trend * static_cast<double>(lv.size()) / (3 * 3600) + 2 * nrm(rng);
            for (int i = 0; i < static_cast<int>(song); ++i) lv.push_back(l + 0.5 * nrm(rng));
            for (int i = 0; i < static_cast<int>(gap); ++i) lv.push_back(gap_level);
        }
        lv.resize(3 * 3600);
        const auto level = [&](double t) { return lv[static_cast<std::size_t>(t)]; };
        // The constant attenuation that ends on 99 %, by bisection.
        double lo = 0, hi = 40;
        for (int i = 0; i < 40; ++i) {
            const double mid = (lo + hi) / 2;
            (niosh_with(level, 3 * 3600.0, mid) > 99.0 ? lo : hi) = mid;
        }
        if (lo > 9.0) continue;
        ++played;
        DoseGuard g(limit());
        const Show s = play(g, level, 3 * 3600.0);
        INFO("show " << k << ": base " << base << " dBA, songs " << song << " s, gaps " << gap << " s at "
                     << gap_level << ", drift " << trend << " dB; constant " << lo << " dB; NIOSH "
                     << s.niosh_pct << " %, " << s.reversals << " reversals");
        CHECK(s.niosh_pct <= 102.0);
        CHECK(s.max_up <= 1.0 / 30.0 + 1e-12);
        CHECK(s.max_down <= 1.0 / 30.0 + 1e-12);
        CHECK(s.max_atten <= 12.0);
        worst = std::max(worst, s.niosh_pct);
        lowest = std::min(lowest, s.niosh_pct);
        most_reversals = std::max(most_reversals, s.reversals);
    }
    CAPTURE(played, worst, lowest, most_reversals);
    CHECK(played >= 20);
    CHECK(lowest >= 85.0); // it uses the budget rather than silencing the show
    CHECK(most_reversals <= 30);
}

TEST_CASE("guard: the over-budget warning opens once per episode", "[dosimetry][guard]") {
    // An hour at 100 dBA of a 3-hour plan (the guard settles), an hour of 85 dBA (well within: the
    // episode closes after 10 minutes within the budget), then 106 dBA: a new episode, announced.
    DoseGuard g(limit(24.0));
    std::vector<int> opened;
    const Show s = play(
        g, [](double t) { return t < 3600   ? 100.0
                                 : t < 7200 ? 85.0
                                            : 106.0; }, 3 * 3600.0, 0.0, 0.0, -inf,
        [&](int t, DoseGuard& gg) {
            if (gg.over_budget_started()) opened.push_back(t);
        });
    CAPTURE(opened);
    REQUIRE(opened.size() == 2);
    CHECK(opened[0] <= 2);
    CHECK(opened[1] > 7200);
    CHECK(opened[1] < 7200 + 60);
    CHECK(s.announced == 2);
    CHECK(s.niosh_pct <= 100.0);
}

TEST_CASE("guard: a restored state continues the show as if nothing happened", "[dosimetry][guard]") {
    // The daemon saves state() and restores it at start-up: the planning (averages, attenuation,
    // over-budget episode) carries on.
    const auto level = [](double t) { return std::fmod(t, 360) < 180 ? 102.0 : 80.0; };
    DoseGuard whole(limit());
    const Show ref = play(whole, level, 3 * 3600.0);
    // The same show, with the guard replaced by a fresh one restored from the state at 100 min.
    DoseGuard first(limit()), second(limit());
    DoseTotals day;
    double atten = 0;
    std::vector<double> trace;
    for (int t = 0; t < 3 * 3600; ++t) {
        DoseGuard& g = t < 6000 ? first : second;
        if (t == 6000) {
            second.restore(first.state());
            CHECK(second.attenuation_db() == first.attenuation_db());
        }
        const double mix = level(t) - atten;
        day.add(mix, -inf, 1.0);
        GuardInput in;
        in.level_dba = mix;
        in.niosh_pct = day.niosh_pct();
        in.seconds_left = 3 * 3600.0 - (t + 1);
        atten = g.update(in);
        trace.push_back(atten);
    }
    CHECK(day.niosh_pct() == Approx(ref.niosh_pct).epsilon(1e-12));
    double diff = 0;
    for (std::size_t i = 0; i < trace.size(); ++i) diff = std::max(diff, std::fabs(trace[i] - ref.atten[i]));
    CHECK(diff < 1e-9);
    // A fresh guard (what a restart without the saved state does) starts from 0 dB instead.
    DoseGuard fresh(limit());
    GuardInput in;
    in.level_dba = 90.0;
    in.niosh_pct = 60.0;
    in.seconds_left = 3600;
    CHECK(fresh.update(in) <= 1.0 / 30.0 + 1e-12);
    // Nonsense in a saved state is cleaned up.
    GuardState bad;
    bad.attenuation_db = std::nan("");
    bad.mix_slow_pa2 = -1;
    bad.elapsed_s = inf;
    bad.mix_fast_pa2 = 1e300;
    DoseGuard r(limit());
    r.restore(bad);
    CHECK(r.attenuation_db() == 0.0);
    CHECK(r.state().mix_slow_pa2 == 0.0);
    CHECK(r.state().elapsed_s == 0.0);
    CHECK(std::isfinite(r.update(in)));
}

TEST_CASE("guard: the attenuation never moves faster than the rate", "[dosimetry][guard]") {
    for (double rate : {1.0 / 30.0, 0.1, 0.5}) {
        GuardSettings st = limit(20.0);
        st.rate_db_per_s = rate;
        DoseGuard g(st);
        std::mt19937 rng(7);
        std::uniform_real_distribution<double> step(-3.0, 3.0), u01(0.0, 1.0);
        double lvl = 95.0;
        // A random show: a level that wanders 75-112 dBA, with pauses (silence) and sudden jumps.
        std::vector<double> levels(4 * 3600);
        for (double& l : levels) {
            lvl = std::clamp(lvl + step(rng), 75.0, 112.0);
            if (u01(rng) < 0.002) lvl = 75.0 + 37.0 * u01(rng);
            l = u01(rng) < 0.05 ? -inf : lvl;
        }
        const Show s = play(
            g, [&](double t) { return levels[static_cast<std::size_t>(t)]; }, 4 * 3600.0);
        INFO("rate " << rate);
        CHECK(s.max_up <= rate + 1e-12);
        CHECK(s.max_down <= rate + 1e-12);
        CHECK(s.max_atten <= 20.0);
        CHECK(s.max_up > 0.9 * rate); // it did move, at the rate
    }
}

TEST_CASE("guard: headroom returns (the band gets quieter): recovery at the rate, no oscillation",
          "[dosimetry][guard]") {
    DoseGuard g(limit());
    // 20 minutes at 100 dBA, then 80 dBA to the end of a 3-hour show.
    const Show s = play(
        g, [](double t) { return t < 1200 ? 100.0 : 80.0; }, 3 * 3600.0);
    CAPTURE(s.niosh_pct, s.final_atten);
    CHECK(s.niosh_pct <= 100.0);
    CHECK(s.final_atten == 0.0);
    CHECK(s.max_down <= 1.0 / 30.0 + 1e-12);
    CHECK(s.reversals == 1); // up while loud, then down: never back and forth
}

TEST_CASE("guard: 12 dB cannot hold 105 dBA for 3 hours: it saturates at the depth and says so",
          "[dosimetry][guard]") {
    DoseGuard g(limit(12.0));
    bool saw_saturated = false, saw_over = false;
    const Show s = play(
        g, [](double) { return 105.0; }, 3 * 3600.0, 0.0, 0.0, -inf,
        [&](int t, DoseGuard& gg) {
            if (t > 600) {
                saw_saturated = saw_saturated || gg.saturated();
                saw_over = saw_over || gg.over_budget();
            }
        });
    CAPTURE(s.niosh_pct, g.needed_db(), g.projected_pct());
    CHECK(s.max_atten == Approx(12.0).margin(1e-9));
    CHECK(s.final_atten == Approx(12.0).margin(1e-9));
    CHECK(saw_saturated);
    CHECK(saw_over);
    CHECK(g.needed_db() > 12.0);
    CHECK(s.niosh_pct > 100.0); // 93 dBA for most of 3 h: the depth, not the guard, is the limit
    // With room to act (24 dB) the same show ends on the budget.
    DoseGuard g24(limit(24.0));
    const Show s24 = play(
        g24, [](double) { return 105.0; }, 3 * 3600.0);
    CAPTURE(s24.niosh_pct, s24.final_atten);
    CHECK(s24.niosh_pct <= 100.0);
    CHECK(s24.niosh_pct >= 98.0);
    CHECK(s24.max_up <= 1.0 / 30.0 + 1e-12);
}

TEST_CASE("guard: warn mode computes and reports but never attenuates", "[dosimetry][guard]") {
    GuardSettings st;
    st.mode = GuardMode::warn;
    DoseGuard g(st);
    bool over = false;
    const Show s = play(
        g, [](double) { return 100.0; }, 3600.0, 0.0, 0.0, -inf,
        [&](int t, DoseGuard& gg) { over = over || (t > 5 && gg.over_budget()); });
    CHECK(s.max_atten == 0.0);
    CHECK(over);
    CHECK(g.needed_db() > 0.0);
    CHECK_FALSE(g.saturated());
    // Off: nothing either.
    DoseGuard off;
    CHECK(play(
              off, [](double) { return 110.0; }, 600.0)
              .max_atten == 0.0);
}

TEST_CASE("guard: an engineer suspends and resumes it", "[dosimetry][guard]") {
    DoseGuard g(limit());
    const Show s = play(
        g, [](double) { return 100.0; }, 3 * 3600.0, 0.0, 0.0, -inf,
        [](int t, DoseGuard& gg) {
            if (t == 600) gg.suspend("monitor-engineer", 1700000000.0);
            if (t == 1200) gg.resume();
        });
    CHECK(g.suspended_by() == "monitor-engineer");
    CHECK(g.suspended_at() == 1700000000.0);
    CHECK_FALSE(g.suspended());
    // Before: rising at the rate; suspended: back to 0 at 1 dB/s (no jump); resumed: up at the rate.
    CHECK(s.atten[599] > 5.0);
    CHECK(s.atten[600] == Approx(s.atten[599] - 1.0).margin(1e-9));
    CHECK(s.atten[630] == 0.0);
    CHECK(s.atten[1199] == 0.0);
    CHECK(s.atten[1200] == Approx(1.0 / 30.0).margin(1e-9));
    CHECK(s.max_up <= 1.0 / 30.0 + 1e-12);
    CHECK(s.max_down <= 1.0 + 1e-12);
    // The 10 suspended minutes at 100 dBA used 67 % of the day: it ends over budget, which is what
    // the engineer accepted (the guard comes back at full depth).
    CHECK(s.niosh_pct > 100.0);
    CHECK(s.final_atten == Approx(12.0).margin(1e-9));
}

TEST_CASE("guard: a WHO weekly budget with most of the week used", "[dosimetry][guard]") {
    GuardSettings st = limit();
    st.budget = GuardBudget::who_weekly;
    DoseGuard g(st);
    // 1.0 Pa^2 h used this week (62.5 %), a 2-hour show at 95 dBA (1.26 Pa^2 h/h).
    const Show s = play(
        g, [](double) { return 95.0; }, 2 * 3600.0, 0.0, 1.0);
    CAPTURE(s.who_pct, s.final_atten);
    CHECK(s.who_pct <= 100.0);
    CHECK(s.who_pct >= 98.0);
    CHECK(s.max_up <= 1.0 / 30.0 + 1e-12);
    CHECK(s.reversals == 0);
}

TEST_CASE("guard: the stage leak is not the guard's to lower", "[dosimetry][guard]") {
    // A 90 dBA leak alone fits a 1-hour show's NIOSH budget (94 dBA allowed); the mix gets the rest.
    DoseGuard g(limit(30.0));
    const Show s = play(
        g, [](double) { return 100.0; }, 3600.0, 0.0, 0.0, 90.0);
    CAPTURE(s.niosh_pct, s.final_atten);
    CHECK(s.niosh_pct <= 100.0);
    CHECK(s.niosh_pct >= 98.0);
    // A leak louder than the budget allows: the mix goes down as far as the depth lets it.
    DoseGuard g2(limit(12.0));
    (void)play(
        g2, [](double) { return 90.0; }, 3600.0, 0.0, 0.0, 96.0);
    CHECK(g2.needed_db() == inf);
    CHECK(g2.attenuation_db() == Approx(12.0));
}

TEST_CASE("guard: no plan, or the budget already used", "[dosimetry][guard]") {
    DoseGuard g(limit());
    GuardInput in;
    in.level_dba = 100.0;
    in.niosh_pct = 40.0;
    in.seconds_left = 0.0; // no planned end
    for (int i = 0; i < 100; ++i) g.update(in);
    CHECK(g.attenuation_db() == 0.0);
    CHECK(g.allowed_dba() == inf);
    in.niosh_pct = 130.0; // over: any sound is too much
    for (int i = 0; i < 100; ++i) g.update(in);
    CHECK(g.allowed_dba() == -inf);
    CHECK(g.attenuation_db() == Approx(100.0 / 30.0).margin(1e-9));
    // Silence does not undo it while the budget stays used up.
    in.level_dba = -inf;
    for (int i = 0; i < 100; ++i) g.update(in);
    CHECK(g.attenuation_db() > 100.0 / 30.0);
    // NaN inputs are harmless.
    in.level_dba = std::nan("");
    in.seconds = std::nan("");
    const double a = g.update(in);
    CHECK(std::isfinite(a));
    g.reset();
    CHECK(g.attenuation_db() == 0.0);
    CHECK(std::isnan(g.projected_pct()));
    // A smaller depth is reached at the rate, not by a jump.
    GuardSettings st = limit(12.0);
    DoseGuard g3(st);
    (void)play(
        g3, [](double) { return 105.0; }, 1800.0, 150.0); // already over: full depth
    REQUIRE(g3.attenuation_db() == Approx(12.0));
    st.depth_db = 6.0;
    g3.configure(st);
    GuardInput loud;
    loud.level_dba = 93.0;
    loud.niosh_pct = 200.0;
    loud.seconds_left = 3600.0;
    CHECK(g3.update(loud) == Approx(12.0 - 1.0 / 30.0));
}

TEST_CASE("warnings: default thresholds 50, 80, 100 % and every further 100 %", "[dosimetry][warnings]") {
    DoseWarnings w;
    const double want[] = {50, 80, 100, 200, 300, 400, 500};
    for (int i = 0; i < 7; ++i) CHECK(w.threshold(i) == want[i]);
    WarningSettings st;
    st.thresholds_pct = {100, 25, 25, -3};
    st.repeat_every_pct = 0;
    DoseWarnings w2(st);
    CHECK(w2.threshold(0) == 25);
    CHECK(w2.threshold(1) == 100);
    CHECK(w2.threshold(2) == inf);
}

TEST_CASE("warnings: once per upward crossing, in order, for both quantities", "[dosimetry][warnings]") {
    DoseWarnings w;
    std::vector<Warning> ev;
    for (int i = 0; i <= 350; ++i) w.update(i, i / 2.0, ev);
    std::vector<double> niosh, who;
    for (const auto& e : ev) (e.kind == WarningKind::niosh_daily ? niosh : who).push_back(e.threshold);
    CHECK(niosh == std::vector<double>{50, 80, 100, 200, 300});
    CHECK(who == std::vector<double>{50, 80, 100});
    for (const auto& e : ev) CHECK(e.value >= e.threshold);
    CHECK(w.next_threshold(WarningKind::niosh_daily) == 400);
    CHECK(w.next_threshold(WarningKind::who_weekly) == 200);
    // Staying up there: nothing more.
    ev.clear();
    for (int i = 0; i < 100; ++i) w.update(350, 175, ev);
    CHECK(ev.empty());
    CHECK(std::string(to_string(WarningKind::who_weekly)) == "who_weekly");
}

TEST_CASE("warnings: a jump over several thresholds fires them all, in ascending order",
          "[dosimetry][warnings]") {
    DoseWarnings w;
    std::vector<Warning> ev;
    w.update(10, 0, ev);
    w.update(250, 85, ev);
    REQUIRE(ev.size() == 6);
    const double n[] = {50, 80, 100, 200};
    for (int i = 0; i < 4; ++i) {
        CHECK(ev[static_cast<std::size_t>(i)].kind == WarningKind::niosh_daily);
        CHECK(ev[static_cast<std::size_t>(i)].threshold == n[i]);
        CHECK(ev[static_cast<std::size_t>(i)].value == 250);
    }
    CHECK(ev[4].kind == WarningKind::who_weekly);
    CHECK(ev[4].threshold == 50);
    CHECK(ev[5].threshold == 80);
    // A runaway value cannot flood: at most 64 per quantity, and the rest count as passed.
    ev.clear();
    w.update(1e9, 85, ev);
    CHECK(ev.size() == static_cast<std::size_t>(DoseWarnings::max_events_per_update));
    ev.clear();
    w.update(1e9 + 1, 85, ev);
    CHECK(ev.empty());
}

TEST_CASE("warnings: re-arm after falling back by the hysteresis", "[dosimetry][warnings]") {
    DoseWarnings w;
    std::vector<Warning> ev;
    // The rolling week: up to 85 %, then the oldest day drops out.
    w.update(0, 85, ev);
    REQUIRE(ev.size() == 2); // 50, 80
    ev.clear();
    w.update(0, 77, ev); // under 80, but not by 5 % of it (76): still disarmed
    w.update(0, 81, ev);
    CHECK(ev.empty());
    w.update(0, 75.9, ev); // re-armed
    w.update(0, 80, ev);   // fires again
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].threshold == 80);
    ev.clear();
    // Falling under 47.5 re-arms 50 too; rising again fires both, in order.
    w.update(0, 40, ev);
    w.update(0, 90, ev);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].threshold == 50);
    CHECK(ev[1].threshold == 80);
    ev.clear();
    // The daily dose falls to 0 at the day change: everything re-arms.
    w.update(120, 0, ev);
    CHECK(ev.size() == 3);
    ev.clear();
    w.update(0, 0, ev);
    w.update(60, 0, ev);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].threshold == 50);
    // 200 re-arms below 190.
    ev.clear();
    w.update(205, 0, ev);
    ev.clear();
    w.update(191, 0, ev);
    w.update(201, 0, ev);
    CHECK(ev.empty());
    w.update(189, 0, ev);
    w.update(200, 0, ev);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].threshold == 200);
}

TEST_CASE("warnings: prime() after a restart does not repeat what was announced", "[dosimetry][warnings]") {
    DoseWarnings w;
    w.prime(130, 10);
    std::vector<Warning> ev;
    w.update(131, 10, ev);
    CHECK(ev.empty());
    w.update(200, 50, ev);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].threshold == 200);
    CHECK(ev[1].kind == WarningKind::who_weekly);
    CHECK(ev[1].threshold == 50);
    w.reset();
    ev.clear();
    w.update(60, 0, ev);
    CHECK(ev.size() == 1);
}

TEST_CASE("warnings: a runaway dose costs no more than a normal one, and prime() is bounded",
          "[dosimetry][warnings]") {
    // A mis-calibrated measurement input can push the figures to absurd values: the thresholds
    // passed are computed, not counted (the first version looped once per 100 % passed: 1e11
    // iterations at 1e13 %, and an int overflow beyond).
    const auto t0 = std::chrono::steady_clock::now();
    DoseWarnings w;
    std::vector<Warning> ev;
    w.update(1e13, 1e300, ev);
    CHECK(ev.size() == 2 * static_cast<std::size_t>(DoseWarnings::max_events_per_update));
    // Everything passed counts as fired: the next threshold is above the value.
    CHECK(w.next_threshold(WarningKind::niosh_daily) > 1e13);
    CHECK(w.next_threshold(WarningKind::niosh_daily) <= 1e13 + 100.0);
    ev.clear();
    w.update(1e13, 1e300, ev);
    CHECK(ev.empty());
    // Falling back re-arms everything the value fell clearly below, in one step.
    w.update(10, 10, ev);
    CHECK(ev.empty());
    CHECK(w.next_threshold(WarningKind::niosh_daily) == 50);
    CHECK(w.next_threshold(WarningKind::who_weekly) == 50);
    w.update(130, 0, ev);
    REQUIRE(ev.size() == 3);
    CHECK(ev[2].threshold == 100);
    // prime() of absurd values is immediate too, and exact on the thresholds.
    DoseWarnings p;
    p.prime(1e15, std::numeric_limits<double>::max());
    CHECK(p.next_threshold(WarningKind::niosh_daily) > 1e15);
    p.prime(300, 100);
    CHECK(p.next_threshold(WarningKind::niosh_daily) == 400);
    CHECK(p.next_threshold(WarningKind::who_weekly) == 200);
    p.prime(299.999, 99.999);
    CHECK(p.next_threshold(WarningKind::niosh_daily) == 300);
    CHECK(p.next_threshold(WarningKind::who_weekly) == 100);
    ev.clear();
    p.update(300, 100, ev);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].threshold == 300);
    CHECK(ev[1].threshold == 100);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    CHECK(ms < 100.0);
    // Custom thresholds without repeats: past the last one nothing more, whatever the value.
    WarningSettings st;
    st.thresholds_pct = {25, 75};
    st.repeat_every_pct = 0;
    DoseWarnings c(st);
    ev.clear();
    c.update(1e12, 0, ev);
    CHECK(ev.size() == 2);
    CHECK(c.next_threshold(WarningKind::niosh_daily) == inf);
}

TEST_CASE("warnings: a rolling weekly window fires each threshold once, re-arms as old days leave it",
          "[dosimetry][warnings]") {
    // Three weeks of days (energy % of the weekly allowance per day); the WHO figure is the sum of
    // the last 7. Thresholds fire once per crossing in order, and re-arm only when the window has
    // fallen 5 % below them.
    const std::vector<double> days = {20, 20, 20, 5,  0,  0, 0, 30, 30, 0, 0, 0, 0,
                                      0,  0,  0,  60, 50, 0, 0, 0,  0,  0, 0, 0, 100};
    std::deque<double> win;
    DoseWarnings w;
    std::vector<std::pair<int, double>> fired; // (day, threshold)
    for (int d = 0; d < static_cast<int>(days.size()); ++d) {
        win.push_back(days[static_cast<std::size_t>(d)]);
        if (win.size() > 7) win.pop_front();
        double sum = 0;
        for (double x : win) sum += x;
        std::vector<Warning> ev;
        // Several updates a day at the same figure: nothing repeats.
        for (int i = 0; i < 3; ++i) w.update(0, sum, ev);
        for (const Warning& e : ev) fired.emplace_back(d, e.threshold);
    }
    // The window: 20 40 60 65 65 65 65 75 85 65 60 60 60 60 30 0 60 110 110 110 110 110 110 50 0 100.
    // Day 2 (60): 50. Day 8 (85): 80. Day 9 (65 < 76) re-arms 80, day 14 (30 < 47.5) re-arms 50.
    // Day 16 (60): 50 again. Day 17 (110): 80, 100. Day 23 (50) re-arms 100 and 80, day 24 (0)
    // re-arms 50. Day 25 (100): 50, 80, 100, in order.
    const std::vector<std::pair<int, double>> want = {{2, 50},   {8, 80},  {16, 50}, {17, 80},
                                                      {17, 100}, {25, 50}, {25, 80}, {25, 100}};
    CHECK(fired == want);
}

TEST_CASE("warnings: momentary warnings over the cap and RS2, with a 10 s hold-off",
          "[dosimetry][warnings]") {
    DoseWarnings w;
    std::vector<Warning> ev;
    // 35 s at 102 dBA, cap 100, RS2 100: one of each at the start, then one every 10 s.
    for (int t = 0; t < 35; ++t) w.momentary(t, 102.0, 100.0, 100.0, ev);
    std::vector<double> cap_t, rs2_t;
    for (const auto& e : ev) (e.kind == WarningKind::momentary_cap ? cap_t : rs2_t).push_back(e.t_s);
    CHECK(cap_t == std::vector<double>{0, 10, 20, 30});
    CHECK(rs2_t == std::vector<double>{0, 10, 20, 30});
    CHECK(ev[0].threshold == 100.0);
    CHECK(ev[0].value == 102.0);
    // Within the cap's 0.5 dB tolerance: no cap warning; RS2 has no margin.
    ev.clear();
    DoseWarnings w2;
    w2.momentary(0, 100.4, 100.0, 100.0, ev);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == WarningKind::momentary_rs2);
    // No cap configured (NaN), RS2 above the level: nothing. Non-finite levels: nothing.
    ev.clear();
    w2.momentary(20, 99.0, std::nan(""), 100.0, ev);
    w2.momentary(21, std::nan(""), 90.0, 90.0, ev);
    w2.momentary(22, inf, 90.0, 90.0, ev);
    CHECK(ev.empty());
    // A single loud second after a quiet spell warns at once.
    w2.momentary(40, 101.0, 95.0, 100.0, ev);
    CHECK(ev.size() == 2);
    // The hold-off counts from the last warning of the kind, not from the last loud second: a level
    // flickering across RS2 every other second warns every 10 s, not every 2 s.
    DoseWarnings w3;
    std::vector<double> at;
    for (int t = 0; t < 40; ++t) {
        ev.clear();
        w3.momentary(t, t % 2 == 0 ? 101.0 : 99.0, inf, 100.0, ev);
        for (const auto& e : ev) at.push_back(e.t_s);
    }
    CHECK(at == std::vector<double>{0, 10, 20, 30});
}

TEST_CASE("guard: figures for docs/protection.md", "[.figures]") {
    for (double depth : {12.0, 24.0}) {
        for (double lvl : {95.0, 100.0, 105.0}) {
            DoseGuard g(limit(depth));
            const Show s = play(
                g, [&](double) { return lvl; }, 3 * 3600.0);
            std::printf(
                "3 h at %.0f dBA, depth %.0f dB: NIOSH %.2f %%, attenuation at 5 / 10 / 30 / 90 / 179 min "
                "%.2f / %.2f / %.2f / %.2f / %.2f dB, max %.2f dB\n",
                lvl, depth, s.niosh_pct, s.atten[299], s.atten[599], s.atten[1799], s.atten[5399],
                s.atten[10739], s.max_atten);
        }
    }
    // The song/break shows: final dose, changes of direction, over-budget warnings, attenuation.
    const std::vector<double> songs = songs_230_40(3 * 3600.0);
    const std::vector<std::pair<const char*, std::function<double(double)>>> shows = {
        {"steady 100 dBA", [](double) { return 100.0; }},
        {"3 min 102 / 3 min 80 dBA", [](double t) { return std::fmod(t, 360) < 180 ? 102.0 : 80.0; }},
        {"5 min 104 / 5 min 70 dBA", [](double t) { return std::fmod(t, 600) < 300 ? 104.0 : 70.0; }},
        {"4 min 100 / 1 min 75 dBA", [](double t) { return std::fmod(t, 300) < 240 ? 100.0 : 75.0; }},
        {"4 min 100 dBA / 1 min silence", [](double t) { return std::fmod(t, 300) < 240 ? 100.0 : -inf; }},
        {"4 min 100 / 2 min 70 dBA", [](double t) { return std::fmod(t, 360) < 240 ? 100.0 : 70.0; }},
        {"230 s songs ~98 dBA / 40 s gaps", [&](double t) { return songs[static_cast<std::size_t>(t)]; }},
        {"20 min 100, then 80 dBA", [](double t) { return t < 1200 ? 100.0 : 80.0; }},
        {"1 h 80, then 2 h 100 dBA", [](double t) { return t < 3600 ? 80.0 : 100.0; }},
        {"1 h 100, then 2 h 95 dBA", [](double t) { return t < 3600 ? 100.0 : 95.0; }},
        {"two sets, 30 min break at 70 dBA", [](double t) { return t < 4500 || t >= 6300 ? 100.0 : 70.0; }},
        {"a 90 dBA ballad every 20 min", [](double t) { return std::fmod(t, 1200) >= 900 ? 90.0 : 100.0; }},
        {"rising 92 -> 100 dBA", [](double t) { return 92.0 + 8.0 * t / (3 * 3600.0); }},
    };
    for (const auto& [name, level] : shows) {
        DoseGuard g(limit());
        const Show s = play(g, level, 3 * 3600.0);
        double lo = 0, hi = 40; // the constant attenuation that would end on 99 %
        for (int i = 0; i < 40; ++i) {
            const double mid = (lo + hi) / 2;
            (niosh_with(level, 3 * 3600.0, mid) > 99.0 ? lo : hi) = mid;
        }
        std::printf("| %s | %.1f %% | %d | %d | %.1f dB | %.1f dB | %.1f dB |\n", name, s.niosh_pct,
                    s.reversals, s.announced, s.max_atten, s.final_atten, lo);
    }
}
