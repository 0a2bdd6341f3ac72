// normpeer: a small NORM peer on the reference library (libnorm, Debian's
// libnorm-dev), used by Shoal's interoperability tests. Written from the
// public API in normApi.h.
//
//   normpeer send --addr G --port P [options] (--data F | --file F | --stream F | --empty)...
//   normpeer recv --addr G --port P [options] --dir D --count N
//
// Common options: --iface NAME --id NODEID --txloss PCT --rxloss PCT --timeout SEC
//         --buffer BYTES (libnorm's object buffer, default 32 MiB)
//         --sockbuf BYTES (UDP socket buffer; default: libnorm's own)
// Sender: --rate BPS | --cc, --segment N --block N --parity N --auto N --backoff F
//         --grtt SEC --ack ID[,ID...]
// Receiver: --silent
//
// The receiver writes each completed object into D under the name its
// NORM_INFO gives (data-N.bin or stream-N.bin without one) and prints one
// line per object: "OBJ <type> <size> <status> <info> [<path>]".

#include <normApi.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

struct Item {
    std::string kind;  // data, file, stream, empty
    std::string path;
};

struct Opts {
    std::string mode, addr = "239.255.1.1", iface, dir = ".";
    int port = 6003;
    unsigned long id = 0;
    double rate = 10e6, txloss = 0, rxloss = 0, backoff = -1, grtt = -1, timeout = 60;
    bool cc = false, silent = false;
    int segment = 1400, block = 64, parity = 0, autop = 0, count = 1;
    unsigned long buffer = 32 * 1024 * 1024, sockbuf = 0;
    std::vector<unsigned long> acks;
    std::vector<Item> items;
};

static double now() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static std::string readFile(const std::string& path) {
    FILE* f = fopen(path.c_str(), "rb");
    if (!f) { perror(path.c_str()); exit(2); }
    std::string s;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    fclose(f);
    return s;
}

