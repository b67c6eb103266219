#include "earshot/daemon/mix_state.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace earshot::daemon {

namespace json = boost::json;

namespace {

constexpr double neg_inf = -std::numeric_limits<double>::infinity();

// -inf ("off") is JSON null.
json::value db_value(double db) {
    if (std::isfinite(db)) return json::value(db);
    return json::value(nullptr);
}

bool read_db(const json::value* v, double& out) {
    if (!v) return false;
    if (v->is_null()) {
        out = neg_inf;
        return true;
    }
    if (v->is_double())
        out = v->as_double();
    else if (v->is_int64())
        out = static_cast<double>(v->as_int64());
    else if (v->is_uint64())
        out = static_cast<double>(v->as_uint64());
    else
        return false;
    return std::isfinite(out) && out >= -90.0 && out <= 12.0;
}

json::object send_json(const SendValue& s) {
    json::object o;
    o["gain_db"] = db_value(s.gain_db);
    o["pan"] = s.pan;
    o["mute"] = s.mute;
    return o;
}

bool read_send(const json::value* v, SendValue& s) {
    if (!v || !v->is_object()) return false;
    const json::object& o = v->as_object();
    if (!read_db(o.if_contains("gain_db"), s.gain_db)) return false;
    const json::value* p = o.if_contains("pan");
    if (!p) return false;
    if (p->is_double())
        s.pan = p->as_double();
    else if (p->is_int64())
        s.pan = static_cast<double>(p->as_int64());
    else
        return false;
    if (!(s.pan >= -1.0 && s.pan <= 1.0)) return false;
    const json::value* m = o.if_contains("mute");
    if (!m || !m->is_bool()) return false;
    s.mute = m->as_bool();
    return true;
}

SendValue config_send(const config::Musician& mu, const std::string& input) {
    for (const config::Send& s : mu.mix.sends)
        if (s.input == input) return SendValue{s.gain_db, s.pan, s.mute};
    return SendValue{};
}

bool same_db(double a, double b) {
    return a == b || (std::isinf(a) && std::isinf(b) && a < 0 && b < 0);
}

} // namespace

bool SendValue::operator==(const SendValue& o) const noexcept {
    return same_db(gain_db, o.gain_db) && pan == o.pan && mute == o.mute;
}

bool MixState::load(const std::string& path, std::string& err) {
    _m.clear();
    _dirty = false;
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (errno == ENOENT) return true;
        err = path + ": " + std::strerror(errno);
        return false;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    boost::system::error_code ec;
    json::value doc = json::parse(ss.str(), ec);
    auto fail = [&](const std::string& why) {
        _m.clear();
        err = path + ": " + why;
        return false;
    };
    if (ec) return fail("not valid JSON (" + ec.message() + ")");
    if (!doc.is_object()) return fail("not a JSON object");
    const json::object& root = doc.as_object();
    const json::value* ver = root.if_contains("version");
    if (!ver || !ver->is_int64() || ver->as_int64() != 1) return fail("unsupported version (expected 1)");
    const json::value* mus = root.if_contains("musicians");
    if (!mus || !mus->is_object()) return fail("no 'musicians' object");
    for (const auto& kv : mus->as_object()) {
        if (!kv.value().is_object()) return fail("musician '" + std::string(kv.key()) + "' is not an object");
        const json::object& mo = kv.value().as_object();
        Musician m;
        const json::value* master = mo.if_contains("master");
        if (!master || !master->is_object() ||
            !read_db(master->as_object().if_contains("live"), m.master_live) ||
            !read_db(master->as_object().if_contains("base"), m.master_base))
            return fail("musician '" + std::string(kv.key()) + "': bad 'master'");
        const json::value* sends = mo.if_contains("sends");
        if (!sends || !sends->is_object())
            return fail("musician '" + std::string(kv.key()) + "': bad 'sends'");
        for (const auto& skv : sends->as_object()) {
            if (!skv.value().is_object())
                return fail("send '" + std::string(kv.key()) + "/" + std::string(skv.key()) +
                            "' is not an object");
            Send s;
            if (!read_send(skv.value().as_object().if_contains("live"), s.live) ||
                !read_send(skv.value().as_object().if_contains("base"), s.base))
                return fail("send '" + std::string(kv.key()) + "/" + std::string(skv.key()) +
                            "' is malformed");
            m.sends[std::string(skv.key())] = s;
        }
        _m[std::string(kv.key())] = std::move(m);
    }
    return true;
}

