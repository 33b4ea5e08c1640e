// cuemu's execution of a launch: blocks spread over OpenMP threads; within a
// block every CUDA thread is a fiber, and a round-robin scheduler runs each
// ready fiber until it reaches a barrier, a warp collective or its end.
// __syncthreads releases when every thread of the block waits at the same
// one; a warp collective when every lane of its mask waits at one of the same
// kind. A state where nothing can run is a deadlock and fails the launch,
// naming the counts and call sites. The order in which ready threads run
// between barriers is CUEMU_ORDER (forward, reverse, random[:seed]): code
// that is only correct for one order (a missing barrier) fails in another.
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "fiber.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CUEMU_ASAN 1
#else
#define CUEMU_ASAN 0
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace cuemu {

namespace {

enum fiber_state { READY, AT_SYNCTHREADS, AT_WARP, DONE, FAILED };
const char *collective_name(int kind) {
    switch (kind) {
    case COLL_SYNCWARP: return "__syncwarp";
    case COLL_SHUFFLE: return "a shuffle";
    case COLL_WMMA: return "a wmma operation";
    }
    return "a collective";
}

struct thread_fiber {
    fiber_ctx ctx;
    char *stack = nullptr;
    unsigned tid = 0; // linear thread index in the block
    uint3 idx{};
    fiber_state state = READY;
    int kind = 0;      // collective kind while AT_WARP
    unsigned mask = 0; // its lane mask
    const char *file = "";
    int line = 0;
    void *asan_fake = nullptr;
};

struct warp_state {
    unsigned generation = 0;   // completed collective rounds
    uint64_t slot[2][32] = {}; // deposits, by round parity
    std::vector<char> scratch;
    unsigned scratch_gen = ~0u;
};

// One OS thread's block in flight, and its reusable fibers and stacks.
struct block_run {
    const launch_cfg *cfg = nullptr;
    void (*body)(void *) = nullptr;
    void *closure = nullptr;
    unsigned n_threads = 0;
    std::vector<thread_fiber> fibers;
    std::vector<warp_state> warps;
    std::vector<unsigned> order;
    thread_fiber *current = nullptr;
    fiber_ctx scheduler;
    const void *sched_stack = nullptr;
    size_t sched_stack_size = 0;
    void *sched_fake = nullptr;
    bool failed = false;
    std::string error;
    std::vector<void *> shared_seen;
    std::vector<char> dyn_shared;
    // stacks: one mapping, a PROT_NONE guard page below each stack
    char *stacks = nullptr;
    size_t stack_bytes = 0, n_stacks = 0;
    uint64_t rng = 0;
};

thread_local block_run *tl_run;

size_t page_size() {
    static const size_t p = (size_t)sysconf(_SC_PAGESIZE);
    return p;
}

size_t stack_bytes_wanted() {
    static const size_t bytes = [] {
        const char *e = getenv("CUEMU_STACK_KB");
        size_t kb = e && atol(e) > 0 ? (size_t)atol(e) : (CUEMU_ASAN ? 512 : 64);
        return (kb << 10) / page_size() * page_size();
    }();
    return bytes;
}

void ensure_stacks(block_run *r, size_t n) {
    const size_t bytes = stack_bytes_wanted();
    if (r->n_stacks >= n && r->stack_bytes == bytes) return;
    if (r->stacks) munmap(r->stacks, r->n_stacks * (r->stack_bytes + page_size()));
    const size_t each = bytes + page_size();
    void *p = mmap(nullptr, n * each, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "cuemu: cannot map %zu fiber stacks of %zu KB\n", n, bytes >> 10);
        abort();
    }
    r->stacks = static_cast<char *>(p);
    r->n_stacks = n;
    r->stack_bytes = bytes;
    for (size_t i = 0; i < n; i++) mprotect(r->stacks + i * each, page_size(), PROT_NONE); // overflow -> SIGSEGV
}

char *stack_of(block_run *r, unsigned i) { return r->stacks + i * (r->stack_bytes + page_size()) + page_size(); }

void fiber_main(void *arg);

void to_fiber(block_run *r, thread_fiber *f) {
    r->current = f;
    threadIdx = f->idx;
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(&r->sched_fake, f->stack, r->stack_bytes);
#endif
    fiber_switch(&r->scheduler, &f->ctx);
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(r->sched_fake, nullptr, nullptr);
#endif
    r->current = nullptr;
}

// From a fiber back to the scheduler; returns when the fiber is resumed.
void to_scheduler(block_run *r, thread_fiber *f, bool dying) {
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(dying ? nullptr : &f->asan_fake, r->sched_stack, r->sched_stack_size);
#else
    (void)dying;
#endif
    fiber_switch(&f->ctx, &r->scheduler);
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, &r->sched_stack, &r->sched_stack_size);
#endif
}

