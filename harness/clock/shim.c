/*
 * lockharness clock shim: LD_PRELOAD library that shifts the wall clock of one process.
 *
 * The offset (int64 nanoseconds, native byte order) lives at byte 0 of the file named by
 * LOCKHARNESS_CLOCK_FILE. The file is mapped MAP_SHARED once and read on every call, so the
 * clock nemesis can move the clock of a running server by storing a new value into the file.
 * No env: offset 0. A file that cannot be mapped (missing, unreadable, shorter than 8 bytes):
 * offset 0 and one warning line on stderr.
 *
 * Only CLOCK_REALTIME and CLOCK_REALTIME_COARSE are shifted (plus gettimeofday, time and
 * timespec_get, which are the same clock); monotonic clocks pass through, as on a real machine
 * whose NTP stepped the wall clock.
 *
 * Why raw syscalls everywhere: libfaketime resolves the real functions with dlsym, which can
 * allocate, and jemalloc (Redis) reads the clock while initialising: the recursion aborts the
 * server at start. This file calls no allocator, no stdio, no dlsym and takes no locks. The
 * price is that shifted and passed-through calls alike skip the vDSO (a real syscall each).
 *
 * Not covered: statically linked programs and Go binaries (etcd), which never call libc's
 * clock functions; ftime; CLOCK_TAI and CLOCK_REALTIME_ALARM.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC 1000000000LL

/* 0 = not tried, 1 = mapping in progress, 2 = done (offset_ptr set or left NULL). */
static int map_state;
static const volatile int64_t *offset_ptr;

static size_t cstrlen(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return n;
}

/* One line on stderr (the server's log) when the offset file is set but unusable: otherwise a
 * clock fault would silently do nothing. Raw write: no stdio before or inside the allocator. */
static void warn_unusable(const char *path)
{
    static const char head[] = "lockharness clock shim: cannot map ";
    static const char tail[] = " (need a readable file of 8 bytes): wall clock not shifted\n";
    syscall(SYS_write, 2, head, sizeof(head) - 1);
    syscall(SYS_write, 2, path, cstrlen(path));
    syscall(SYS_write, 2, tail, sizeof(tail) - 1);
}

static void map_offset_file(void)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&map_state, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return; /* another thread maps (it reads offset 0 meanwhile) or it is done */
    const char *path = getenv("LOCKHARNESS_CLOCK_FILE"); /* getenv does not allocate */
    if (path != NULL && path[0] != '\0') {
        long p = -1;
        long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            struct stat st;
            /* A mapped page past EOF would SIGBUS on read: demand the full 8 bytes. */
            if (syscall(SYS_fstat, fd, &st) == 0 && st.st_size >= (off_t)sizeof(int64_t))
                p = syscall(SYS_mmap, NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
            syscall(SYS_close, fd);
        }
        if (p != -1)
            __atomic_store_n(&offset_ptr, (const volatile int64_t *)p, __ATOMIC_RELEASE);
        else
            warn_unusable(path);
    }
    __atomic_store_n(&map_state, 2, __ATOMIC_RELEASE);
}

/* Map before main; clock calls made by earlier constructors (jemalloc) map lazily instead. */
__attribute__((constructor)) static void lockharness_clock_init(void)
{
    map_offset_file();
}

static int64_t offset_ns(void)
{
    if (__atomic_load_n(&map_state, __ATOMIC_ACQUIRE) != 2)
        map_offset_file();
    const volatile int64_t *p = __atomic_load_n(&offset_ptr, __ATOMIC_ACQUIRE);
    /* An aligned 8-byte load is a single access: readers see the old or the new offset. */
    return p != NULL ? __atomic_load_n(p, __ATOMIC_RELAXED) : 0;
}

static void shift(struct timespec *ts, int64_t off)
{
    int64_t sec = off / NSEC_PER_SEC;
    int64_t nsec = ts->tv_nsec + off % NSEC_PER_SEC;
    if (nsec >= NSEC_PER_SEC) {
        nsec -= NSEC_PER_SEC;
        sec++;
    } else if (nsec < 0) {
        nsec += NSEC_PER_SEC;
        sec--;
    }
    ts->tv_sec += sec;
    ts->tv_nsec = nsec;
}

static int raw_clock_gettime(clockid_t clk, struct timespec *ts)
{
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

static int realtime_now(struct timespec *ts)
{
    if (raw_clock_gettime(CLOCK_REALTIME, ts) != 0)
        return -1;
    int64_t off = offset_ns();
    if (off != 0)
        shift(ts, off);
    return 0;
}

int clock_gettime(clockid_t clk, struct timespec *ts)
{
    if (raw_clock_gettime(clk, ts) != 0)
        return -1;
    if (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE) {
        int64_t off = offset_ns();
        if (off != 0)
            shift(ts, off);
    }
    return 0;
}

int __clock_gettime(clockid_t clk, struct timespec *ts)
{
    return clock_gettime(clk, ts);
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    if (tz != NULL) {
        /* The kernel fills the obsolete timezone; take it from the raw call. */
        struct timeval ignored;
        if (syscall(SYS_gettimeofday, &ignored, tz) != 0)
            return -1;
    }
    struct timespec ts;
    if (realtime_now(&ts) != 0)
        return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

int __gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    return gettimeofday(tv, tz);
}

time_t time(time_t *out)
{
    struct timespec ts;
    if (realtime_now(&ts) != 0)
        return (time_t)-1;
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base)
{
    if (base != TIME_UTC || realtime_now(ts) != 0)
        return 0;
    return base;
}
