// CAIRN_CHECK: invariants that stay on in release builds (cheap ones); CAIRN_DCHECK: expensive
// ones, debug builds only. A failed check is a programmer error: it prints and aborts. Bytes from
// disk or the network never reach a check; they are validated into a Status first.
#pragma once

#include "cairn/status.h"

#define CAIRN_CHECK(cond)                                                       \
  do {                                                                          \
    if (!(cond)) [[unlikely]] ::cairn::CheckFailed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define CAIRN_CHECK_MSG(cond, msg)                                                \
  do {                                                                            \
    if (!(cond)) [[unlikely]] ::cairn::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

#ifdef NDEBUG
#define CAIRN_DCHECK(cond) \
  do {                     \
  } while (0)
#else
#define CAIRN_DCHECK(cond) CAIRN_CHECK(cond)
#endif