void fiber_main(void *arg) {
    thread_fiber *f = static_cast<thread_fiber *>(arg);
    block_run *r = tl_run;
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &r->sched_stack, &r->sched_stack_size);
#endif
    r->body(r->closure);
    f->state = DONE;
    to_scheduler(r, f, true);
    __builtin_unreachable();
}

thread_fiber *current_fiber(const char *what) {
    block_run *r = tl_run;
    if (!r || !r->current) {
        fprintf(stderr, "cuemu: %s called outside a kernel\n", what);
        abort();
    }
    return r->current;
}

std::string where(const block_run *r) {
    const launch_cfg &c = *r->cfg;
    return format("%s:%d: %s block (%u,%u,%u)", c.file, c.line, c.name, blockIdx.x, blockIdx.y, blockIdx.z);
}

void fail_block(block_run *r, const std::string &msg) {
    if (r->failed) return;
    r->failed = true;
    r->error = where(r) + ": " + msg;
}

// The counts and call sites of every waiting thread, for deadlock reports.
std::string census(const block_run *r) {
    std::map<std::string, unsigned> sites;
    for (const thread_fiber &f : r->fibers) {
        std::string k;
        switch (f.state) {
        case AT_SYNCTHREADS: k = format("at __syncthreads %s:%d", f.file, f.line); break;
        case AT_WARP: k = format("at %s %s:%d (mask 0x%08x)", collective_name(f.kind), f.file, f.line, f.mask); break;
        case DONE: k = "exited"; break;
        case READY: k = "ready"; break;
        case FAILED: k = "failed"; break;
        }
        sites[k]++;
    }
    std::string s;
    for (const auto &kv : sites) s += format("%s%u of %u threads %s", s.empty() ? "" : ", ", kv.second, r->n_threads,
                                             kv.first.c_str());
    return s;
}

// Releases every warp collective all of whose lanes have arrived; false
// (and the block failed) on a mismatch no execution could resolve.
bool release_warps(block_run *r, bool *released) {
    const unsigned n = r->n_threads;
    for (unsigned w = 0; w * 32 < n; w++) {
        const unsigned lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
        const thread_fiber *first = nullptr;
        for (unsigned t = lo; t < hi && !first; t++)
            if (r->fibers[t].state == AT_WARP) first = &r->fibers[t];
        if (!first) continue;
        bool all = true;
        for (unsigned lane = 0; lane < 32; lane++) {
            if (!(first->mask >> lane & 1u)) continue;
            if (lo + lane >= n) {
                fail_block(r, format("%s at %s:%d names lane %u, but the block's last warp has %u threads",
                                     collective_name(first->kind), first->file, first->line, lane, hi - lo));
                return false;
            }
            const thread_fiber &f = r->fibers[lo + lane];
            if (f.state == AT_WARP && (f.kind != first->kind || f.mask != first->mask)) {
                fail_block(r, format("warp %u: lane %u waits at %s %s:%d (mask 0x%08x), lane %u at %s %s:%d "
                                     "(mask 0x%08x)",
                                     w, first->tid - lo, collective_name(first->kind), first->file, first->line,
                                     first->mask, lane, collective_name(f.kind), f.file, f.line, f.mask));
                return false;
            }
            if (f.state == DONE) {
                fail_block(r, format("warp %u: lane %u exited, but lane %u waits for it at %s %s:%d", w, lane,
                                     first->tid - lo, collective_name(first->kind), first->file, first->line));
                return false;
            }
            if (f.state != AT_WARP) all = false;
        }
        if (!all) continue;
        for (unsigned lane = 0; lane < 32; lane++)
            if (first->mask >> lane & 1u) r->fibers[lo + lane].state = READY;
        r->warps[w].generation++;
        *released = true;
    }
    return true;
}

bool release_block(block_run *r, bool *released) {
    const thread_fiber *first = nullptr;
    for (const thread_fiber &f : r->fibers) {
        if (f.state != AT_SYNCTHREADS) return true; // someone has not arrived (or exited: a deadlock later)
        if (!first) first = &f;
        else if (f.line != first->line || f.file != first->file) {
            fail_block(r, format("threads wait at different __syncthreads: %s:%d and %s:%d", first->file, first->line,
                                 f.file, f.line));
            return false;
        }
    }
    for (thread_fiber &f : r->fibers) f.state = READY;
    *released = true;
    return true;
}

