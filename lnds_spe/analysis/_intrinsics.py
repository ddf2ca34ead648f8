"""LLVM intrinsics for numba kernels: a software prefetch, a 64 × 64 → 128-bit multiply, a
word load at any byte, a vector select of the rows a window scan keeps, and ints compiled in
as constants."""

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


_REGISTER_BITS = 512  # on AVX-512, ids below this are tested against 16 words held in a register


def _has_avx512() -> bool:
    """Whether numba compiles for AVX-512F: its configured CPU features, else the host's (as
    numba's own code generator decides)."""
    from llvmlite import binding
    from numba.core import config

    features = (config.CPU_FEATURES if config.CPU_FEATURES is not None
                else binding.get_host_cpu_features().flatten())
    return "+avx512f" in features.split(",")


def _gather_words(context, builder, bits, lane_ids, mask):
    """bits[id // 32] for the lanes of `mask` (0 in the others): a masked gather from memory."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    word_pointer = ir.PointerType() if bits.data.type.is_opaque else i32.as_pointer()
    offsets = builder.shl(builder.lshr(builder.zext(lane_ids, _vector(i64))
                                       if lane_ids.type.element.width < 64 else lane_ids,
                                       _splat(builder, i64(5))), _splat(builder, i64(2)))
    addresses = builder.inttoptr(
        builder.add(_splat(builder, builder.ptrtoint(bits.data, i64)), offsets),
        _vector(word_pointer))
    pointers = "p0" if bits.data.type.is_opaque else "p0i32"
    gather = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(_vector(i32), [_vector(word_pointer), i32, _vector(ir.IntType(1)),
                                       _vector(i32)]),
        f"llvm.masked.gather.v{LANES}i32.v{LANES}{pointers}")
    return builder.call(gather, [addresses, i32(4), mask, ir.Constant(_vector(i32), 0)])


def _register_words(builder, bits, lane_ids):
    """bits[id // 32] for ids below _REGISTER_BITS, from the bitset's first 16 words held in
    one register (vpermd); the other lanes hold any word."""
    i32 = ir.IntType(32)
    first = builder.load(_pointer_to(builder, bits.data, _vector(i32)), typ=_vector(i32),
                         align=4)
    word = builder.lshr(lane_ids, _splat(builder, lane_ids.type.element(5)))
    if lane_ids.type.element.width > 32:
        word = builder.trunc(word, _vector(i32))
    permute = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_vector(i32), [_vector(i32), _vector(i32)]),
        "llvm.x86.avx512.permvar.si.512")
    return builder.call(permute, [first, word])


@intrinsic
def select_lanes(typingctx, ids, values, start, wanted_bits, out_rows, at):
    """For the LANES rows from `start`: write the positions of the rows whose id has its bit
    set in `wanted_bits` (bit id % 32 of word id // 32; an id past the bitset has none) and
    whose value is not NaN, packed together into out_rows[at:]. Returns (rows written, rows
    with a negative id).

    One vector load of ids and of values, one test of the ids and one compress for 16 rows: a
    row-by-row loop runs so many instructions per cache line that one core streams memory
    well below its bandwidth. On AVX-512 the bitset's first 512 bits stay in a register, so
    ids below 512 are tested by a permute and a shift; only a vector holding a larger id
    gathers words from memory, as every vector does elsewhere (LLVM emulates the gather and
    the compress there). The caller gives a bitset of at least 16 words, keeps start + LANES
    within the rows (and under 2^31) and at + LANES within out_rows (all LANES are stored).
    """
    arrays = (ids, values, wanted_bits, out_rows)
    if not (all(isinstance(a, types.Array) for a in arrays)
            and isinstance(ids.dtype, types.Integer)
            and wanted_bits.dtype in (types.int32, types.uint32) and out_rows.dtype == types.int32
            and isinstance(values.dtype, types.Integer | types.Float)
            and isinstance(start, types.Integer) and isinstance(at, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ids_arg, values_arg, start_arg, bits_arg, out_rows_arg, at_arg = args
        ids_t, values_t, start_t, bits_t, out_rows_t, at_t = signature.args
        i32, i64 = ir.IntType(32), ir.IntType(64)

        def load(array_t, array, element_t):
            pointer = _element_pointer(context, builder, array_t, array, start_t, start_arg)
            element = context.get_value_type(element_t)
            return builder.load(_pointer_to(builder, pointer, _vector(element)),
                                typ=_vector(element), align=context.get_abi_sizeof(element))

        id_vector = load(ids_t, ids_arg, ids_t.dtype)
        bits = context.make_array(bits_t)(context, builder, bits_arg)
        # ids are tested in their own width (at least 32 bits): 16 lanes of 32-bit ids are
        # one register, widened to 64 bits they would be two
        lane = ir.IntType(max(32, id_vector.type.element.width))
        lane_ids = (builder.sext if ids_t.dtype.signed else builder.zext)(id_vector,
                                                                           _vector(lane))

        def from_memory(in_register=None, from_register=None):
            """Each id's word, whether it is in the bitset, the negative ids: a gather of the
            words (only of the lanes not `in_register`, given the register's words)."""
            n_bits = builder.shl(builder.extract_value(bits.shape, 0), i64(5))
            if lane.width < 64:  # at most 2^32 - 1 bits count for 32-bit ids
                n_bits = builder.trunc(builder.select(
                    builder.icmp_unsigned(">", n_bits, i64(2 ** 32 - 1)), i64(2 ** 32 - 1),
                    n_bits), lane)
            in_bits = builder.icmp_unsigned("<", lane_ids, _splat(builder, n_bits))
            negative = (builder.icmp_signed("<", lane_ids, ir.Constant(_vector(lane), 0))
                        if ids_t.dtype.signed else ir.Constant(_vector(ir.IntType(1)), 0))
            if from_register is None:
                return (_gather_words(context, builder, bits, lane_ids, in_bits), in_bits,
                        _lane_count(builder, negative))
            gathered = _gather_words(context, builder, bits, lane_ids,
                                     builder.and_(in_bits, builder.not_(in_register)))
            return (builder.select(in_register, from_register, gathered), in_bits,
                    _lane_count(builder, negative))

        if _has_avx512():  # ids below 512 from the register; a gather only when one is not
            in_register = builder.icmp_unsigned("<", lane_ids,
                                                _splat(builder, lane(_REGISTER_BITS)))
            from_register = _register_words(builder, bits, lane_ids)
            all_in_register = builder.icmp_unsigned(
                "==", builder.bitcast(in_register, ir.IntType(LANES)), ir.IntType(LANES)(-1))
            before = builder.block
            with builder.if_then(builder.not_(all_in_register), likely=False):
                slow_words, slow_in_bits, slow_negatives = from_memory(in_register, from_register)
                slow = builder.block
            words, in_bits, negatives = (builder.phi(v.type) for v in (
                slow_words, slow_in_bits, slow_negatives))
            for phi, fast, slow_value in ((words, from_register, slow_words),
                                          (in_bits, in_register, slow_in_bits),
                                          (negatives, i64(0), slow_negatives)):
                phi.add_incoming(fast, before)
                phi.add_incoming(slow_value, slow)
        else:
            words, in_bits, negatives = from_memory()
        shift = builder.and_(lane_ids, _splat(builder, lane(31)))
        if lane.width > 32:
            shift = builder.trunc(shift, _vector(i32))
        bit = builder.and_(builder.lshr(words, shift), _splat(builder, i32(1)))
        keep = builder.and_(in_bits, builder.icmp_unsigned("!=", bit,
                                                           ir.Constant(_vector(i32), 0)))
        if isinstance(values_t.dtype, types.Float):  # NaN is missing: only floats are read
            value_vector = load(values_t, values_arg, values_t.dtype)
            keep = builder.and_(keep, builder.fcmp_ordered("==", value_vector, value_vector))
        first = builder.trunc(context.cast(builder, start_arg, start_t, types.int64), i32)
        rows = builder.add(_splat(builder, first), ir.Constant(_vector(i32), list(range(LANES))))
        _store_packed(context, builder, rows, keep, out_rows_t, out_rows_arg,
                      context.cast(builder, at_arg, at_t, types.int64))
        return context.make_tuple(builder, signature.return_type,
                                  [_lane_count(builder, keep), negatives])

    return (types.UniTuple(types.int64, 2)(ids, values, start, wanted_bits, out_rows, at),
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
