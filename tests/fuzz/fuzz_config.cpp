// libFuzzer target: the YAML config loader must never crash, hang or throw anything but ConfigErrors.
#include "earshot/config/loader.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        (void)earshot::config::load_string(std::string_view(reinterpret_cast<const char*>(data), size),
                                           "fuzz.yaml");
    } catch (const earshot::config::ConfigErrors&) {
        // expected for most inputs
    } catch (...) {
        std::abort(); // anything else is a bug
    }
    return 0;
}
