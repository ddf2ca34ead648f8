"""LLVM intrinsics for numba kernels: a software prefetch, a 64 × 64 → 128-bit multiply, and a
word load at any byte."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _element_pointer(context, builder, signature, args):
    """The address of array[index] for an intrinsic called as (array, index)."""
    array_type, index_type = signature.args
    view = context.make_array(array_type)(context, builder, args[0])
    position = context.cast(builder, args[1], index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, view, [position],
                                    wraparound=False)


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the CPU to start loading array[index] into every cache level; no effect on results.

    A hash-table lookup's slot address is known rows before the row is coded, so loads issued
    that early overlap, where a plain loop waits for one cache miss at a time.
    """
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature, args)
        i32 = ir.IntType(32)
        if not pointer.type.is_opaque:  # one declaration per module: arrays of any dtype
            pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]),
            "llvm.prefetch." + ("p0" if pointer.type.is_opaque else "p0i8"))
        builder.call(function, [pointer, i32(0), i32(3), i32(1)])  # read, keep in all caches, data
        return context.get_dummy_value()

    return types.void(array, index), codegen


@intrinsic
def fold_mul(typingctx, a, b):
    """The two 64-bit halves of the 128-bit product a × b, xored: a hash of a in one multiply
    whose every bit depends on every bit of a (a 64-bit product's low bits depend only on a's
    low bits). Not a bijection."""
    if a != types.uint64 or b != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        i64, i128 = ir.IntType(64), ir.IntType(128)
        product = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        high = builder.trunc(builder.lshr(product, ir.Constant(i128, 64)), i64)
        return builder.xor(builder.trunc(product, i64), high)

    return types.uint64(types.uint64, types.uint64), codegen


@intrinsic
def load_word(typingctx, data, index):
    """The 8 bytes data[index:index + 8] as one uint64 in the machine's byte order (the order
    a uint64 view of the buffer reads), by one load at any alignment: a string's words need
    no shifting together from two aligned words. The caller keeps index + 8 within data."""
    if not (isinstance(data, types.Array) and data.dtype == types.uint8
            and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature, args)
        i64 = ir.IntType(64)
        if not pointer.type.is_opaque:
            pointer = builder.bitcast(pointer, i64.as_pointer())
        return builder.load(pointer, typ=i64, align=1)

    return types.uint64(data, index), codegen