uint64_t next_random(uint64_t *s) {
    uint64_t x = *s += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void plan_order(block_run *r, thread_order ord) {
    const unsigned n = r->n_threads;
    for (unsigned i = 0; i < n; i++) r->order[i] = ord == ORDER_REVERSE ? n - 1 - i : i;
    if (ord == ORDER_RANDOM)
        for (unsigned i = n - 1; i > 0; i--) std::swap(r->order[i], r->order[next_random(&r->rng) % (i + 1)]);
}

void run_block(block_run *r, uint3 bidx) {
    const launch_cfg &c = *r->cfg;
    blockIdx = bidx;
    blockDim = c.block;
    gridDim = c.grid;
    r->failed = false;
    r->error.clear();
    r->shared_seen.clear();
    if (!r->dyn_shared.empty()) std::memset(r->dyn_shared.data(), 0xff, r->dyn_shared.size());
    unsigned seed = 0;
    const thread_order ord = order(&seed);
    r->rng = ((uint64_t)seed << 32) ^ (((uint64_t)bidx.z * c.grid.y + bidx.y) * c.grid.x + bidx.x);
    for (unsigned t = 0; t < r->n_threads; t++) {
        thread_fiber &f = r->fibers[t];
        f.tid = t;
        f.idx = uint3{t % c.block.x, t / c.block.x % c.block.y, t / (c.block.x * c.block.y)};
        f.state = READY;
        f.stack = stack_of(r, t);
        f.asan_fake = nullptr;
        fiber_init(&f.ctx, f.stack, r->stack_bytes, fiber_main, &f);
    }
    for (warp_state &w : r->warps) w.generation = 0, w.scratch_gen = ~0u;
    plan_order(r, ord);
    for (;;) {
        // one round: every ready thread runs to its next barrier or its end
        for (unsigned i = 0; i < r->n_threads; i++) {
            thread_fiber *f = &r->fibers[r->order[i]];
            if (f->state != READY) continue;
            to_fiber(r, f);
            if (r->failed) return;
        }
        unsigned done = 0;
        for (const thread_fiber &f : r->fibers) done += f.state == DONE;
        if (done == r->n_threads) return;
        bool released = false;
        if (!release_warps(r, &released) || !release_block(r, &released)) return;
        if (!released) { // nobody is ready and no barrier can open
            fail_block(r, "deadlock: " + census(r));
            return;
        }
        if (ord == ORDER_RANDOM) plan_order(r, ord);
    }
}

std::mutex coverage_mu;
std::set<std::string> *coverage;

void write_coverage() {
    const char *path = getenv("CUEMU_COVERAGE");
    if (!path || !*path || !coverage) return;
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "cuemu: cannot write the kernel coverage to %s\n", path);
        return;
    }
    for (const std::string &k : *coverage) fprintf(f, "%s\n", k.c_str());
    fclose(f);
}

void record_launch(const launch_cfg &c) {
    std::string name(c.name);
    const size_t lt = name.find('<');
    if (lt != std::string::npos) name.resize(lt);
    std::lock_guard<std::mutex> lock(coverage_mu);
    if (!coverage) {
        coverage = new std::set<std::string>;
        atexit(write_coverage);
    }
    coverage->insert(name);
}

bool trace_launches() {
    static const bool on = getenv("CUEMU_TRACE") && atoi(getenv("CUEMU_TRACE")) > 0;
    return on;
}

} // namespace

void syncthreads(const char *file, int line) {
    thread_fiber *f = current_fiber("__syncthreads");
    f->state = AT_SYNCTHREADS;
    f->file = file, f->line = line;
    to_scheduler(tl_run, f, false);
}

warp_slot warp_collective(unsigned mask, int kind, uint64_t deposit, const char *file, int line) {
    thread_fiber *f = current_fiber(collective_name(kind));
    block_run *r = tl_run;
    const unsigned lane = f->tid % 32;
    if (!(mask >> lane & 1u))
        kernel_fail(file, line, "lane %u calls %s with mask 0x%08x, which leaves it out", lane, collective_name(kind),
                    mask);
    warp_state &w = r->warps[f->tid / 32];
    const unsigned g = w.generation;
    w.slot[g & 1][lane] = deposit;
    f->state = AT_WARP;
    f->kind = kind, f->mask = mask, f->file = file, f->line = line;
    to_scheduler(r, f, false);
    return warp_slot{&w.slot[g & 1][lane], w.slot[g & 1], lane, g};
}

