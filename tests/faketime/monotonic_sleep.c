/*
 * clock_nanosleep on the real monotonic clock, for running the suite under libfaketime.
 *
 * `make test-future` moves the test process's wall clock with libfaketime and leaves the
 * monotonic clock alone (FAKETIME_DONT_FAKE_MONOTONIC=1): with a faked monotonic clock,
 * Python's lock and Event timeouts (sem_clockwait, which libfaketime 0.9.10 does not wrap)
 * wait a year. But libfaketime 0.9.10 shifts an absolute CLOCK_MONOTONIC deadline by the
 * wall-clock offset even then, so every Python >= 3.11 time.sleep() fails with EINVAL
 * (fixed upstream after 0.9.10). Preloaded before libfaketime, this sends monotonic sleeps
 * straight to the kernel and hands every other clock to libfaketime.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req,
                    struct timespec *rem)
{
    static clock_nanosleep_fn next;

    if (clock_id == CLOCK_MONOTONIC) {
        /* clock_nanosleep returns the error number; the raw syscall sets errno */
        return syscall(SYS_clock_nanosleep, clock_id, flags, req, rem) == 0 ? 0 : errno;
    }
    if (next == NULL) {
        next = (clock_nanosleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
        if (next == NULL) {
            return ENOSYS;
        }
    }
    return next(clock_id, flags, req, rem);
}