static void writeFile(const std::string& path, const char* p, size_t n) {
    FILE* f = fopen(path.c_str(), "wb");
    if (!f) { perror(path.c_str()); return; }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

// nextEvent waits for a libnorm event until the deadline; false on timeout.
static bool nextEvent(NormInstanceHandle inst, NormEvent* ev, double deadline) {
    while (true) {
        if (NormGetNextEvent(inst, ev, false)) return true;
        double left = deadline - now();
        if (left <= 0) return false;
        struct pollfd pfd = {NormGetDescriptor(inst), POLLIN, 0};
        poll(&pfd, 1, (int)(left * 1000) + 1);
    }
}

static int runSend(Opts& o, NormInstanceHandle inst, NormSessionHandle s) {
    NormSetTxRate(s, o.rate);
    if (o.cc) NormSetCongestionControl(s, true, true);
    if (o.backoff >= 0) NormSetBackoffFactor(s, o.backoff);
    if (o.grtt > 0) NormSetGrttEstimate(s, o.grtt);
    if (o.txloss > 0) NormSetTxLoss(s, o.txloss);
    if (!NormStartSender(s, (NormSessionId)(getpid() & 0xffff), o.buffer, o.segment, o.block, o.parity)) {
        fprintf(stderr, "normpeer: NormStartSender failed\n");
        return 2;
    }
    if (o.sockbuf > 0) NormSetTxSocketBuffer(s, (unsigned)o.sockbuf);
    if (o.autop > 0) NormSetAutoParity(s, (unsigned char)o.autop);
    for (unsigned long a : o.acks) NormAddAckingNode(s, (NormNodeId)a);
    std::vector<std::string> keep;  // data objects must outlive their transmission
    keep.reserve(o.items.size());
    NormObjectHandle last = NORM_OBJECT_INVALID;
    double deadline = now() + o.timeout;
    for (const Item& it : o.items) {
        std::string name = it.path.substr(it.path.find_last_of('/') + 1);
        NormObjectHandle h = NORM_OBJECT_INVALID;
        if (it.kind == "data" || it.kind == "empty") {
            keep.push_back(it.kind == "empty" ? std::string() : readFile(it.path));
            const std::string& d = keep.back();
            h = NormDataEnqueue(s, d.data(), (UINT32)d.size(), name.c_str(), (unsigned)name.size());
        } else if (it.kind == "file") {
            h = NormFileEnqueue(s, it.path.c_str(), name.c_str(), (unsigned)name.size());
        } else if (it.kind == "stream") {
            std::string d = readFile(it.path);
            h = NormStreamOpen(s, 4 * 1024 * 1024, name.c_str(), (unsigned)name.size());
            size_t off = 0;
            while (off < d.size() && now() < deadline) {
                unsigned n = NormStreamWrite(h, d.data() + off, (unsigned)std::min<size_t>(d.size() - off, 8192));
                off += n;
                if (n == 0) {  // buffer full: let the library send
                    NormEvent ev;
                    nextEvent(inst, &ev, now() + 0.05);
                } else {
                    NormStreamFlush(h, true, NORM_FLUSH_PASSIVE);
                }
            }
            NormStreamClose(h, true);
        }
        if (h == NORM_OBJECT_INVALID) {
            fprintf(stderr, "normpeer: enqueue %s failed\n", it.path.c_str());
            return 2;
        }
        last = h;
    }
    if (!o.acks.empty() && last != NORM_OBJECT_INVALID) NormSetWatermark(s, last, true);
    bool flushed = false, acked = o.acks.empty();
    int status = 0;
    NormEvent ev;
    while (!(flushed && acked) && nextEvent(inst, &ev, deadline)) {
        switch (ev.type) {
            case NORM_TX_FLUSH_COMPLETED: flushed = true; break;
            case NORM_TX_WATERMARK_COMPLETED: {
                acked = true;
                NormNodeId node = NORM_NODE_ANY;
                NormAckingStatus st;
                while (NormGetNextAckingNode(s, &node, &st)) {
                    printf("ACK %08lx %s\n", (unsigned long)node, st == NORM_ACK_SUCCESS ? "ok" : "failed");
                    if (st != NORM_ACK_SUCCESS) status = 1;
                }
                break;
            }
            default: break;
        }
    }
    if (!(flushed && acked)) {
        fprintf(stderr, "normpeer: timed out (flushed=%d acked=%d)\n", flushed, acked);
        status = 1;
    }
    printf("SENT %zu\n", o.items.size());
    fflush(stdout);
    NormStopSender(s);
    return status;
}

static int runRecv(Opts& o, NormInstanceHandle inst, NormSessionHandle s) {
    if (o.rxloss > 0) NormSetRxLoss(s, o.rxloss);
    if (o.silent) NormSetSilentReceiver(s, true);
    // Streams from their beginning: with the default policy a receiver
    // whose first packet of a stream was lost starts after it.
    NormSetDefaultSyncPolicy(s, NORM_SYNC_STREAM);
    NormSetCacheDirectory(inst, (o.dir + "/").c_str());
    if (!NormStartReceiver(s, o.buffer)) {
        fprintf(stderr, "normpeer: NormStartReceiver failed\n");
        return 2;
    }
    if (o.sockbuf > 0) NormSetRxSocketBuffer(s, (unsigned)o.sockbuf);
    int done = 0, n = 0, status = 0;
    struct RxStream { NormObjectHandle h; FILE* f; std::string path; };
    std::vector<RxStream> streams;
    double deadline = now() + o.timeout;
    NormEvent ev;
    while (done < o.count && nextEvent(inst, &ev, deadline)) {
        if (ev.type == NORM_RX_OBJECT_NEW && NormObjectGetType(ev.object) == NORM_OBJECT_STREAM) {
            std::string path = o.dir + "/stream-" + std::to_string(n++) + ".bin";
            if (NormObjectHasInfo(ev.object)) {
                char info[1024] = {0};
                NormObjectGetInfo(ev.object, info, sizeof info - 1);
                if (info[0] && !strchr(info, '/')) path = o.dir + "/" + info;
            }
            streams.push_back({ev.object, fopen(path.c_str(), "wb"), path});
            NormObjectRetain(ev.object);
        }
        if (ev.type == NORM_RX_OBJECT_UPDATED && NormObjectGetType(ev.object) == NORM_OBJECT_STREAM) {
            for (auto& st : streams) {
                if (st.h != ev.object || !st.f) continue;
                char buf[65536];
                unsigned int len = sizeof buf;
                while (NormStreamRead(ev.object, buf, &len) && len > 0) {
                    fwrite(buf, 1, len, st.f);
                    len = sizeof buf;
                }
            }
        }
        if (ev.type == NORM_RX_OBJECT_COMPLETED || ev.type == NORM_RX_OBJECT_ABORTED) {
            const char* state = ev.type == NORM_RX_OBJECT_COMPLETED ? "completed" : "aborted";
            if (ev.type == NORM_RX_OBJECT_ABORTED) status = 1;
            char info[1024] = {0};
            if (NormObjectHasInfo(ev.object)) NormObjectGetInfo(ev.object, info, sizeof info - 1);
            NormObjectType t = NormObjectGetType(ev.object);
            long long size = (long long)NormObjectGetSize(ev.object);
            if (t == NORM_OBJECT_DATA && ev.type == NORM_RX_OBJECT_COMPLETED) {
                std::string path = o.dir + "/data-" + std::to_string(n++) + ".bin";
                if (info[0] && !strchr(info, '/')) path = o.dir + "/" + info;
                writeFile(path, NormDataAccessData(ev.object), (size_t)size);
                printf("OBJ data %lld %s %s %s\n", size, state, info, path.c_str());
            } else if (t == NORM_OBJECT_FILE && ev.type == NORM_RX_OBJECT_COMPLETED) {
                char name[1024];
                NormFileGetName(ev.object, name, sizeof name);
                std::string dst = o.dir + "/" + info;
                rename(name, dst.c_str());
                printf("OBJ file %lld %s %s %s\n", size, state, info, dst.c_str());
            } else if (t == NORM_OBJECT_STREAM) {
                for (auto& st : streams) {
                    if (st.h != ev.object || !st.f) continue;
                    fclose(st.f);
                    st.f = nullptr;
                    // The NORM_INFO may have arrived after the stream began.
                    if (info[0] && !strchr(info, '/')) rename(st.path.c_str(), (o.dir + "/" + info).c_str());
                }
                printf("OBJ stream %lld %s %s\n", size, state, info);
            } else {
                printf("OBJ %d %lld %s %s\n", (int)t, size, state, info);
            }
            fflush(stdout);
            done++;
        }
    }
    // Answer watermark requests for a moment after the last object.
    double linger = now() + 2;
    while (nextEvent(inst, &ev, linger)) {}
    if (done < o.count) {
        fprintf(stderr, "normpeer: %d of %d objects before the timeout\n", done, o.count);
        status = 1;
    }
    NormStopReceiver(s);
    return status;
}

int main(int argc, char** argv) {
    Opts o;
    if (argc < 2) { fprintf(stderr, "usage: normpeer send|recv [options]\n"); return 2; }
    o.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) { fprintf(stderr, "normpeer: %s needs a value\n", a.c_str()); exit(2); }
            return argv[++i];
        };
        if (a == "--addr") o.addr = next();
        else if (a == "--port") o.port = atoi(next().c_str());
        else if (a == "--iface") o.iface = next();
        else if (a == "--id") o.id = strtoul(next().c_str(), nullptr, 0);
        else if (a == "--rate") o.rate = atof(next().c_str());
        else if (a == "--cc") o.cc = true;
        else if (a == "--segment") o.segment = atoi(next().c_str());
        else if (a == "--block") o.block = atoi(next().c_str());
        else if (a == "--parity") o.parity = atoi(next().c_str());
        else if (a == "--auto") o.autop = atoi(next().c_str());
        else if (a == "--backoff") o.backoff = atof(next().c_str());
        else if (a == "--grtt") o.grtt = atof(next().c_str());
        else if (a == "--txloss") o.txloss = atof(next().c_str());
        else if (a == "--rxloss") o.rxloss = atof(next().c_str());
        else if (a == "--timeout") o.timeout = atof(next().c_str());
        else if (a == "--buffer") o.buffer = strtoul(next().c_str(), nullptr, 0);
        else if (a == "--sockbuf") o.sockbuf = strtoul(next().c_str(), nullptr, 0);
        else if (a == "--silent") o.silent = true;
        else if (a == "--dir") o.dir = next();
        else if (a == "--count") o.count = atoi(next().c_str());
        else if (a == "--ack") {
            std::string v = next();
            size_t p = 0;
            while (p <= v.size()) {
                size_t q = v.find(',', p);
                if (q == std::string::npos) q = v.size();
                o.acks.push_back(strtoul(v.substr(p, q - p).c_str(), nullptr, 0));
                p = q + 1;
            }
        } else if (a == "--data" || a == "--file" || a == "--stream") o.items.push_back({a.substr(2), next()});
        else if (a == "--empty") o.items.push_back({"empty", "empty"});
        else { fprintf(stderr, "normpeer: unknown option %s\n", a.c_str()); return 2; }
    }
    NormInstanceHandle inst = NormCreateInstance();
    NormSessionHandle s = NormCreateSession(inst, o.addr.c_str(), (UINT16)o.port, o.id ? (NormNodeId)o.id : NORM_NODE_ANY);
    if (s == NORM_SESSION_INVALID) { fprintf(stderr, "normpeer: NormCreateSession failed\n"); return 2; }
    NormSetRxPortReuse(s, true);
    NormSetMulticastLoopback(s, false);
    if (!o.iface.empty()) NormSetMulticastInterface(s, o.iface.c_str());
    int rc = o.mode == "send" ? runSend(o, inst, s) : runRecv(o, inst, s);
    NormDestroySession(s);
    NormDestroyInstance(inst);
    return rc;
}
