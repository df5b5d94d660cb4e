"""Denormals flushed to zero inside the numba kernels, as TensorFlow does on the CPU.

A float32 below 1.18e-38 (float64: 2.2e-308) is "denormal"; an x86 core handles an arithmetic
operation on one in microcode, ~100 times slower than normal. Training makes them: the softmax of
a confidently classified image has probabilities of 1e-40, and Adam's first moment of a weight
that stops getting gradient decays by 0.9 a step into the denormal range. Measured on the seed
model: a train step takes 42 ms in epoch 1 and 53 ms after three epochs of MNIST, 42 ms again with
denormals flushed (TensorFlow's thread pools run with FTZ and DAZ set, so TensorFlow never slows).

:func:`denormals_off` sets the thread's MXCSR flags FTZ (results that would be denormal become
0) and DAZ (denormal inputs are read as 0) and returns the previous MXCSR; :func:`denormals_restore`
puts it back. Each parallel iteration of an arithmetic kernel brackets its work with the two, so
the caller's thread (which runs iterations too) leaves a kernel with its floating-point state
unchanged, and numpy code outside the kernels is unaffected. The results differ from the numpy
backend's only where a value is below the denormal threshold. Off x86 both are no-ops.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: the MXCSR register exists (x86-64 and 32-bit x86)
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
#: MXCSR bits: FTZ (bit 15) and DAZ (bit 6)
FTZ_DAZ = 0x8040


def _mxcsr_fn(builder, name):
    i8p = ir.IntType(8).as_pointer()
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)


@intrinsic
def denormals_off(typingctx):
    """Set FTZ and DAZ in this thread; returns the previous MXCSR (0 off x86)."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        if not X86:
            return ir.Constant(i64, 0)
        slot = cgutils.alloca_once(builder, i32)
        ptr = builder.bitcast(slot, ir.IntType(8).as_pointer())
        builder.call(_mxcsr_fn(builder, "llvm.x86.sse.stmxcsr"), [ptr])
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, FTZ_DAZ)), slot)
        builder.call(_mxcsr_fn(builder, "llvm.x86.sse.ldmxcsr"), [ptr])
        return builder.zext(old, i64)

    return sig, codegen


@intrinsic
def denormals_restore(typingctx, old):
    """Put back the MXCSR that :func:`denormals_off` returned (no-op off x86)."""
    sig = types.void(types.int64)

    def codegen(context, builder, signature, args):
        if X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
            builder.call(_mxcsr_fn(builder, "llvm.x86.sse.ldmxcsr"),
                         [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        return context.get_dummy_value()

    return sig, codegen