void *warp_scratch(size_t bytes, unsigned generation, bool *first) {
    thread_fiber *f = current_fiber("a wmma operation");
    warp_state &w = tl_run->warps[f->tid / 32];
    *first = w.scratch_gen != generation;
    if (*first) {
        w.scratch.resize(bytes);
        w.scratch_gen = generation;
    }
    return w.scratch.data();
}

void kernel_fail(const char *file, int line, const char *fmt, ...) {
    thread_fiber *f = current_fiber("kernel_fail");
    block_run *r = tl_run;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_block(r, format("thread (%u,%u,%u): %s:%d: %s", f->idx.x, f->idx.y, f->idx.z, file, line, msg));
    f->state = FAILED;
    to_scheduler(r, f, true);
    __builtin_unreachable();
}

void shared_region(void *p, size_t bytes) {
    current_fiber("__shared__");
    block_run *r = tl_run;
    for (void *q : r->shared_seen)
        if (q == p) return;
    r->shared_seen.push_back(p);
    std::memset(p, 0xff, bytes); // NaN as float and double, -1 as integers
}

void *dynamic_shared(size_t *bytes) {
    current_fiber("extern __shared__");
    *bytes = tl_run->dyn_shared.size();
    return tl_run->dyn_shared.data();
}

void run_grid(const launch_cfg &c, void (*body)(void *), void *closure) {
    const device_info &d = device();
    if (!d.present) {
        set_error(cudaErrorNoDevice, format("%s: no CUDA device (CUEMU_DEVICE=none)", c.name));
        return;
    }
    if (c.built_arch > d.prop.major * 10 + d.prop.minor) {
        set_error(cudaErrorNoKernelImageForDevice,
                  format("%s: built for sm_%d, the device is sm_%d%d", c.name, c.built_arch, d.prop.major,
                         d.prop.minor));
        return;
    }
    const unsigned long threads = (unsigned long)c.block.x * c.block.y * c.block.z;
    if (!c.block.x || !c.block.y || !c.block.z || !c.grid.x || !c.grid.y || !c.grid.z || threads > 1024 ||
        c.block.z > 64 || c.grid.y > 65535 || c.grid.z > 65535 || c.grid.x > 0x7fffffffu || c.shmem > 48 * 1024) {
        set_error(cudaErrorInvalidConfiguration,
                  format("%s:%d: %s<<<(%u,%u,%u), (%u,%u,%u), %zu>>>: invalid launch configuration", c.file, c.line,
                         c.name, c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z, c.shmem));
        return;
    }
    if (!stream_valid(c.stream)) {
        set_error(cudaErrorInvalidResourceHandle, format("%s:%d: %s: launch on a destroyed or unknown stream", c.file,
                                                         c.line, c.name));
        return;
    }
    record_launch(c);
    if (trace_launches())
        fprintf(stderr, "cuemu: %s:%d %s<<<(%u,%u,%u), (%u,%u,%u)>>>\n", c.file, c.line, c.name, c.grid.x, c.grid.y,
                c.grid.z, c.block.x, c.block.y, c.block.z);
    const long blocks = (long)c.grid.x * c.grid.y * c.grid.z;
    std::atomic<bool> failed{false};
    std::string error;
    std::mutex error_mu;
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
    for (long b = 0; b < blocks; b++) {
        if (failed.load(std::memory_order_relaxed)) continue;
        static thread_local block_run run;
        block_run *r = &run;
        tl_run = r;
        r->cfg = &c, r->body = body, r->closure = closure;
        r->n_threads = (unsigned)threads;
        r->fibers.resize(threads);
        r->order.resize(threads);
        r->warps.resize((threads + 31) / 32);
        r->dyn_shared.resize(c.shmem);
        ensure_stacks(r, threads);
        const uint3 bidx{(unsigned)(b % c.grid.x), (unsigned)(b / c.grid.x % c.grid.y),
                         (unsigned)(b / ((long)c.grid.x * c.grid.y))};
        run_block(r, bidx);
        tl_run = nullptr;
        if (r->failed) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (!failed.exchange(true)) error = r->error;
        }
    }
    if (failed) set_launch_failure(error);
}

} // namespace cuemu
