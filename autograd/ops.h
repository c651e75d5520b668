#pragma once
// The differentiable op library (moda::ops), one header per op family; see autograd/function.h for
// the signatures and how an op is written.
#include "autograd/dense_ops.h"
#include "autograd/moda_attention_ops.h"
#include "autograd/pointwise_ops.h"
