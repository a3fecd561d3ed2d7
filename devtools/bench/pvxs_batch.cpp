// pvxs_batch: batches of PVAccess gets and puts through EPICS's own C++ client (pvxs).
//
// The anchor of devtools.bench's section 7: every operation of a batch is started at once
// and the batch ends when the last result is in. Built at bench time by devtools.bench.cpp
// against the headers and libraries of the installed pvxslibs and epicscorelibs wheels.
//
//   pvxs_batch [--rounds R] [--warmup W] [--timeout S] [--request REQ] [NAME...]
//       R rounds (after W untimed ones) of a batch get of every NAME, then a batch put of
//       every NAME; one JSON line per round: {"round":r,"n":N,"get_ms":..,"put_ms":..,"errors":k}
//   pvxs_batch --step [--timeout S] [--request REQ] [NAME...]
//       prints {"ready":true,"n":N}, then reads commands from stdin, one per line, and
//       answers each with one JSON line {"op":..,"n":n,"ms":..,"errors":k[,"error":".."]}:
//         get N        a batch get of the first N names
//         put N R      a batch put of the first N names, values of round R
//         quit         (or end of input) exit
//
// Without NAME arguments the names are read from stdin, one per line, up to an empty line
// or the end of input. The server is found through the EPICS_PVA_* environment variables
// (pvxs::client::Context::fromEnv()). A put sets the field "value" of PV i to
// put_value(round, i) (the same formula as devtools.bench.cpp.put_values) and does not
// fetch the PV's present value first (fetchPresent(false)): the type comes with the
// channel's put initialisation. Exit status: 0, or 2 for bad arguments.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <pvxs/client.h>
#include <pvxs/data.h>

namespace {

using Clock = std::chrono::steady_clock;
using OpList = std::vector<std::shared_ptr<pvxs::client::Operation>>;

// The value PV `index` is given in round `round`: (round mod 50) + 0.5 + (index mod 10) / 10.
double put_value(long round, std::size_t index)
{
    long r = ((round % 50) + 50) % 50;
    return double(r) + 0.5 + double(index % 10) / 10.0;
}

// Waits for a batch: each result callback counts down; the waiter wakes once, at zero.
struct Batch {
    std::mutex lock;
    std::condition_variable done;
    std::size_t pending = 0;
    std::size_t errors = 0;
    std::string first_error;

    explicit Batch(std::size_t n) : pending(n) {}

    void finish(pvxs::client::Result&& result)
    {
        std::string error;
        bool failed = false;
        try {
            result();
        } catch (std::exception& e) {
            failed = true;
            error = e.what();
        }
        std::lock_guard<std::mutex> guard(lock);
        if (failed) {
            if (errors++ == 0)
                first_error = error;
        }
        if (--pending == 0)
            done.notify_one();
    }

    // true if every operation finished within timeout seconds
    bool wait(double timeout)
    {
        std::unique_lock<std::mutex> guard(lock);
        return done.wait_for(guard, std::chrono::duration<double>(timeout),
                             [this] { return pending == 0; });
    }
};

struct Outcome {
    double ms = 0.0;
    std::size_t errors = 0;
    std::string error;
};

std::string json_string(const std::string& text)
{
    std::ostringstream out;
    out << '"';
    for (char c : text) {
        switch (c) {
        case '"': out << "\\\""; break;
        case '\\': out << "\\\\"; break;
        case '\n': out << "\\n"; break;
        case '\r': out << "\\r"; break;
        case '\t': out << "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
                out << buf;
            } else {
                out << c;
            }
        }
    }
    out << '"';
    return out.str();
}

class Runner {
public:
    Runner(const std::vector<std::string>& names, double timeout, const std::string& request)
        : names_(names), timeout_(timeout), request_(request), ctxt_(pvxs::client::Context::fromEnv())
    {}

    ~Runner() { ctxt_.close(); }

    Outcome get(std::size_t n)
    {
        auto batch = std::make_shared<Batch>(n);
        OpList ops;
        ops.reserve(n);
        auto start = Clock::now();
        for (std::size_t i = 0; i < n; i++) {
            auto builder = ctxt_.get(names_[i]);
            if (!request_.empty())
                builder.pvRequest(request_);
            ops.push_back(builder.result([batch](pvxs::client::Result&& r) { batch->finish(std::move(r)); })
                              .exec());
        }
        return collect(batch, ops, start);
    }

    Outcome put(std::size_t n, long round)
    {
        auto batch = std::make_shared<Batch>(n);
        OpList ops;
        ops.reserve(n);
        auto start = Clock::now();
        for (std::size_t i = 0; i < n; i++) {
            ops.push_back(ctxt_.put(names_[i])
                              .fetchPresent(false)
                              .set("value", put_value(round, i))
                              .result([batch](pvxs::client::Result&& r) { batch->finish(std::move(r)); })
                              .exec());
        }
        return collect(batch, ops, start);
    }

