"""LLVM intrinsics for numba kernels: a software prefetch, a 64 × 64 → 128-bit multiply, a
word load at any byte, a vector select of the rows a group-by keeps, and ints compiled in as
constants."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import NativeValue, intrinsic, models, register_model, typeof_impl, unbox


def _element_pointer(context, builder, array_type, array, index_type, index):
    """The address of array[index]."""
    view = context.make_array(array_type)(context, builder, array)
    position = context.cast(builder, index, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, view, [position],
                                    wraparound=False)


def _pointer_to(builder, pointer, element_type):
    """`pointer` as a pointer to element_type (a cast only where LLVM pointers are typed)."""
    return pointer if pointer.type.is_opaque else builder.bitcast(pointer,
                                                                  element_type.as_pointer())


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the CPU to start loading array[index] into every cache level; no effect on results.

    A hash-table lookup's slot address is known rows before the row is coded, so loads issued
    that early overlap, where a plain loop waits for one cache miss at a time.
    """
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0],
                                   signature.args[1], args[1])
        i32 = ir.IntType(32)
        pointer = _pointer_to(builder, pointer, ir.IntType(8))  # one declaration: any dtype
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
        pointer = _element_pointer(context, builder, signature.args[0], args[0],
                                   signature.args[1], args[1])
        i64 = ir.IntType(64)
        return builder.load(_pointer_to(builder, pointer, i64), typ=i64, align=1)

    return types.uint64(data, index), codegen


LANES = 16  # rows select_lanes reads at once: one 512-bit vector of 32-bit ids


def _vector(element, count=LANES):
    return ir.VectorType(element, count)


def _splat(builder, value):
    """A vector holding `value` in every lane."""
    i32 = ir.IntType(32)
    one = builder.insert_element(ir.Constant(_vector(value.type), ir.Undefined), value, i32(0))
    return builder.shuffle_vector(one, ir.Constant(_vector(value.type), ir.Undefined),
                                  ir.Constant(_vector(i32), [0] * LANES))


def _lane_count(builder, mask):
    """How many lanes of an i1 vector are set, as an int64."""
    bits = ir.IntType(mask.type.count)
    count = cgutils.get_or_insert_function(builder.module, ir.FunctionType(bits, [bits]),
                                           f"llvm.ctpop.{bits}")
    return builder.zext(builder.call(count, [builder.bitcast(mask, bits)]), ir.IntType(64))


def _lanes(builder, vector, first, count):
    """Lanes first..first + count - 1 of a vector, as a vector."""
    if count == vector.type.count:
        return vector
    return builder.shuffle_vector(vector, ir.Constant(vector.type, ir.Undefined),
                                  ir.Constant(_vector(ir.IntType(32), count),
                                              list(range(first, first + count))))


def _store_packed(context, builder, vector, keep, array_type, array, at):
    """The lanes of `vector` where `keep` is set, packed together and stored from array[at]
    (the whole vector's width is written). At most 512 bits are compressed at once: a
    compress LLVM 22 must split (16 doubles) crashed when a lane of the first half was
    dropped."""
    element = vector.type.element
    size = context.get_abi_sizeof(element)
    step = min(vector.type.count, 64 // size)
    for first in range(0, vector.type.count, step):
        part, part_keep = (_lanes(builder, v, first, step) for v in (vector, keep))
        compress = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(part.type, [part.type, part_keep.type, part.type]),
            f"llvm.experimental.vector.compress.v{step}{element}")
        packed = builder.call(compress, [part, part_keep, ir.Constant(part.type, ir.Undefined)])
        pointer = _element_pointer(context, builder, array_type, array, types.int64, at)
        builder.store(packed, _pointer_to(builder, pointer, part.type), align=size)
        at = builder.add(at, _lane_count(builder, part_keep))


