// The control protocol's parser and formatter (docs/control-protocol.md): every command's arguments,
// ranges, unknown keys and the read-only classification.
#include "earshot/control/protocol.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

using namespace earshot::control;

namespace {

Request ok(const std::string& line) {
    Request r;
    ParseError e;
    INFO(line);
    REQUIRE(parse_request(line, r, e));
    return r;
}

std::string fails(const std::string& line) {
    Request r;
    ParseError e;
    INFO(line);
    REQUIRE_FALSE(parse_request(line, r, e));
    return e.code + ": " + e.message;
}

} // namespace

TEST_CASE("requests parse into commands with their arguments", "[control]") {
    CHECK(ok(R"({"cmd":"ping"})").cmd == Command::ping);
    CHECK(ok(R"({"cmd":"status","id":42})").id.as_int64() == 42);
    CHECK(ok(R"({"cmd":"status","id":"abc"})").id.as_string() == "abc");
    const Request m = ok(R"({"cmd":"set","musician":"drums","master_db":-3.5})");
    CHECK(m.cmd == Command::set);
    CHECK(m.input.empty());
    CHECK(*m.gain_db == -3.5);
    const Request s =
        ok(R"({"cmd":"set","musician":"drums","input":"click","gain_db":"off","pan":-1,"mute":true})");
    CHECK(std::isinf(*s.gain_db));
    CHECK(*s.pan == -1);
    CHECK(*s.mute);
    CHECK(std::isinf(*ok(R"({"cmd":"set","musician":"d","master_db":null})").gain_db));
    CHECK(ok(R"({"cmd":"scene","action":"save","name":"Verse-2"})").scene == "Verse-2");
    CHECK(ok(R"({"cmd":"scene","action":"list"})").scene_action == SceneAction::list);
    CHECK(ok(R"({"cmd":"scene","action":"delete","name":"x"})").scene_action == SceneAction::remove);
    CHECK(ok(R"({"cmd":"subscribe","rate_hz":20})").rate_hz == 20);
    CHECK(ok(R"({"cmd":"dim","db":-30})").dim_db == -30);
    CHECK_FALSE(ok(R"({"cmd":"panic","on":false})").on);
    CHECK(ok(R"({"cmd":"learn","target":"drums.master"})").target == "drums.master");
    CHECK_FALSE(ok(R"({"cmd":"learn","target":"drums.master"})").forget);
    CHECK(ok(R"({"cmd":"learn","target":"drums.master","forget":true})").forget);
    CHECK(fails(R"({"cmd":"learn","target":"drums.master","forget":1})").find("forget") != std::string::npos);
    CHECK(ok(R"({"cmd":"guard","musician":"drums","action":"suspend"})").suspend);
    CHECK_FALSE(ok(R"({"cmd":"guard","musician":"drums","action":"resume"})").suspend);
}

TEST_CASE("malformed requests get a code and a message", "[control]") {
    CHECK(fails("").rfind("bad_json", 0) == 0);
    CHECK(fails("{").rfind("bad_json", 0) == 0);
    CHECK(fails("[1,2]").rfind("bad_request", 0) == 0);
    CHECK(fails(R"({"id":1})").find("missing \"cmd\"") != std::string::npos);
    CHECK(fails(R"({"cmd":"fly"})").rfind("unknown_command", 0) == 0);
    CHECK(fails(R"({"cmd":"status","verbose":true})").find("unknown argument 'verbose'") !=
          std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"drums","master_db":13})").find("[-90, 12]") != std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"drums","master_db":-3,"input":"x"})").find("alone") !=
          std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"drums"})").find("master_db") != std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"drums","input":"x"})").find("nothing to set") !=
          std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"Drums","master_db":0})").find("not an id") != std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"d","input":"x","pan":1.5})").find("[-1, 1]") !=
          std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"d","input":"x","mute":1})").find("true or false") !=
          std::string::npos);
    CHECK(fails(R"({"cmd":"set","musician":"d","master_db":1e999})").rfind("bad_", 0) == 0);
    CHECK(fails(R"({"cmd":"scene","action":"burn","name":"x"})").find("save, recall") != std::string::npos);
    CHECK(fails(R"({"cmd":"scene","action":"save","name":"a b"})").find("name") != std::string::npos);
    CHECK(fails(R"({"cmd":"subscribe","rate_hz":100})").find("[0.1, 20]") != std::string::npos);
    CHECK(fails(R"({"cmd":"dim","db":6})").find("[-60, 0]") != std::string::npos);
    CHECK(fails(R"({"cmd":"guard","musician":"drums","action":"off"})").find("suspend or resume") !=
          std::string::npos);
    CHECK(fails(R"({"cmd":"status","id":{"a":1}})").find("\"id\"") != std::string::npos);
    CHECK(fails(std::string(max_line + 1, ' ')).rfind("line_too_long", 0) == 0);
    // Deep nesting is refused by the parser, not by the stack.
    CHECK(fails(std::string(10000, '[')).rfind("bad_json", 0) == 0);
}