    std::size_t size() const { return names_.size(); }

private:
    Outcome collect(const std::shared_ptr<Batch>& batch, OpList& ops, Clock::time_point start)
    {
        bool complete = batch->wait(timeout_);
        Outcome outcome;
        outcome.ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        ops.clear();  // cancels whatever is still pending (after a timeout)
        std::lock_guard<std::mutex> guard(batch->lock);
        outcome.errors = batch->errors;
        outcome.error = batch->first_error;
        if (!complete) {
            outcome.errors += batch->pending;
            if (outcome.error.empty())
                outcome.error = "timeout";
        }
        return outcome;
    }

    std::vector<std::string> names_;
    double timeout_;
    std::string request_;
    pvxs::client::Context ctxt_;
};

void print_outcome(const char* op, std::size_t n, const Outcome& outcome)
{
    std::printf("{\"op\":\"%s\",\"n\":%zu,\"ms\":%.4f,\"errors\":%zu", op, n, outcome.ms, outcome.errors);
    if (!outcome.error.empty())
        std::printf(",\"error\":%s", json_string(outcome.error).c_str());
    std::printf("}\n");
    std::fflush(stdout);
}

int usage(const std::string& why)
{
    std::fprintf(stderr,
                 "pvxs_batch: %s\nusage: pvxs_batch [--step] [--rounds R] [--warmup W] "
                 "[--timeout S] [--request REQ] [NAME...]\n",
                 why.c_str());
    return 2;
}

int step_mode(Runner& runner)
{
    std::printf("{\"ready\":true,\"n\":%zu}\n", runner.size());
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream words(line);
        std::string command;
        long n = -1, round = 0;
        words >> command;
        if (command.empty())
            continue;
        if (command == "quit")
            break;
        words >> n;
        if (!words || n < 0 || std::size_t(n) > runner.size()) {
            std::printf("{\"op\":%s,\"bad\":true}\n", json_string(command).c_str());
            std::fflush(stdout);
            continue;
        }
        if (command == "get") {
            print_outcome("get", std::size_t(n), runner.get(std::size_t(n)));
        } else if (command == "put" && (words >> round)) {
            print_outcome("put", std::size_t(n), runner.put(std::size_t(n), round));
        } else {
            std::printf("{\"op\":%s,\"bad\":true}\n", json_string(command).c_str());
            std::fflush(stdout);
        }
    }
    return 0;
}

int rounds_mode(Runner& runner, long rounds, long warmup)
{
    std::size_t n = runner.size();
    for (long r = -warmup; r < rounds; r++) {
        Outcome got = runner.get(n);
        Outcome put = runner.put(n, r);
        if (r < 0)
            continue;
        std::printf("{\"round\":%ld,\"n\":%zu,\"get_ms\":%.4f,\"put_ms\":%.4f,\"errors\":%zu", r, n, got.ms,
                    put.ms, got.errors + put.errors);
        std::string error = got.error.empty() ? put.error : got.error;
        if (!error.empty())
            std::printf(",\"error\":%s", json_string(error).c_str());
        std::printf("}\n");
        std::fflush(stdout);
    }
    return 0;
}

}  // namespace

int main(int argc, char* argv[])
{
    bool step = false;
    long rounds = 10, warmup = 1;
    double timeout = 10.0;
    std::string request;
    std::vector<std::string> names;
    for (int i = 1; i < argc; i++) {
        std::string arg(argv[i]);
        bool has_value = i + 1 < argc;
        if (arg == "--step") {
            step = true;
        } else if (arg == "--rounds" && has_value) {
            rounds = std::atol(argv[++i]);
        } else if (arg == "--warmup" && has_value) {
            warmup = std::atol(argv[++i]);
        } else if (arg == "--timeout" && has_value) {
            timeout = std::atof(argv[++i]);
        } else if (arg == "--request" && has_value) {
            request = argv[++i];
        } else if (arg.size() > 1 && arg[0] == '-') {
            return usage("unknown or incomplete option " + arg);
        } else {
            names.push_back(arg);
        }
    }
    if (rounds < 0 || warmup < 0 || !(timeout > 0.0))
        return usage("--rounds and --warmup must be >= 0, --timeout > 0");
    if (names.empty()) {
        std::string line;
        while (std::getline(std::cin, line) && !line.empty())
            names.push_back(line);
    }
    if (names.empty())
        return usage("no PV names (arguments, or stdin one per line)");
    try {
        Runner runner(names, timeout, request);
        return step ? step_mode(runner) : rounds_mode(runner, rounds, warmup);
    } catch (std::exception& e) {
        std::fprintf(stderr, "pvxs_batch: %s\n", e.what());
        return 1;
    }
}
