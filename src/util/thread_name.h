// Names the calling thread (as `top -H`, `perf report --sort comm` and gdb show it), so that a
// profile says which of the process's threads spent the time. Linux keeps 15 bytes of it.
#pragma once

#include <pthread.h>

namespace cairn::util {

inline void NameThisThread(const char* name) { (void)pthread_setname_np(pthread_self(), name); }

}  // namespace cairn::util