bool MixState::save(const std::string& path, std::string& err) const {
    json::object root;
    root["version"] = 1;
    json::object mus;
    for (const auto& [id, m] : _m) {
        json::object mo;
        json::object master;
        master["live"] = db_value(m.master_live);
        master["base"] = db_value(m.master_base);
        mo["master"] = std::move(master);
        json::object sends;
        for (const auto& [in, s] : m.sends) {
            json::object so;
            so["live"] = send_json(s.live);
            so["base"] = send_json(s.base);
            sends[in] = std::move(so);
        }
        mo["sends"] = std::move(sends);
        mus[id] = std::move(mo);
    }
    root["musicians"] = std::move(mus);
    const std::string text = json::serialize(root) + "\n";

    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        err = tmp + ": " + std::strerror(errno);
        return false;
    }
    std::size_t off = 0;
    while (off < text.size()) {
        const ssize_t w = ::write(fd, text.data() + off, text.size() - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            err = tmp + ": " + std::strerror(errno);
            ::close(fd);
            return false;
        }
        off += static_cast<std::size_t>(w);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        err = tmp + ": " + std::strerror(errno);
        return false;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        err = path + ": " + std::strerror(errno);
        return false;
    }
    // Make the rename durable.
    const std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    const int dfd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    _dirty = false;
    return true;
}

void MixState::sync(const config::Config& cfg) {
    std::map<std::string, Musician> next;
    for (const config::Musician& mu : cfg.musicians) {
        Musician m;
        const auto old = _m.find(mu.id);
        if (old != _m.end() && same_db(old->second.master_base, mu.mix.master_db)) {
            m.master_live = old->second.master_live;
        } else {
            m.master_live = mu.mix.master_db;
        }
        m.master_base = mu.mix.master_db;
        for (const config::Input& in : cfg.inputs) {
            Send s;
            s.base = config_send(mu, in.id);
            s.live = s.base;
            if (old != _m.end()) {
                const auto os = old->second.sends.find(in.id);
                if (os != old->second.sends.end() && os->second.base == s.base) s.live = os->second.live;
            }
            m.sends[in.id] = s;
        }
        next[mu.id] = std::move(m);
    }
    if (next.size() != _m.size()) _dirty = true;
    for (const auto& [id, m] : next) {
        const auto o = _m.find(id);
        if (o == _m.end() || !same_db(o->second.master_live, m.master_live) ||
            !same_db(o->second.master_base, m.master_base) || o->second.sends.size() != m.sends.size()) {
            _dirty = true;
            continue;
        }
        for (const auto& [in, s] : m.sends) {
            const auto os = o->second.sends.find(in);
            if (os == o->second.sends.end() || !(os->second.live == s.live) || !(os->second.base == s.base))
                _dirty = true;
        }
    }
    _m = std::move(next);
}

config::Config MixState::effective(const config::Config& cfg) const {
    config::Config out = cfg;
    for (config::Musician& mu : out.musicians) {
        const auto it = _m.find(mu.id);
        if (it == _m.end()) continue;
        mu.mix.master_db = it->second.master_live;
        std::vector<config::Send> sends;
        for (const config::Input& in : cfg.inputs) {
            const auto s = it->second.sends.find(in.id);
            if (s == it->second.sends.end()) continue;
            const SendValue& v = s->second.live;
            if (std::isinf(v.gain_db) && !v.mute && v.pan == 0) {
                // Off: leave it out, unless the config listed it (keeps its mark for errors).
                bool listed = false;
                for (const config::Send& cs : mu.mix.sends) listed = listed || cs.input == in.id;
                if (!listed) continue;
            }
            config::Send cs;
            cs.input = in.id;
            cs.gain_db = v.gain_db;
            cs.pan = v.pan;
            cs.mute = v.mute;
            for (const config::Send& old : mu.mix.sends)
                if (old.input == in.id) cs.mark = old.mark;
            sends.push_back(std::move(cs));
        }
        mu.mix.sends = std::move(sends);
    }
    return out;
}

bool MixState::set_send(const std::string& musician, const std::string& input, const SendValue& v) {
    const auto it = _m.find(musician);
    if (it == _m.end()) return false;
    const auto s = it->second.sends.find(input);
    if (s == it->second.sends.end()) return false;
    if (!(s->second.live == v)) _dirty = true;
    s->second.live = v;
    return true;
}

bool MixState::set_master(const std::string& musician, double gain_db) {
    const auto it = _m.find(musician);
    if (it == _m.end()) return false;
    if (!same_db(it->second.master_live, gain_db)) _dirty = true;
    it->second.master_live = gain_db;
    return true;
}

const MixState::Musician* MixState::find(const std::string& musician) const {
    const auto it = _m.find(musician);
    return it == _m.end() ? nullptr : &it->second;
}

} // namespace earshot::daemon
