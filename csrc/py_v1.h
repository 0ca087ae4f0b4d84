/*
 * py_v1.h: what py_v1.c offers: the set-up of what the Repy V1 call style
 * needs from C (repynet/v1.py).
 */
#ifndef REPYNET_PY_V1_H
#define REPYNET_PY_V1_H

#include "_repynet.h"

int repynet_v1_exec(PyObject *module);

#endif /* REPYNET_PY_V1_H */