@intrinsic
def select_lanes(typingctx, ids, values, start, slot, out_slots, out_values, at):
    """For the LANES rows from `start`: look up slot[id] (ids outside 0..len(slot) - 1 have
    none), and write the rows with a slot >= 0 and a value that is not NaN packed together
    into out_slots[at:] and out_values[at:]. Returns (rows written, rows with a negative id).

    One vector load of ids and of values, one gather of the slots and one compress per
    output for 16 rows: a row-by-row loop runs so many instructions per cache line that its
    loads reach only a few lines ahead, and one core then streams memory well below its
    bandwidth. LLVM lowers the gather and compresses to AVX-512 instructions, and emulates
    them elsewhere. The caller keeps start + LANES within the rows and at + LANES within the
    outputs (all LANES are stored).
    """
    arrays = (ids, values, slot, out_slots, out_values)
    if not (all(isinstance(a, types.Array) for a in arrays)
            and isinstance(ids.dtype, types.Integer) and slot.dtype == out_slots.dtype
            and isinstance(slot.dtype, types.Integer) and slot.dtype.signed
            and values.dtype == out_values.dtype
            and isinstance(values.dtype, types.Integer | types.Float)
            and isinstance(start, types.Integer) and isinstance(at, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ids_arg, values_arg, start_arg, slot_arg, out_slots_arg, out_values_arg, at_arg = args
        ids_t, values_t, start_t, slot_t, out_slots_t, out_values_t, at_t = signature.args
        id_ir, value_ir, slot_ir = (context.get_value_type(a.dtype)
                                    for a in (ids_t, values_t, slot_t))
        i64 = ir.IntType(64)
        slot_bytes = context.get_abi_sizeof(slot_ir)

        def load(array_t, array, index_t, index, element):
            pointer = _element_pointer(context, builder, array_t, array, index_t, index)
            vector = _vector(element)
            return builder.load(_pointer_to(builder, pointer, vector), typ=vector,
                                align=context.get_abi_sizeof(element))

        id_vector = load(ids_t, ids_arg, start_t, start_arg, id_ir)
        value_vector = load(values_t, values_arg, start_t, start_arg, value_ir)
        table = context.make_array(slot_t)(context, builder, slot_arg)
        n_slots = builder.extract_value(table.shape, 0)
        wide_ids = (builder.sext if ids_t.dtype.signed else builder.zext)(id_vector,
                                                                           _vector(i64))
        in_table = builder.icmp_unsigned("<", wide_ids, _splat(builder, n_slots))
        negative = (builder.icmp_signed("<", wide_ids, ir.Constant(_vector(i64), 0))
                    if ids_t.dtype.signed else ir.Constant(_vector(ir.IntType(1)), 0))
        element_pointer = (ir.PointerType() if table.data.type.is_opaque
                           else slot_ir.as_pointer())
        addresses = builder.inttoptr(
            builder.add(_splat(builder, builder.ptrtoint(table.data, i64)),
                        builder.mul(wide_ids, ir.Constant(_vector(i64), slot_bytes))),
            _vector(element_pointer))
        pointers = "p0" if table.data.type.is_opaque else f"p0{slot_ir}"
        gather = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(_vector(slot_ir), [_vector(element_pointer), ir.IntType(32),
                                               _vector(ir.IntType(1)), _vector(slot_ir)]),
            f"llvm.masked.gather.v{LANES}{slot_ir}.v{LANES}{pointers}")
        slots = builder.call(gather, [addresses, ir.IntType(32)(slot_bytes), in_table,
                                      ir.Constant(_vector(slot_ir), -1)])
        keep = builder.icmp_signed(">=", slots, ir.Constant(_vector(slot_ir), 0))
        if isinstance(values_t.dtype, types.Float):
            keep = builder.and_(keep, builder.fcmp_ordered("==", value_vector, value_vector))
        at = context.cast(builder, at_arg, at_t, types.int64)
        _store_packed(context, builder, slots, keep, out_slots_t, out_slots_arg, at)
        _store_packed(context, builder, value_vector, keep, out_values_t, out_values_arg, at)
        return context.make_tuple(builder, signature.return_type,
                                  [_lane_count(builder, keep), _lane_count(builder, negative)])

    return (types.UniTuple(types.int64, 2)(ids, values, start, slot, out_slots, out_values, at),
            codegen)


class StaticInt:
    """An int a kernel is compiled for: numba types it by its value, so each value gets its own
    compilation with the int as a constant (read it with static_value). numba.literally does
    the same but types the call again every time (0.1 s a call)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = int(value)


class StaticIntType(types.Type):
    """numba's type of a StaticInt: the value is in the type."""

    def __init__(self, value: int) -> None:
        self.value = value
        super().__init__(name=f"StaticInt({value})")


@typeof_impl.register(StaticInt)
def _typeof_static_int(value, context):
    return StaticIntType(value.value)


register_model(StaticIntType)(models.OpaqueModel)


@unbox(StaticIntType)
def _unbox_static_int(typ, obj, c):
    return NativeValue(c.context.get_constant_null(typ))  # nothing to read: the type holds it


@intrinsic
def static_value(typingctx, static):
    """The int a StaticInt holds, as a constant the compiler folds."""
    if not isinstance(static, StaticIntType):
        return None

    def codegen(context, builder, signature, args):
        return context.get_constant(types.int64, signature.args[0].value)

    return types.int64(static), codegen
