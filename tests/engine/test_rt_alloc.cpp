// The RT allocation trap (style guide L14): global operator new/delete are replaced in this test
// binary; allocations made while the thread-local "in RT" flag is set are counted. process() must
// make none across parameter changes, graph swaps, bad samples, limiting and dose frames.
#include "engine_fixture.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <new>

// The replacements below pair operator new with malloc and operator delete with free, which is
// correct; GCC's heuristic cannot see that across the replaced functions.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
thread_local bool t_in_rt = false;
std::size_t g_rt_allocs = 0;
std::size_t g_rt_frees = 0;
} // namespace

void* operator new(std::size_t n) {
    if (t_in_rt) ++g_rt_allocs;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (t_in_rt) ++g_rt_allocs;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    if (t_in_rt && p) ++g_rt_frees;
    std::free(p);
}
void operator delete[](void* p) noexcept {
    if (t_in_rt && p) ++g_rt_frees;
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    if (t_in_rt && p) ++g_rt_frees;
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    if (t_in_rt && p) ++g_rt_frees;
    std::free(p);
}

using namespace earshot;

TEST_CASE("the trap itself counts allocations made in RT scope", "[engine][rt]") {
    g_rt_allocs = 0;
    t_in_rt = true;
    auto* v = new std::vector<int>(100);
    t_in_rt = false;
    delete v;
    REQUIRE(g_rt_allocs >= 1);
}

TEST_CASE("engine process(): zero heap allocations across changes and swaps", "[engine][rt]") {
    engine::Engine e(48000, 256);
    auto cfg = test::base_config(8);
    for (int m = 0; m < 4; ++m) {
        auto mu = test::musician("m" + std::to_string(m), m % 2 == 0, 105.0);
        for (int i = 0; i < 8; ++i)
            mu.mix.sends.push_back(test::send("in" + std::to_string(i), -6.0 + i, 0.1 * i - 0.4));
        if (m < 3) mu.protection.max_laeq_1s_dba = 85.0 + 5.0 * m; // loudness cap in the path (and acting)
        cfg.musicians.push_back(mu);
    }
    REQUIRE(e.apply_config(cfg));
    std::vector<std::vector<float>> in(8, std::vector<float>(256));
    std::vector<std::vector<float>> out(64, std::vector<float>(256));
    std::vector<const float*> ip;
    std::vector<float*> op;
    for (auto& v : in) ip.push_back(v.data());
    for (auto& v : out) op.push_back(v.data());
    g_rt_allocs = g_rt_frees = 0;
    uint32_t t = 0;
    for (int cycle = 0; cycle < 1500; ++cycle) {
        for (std::size_t i = 0; i < in.size(); ++i)
            for (uint32_t k = 0; k < 256; ++k)
                in[i][k] = (cycle % 50 == 7 && i == 3)
                               ? NAN
                               : float(std::sin(0.01 * double(t + k) * double(i + 1)) *
                                       (cycle % 300 < 150 ? 0.3 : 30.0));
        t += 256;
        if (cycle % 10 == 3) e.set_send("m1", "in2", -(cycle % 40), 0.2, cycle % 20 == 3);
        if (cycle % 25 == 4) e.set_master("m2", cycle % 50 == 4 ? -12.0 : 3.0);
        if (cycle % 30 == 5) e.set_guard("m0", -0.1 * (cycle % 90), 4800); // the dose guard's gain
        if (cycle % 200 == 100) {
            // Structural change built off the RT thread: add or remove a musician and an input.
            auto c2 = cfg;
            if ((cycle / 200) % 2 == 0) {
                c2.musicians.pop_back();
                c2.inputs.pop_back();
                for (auto& mu : c2.musicians) mu.mix.sends.pop_back();
            } else {
                auto extra = test::musician("extra" + std::to_string(cycle), true, 100.0);
                extra.mix.sends.push_back(test::send("in0", 0.0));
                c2.musicians.push_back(extra);
            }
            REQUIRE(e.apply_config(c2));
        }
        t_in_rt = true;
        e.process(256, ip.data(), static_cast<int>(ip.size()), op.data(), static_cast<int>(op.size()));
        t_in_rt = false;
        e.poll(); // control thread: deletes retired graphs, compacts
        engine::DoseFrame f;
        while (e.pop_dose(f)) {
        }
        engine::MeterFrame mf;
        while (e.pop_meter(mf)) {
        }
    }
    INFO("allocations " << g_rt_allocs << " frees " << g_rt_frees);
    REQUIRE(g_rt_allocs == 0);
    REQUIRE(g_rt_frees == 0);
    REQUIRE(e.counters().live_generation.load() >= 8); // the swaps (and compactions) happened
    REQUIRE(e.counters().bad_input_blocks.load() > 0);
}
