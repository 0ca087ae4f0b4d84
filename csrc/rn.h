/*
 * rn.h: the pure-C core of repynet, one header for every core topic.
 *
 * Layer rule: nothing under rn_* includes Python.h.  Core functions return
 * >= 0 on success or -errno on failure, never log and never call Python, so
 * they can run with the GIL released and be unit-tested in plain C
 * (tests/c/).  The glue (py_*.c, _repynet.c) translates their results into
 * Python objects and Repy exceptions.
 */
#ifndef RN_H
#define RN_H

#include "rn_addr.h"
#include "rn_asock.h"
#include "rn_errors.h"
#include "rn_limits.h"
#include "rn_port.h"
#include "rn_sock.h"
#include "rn_sys.h"
#include "rn_table.h"

#endif /* RN_H */
