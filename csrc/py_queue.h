/*
 * py_queue.h: what py_queue.c offers: the set-up of the private
 * CompletionQueue and AsyncSocket types.
 */
#ifndef REPYNET_PY_QUEUE_H
#define REPYNET_PY_QUEUE_H

#include "_repynet.h"

int repynet_queue_exec(PyObject *module);

#endif /* REPYNET_PY_QUEUE_H */