TEST_CASE("a key given twice is refused, never last-wins", "[control]") {
    CHECK(fails(R"({"cmd":"ping","cmd":"reload"})") ==
          "bad_request: duplicate key 'cmd' (give each argument once)");
    CHECK(fails(R"({"cmd":"set","musician":"d","master_db":-6,"master_db":12})")
              .find("duplicate key 'master_db'") != std::string::npos);
    // The same key spelled with an escape is the same key.
    CHECK(fails(R"({"cmd":"ping","c\u006dd":"reload"})").find("duplicate key 'cmd'") != std::string::npos);
    // The id is echoed unless it is the key given twice.
    Request r;
    ParseError e;
    REQUIRE_FALSE(parse_request(R"({"id":5,"cmd":"ping","cmd":"ping"})", r, e));
    CHECK(e.id.as_int64() == 5);
    REQUIRE_FALSE(parse_request(R"({"id":5,"id":6,"cmd":"ping"})", r, e));
    CHECK(e.id.is_null());
    // Nested objects are checked too; equal keys in different objects are fine.
    CHECK(fails(R"({"cmd":"ping","x":{"a":1,"a":2}})").find("duplicate key 'a'") != std::string::npos);
    CHECK(fails(R"({"cmd":"ping","x":{"cmd":1}})").find("unknown argument 'x'") != std::string::npos);
}

TEST_CASE("names quoted in errors are cut at a UTF-8 boundary: every reply is valid JSON", "[control]") {
    CHECK(clip_utf8("short", 40) == "short");
    const std::string e_acute = "\xc3\xa9"; // é, two bytes
    std::string name;
    for (int i = 0; i < 30; ++i) name += e_acute; // 60 bytes: byte 40 is a continuation byte
    CHECK(clip_utf8(name, 41) == name.substr(0, 40) + "...");
    CHECK(clip_utf8(name, 40) == name.substr(0, 40) + "...");
    const std::string euro = "\xe2\x82\xac"; // €, three bytes
    CHECK(clip_utf8(std::string(38, 'a') + euro, 40) == std::string(38, 'a') + "...");
    for (const std::string& line : {R"({"cmd":")" + name + R"("})", R"({"cmd":"ping",")" + name + R"(":1})",
                                    R"({"cmd":"ping",")" + std::string(39, 'k') + euro + R"(":1})"}) {
        Request r;
        ParseError e;
        INFO(line);
        REQUIRE_FALSE(parse_request(line, r, e));
        const std::string reply = reply_error(e.id, e.code, e.message);
        boost::system::error_code ec;
        const boost::json::value v = boost::json::parse(reply, ec);
        INFO(reply);
        REQUIRE_FALSE(ec);
        CHECK(boost::json::serialize(v) == reply);
    }
}

TEST_CASE("read-only commands and reply lines", "[control]") {
    CHECK(read_only(Command::status));
    CHECK(read_only(Command::subscribe));
    CHECK(read_only(Command::scene, "list"));
    CHECK_FALSE(read_only(Command::scene, "change"));
    for (Command c :
         {Command::set, Command::reload, Command::dim, Command::panic, Command::learn, Command::guard})
        CHECK_FALSE(read_only(c));
    CHECK(reply_ok(7, boost::json::object{{"pong", true}}) == R"({"id":7,"ok":true,"result":{"pong":true}})");
    CHECK(reply_error(nullptr, code::not_found, "no musician 'x'") ==
          R"({"ok":false,"error":{"code":"not_found","message":"no musician 'x'"}})");
    CHECK(hello_line("0.1.0", false) ==
          R"({"hello":"earshot","protocol":1,"version":"0.1.0","access":"read"})");
    CHECK(db_json(-std::numeric_limits<double>::infinity()).is_null());
    CHECK(db_json(-3.004).as_double() == -3.0);
}
