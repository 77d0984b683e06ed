/*
 * model_internal.h — declarations shared between the model room's own files only.
 * Not part of the interface (model.h is).
 */
#ifndef RETORT_MODEL_INTERNAL_H
#define RETORT_MODEL_INTERNAL_H

#include "model.h"

void model_acts_free(model_acts *a);

#endif
